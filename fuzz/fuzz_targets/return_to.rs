//! `sanitize_return_to` on arbitrary strings.
//!
//! Must never panic. The result is the input or `/`. A kept value settles within 3
//! percent-decodings, and none of its decoded forms starts with `//` or `/\` or contains CR,
//! LF or another control character.

#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_core::flow::sanitize_return_to;

/// One percent-decoding, as a proxy or framework in front of the app might do.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let hex = |i: usize| bytes.get(i).and_then(|b| (*b as char).to_digit(16));
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let (Some(h), Some(l)) = (hex(i + 1), hex(i + 2))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fuzz_target!(|raw: &str| {
    let out = sanitize_return_to(raw);
    assert!(out == raw || out == "/", "{raw:?} became {out:?}");
    assert!(
        !out.chars().any(char::is_control),
        "control character in {out:?}"
    );
    let mut form = out.clone();
    for decodings in 0.. {
        assert!(form.starts_with('/'), "{raw:?} -> {out:?}: {form:?}");
        assert!(
            !form.starts_with("//") && !form.starts_with("/\\"),
            "{raw:?} -> {out:?} leaves the origin as {form:?}"
        );
        assert!(
            !form.chars().any(char::is_control),
            "{raw:?} -> {out:?} carries CR/LF or another control character as {form:?}"
        );
        let next = percent_decode(&form);
        if next == form {
            break;
        }
        assert!(
            decodings < 3,
            "{raw:?} is kept but still changes after 3 decodings"
        );
        form = next;
    }
});
