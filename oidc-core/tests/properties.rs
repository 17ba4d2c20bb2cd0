//! Property tests (proptest) for the parsers of `oidc-core` that see attacker input: the
//! return-to sanitizer and scope parsing. The fuzz targets in `fuzz/` cover the same code with
//! coverage guidance; these run with `cargo test` and shrink a failure to a minimal input.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_core::Scopes;
use oidc_core::flow::sanitize_return_to;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Return-to sanitizer (RED-01)

/// Percent-decodes once, as a server or proxy in front of the app might: `%XX` becomes the
/// byte, anything else is kept, and invalid UTF-8 is replaced.
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

/// The forms of `s` after 0, 1, 2, … percent-decodings, up to `depth` decodings or until
/// decoding changes nothing.
fn decoded_forms(s: &str, depth: usize) -> Vec<String> {
    let mut forms = vec![s.to_owned()];
    for _ in 0..depth {
        let next = percent_decode(forms.last().unwrap());
        if &next == forms.last().unwrap() {
            break;
        }
        forms.push(next);
    }
    forms
}

/// Whether a browser (or anything that resolves the path as a URL reference) could leave the
/// origin with `form` as a `Location`: a network-path reference (`//host`) or its backslash
/// variant (`/\host`, which browsers normalise to `//host`).
fn leaves_origin(form: &str) -> bool {
    form.starts_with("//") || form.starts_with("/\\")
}

/// The invariants of one sanitized value, for its input `raw`: the output is the input or
/// `/`, and every percent-decoded form of it (down to the form that decoding no longer
/// changes, reached within 3 decodings for a kept value) starts with a single `/` and carries
/// no CR/LF or other control character.
fn check_sanitized(raw: &str) -> Result<(), TestCaseError> {
    let out = sanitize_return_to(raw);
    prop_assert!(
        out == raw || out == "/",
        "the output is the input or `/`: {raw:?} -> {out:?}"
    );
    prop_assert!(out.starts_with('/'), "{raw:?} -> {out:?}");
    let forms = decoded_forms(&out, 16);
    prop_assert!(
        forms.len() <= 4,
        "{raw:?} is kept although it still changes after 3 decodings: {forms:?}"
    );
    for form in &forms {
        prop_assert!(
            !leaves_origin(form),
            "{raw:?} -> {out:?} decodes to {form:?}, which leaves the origin"
        );
        prop_assert!(
            !form.chars().any(char::is_control),
            "{raw:?} -> {out:?} decodes to {form:?}, with CR/LF or another control character"
        );
    }
    Ok(())
}

/// Pieces that open-redirect and header-injection payloads are made of.
fn redirect_piece() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "/",
        "\\",
        "//",
        "/\\",
        "%2F",
        "%2f",
        "%5C",
        "%5c",
        "%25",
        "%252F",
        "%255C",
        "2F",
        "5C",
        "%0D",
        "%0A",
        "%0d%0a",
        "%09",
        "%00",
        "%20",
        "\r",
        "\n",
        "\t",
        " ",
        "\u{85}",
        "\u{2028}",
        "evil.example",
        "a",
        "..",
        ".",
        "?",
        "#",
        "&",
        "=",
        "%",
        "@",
        ":",
        "https:",
        "javascript:",
        "%E2%9C%93",
        "\u{2713}",
        "%C0%AF",
        "%FF",
    ])
}

/// Strings made of redirect pieces, with or without a leading `/`.
fn adversarial_return_to() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(redirect_piece(), 0..12),
    )
        .prop_map(|(slash, pieces)| {
            let mut s = if slash { "/".to_owned() } else { String::new() };
            for p in pieces {
                s.push_str(p);
            }
            s
        })
}

/// A simple same-origin path: `/seg/seg?k=v#f` with unreserved characters only.
fn simple_path() -> impl Strategy<Value = String> {
    (
        prop::collection::vec("[A-Za-z0-9._~-]{1,12}", 0..6),
        any::<bool>(),
        prop::option::of(("[a-z]{1,8}", "[A-Za-z0-9._~-]{0,12}")),
        prop::option::of("[A-Za-z0-9._~-]{0,12}"),
    )
        .prop_map(|(segments, trailing, query, fragment)| {
            let mut s = format!("/{}", segments.join("/"));
            if trailing && !segments.is_empty() {
                s.push('/');
            }
            if let Some((k, v)) = query {
                s.push_str(&format!("?{k}={v}"));
            }
            if let Some(f) = fragment {
                s.push_str(&format!("#{f}"));
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Any string: the output stays on the origin, also after any number of percent-decodings,
    /// and carries no CR/LF.
    #[test]
    fn return_to_any_string_stays_on_the_origin(raw in any::<String>()) {
        check_sanitized(&raw)?;
    }

    /// Strings built from open-redirect pieces (`//`, `/\`, `%2F`, `%5C`, double encodings,
    /// CR/LF and their encodings, schemes).
    #[test]
    fn return_to_adversarial_stays_on_the_origin(raw in adversarial_return_to()) {
        check_sanitized(&raw)?;
    }

    /// The same pieces behind a prefix that is itself a valid path.
    #[test]
    fn return_to_adversarial_suffix_stays_on_the_origin(
        prefix in simple_path(),
        raw in adversarial_return_to(),
    ) {
        check_sanitized(&format!("{prefix}{raw}"))?;
    }

    /// Valid simple paths (unreserved characters, query, fragment) are kept unchanged.
    #[test]
    fn return_to_keeps_simple_paths(path in simple_path()) {
        prop_assert_eq!(sanitize_return_to(&path), path);
    }

    /// Valid paths with percent-encoded unreserved or non-ASCII characters are kept too.
    #[test]
    fn return_to_keeps_encoded_paths(
        path in simple_path(),
        encoded in prop::sample::select(vec!["%20", "%41", "%E2%9C%93", "%7E", "%2D"]),
    ) {
        let with = format!("{path}{encoded}");
        prop_assert_eq!(sanitize_return_to(&with), with);
    }

    /// Idempotent: a sanitized value passes through again unchanged.
    #[test]
    fn return_to_is_idempotent(raw in prop_oneof![any::<String>(), adversarial_return_to()]) {
        let once = sanitize_return_to(&raw);
        prop_assert_eq!(sanitize_return_to(&once), once);
    }
}

/// Regression (found by these properties, fixed in `sanitize_return_to`): the sanitizer used
/// to check a bounded number of percent-decodings and then accept whatever was left, so CR/LF
/// encoded 4 times (the 4th form was checked for `//` but not for controls) and `//` encoded 5
/// times were kept. A value that still changes after the last decoding is now refused.
#[test]
fn return_to_never_decodes_off_origin_at_any_depth() {
    // "//evil.example" with its second `/` encoded, then the `%` encoded 4 more times:
    // 5 decodings give "//evil.example", 4 give "/%2Fevil.example".
    let deep = format!("/%{}2Fevil.example", "25".repeat(4));
    let forms = decoded_forms(&deep, 16);
    assert_eq!(forms.len(), 6, "{forms:?}");
    assert_eq!(forms.last().map(String::as_str), Some("//evil.example"));
    // "/a%0D%0ASet-Cookie:x" with the `%` encoded 3 more times: 4 decodings give CR/LF.
    let crlf = format!("/a%{0}0D%{0}0ASet-Cookie:x", "25".repeat(3));
    let forms = decoded_forms(&crlf, 16);
    assert_eq!(forms.len(), 5, "{forms:?}");
    assert!(forms.last().unwrap().contains("\r\n"));
    let kept: Vec<&String> = [&deep, &crlf]
        .into_iter()
        .filter(|raw| sanitize_return_to(raw) != "/")
        .collect();
    assert!(
        kept.is_empty(),
        "kept although they fully decode off-origin or to CR/LF: {kept:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Scope parsing

/// An RFC 6749 §3.3 scope-token: `1*( %x21 / %x23-5B / %x5D-7E )`.
fn scope_token() -> impl Strategy<Value = String> {
    "[!#-\\[\\]-~]{1,16}"
}

/// What `from_space_separated` must return: the non-empty space-separated parts, first
/// appearance kept, duplicates dropped.
fn reference_scopes(s: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for part in s.split(' ') {
        if !part.is_empty() && !out.iter().any(|o| o == part) {
            out.push(part.to_owned());
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Any string: no empty scope, no duplicate, order of first appearance, and the
    /// accessors agree with the list.
    #[test]
    fn scopes_any_string(s in any::<String>()) {
        let scopes = Scopes::from_space_separated(&s);
        let listed: Vec<&str> = scopes.iter().collect();
        prop_assert!(listed.iter().all(|scope| !scope.is_empty()), "{listed:?}");
        for (i, scope) in listed.iter().enumerate() {
            prop_assert!(!listed[..i].contains(scope), "duplicate {scope:?} in {listed:?}");
            prop_assert!(scopes.contains(scope));
            prop_assert!(!scope.contains(' '));
        }
        prop_assert_eq!(scopes.len(), listed.len());
        prop_assert_eq!(scopes.is_empty(), listed.is_empty());
        prop_assert_eq!(listed, reference_scopes(&s));
    }

    /// Lists of scope tokens with duplicates and runs of spaces: the first appearance of each
    /// token, in order.
    #[test]
    fn scopes_from_token_lists(
        tokens in prop::collection::vec(prop_oneof![scope_token(), Just("openid".to_owned())], 0..12),
        gaps in prop::collection::vec(1usize..4, 12),
        lead in 0usize..3,
        trail in 0usize..3,
    ) {
        let mut s = " ".repeat(lead);
        for (i, t) in tokens.iter().enumerate() {
            if i > 0 {
                s.push_str(&" ".repeat(gaps[i % gaps.len()]));
            }
            s.push_str(t);
        }
        s.push_str(&" ".repeat(trail));
        let scopes = Scopes::from_space_separated(&s);
        let mut want: Vec<&str> = Vec::new();
        for t in &tokens {
            if !want.contains(&t.as_str()) {
                want.push(t);
            }
        }
        prop_assert_eq!(scopes.iter().collect::<Vec<_>>(), want);
        for t in &tokens {
            prop_assert!(scopes.contains(t));
        }
    }

    /// Round trip: a list of distinct scope tokens, joined by single spaces, parses back to
    /// the same list, and joining the parsed list gives the same string.
    #[test]
    fn scopes_round_trip(tokens in prop::collection::hash_set(scope_token(), 0..10)) {
        let tokens: Vec<String> = tokens.into_iter().collect();
        let joined = tokens.join(" ");
        let scopes = Scopes::from_space_separated(&joined);
        prop_assert_eq!(scopes.iter().collect::<Vec<_>>(), tokens.iter().map(String::as_str).collect::<Vec<_>>());
        prop_assert_eq!(scopes.iter().collect::<Vec<_>>().join(" "), joined.clone());
        prop_assert_eq!(Scopes::from_space_separated(&joined), scopes);
    }
}

// ---------------------------------------------------------------------------------------------
// Scopes read from verified tokens (`scope`, or `scp` as a string or an array)

/// Runs `cases` of `strategy` against tokens minted by one in-process provider, each carrying
/// the generated value as its `scp` claim (and no `scope`), and checks the scopes of the
/// verified token against the first-appearance, no-duplicate reference.
fn check_scp_claims<S>(strategy: S, cases: u32)
where
    S: Strategy,
    S::Value: serde::Serialize + std::fmt::Debug,
{
    use oidc_core::{AccessTokenVerifier, AdditionalClaims, Provider};
    use proptest::test_runner::{Config, TestRunner};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (tp, verifier) = rt.block_on(async {
        let tp = oidc_testing::TestProvider::start().await;
        let provider = Provider::builder(tp.issuer()).build().unwrap();
        let verifier = AccessTokenVerifier::new(provider, "api://default").without_token_cache();
        (tp, verifier)
    });
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&strategy, |scp| {
        let scp = serde_json::to_value(&scp).unwrap();
        let token = tp
            .token()
            .without_claim("scope")
            .claim("scp", scp.clone())
            .sign();
        let claims = rt
            .block_on(verifier.verify::<AdditionalClaims>(&token))
            .map_err(|e| TestCaseError::fail(format!("{scp}: {e}")))?;
        let got: Vec<&str> = claims.scopes().iter().collect();
        let joined = match &scp {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(items) => items
                .iter()
                .filter_map(serde_json::Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        prop_assert_eq!(got, reference_scopes(&joined), "scp = {}", scp);
        Ok(())
    });
    rt.block_on(tp.shutdown());
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// `scp` as a space-separated string: as `from_space_separated`.
#[test]
fn scopes_from_scp_string() {
    check_scp_claims(
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "a b", " "]), 0..6)
            .prop_map(|parts| parts.concat()),
        64,
    );
}

/// Regression (found by this property, fixed in `Scopes`): with `scp` as an array, only
/// *consecutive* duplicates used to be removed (`Vec::dedup`), so `["a", "b", "a"]` (or
/// `["a b", "a"]`) gave the scopes `a b a`.
#[test]
fn scopes_from_scp_array_have_no_duplicates() {
    check_scp_claims(
        prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "a b"]), 0..6),
        64,
    );
}

// ---------------------------------------------------------------------------------------------
// Found by the fuzz target `verify_token_structured`

/// Regression (found by fuzzing, fixed in the header parser): `crit` was read as
/// `Option<IgnoredAny>`, so `"crit": null` became `None` and passed the "no `crit`" rule of
/// `oidc_core::verify` (step 3). RFC 7515 §4.1.11 allows `crit` only as a non-empty array; any
/// `crit` member is now refused, whatever its value.
#[test]
fn header_with_null_crit_is_refused() {
    use oidc_core::{AccessTokenVerifier, AdditionalClaims, Provider};

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = oidc_testing::TestProvider::start().await;
        let provider = Provider::builder(tp.issuer()).build().unwrap();
        let verifier = AccessTokenVerifier::new(provider, "api://default");
        let valid = tp.token().sign();
        assert!(verifier.verify::<AdditionalClaims>(&valid).await.is_ok());
        let token = tp.token().header("crit", serde_json::Value::Null).sign();
        let result = verifier.verify::<AdditionalClaims>(&token).await;
        tp.shutdown().await;
        assert!(result.is_err(), "a token with \"crit\": null was accepted");
    });
}
