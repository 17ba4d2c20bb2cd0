//! Writes the seed corpora `fuzz/corpus/<target>/` from real inputs: valid and attack tokens,
//! the committed keys' JWKS and variants, discovery documents, callback queries, the
//! return-to table of `oidc-core/src/flow/transaction.rs`, session records.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml --example seeds` (from the repository root).
//! ES256 signatures are randomized, so a rerun changes those files; the rest is stable.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs;
use std::path::{Path, PathBuf};

use jsonwebtoken::Algorithm;
use oidc_fuzz::{
    AUDIENCE, ISSUER, ISSUER_WITH_PATH, JWKS, NOW, b64, discovery_document, mint, mint_raw, tokens,
    valid_claims, valid_header,
};
use serde_json::{Value, json};

fn dir(target: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    fs::create_dir_all(&d).unwrap();
    d
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    fs::write(dir(target).join(name), bytes).unwrap();
}

fn with(selector: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![selector];
    v.extend_from_slice(body);
    v
}

fn main() {
    let t = tokens();
    let header = |alg| valid_header(alg, true);
    let claims = || valid_claims(ISSUER);

    // verify_token: valid tokens and the attack catalogue of SECURITY-CASES.md.
    let mut cases: Vec<(&str, String)> = vec![
        ("valid-rs256", t.rs256.clone()),
        ("valid-es256", t.es256.clone()),
        ("valid-rs256-no-kid", t.rs256_no_kid.clone()),
        ("valid-es256-no-kid", t.es256_no_kid.clone()),
    ];
    type Members = serde_json::Map<String, Value>;
    let edit = |f: &dyn Fn(&mut Members, &mut Members)| {
        let mut h = header(Algorithm::RS256);
        let mut c = claims();
        f(&mut h, &mut c);
        mint(&h, &c, Algorithm::RS256)
    };
    cases.push((
        "typ-jwt",
        edit(&|h, _| {
            h.insert("typ".into(), json!("JWT"));
        }),
    ));
    cases.push((
        "typ-none",
        edit(&|h, _| {
            h.remove("typ");
        }),
    ));
    cases.push((
        "typ-logout",
        edit(&|h, _| {
            h.insert("typ".into(), json!("logout+jwt"));
        }),
    ));
    cases.push((
        "crit",
        edit(&|h, _| {
            h.insert("crit".into(), json!(["exp"]));
        }),
    ));
    cases.push((
        "jku",
        edit(&|h, _| {
            h.insert("jku".into(), json!("https://evil.example/jwks"));
        }),
    ));
    cases.push((
        "unknown-kid",
        edit(&|h, _| {
            h.insert("kid".into(), json!("nope"));
        }),
    ));
    cases.push((
        "expired",
        edit(&|_, c| {
            c.insert("exp".into(), json!(NOW - 3600));
        }),
    ));
    cases.push((
        "nbf-future",
        edit(&|_, c| {
            c.insert("nbf".into(), json!(NOW + 3600));
        }),
    ));
    cases.push((
        "iat-missing",
        edit(&|_, c| {
            c.remove("iat");
        }),
    ));
    cases.push((
        "exp-float",
        edit(&|_, c| {
            c.insert("exp".into(), json!(1.9e9));
        }),
    ));
    cases.push((
        "wrong-aud",
        edit(&|_, c| {
            c.insert("aud".into(), json!("other"));
        }),
    ));
    cases.push((
        "aud-array",
        edit(&|_, c| {
            c.insert("aud".into(), json!(["x", AUDIENCE]));
        }),
    ));
    cases.push((
        "wrong-iss",
        edit(&|_, c| {
            c.insert("iss".into(), json!(format!("{ISSUER}/")));
        }),
    ));
    cases.push((
        "sub-empty",
        edit(&|_, c| {
            c.insert("sub".into(), json!(""));
        }),
    ));
    cases.push((
        "id-token",
        edit(&|h, c| {
            h.insert("typ".into(), json!("JWT"));
            c.insert("nonce".into(), json!("n"));
        }),
    ));
    cases.push((
        "logout-token",
        edit(&|_, c| {
            c.insert(
                "events".into(),
                json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
            );
        }),
    ));
    cases.push((
        "keycloak-typ-id",
        edit(&|h, c| {
            h.insert("typ".into(), json!("JWT"));
            c.insert("typ".into(), json!("ID"));
        }),
    ));
    cases.push((
        "roles",
        edit(&|_, c| {
            c.insert("realm_access".into(), json!({"roles": ["admin"]}));
            c.insert("scp".into(), json!(["a", "b", "a"]));
        }),
    ));
    let rs = &t.rs256;
    let (signing_input, _) = rs.rsplit_once('.').unwrap();
    cases.push((
        "alg-none",
        format!(
            "{}.{}.",
            b64(br#"{"alg":"none","typ":"at+jwt"}"#),
            signing_input.split('.').nth(1).unwrap()
        ),
    ));
    cases.push(("bad-signature", format!("{signing_input}.{}", b64(b"nope"))));
    cases.push((
        "dup-header",
        mint_raw(
            br#"{"alg":"RS256","alg":"none","kid":"rsa1-RS256"}"#,
            &serde_json::to_vec(&claims()).unwrap(),
            Algorithm::RS256,
        ),
    ));
    cases.push(("es256-with-rsa-kid", {
        let mut h = header(Algorithm::ES256);
        h.insert("kid".into(), json!("rsa1-RS256"));
        mint(&h, &claims(), Algorithm::ES256)
    }));
    cases.push(("two-segments", signing_input.to_owned()));
    cases.push(("padded", format!("{rs}==")));
    for (name, token) in &cases {
        write("verify_token", name, token);
    }

    // logout_token: a valid logout token (sid, sub only), and the BCL refusals.
    let logout = |edit: &dyn Fn(
        &mut serde_json::Map<String, Value>,
        &mut serde_json::Map<String, Value>,
    )| {
        let mut h = header(Algorithm::RS256);
        h.insert("typ".into(), json!("logout+jwt"));
        let mut c = serde_json::Map::new();
        c.insert("iss".into(), json!(ISSUER));
        c.insert("aud".into(), json!("web-app"));
        c.insert("iat".into(), json!(oidc_fuzz::NOW));
        c.insert("exp".into(), json!(oidc_fuzz::NOW + 120));
        c.insert("jti".into(), json!("jti-1"));
        c.insert("sid".into(), json!("sid-1"));
        c.insert("sub".into(), json!("user-1"));
        c.insert(
            "events".into(),
            json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
        );
        edit(&mut h, &mut c);
        mint(&h, &c, Algorithm::RS256)
    };
    write("logout_token", "valid", logout(&|_, _| {}));
    write(
        "logout_token",
        "sub-only",
        logout(&|_, c| {
            c.remove("sid");
        }),
    );
    write(
        "logout_token",
        "with-nonce",
        logout(&|_, c| {
            c.insert("nonce".into(), json!("n"));
        }),
    );
    write(
        "logout_token",
        "typ-at-jwt",
        logout(&|h, _| {
            h.insert("typ".into(), json!("at+jwt"));
        }),
    );
    write(
        "logout_token",
        "wrong-event",
        logout(&|_, c| {
            c.insert(
                "events".into(),
                json!({"http://schemas.openid.net/event/foobar": {}}),
            );
        }),
    );
    write(
        "logout_token",
        "no-sid-no-sub",
        logout(&|_, c| {
            c.remove("sid");
            c.remove("sub");
        }),
    );

    // verify_token_structured: `arbitrary` inputs; the empty input is the valid RS256 token.
    write("verify_token_structured", "valid-resigned", b"");
    write("verify_token_structured", "es256", [1u8]);
    write(
        "verify_token_structured",
        "edits",
        [0u8, 0, 1, 0, 7, 3, 1, 0, 2, 0, 0, 0, 2],
    );

    // jwks_document: selector (which token) + the body.
    let set: Value = serde_json::from_str(JWKS).unwrap();
    let rsa = set["keys"][0].clone();
    let ec = set["keys"][1].clone();
    let mut jwks: Vec<(&str, Value)> = vec![
        ("both", set.clone()),
        ("rsa-only", json!({"keys": [rsa]})),
        ("ec-only", json!({"keys": [ec]})),
        ("empty", json!({"keys": []})),
        (
            "oct",
            json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "rsa1-RS256"}]}),
        ),
    ];
    let mut v = rsa.clone();
    v["alg"] = json!("PS256");
    jwks.push(("alg-mismatch", json!({"keys": [v]})));
    let mut v = rsa.clone();
    v["use"] = json!("enc");
    jwks.push(("use-enc", json!({"keys": [v]})));
    let mut v = rsa.clone();
    v["key_ops"] = json!(["encrypt"]);
    jwks.push(("key-ops", json!({"keys": [v]})));
    let mut v = rsa.clone();
    v.as_object_mut().unwrap().remove("kid");
    jwks.push(("no-kid", json!({"keys": [v, ec.clone()]})));
    let mut v = ec.clone();
    v["crv"] = json!("P-384");
    jwks.push(("ec-wrong-curve", json!({"keys": [v]})));
    let mut v = rsa.clone();
    v["n"] = json!(&rsa["n"].as_str().unwrap()[..100]);
    jwks.push(("rsa-short", json!({"keys": [v]})));
    let mut v = rsa.clone();
    v["n"] = json!(format!("AA{}", rsa["n"].as_str().unwrap()));
    jwks.push(("rsa-leading-zero", json!({"keys": [v]})));
    jwks.push(("dup-kid", json!({"keys": [ec.clone(), {"kty": "EC", "kid": "ec1-ES256", "crv": "P-256", "x": "AAAA", "y": "AAAA"}]})));
    // Every document with every token: 0 RS256, 1 ES256, 2 RS256 without kid, 3 ES256 without.
    for (name, body) in &jwks {
        for selector in 0..4u8 {
            let body = serde_json::to_vec(body).unwrap();
            write(
                "jwks_document",
                &format!("{name}-{selector}"),
                with(selector, &body),
            );
        }
    }
    write("jwks_document", "array", with(0, b"[]"));
    write("jwks_document", "not-json", with(1, b"<html>"));

    // discovery_document: selector (bit 0: issuer with path; bit 1: RFC 8414 location).
    let doc = |issuer: &str, f: &dyn Fn(&mut Value)| {
        let mut d: Value = serde_json::from_slice(&discovery_document(issuer)).unwrap();
        f(&mut d);
        serde_json::to_vec(&d).unwrap()
    };
    write(
        "discovery_document",
        "valid",
        with(0, &discovery_document(ISSUER)),
    );
    write(
        "discovery_document",
        "valid-path",
        with(1, &discovery_document(ISSUER_WITH_PATH)),
    );
    write(
        "discovery_document",
        "valid-8414",
        with(2, &discovery_document(ISSUER)),
    );
    write(
        "discovery_document",
        "issuer-slash",
        with(
            0,
            &doc(ISSUER, &|d| d["issuer"] = json!(format!("{ISSUER}/"))),
        ),
    );
    write(
        "discovery_document",
        "jwks-http",
        with(
            0,
            &doc(ISSUER, &|d| {
                d["jwks_uri"] = json!("http://id.example.com/keys")
            }),
        ),
    );
    write(
        "discovery_document",
        "jwks-loopback",
        with(
            0,
            &doc(ISSUER, &|d| d["jwks_uri"] = json!("http://127.0.0.1/keys")),
        ),
    );
    write(
        "discovery_document",
        "algs-es256",
        with(
            0,
            &doc(ISSUER, &|d| {
                d["id_token_signing_alg_values_supported"] = json!(["ES256"])
            }),
        ),
    );
    write(
        "discovery_document",
        "algs-none",
        with(
            0,
            &doc(ISSUER, &|d| {
                d["id_token_signing_alg_values_supported"] = json!(["none", "HS256"])
            }),
        ),
    );
    write(
        "discovery_document",
        "minimal",
        with(
            0,
            json!({"issuer": ISSUER, "jwks_uri": "https://id.example.com/k"})
                .to_string()
                .as_bytes(),
        ),
    );
    write("discovery_document", "wrong-types", with(0, json!({"issuer": ISSUER, "jwks_uri": 7, "authorization_response_iss_parameter_supported": "yes"}).to_string().as_bytes()));

    // callback_query
    for (name, q) in [
        (
            "ok",
            "code=SplxlOBeZQQYbYS6WxSbIA&state=af0ifjsldkj&iss=https%3A%2F%2Fid.example.com",
        ),
        (
            "error",
            "error=access_denied&error_description=The+user+said+no&state=af0ifjsldkj",
        ),
        ("dup-state", "code=a&state=x&state=y"),
        ("dup-code", "code=a&code=b&state=x"),
        ("dup-iss-encoded", "iss=a&%69ss=b"),
        ("empty", ""),
        ("bare", "code&state"),
        ("percent", "code=%ZZ%&state=%E2%9C%93+%2B"),
        ("semicolon", "code=a;state=b"),
        ("unknown", "session_state=x&code=a&foo=bar&foo=baz"),
    ] {
        write("callback_query", name, q);
    }

    // return_to: the RED-01 table and the encodings around the sanitizer's depth.
    let mut return_to: Vec<String> = [
        "/",
        "/app",
        "/app?x=1#y",
        "/a/b/c?q=%20x",
        "/%E2%9C%93",
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "\\\\evil",
        "/%2F%2Fevil.example",
        "%2F%2Fevil",
        "/%2f/evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "https:evil.example",
        "javascript:alert(1)",
        "data:text/html,x",
        "http://trusted@evil",
        "",
        "app",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "/a\r\nSet-Cookie: x=1",
        "/a%0D%0ASet-Cookie:x",
        "/a%250D%250A",
        "/%C0%AF%C0%AFevil",
        "/\u{2028}x",
    ]
    .map(str::to_owned)
    .to_vec();
    for depth in 2..=3 {
        return_to.push(format!("/%{}2Fevil.example", "25".repeat(depth)));
        return_to.push(format!("/a%{}0D", "25".repeat(depth - 1)));
    }
    for (i, r) in return_to.iter().enumerate() {
        write("return_to", &format!("r{i:02}"), r);
    }

    // authorization_header: `\n`-separated header values; a `?` line is the query.
    for (name, input) in [
        ("valid-shape", format!("Bearer {}", t.rs256)),
        ("lowercase", "bearer abc.def.ghi".to_owned()),
        ("basic", "Basic dXNlcjpwYXNz".to_owned()),
        ("empty-bearer", "Bearer ".to_owned()),
        ("two-tokens", "Bearer a b".to_owned()),
        ("comma", "Bearer a,b".to_owned()),
        ("padding", "Bearer abc==".to_owned()),
        ("two-headers", "Bearer a\nBearer b".to_owned()),
        ("query-token", "Bearer a\n?access_token=a".to_owned()),
        ("query-only", "?x=1&access_token=a".to_owned()),
        ("obs-text", "Bearer \u{e9}".to_owned()),
    ] {
        write("authorization_header", name, input);
    }

    // session_data: mode byte, endpoint byte, JSON.
    let login_state = |f: &dyn Fn(&mut Value)| {
        let mut v = json!({
            "issuer": ISSUER,
            "client_id": "web-app",
            "tokens": {
                "access_token": t.rs256,
                "refresh_token": "rt-1",
                "id_token": t.rs256,
                "expires_at": NOW + 3600,
                "scope": "openid profile email",
                "id_claims": {"iss": ISSUER, "sub": "user-1", "aud": "web-app", "email": "u@example.com"}
            },
            "claims": {"iss": ISSUER, "sub": "user-1", "aud": "web-app", "email": "u@example.com"},
            "local_user": null,
            "authenticated_at": NOW - 60,
            "last_seen": NOW - 30,
            "last_revalidated": NOW - 30
        });
        f(&mut v);
        serde_json::to_vec(&v).unwrap()
    };
    let session = |mode: u8, endpoint: u8, json: &[u8]| {
        let mut v = vec![mode, endpoint];
        v.extend_from_slice(json);
        v
    };
    write(
        "session_data",
        "login-fresh",
        session(0, 0, &login_state(&|_| {})),
    );
    write(
        "session_data",
        "login-nav",
        session(1, 0, &login_state(&|_| {})),
    );
    write(
        "session_data",
        "login-refresh-due",
        session(
            0,
            1,
            &login_state(&|v| v["tokens"]["expires_at"] = json!(NOW)),
        ),
    );
    write(
        "session_data",
        "login-revalidate-due",
        session(
            0,
            2,
            &login_state(&|v| v["last_revalidated"] = json!(NOW - 3600)),
        ),
    );
    write(
        "session_data",
        "login-revalidate-no-refresh",
        session(
            0,
            3,
            &login_state(&|v| {
                v["last_revalidated"] = json!(NOW - 3600);
                v["tokens"]["refresh_token"] = Value::Null;
            }),
        ),
    );
    write(
        "session_data",
        "login-absolute-timeout",
        session(
            1,
            0,
            &login_state(&|v| v["authenticated_at"] = json!(NOW - 13 * 3600)),
        ),
    );
    write(
        "session_data",
        "login-idle-timeout",
        session(0, 0, &login_state(&|v| v["last_seen"] = json!(NOW - 3600))),
    );
    write(
        "session_data",
        "login-other-issuer",
        session(
            0,
            0,
            &login_state(&|v| v["issuer"] = json!("https://evil.example")),
        ),
    );
    write(
        "session_data",
        "login-future",
        session(
            0,
            4,
            &login_state(&|v| {
                v["authenticated_at"] = json!(i64::MAX);
                v["last_seen"] = json!(i64::MIN);
            }),
        ),
    );
    write(
        "session_data",
        "login-wrong-types",
        session(0, 0, br#"{"issuer":7,"tokens":[]}"#),
    );
    write(
        "session_data",
        "logout",
        session(4, 0, &login_state(&|_| {})),
    );
    let tx = |created: i64| {
        json!({
            "state": "s1", "nonce": "n1", "pkce_verifier": "v".repeat(43), "issuer": ISSUER,
            "redirect_uri": "http://127.0.0.1:3000/auth/callback", "return_to": "/app",
            "max_age": null, "created_at": created
        })
    };
    write(
        "session_data",
        "tx-fresh",
        session(2, 1, &serde_json::to_vec(&json!([tx(NOW - 5)])).unwrap()),
    );
    write(
        "session_data",
        "tx-expired",
        session(2, 0, &serde_json::to_vec(&json!([tx(NOW - 3600)])).unwrap()),
    );
    write(
        "session_data",
        "tx-many",
        session(
            3,
            0,
            &serde_json::to_vec(&json!([
                tx(NOW),
                tx(NOW),
                tx(NOW),
                tx(NOW),
                tx(NOW),
                tx(NOW)
            ]))
            .unwrap(),
        ),
    );
    write(
        "session_data",
        "tx-garbage",
        session(2, 0, b"{\"state\":\"s1\"}"),
    );
    write("session_data", "not-json", session(0, 0, b"\xff\xfe"));
}
