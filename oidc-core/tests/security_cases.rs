//! Access-token verification against a real in-process OpenID Provider (`oidc-testing`).
//!
//! Test names carry the case ids of `SECURITY-CASES.md` (groups AT, IDT and DOS). Each test
//! starts its own provider, builds a `Provider` from its issuer (discovery over HTTP) and an
//! `AccessTokenVerifier` for `api://default`, and asserts the exact `VerifyError` variant.
//! The JWKS/provider cases (KEY, CB-11, DOS-04) live in `jwks_cache.rs`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    AUDIENCE, accepted, assert_rejected, counting_listener, now, setup, verifier, verifier_for,
    verify,
};
use oidc_core::error::VerifyError;
use oidc_core::verify::Clock;
use oidc_core::{AccessTokenVerifier, Algorithm, Provider};
use oidc_testing::{SigningAlg, TestProvider};
use serde::Deserialize;
use serde_json::{Value, json};

/// The committed private key behind the provider's initial RS256 kid `rsa1-RS256`, to sign
/// tokens whose header bytes the `TokenBuilder` cannot produce (duplicate members, arrays).
const RSA1_PRIVATE_PEM: &[u8] =
    include_bytes!("../../oidc-testing/keys/TEST-ONLY-rsa1.private.pem");

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Asserts that the token of each `(what, token)` case is rejected with an error matching the
/// pattern.
macro_rules! assert_each_rejected {
    ($verifier:expr, $cases:expr, $pattern:pat) => {
        for (what, token) in $cases {
            assert_rejected!($verifier, token, $pattern, what);
        }
    };
}

/// Asserts that a token with claim `$name` set to the value of each `(what, value)` case is
/// rejected with an error matching the pattern.
macro_rules! assert_claim_rejected {
    ($tp:expr, $verifier:expr, $name:literal, $cases:expr, $pattern:pat) => {
        for (what, value) in $cases {
            let value: Value = value;
            let token = $tp.token().claim($name, value).sign();
            assert_rejected!($verifier, token, $pattern, format!("{} {what}", $name));
        }
    };
}

/// Asserts that a token without the claim `name` is rejected as `MissingClaim(name)`.
async fn assert_missing_rejected(tp: &TestProvider, v: &AccessTokenVerifier, name: &'static str) {
    let token = tp.token().without_claim(name).sign();
    assert_rejected!(
        v,
        token,
        VerifyError::MissingClaim(missing) if missing == name,
        format!("missing {name}")
    );
}

/// Signs `header_b64.payload_b64` with RS256 and the key of `rsa1-RS256`.
fn sign_raw_rs256(header_b64: &str, payload_b64: &str) -> String {
    let input = format!("{header_b64}.{payload_b64}");
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(RSA1_PRIVATE_PEM).unwrap();
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key, jsonwebtoken::Algorithm::RS256).unwrap();
    format!("{input}.{signature}")
}

/// The header, payload and signature segments of a compact JWS.
fn segments(token: &str) -> (&str, &str, &str) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    (parts[0], parts[1], parts[2])
}

/// The default claims of the provider's tokens, base64url-encoded.
fn default_payload(tp: &TestProvider) -> String {
    b64(&serde_json::to_vec(&tp.token().claims_json()).unwrap())
}

// ---------------------------------------------------------------------------------------------
// AT-01 positive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn at_01_rs256_token_accepted_with_claims_exposed() {
    let (tp, v) = setup().await;
    let builder = tp.token();
    let exp = builder.claims_json()["exp"].as_i64().unwrap();
    let jti = builder.claims_json()["jti"].as_str().unwrap().to_owned();
    let claims = accepted(&v, &builder.sign(), "rs256").await;
    assert_eq!(claims.issuer(), tp.issuer());
    assert_eq!(claims.subject(), "user-1");
    assert_eq!(claims.audience(), [AUDIENCE]);
    assert_eq!(claims.client_id(), Some("client-1"));
    assert_eq!(claims.expires_at(), exp);
    assert_eq!(claims.token_id(), Some(jti.as_str()));
    assert!(claims.issued_at().is_some());
    assert_eq!(claims.not_before(), None);
    assert!(claims.scopes().contains("openid"));
    assert!(claims.scopes().contains("api:read"));
    assert!(!claims.scopes().contains("api:write"));
    assert_eq!(claims.scopes().len(), 2);
    assert!(claims.roles().is_empty());
    // The default claim type is the whole payload; unknown claims are simply carried along.
    assert_eq!(claims.custom()["scope"], "openid api:read");
}

#[tokio::test]
async fn at_01_client_credentials_token_accepted() {
    let (tp, v) = setup().await;
    let token = tp
        .token()
        .claim("sub", "client-1")
        .claim("extra-unknown", json!({"ignored": true}))
        .scope("api:read api:write")
        .sign();
    let claims = accepted(&v, &token, "client_credentials").await;
    assert_eq!(claims.subject(), "client-1");
    assert_eq!(claims.client_id(), Some("client-1"));
    assert!(claims.scopes().contains("api:write"));
}

#[tokio::test]
async fn at_01_es256_token_accepted_by_default() {
    let (tp, v) = setup().await;
    let token = tp.token().alg(SigningAlg::ES256).sign();
    accepted(&v, &token, "es256").await;
}

#[tokio::test]
async fn at_01_eddsa_and_ps256_accepted_when_configured() {
    let (tp, v) = setup().await;
    let v = v
        .with_algorithms([Algorithm::RS256, Algorithm::PS256, Algorithm::EdDSA])
        .unwrap();
    for alg in [SigningAlg::EdDSA, SigningAlg::PS256, SigningAlg::RS256] {
        let token = tp.token().alg(alg).sign();
        accepted(&v, &token, alg.as_str()).await;
    }
    // ES256 is no longer in the configured list.
    let es = tp.token().alg(SigningAlg::ES256).sign();
    assert_rejected!(
        v,
        es,
        VerifyError::DisallowedAlgorithm,
        "es256 not configured"
    );
}

#[tokio::test]
async fn at_01_audience_array_containing_the_api_accepted() {
    let (tp, v) = setup().await;
    let token = tp.token().audience(json!(["api://other", AUDIENCE])).sign();
    let claims = accepted(&v, &token, "aud array").await;
    assert_eq!(claims.audience(), ["api://other", AUDIENCE]);

    // A second configured audience is accepted too.
    let v2 = v.clone().add_audience("api://second");
    let token = tp.token().audience("api://second").sign();
    accepted(&v2, &token, "added audience").await;
    assert_rejected!(
        v,
        token,
        VerifyError::InvalidAudience,
        "not added on the original"
    );
}

#[tokio::test]
async fn at_01_roles_from_every_source() {
    let (tp, v) = setup().await;
    let token = tp
        .token()
        .claim("roles", json!(["admin"]))
        .claim("groups", json!(["g1", "admin"]))
        .claim("realm_access", json!({"roles": ["realm-r"]}))
        .claim(
            "resource_access",
            json!({"my-client": {"roles": ["client-r"]}, "other": {"roles": ["nope"]}}),
        )
        .claim("permissions", json!(["perm:x"]))
        .claim("app", json!({"roles": "nested"}))
        .sign();

    let plain = accepted(&v, &token, "no client id").await;
    assert_eq!(plain.roles(), ["admin", "g1", "realm-r"]);

    let configured = v
        .clone()
        .with_client_id("my-client")
        .add_roles_claim("permissions")
        .unwrap()
        .add_roles_claim("app.roles")
        .unwrap();
    let claims = accepted(&configured, &token, "configured").await;
    assert_eq!(
        claims.roles(),
        ["admin", "g1", "realm-r", "client-r", "perm:x", "nested"]
    );
    assert!(claims.has_role("client-r"));
    assert!(!claims.has_role("nope"));

    for bad in ["", "a..b", ".a", "a."] {
        assert!(v.clone().add_roles_claim(bad).is_err(), "{bad:?}");
    }
}

#[derive(Debug, Clone, Deserialize)]
struct TenantClaims {
    tenant: String,
    #[serde(default)]
    level: u8,
}

#[tokio::test]
async fn at_01_custom_typed_claims_deserialized() {
    let (tp, v) = setup().await;
    let token = tp.token().claim("tenant", "acme").claim("level", 3).sign();
    let claims = v.verify::<TenantClaims>(&token).await.unwrap();
    assert_eq!(claims.custom().tenant, "acme");
    assert_eq!(claims.custom().level, 3);
    assert_eq!(claims.subject(), "user-1");
    let (identity, custom) = claims.into_parts();
    assert_eq!(identity.subject(), "user-1");
    assert_eq!(custom.tenant, "acme");
}

#[tokio::test]
async fn at_01_custom_claims_that_do_not_fit_rejected() {
    let (tp, v) = setup().await;
    for (what, token) in [
        ("missing", tp.token().sign()),
        ("wrong type", tp.token().claim("tenant", 42).sign()),
        (
            "out of range",
            tp.token().claim("tenant", "a").claim("level", 300).sign(),
        ),
    ] {
        let result = v.verify::<TenantClaims>(&token).await;
        assert!(
            matches!(result, Err(VerifyError::CustomClaims)),
            "{what}: {result:?}"
        );
    }
    // The application's type is only read once every check passed.
    let expired = tp.token().expires_in(-3600).sign();
    let result = v.verify::<TenantClaims>(&expired).await;
    assert!(matches!(result, Err(VerifyError::Expired)), "{result:?}");
}

// ---------------------------------------------------------------------------------------------
// AT-03 malformed tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn at_03_wrong_segment_count_or_empty_segments_malformed() {
    let (tp, v) = setup().await;
    let good = tp.token().sign();
    let (h, p, s) = segments(&good);
    let cases = [
        ("two segments", format!("{h}.{p}")),
        ("four segments", format!("{h}.{p}.{s}.{s}")),
        ("extra dot", format!("{good}.")),
        ("empty header", format!(".{p}.{s}")),
        ("empty payload", format!("{h}..{s}")),
        ("empty signature", format!("{h}.{p}.")),
        ("empty", String::new()),
        ("dots only", "..".to_owned()),
        ("opaque", "2YotnFZFEjr1zCsicMWpAA".to_owned()),
        (
            "opaque uuid",
            "0f8fad5b-d9cb-469f-a165-70867728950e".to_owned(),
        ),
        ("with scheme", format!("Bearer {good}")),
    ];
    assert_each_rejected!(v, cases, VerifyError::Malformed);
    assert_eq!(
        tp.jwks_fetch_count(),
        0,
        "nothing was fetched for malformed tokens"
    );
    accepted(&v, &good, "the unmodified token").await;
}

#[tokio::test]
async fn at_03_bad_base64_malformed() {
    let (tp, v) = setup().await;
    let good = tp.token().sign();
    let (h, p, s) = segments(&good);
    let cases = [
        ("padding", format!("{h}=.{p}.{s}")),
        ("standard alphabet +", format!("{h}.{p}+.{s}")),
        ("standard alphabet /", format!("{h}.{p}.{s}/")),
        ("space", format!("{h}.{p} .{s}")),
        ("newline", format!("{good}\n")),
        ("percent", format!("{h}.%7B.{s}")),
        ("non-ascii", format!("{h}.{p}é.{s}")),
    ];
    assert_each_rejected!(v, cases, VerifyError::Malformed);
}

#[tokio::test]
async fn at_03_header_not_a_json_object_invalid_header() {
    let (tp, v) = setup().await;
    let payload = default_payload(&tp);
    let cases = [
        ("not json", b64(b"not json")),
        ("truncated json", b64(br#"{"alg":"RS256""#)),
        ("json string", b64(br#""RS256""#)),
        ("no alg", b64(br#"{"kid":"rsa1-RS256"}"#)),
        ("alg not a string", b64(br#"{"alg":256}"#)),
        // Valid alphabet, but a length no base64 encoding has.
        ("undecodable", "eyJhbGciOiJSUzI1NiJ9x".to_owned()),
        // serde's derived struct visitor would read an array as the fields in order.
        ("json array", b64(br#"["RS256","rsa1-RS256","at+jwt"]"#)),
        (
            "json array with spaces",
            b64(br#"  ["RS256","rsa1-RS256","at+jwt"]"#),
        ),
    ];
    // Properly signed with the provider's key: only the header is wrong.
    let tokens = cases.map(|(what, header)| (what, sign_raw_rs256(&header, &payload)));
    assert_each_rejected!(v, tokens, VerifyError::InvalidHeader);
    // Control: the same helper with an object header verifies.
    let ok = sign_raw_rs256(
        &b64(br#"{"alg":"RS256","typ":"at+jwt","kid":"rsa1-RS256"}"#),
        &payload,
    );
    accepted(&v, &ok, "object header").await;
}

#[tokio::test]
async fn at_03_duplicate_header_members_invalid_header() {
    let (tp, v) = setup().await;
    let payload = default_payload(&tp);
    let headers = [
        (
            "alg none then RS256",
            r#"{"alg":"none","typ":"at+jwt","kid":"rsa1-RS256","alg":"RS256"}"#,
        ),
        (
            "alg twice",
            r#"{"alg":"RS256","alg":"RS256","kid":"rsa1-RS256"}"#,
        ),
        (
            "kid twice",
            r#"{"alg":"RS256","kid":"x","kid":"rsa1-RS256"}"#,
        ),
        (
            "typ twice",
            r#"{"alg":"RS256","typ":"logout+jwt","typ":"at+jwt","kid":"rsa1-RS256"}"#,
        ),
    ];
    let tokens =
        headers.map(|(what, header)| (what, sign_raw_rs256(&b64(header.as_bytes()), &payload)));
    assert_each_rejected!(v, tokens, VerifyError::InvalidHeader);
}

#[tokio::test]
async fn at_03_signed_payload_not_a_json_object_invalid_payload() {
    let (tp, v) = setup().await;
    let header = b64(br#"{"alg":"RS256","typ":"at+jwt","kid":"rsa1-RS256"}"#);
    let payloads = [
        ("array", b64(b"[1,2]")),
        ("string", b64(br#""sub""#)),
        ("not json", b64(b"hello")),
        ("undecodable", "eyJzdWIiOiJ4In0xx".to_owned()),
    ];
    let tokens = payloads.map(|(what, payload)| (what, sign_raw_rs256(&header, &payload)));
    assert_each_rejected!(v, tokens, VerifyError::InvalidPayload);
    drop(tp);
}

// ---------------------------------------------------------------------------------------------
// AT-05 / IDT-02 / IDT-03 / IDT-04 signatures and algorithm confusion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn at_05_alg_none_variants_rejected() {
    let (tp, v) = setup().await;
    let builder = tp.token();
    let real_signature = builder.sign().rsplit('.').next().unwrap().to_owned();
    for name in ["none", "None", "NONE", "nOnE"] {
        for signature in ["c2lnbmF0dXJl", real_signature.as_str()] {
            let token = builder.sign_none(name, signature);
            assert_rejected!(v, token, VerifyError::DisallowedAlgorithm, name);
        }
        // With an empty signature the token is not a three-segment JWS at all: it fails the
        // form check (documented order: form before header) — rejected either way.
        let token = builder.sign_none(name, "");
        assert_rejected!(v, token, VerifyError::Malformed, name);
    }
    // The check is on the header, before any key lookup.
    assert_eq!(tp.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn at_05_hs256_with_rsa_public_key_pem_rejected() {
    let (tp, v) = setup().await;
    let pem = tp.rsa_public_key_pem();
    assert!(pem.starts_with(b"-----BEGIN PUBLIC KEY-----"));
    let kid = tp.kid(SigningAlg::RS256);
    let token = tp.token().header("kid", kid.as_str()).sign_hs256(&pem);
    assert_rejected!(v, token, VerifyError::DisallowedAlgorithm, "hs256 pem");
    // Whatever the configured list, HMAC cannot be named.
    let all = v.clone().with_algorithms(Algorithm::ALL).unwrap();
    assert_rejected!(
        all,
        token,
        VerifyError::DisallowedAlgorithm,
        "hs256 pem, all algs"
    );
}

#[tokio::test]
async fn at_05_hs256_with_jwk_json_as_secret_rejected() {
    let (tp, v) = setup().await;
    let kid = tp.kid(SigningAlg::RS256);
    let jwks = tp.public_jwks();
    let jwk = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap()
        .clone();
    let secrets = [
        serde_json::to_vec(&jwk).unwrap(),
        serde_json::to_vec(&jwks).unwrap(),
        jwk["n"].as_str().unwrap().as_bytes().to_vec(),
    ];
    for secret in secrets {
        let token = tp.token().header("kid", kid.as_str()).sign_hs256(&secret);
        assert_rejected!(v, token, VerifyError::DisallowedAlgorithm, "hs256 jwk");
        for hs in ["HS384", "HS512"] {
            let token = tp.token().header("kid", kid.as_str()).sign_none(hs, "c2ln");
            assert_rejected!(v, token, VerifyError::DisallowedAlgorithm, hs);
        }
    }
}

#[tokio::test]
async fn at_05_foreign_key_signature_rejected() {
    let (tp, v) = setup().await;
    let v = v
        .with_algorithms([Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA])
        .unwrap();
    for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
        let builder = tp.token().alg(alg);
        // The published kid of this algorithm, but another key's signature.
        let token = builder.sign_with_foreign_key();
        assert_rejected!(v, token, VerifyError::InvalidSignature, alg.as_str());
        accepted(&v, &builder.sign(), alg.as_str()).await;
    }
}

#[tokio::test]
async fn at_05_tampered_signature_rejected() {
    let (tp, v) = setup().await;
    for alg in [SigningAlg::RS256, SigningAlg::ES256] {
        let token = tp.token().alg(alg).sign_tampered_signature();
        assert_rejected!(v, token, VerifyError::InvalidSignature, alg.as_str());
    }
    // A signature of the wrong length, and one cut short.
    let good = tp.token().sign();
    let (input, signature) = good.rsplit_once('.').unwrap();
    let short = format!("{input}.{}", &signature[..signature.len() - 4]);
    assert_rejected!(v, short, VerifyError::InvalidSignature, "truncated");
    let other = format!("{input}.{}", b64(b"0123456789"));
    assert_rejected!(v, other, VerifyError::InvalidSignature, "garbage bytes");
    // Valid signature of another token.
    let other_token = tp.token().claim("sub", "someone-else").sign();
    let swapped = format!("{input}.{}", other_token.rsplit('.').next().unwrap());
    assert_rejected!(
        v,
        swapped,
        VerifyError::InvalidSignature,
        "swapped signature"
    );
}

#[tokio::test]
async fn at_05_replaced_claim_rejected() {
    let (tp, v) = setup().await;
    let builder = tp.token();
    for (name, value) in [
        ("sub", json!("admin")),
        ("scope", json!("openid api:read api:write")),
        ("exp", json!(now() + 86_400)),
        ("aud", json!([AUDIENCE, "api://other"])),
    ] {
        let token = builder.sign_then_replace_claim(name, value);
        assert_rejected!(v, token, VerifyError::InvalidSignature, name);
    }
}

// ---------------------------------------------------------------------------------------------
// IDT-05 algorithm allow-list
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn idt_05_valid_but_not_allowed_algorithm_rejected() {
    let (tp, v) = setup().await;
    let rs256_only = v.with_algorithms([Algorithm::RS256]).unwrap();
    for alg in [
        SigningAlg::PS256,
        SigningAlg::RS512,
        SigningAlg::RS384,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ] {
        let token = tp.token().alg(alg).sign();
        assert_rejected!(
            rs256_only,
            token,
            VerifyError::DisallowedAlgorithm,
            alg.as_str()
        );
    }
    accepted(&rs256_only, &tp.token().sign(), "rs256").await;
    assert!(
        verifier_for(&tp).with_algorithms([]).is_err(),
        "an empty list is a configuration error"
    );
}

#[tokio::test]
async fn idt_05_ps256_not_allowed_by_default() {
    let (tp, v) = setup().await;
    for alg in [SigningAlg::PS256, SigningAlg::RS384, SigningAlg::PS512] {
        let token = tp.token().alg(alg).sign();
        assert_rejected!(v, token, VerifyError::DisallowedAlgorithm, alg.as_str());
    }
}

/// The provider publishes an Ed25519 (`OKP`) key and advertises `EdDSA`: its EdDSA access
/// tokens verify with the default algorithms, without any configuration.
#[tokio::test]
async fn at_01_eddsa_token_accepted_by_default_when_advertised() {
    let (tp, v) = setup().await;
    let advertised = tp.discovery_document()["id_token_signing_alg_values_supported"].clone();
    assert!(advertised.as_array().unwrap().contains(&json!("EdDSA")));
    let token = tp.token().alg(SigningAlg::EdDSA).sign();
    let claims = accepted(&v, &token, "eddsa").await;
    assert_eq!(claims.subject(), "user-1");
    // Tampered or foreign-key EdDSA signatures stay refused.
    let builder = tp.token().alg(SigningAlg::EdDSA);
    assert_rejected!(
        v,
        builder.sign_tampered_signature(),
        VerifyError::InvalidSignature,
        "tampered eddsa"
    );
    assert_rejected!(
        v,
        builder.sign_with_foreign_key(),
        VerifyError::InvalidSignature,
        "foreign ed25519 key"
    );
    // EdDSA on the RSA key's kid: the key type decides.
    let on_rsa = tp
        .token()
        .alg(SigningAlg::EdDSA)
        .header("kid", tp.kid(SigningAlg::RS256).as_str())
        .sign();
    assert_rejected!(
        v,
        on_rsa,
        VerifyError::KeyAlgorithmMismatch,
        "eddsa header on an rsa key"
    );
}

/// By default EdDSA needs the provider's word: a provider that does not list it, or that
/// publishes no list at all, gets RS256 and ES256 only. A configured list needs no
/// advertisement (but is still narrowed by a published list).
#[tokio::test]
async fn idt_05_default_eddsa_needs_the_provider_to_advertise_it() {
    for (what, list) in [
        ("not listed", Some(json!(["RS256", "ES256"]))),
        ("no list published", None),
    ] {
        let tp = TestProvider::start().await;
        tp.set_discovery_member("id_token_signing_alg_values_supported", list.clone());
        let v = verifier_for(&tp);
        let ed = tp.token().alg(SigningAlg::EdDSA).sign();
        assert_rejected!(v, ed, VerifyError::DisallowedAlgorithm, what);
        accepted(&v, &tp.token().sign(), what).await;
        accepted(&v, &tp.token().alg(SigningAlg::ES256).sign(), what).await;
        let configured = v.with_algorithms([Algorithm::EdDSA]).unwrap();
        if list.is_some() {
            assert_rejected!(
                configured,
                ed,
                VerifyError::DisallowedAlgorithm,
                "configured, but the published list lacks it"
            );
        } else {
            accepted(&configured, &ed, "configured, no published list").await;
        }
    }
    // A provider configured by hand (no discovery, so no list): the same.
    let tp = TestProvider::start().await;
    let manual = Provider::builder(tp.issuer())
        .with_jwks_uri(tp.jwks_uri())
        .build()
        .unwrap();
    let v = common::verifier(manual);
    let ed = tp.token().alg(SigningAlg::EdDSA).sign();
    assert_rejected!(v, ed, VerifyError::DisallowedAlgorithm, "manual provider");
    accepted(&v, &tp.token().sign(), "manual provider, rs256").await;
}

#[tokio::test]
async fn idt_05_alg_differs_from_jwk_alg_key_mismatch() {
    let (tp, v) = setup().await;
    let v = v
        .with_algorithms([Algorithm::RS256, Algorithm::RS384, Algorithm::PS256])
        .unwrap();
    let rs256_kid = tp.kid(SigningAlg::RS256);
    // Signed with RS384 by the very key published as rsa1-RS256 ("alg": "RS256").
    let token = tp
        .token()
        .alg(SigningAlg::RS384)
        .header("kid", rs256_kid.as_str())
        .sign();
    assert_rejected!(
        v,
        token,
        VerifyError::KeyAlgorithmMismatch,
        "rs384 on an RS256 jwk"
    );
    // Same with PS256 (another padding on the same RSA key).
    let token = tp
        .token()
        .alg(SigningAlg::PS256)
        .header("kid", rs256_kid.as_str())
        .sign();
    assert_rejected!(
        v,
        token,
        VerifyError::KeyAlgorithmMismatch,
        "ps256 on an RS256 jwk"
    );
    // ES256 header on an RSA key: family mismatch.
    let v = v
        .with_algorithms([Algorithm::RS256, Algorithm::ES256])
        .unwrap();
    let token = tp
        .token()
        .alg(SigningAlg::ES256)
        .header("kid", rs256_kid.as_str())
        .sign();
    assert_rejected!(
        v,
        token,
        VerifyError::KeyAlgorithmMismatch,
        "es256 on an RSA jwk"
    );
    // The key's own algorithm works.
    let token = tp.token().alg(SigningAlg::RS384).sign();
    let v = v.with_algorithms([Algorithm::RS384]).unwrap();
    accepted(&v, &token, "rs384 with its own kid").await;
}

#[tokio::test]
async fn idt_05_discovery_alg_values_narrow_the_allow_list() {
    let (tp, v) = setup().await;
    tp.set_discovery_member(
        "id_token_signing_alg_values_supported",
        Some(json!(["RS256"])),
    );
    let es = tp.token().alg(SigningAlg::ES256).sign();
    assert_rejected!(
        v,
        es,
        VerifyError::DisallowedAlgorithm,
        "es256 not in discovery"
    );
    accepted(&v, &tp.token().sign(), "rs256 in discovery").await;
}

// ---------------------------------------------------------------------------------------------
// AT-06 / IDT-12 cross-JWT confusion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn at_06_other_token_types_rejected() {
    let (tp, v) = setup().await;
    for typ in [
        "logout+jwt",
        "application/logout+jwt",
        "id_token+jwt",
        "secevent+jwt",
        "dpop+jwt",
        "",
        "at+jwt ",
    ] {
        let token = tp.token().header("typ", typ).sign();
        assert_rejected!(v, token, VerifyError::WrongTokenType, typ);
        let strict = v.clone().require_at_jwt(true);
        assert_rejected!(strict, token, VerifyError::WrongTokenType, typ);
    }
}

#[tokio::test]
async fn at_06_strict_mode_requires_at_jwt() {
    let (tp, v) = setup().await;
    let strict = v.require_at_jwt(true);
    assert!(strict.is_strict());
    let tokens = [
        ("typ JWT", tp.token().header("typ", "JWT").sign()),
        (
            "typ application/jwt",
            tp.token().header("typ", "application/jwt").sign(),
        ),
        ("typ absent", tp.token().without_header("typ").sign()),
    ];
    assert_each_rejected!(strict, tokens, VerifyError::WrongTokenType);
    for typ in ["at+jwt", "application/at+jwt", "AT+JWT"] {
        let token = tp.token().header("typ", typ).sign();
        accepted(&strict, &token, typ).await;
    }
}

#[tokio::test]
async fn at_06_compat_mode_id_token_claims_rejected() {
    let (tp, v) = setup().await;
    assert!(!v.is_strict());
    for typ in [Some("JWT"), None] {
        let base = match typ {
            Some(t) => tp.token().header("typ", t),
            None => tp.token().without_header("typ"),
        };
        for (what, token) in [
            ("nonce", base.clone().claim("nonce", "n-0S6_WzA2Mj").sign()),
            (
                "at_hash",
                base.clone()
                    .claim("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")
                    .sign(),
            ),
            (
                "c_hash",
                base.clone()
                    .claim("c_hash", "LDktKdoQak3Pk0cnXxCltA")
                    .sign(),
            ),
            ("keycloak typ ID", base.clone().claim("typ", "ID").sign()),
            (
                "keycloak typ Refresh",
                base.clone().claim("typ", "Refresh").sign(),
            ),
        ] {
            assert_rejected!(
                v,
                token,
                VerifyError::NotAnAccessToken,
                format!("{typ:?} {what}")
            );
        }
    }
}

#[tokio::test]
async fn at_06_logout_token_rejected_even_with_at_jwt() {
    let (tp, v) = setup().await;
    let events = json!({"http://schemas.openid.net/event/backchannel-logout": {}});
    for (what, builder) in [
        ("typ at+jwt", tp.token()),
        ("typ JWT", tp.token().header("typ", "JWT")),
        ("no typ", tp.token().without_header("typ")),
    ] {
        let token = builder
            .claim("events", events.clone())
            .claim("sid", "s-1")
            .without_claim("scope")
            .sign();
        assert_rejected!(v, token, VerifyError::NotAnAccessToken, what);
    }
    let strict = v.require_at_jwt(true);
    let token = tp.token().claim("events", events).sign();
    assert_rejected!(
        strict,
        token,
        VerifyError::NotAnAccessToken,
        "strict, at+jwt"
    );
}

/// RFC 9449 §7.1 / RFC 8705 §3: a token bound to a DPoP key or a client certificate (`cnf`)
/// is not a bearer token. Refused in every mode, whatever the `cnf` value, and never from the
/// token cache.
#[tokio::test]
async fn sender_constrained_token_with_cnf_refused_as_bearer() {
    let (tp, v) = setup().await;
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let cases = [
        ("dpop jkt", json!({ "jkt": jkt })),
        (
            "mtls x5t#S256",
            json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        ),
        (
            "jwk",
            json!({ "jwk": { "kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo" } }),
        ),
        ("empty object", json!({})),
        ("null", Value::Null),
        ("a string", json!(jkt)),
    ];
    let strict = v.clone().require_at_jwt(true);
    for (what, cnf) in cases {
        for (mode, verifier) in [("compat", &v), ("strict", &strict)] {
            for builder in [tp.token(), tp.token().header("typ", "JWT")] {
                let token = builder.claim("cnf", cnf.clone()).sign();
                // Twice: the second answer must not come from the token cache.
                for round in 0..2 {
                    let err = verify(verifier, &token).await.unwrap_err();
                    if mode == "strict" && builder_is_generic(&token) {
                        assert!(
                            matches!(err, VerifyError::WrongTokenType),
                            "{what} {mode} {round}: {err:?}"
                        );
                        continue;
                    }
                    assert!(
                        matches!(err, VerifyError::SenderConstrained),
                        "{what} {mode} round {round}: {err:?}"
                    );
                    assert!(
                        !err.to_string().contains(jkt),
                        "the message quotes the token"
                    );
                }
            }
        }
    }
    // The same token without `cnf` is fine, and ES256/EdDSA-signed bound tokens are refused too.
    accepted(&v, &tp.token().sign(), "unbound").await;
    for alg in [SigningAlg::ES256, SigningAlg::EdDSA] {
        let token = tp
            .token()
            .alg(alg)
            .claim("cnf", json!({ "jkt": jkt }))
            .sign();
        assert_rejected!(v, token, VerifyError::SenderConstrained, alg.as_str());
    }
}

/// Whether the token's header `typ` is `JWT` (not `at+jwt`).
fn builder_is_generic(token: &str) -> bool {
    let header = URL_SAFE_NO_PAD.decode(segments(token).0).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    header["typ"] == "JWT"
}

#[tokio::test]
async fn at_06_compat_mode_plain_jwt_accepted() {
    // Documented compatible-mode behaviour: Keycloak/Entra/Auth0 access tokens carry
    // `typ: JWT` (or none) and are accepted when they have no ID-token claims.
    let (tp, v) = setup().await;
    for (what, token) in [
        ("typ JWT", tp.token().header("typ", "JWT").sign()),
        ("no typ", tp.token().without_header("typ").sign()),
        (
            "keycloak Bearer",
            tp.token()
                .header("typ", "JWT")
                .claim("typ", "Bearer")
                .sign(),
        ),
    ] {
        accepted(&v, &token, what).await;
    }
    // `typ: at+jwt` is trusted: the ID-token claim heuristics apply only without it.
    let token = tp.token().claim("nonce", "n").sign();
    accepted(&v, &token, "at+jwt with nonce").await;
}

// ---------------------------------------------------------------------------------------------
// AT-07 / IDT-06 / IDT-07 issuer and audience
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn idt_06_issuer_mismatch_rejected() {
    let (tp, v) = setup().await;
    let issuer = tp.issuer();
    let port = tp.addr().port();
    let other_port = if port == 65535 { 1 } else { port + 1 };
    let cases = [
        ("other host", json!("https://evil.example")),
        ("trailing slash", json!(format!("{issuer}/"))),
        ("upper-case scheme", json!(issuer.to_uppercase())),
        ("localhost alias", json!(format!("http://localhost:{port}"))),
        (
            "other port",
            json!(format!("http://127.0.0.1:{other_port}")),
        ),
        ("path suffix", json!(format!("{issuer}/realms/x"))),
        ("leading space", json!(format!(" {issuer}"))),
        ("array", json!([issuer])),
        ("number", json!(1)),
        ("null", Value::Null),
    ];
    assert_claim_rejected!(tp, v, "iss", cases, VerifyError::InvalidIssuer);
    assert_missing_rejected(&tp, &v, "iss").await;
}

#[tokio::test]
async fn idt_06_issuer_compared_case_sensitively() {
    // A provider whose issuer has letters: `localhost` instead of `127.0.0.1`.
    let tp = TestProvider::start().await;
    let port = tp.addr().port();
    let issuer = format!("http://localhost:{port}");
    let provider = Provider::builder(issuer.as_str())
        .with_jwks_uri(tp.jwks_uri())
        .build()
        .unwrap();
    let v = verifier(provider);
    accepted(
        &v,
        &tp.token().claim("iss", issuer.as_str()).sign(),
        "exact",
    )
    .await;
    for iss in [
        format!("http://LOCALHOST:{port}"),
        format!("http://Localhost:{port}"),
    ] {
        let token = tp.token().claim("iss", iss.as_str()).sign();
        assert_rejected!(v, token, VerifyError::InvalidIssuer, iss);
    }
}

#[tokio::test]
async fn at_07_audience_mismatch_rejected() {
    let (tp, v) = setup().await;
    let mismatches = [
        ("other api", json!("api://other")),
        ("prefix", json!("api://default/extra")),
        ("case", json!("API://DEFAULT")),
        ("array without the api", json!(["api://other", "client-1"])),
        ("empty array", json!([])),
        ("empty string", json!("")),
    ];
    assert_claim_rejected!(tp, v, "aud", mismatches, VerifyError::InvalidAudience);
    assert_missing_rejected(&tp, &v, "aud").await;
    let invalid = [
        ("number", json!(42)),
        ("array with a number", json!([AUDIENCE, 42])),
        ("object", json!({"aud": AUDIENCE})),
        ("null", Value::Null),
        ("bool", json!(true)),
    ];
    assert_claim_rejected!(tp, v, "aud", invalid, VerifyError::InvalidClaim("aud"));
}

// ---------------------------------------------------------------------------------------------
// AT-08 / IDT-08 time claims
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn at_08_expired_beyond_leeway_rejected() {
    let (tp, v) = setup().await;
    let now = now();
    for exp in [now - 61, now - 120, now - 86_400, 0, -1] {
        let token = tp
            .token()
            .claim("iat", now - 200_000)
            .claim("exp", exp)
            .sign();
        assert_rejected!(v, token, VerifyError::Expired, exp);
    }
    let strict_leeway = v.with_leeway(Duration::from_secs(0));
    let token = tp.token().claim("exp", now - 2).sign();
    assert_rejected!(strict_leeway, token, VerifyError::Expired, "no leeway");
}

#[tokio::test]
async fn at_08_expired_within_leeway_accepted() {
    let (tp, v) = setup().await;
    let now = now();
    let token = tp
        .token()
        .claim("iat", now - 300)
        .claim("exp", now - 30)
        .sign();
    accepted(&v, &token, "30 s past exp, 60 s leeway").await;
}

#[tokio::test]
async fn at_08_fixed_clock_expiry_boundaries() {
    let (tp, v) = setup().await;
    const T0: i64 = 1_700_000_000;
    let clock_secs = Arc::new(AtomicI64::new(T0));
    let read = clock_secs.clone();
    let clock: Clock = Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(read.load(Ordering::SeqCst)).unwrap())
    });
    let v = v.with_clock(clock).with_leeway(Duration::from_secs(10));
    let token = tp
        .token()
        .claim("iat", T0)
        .claim("nbf", T0)
        .claim("exp", T0 + 100)
        .sign();

    // Real time is years after T0: only the fixed clock makes this token valid.
    for (at, ok) in [
        (T0, true),
        (T0 + 100, true),
        (T0 + 109, true),
        (T0 + 110, false), // exp + leeway: expired
        (T0 + 1_000, false),
        (T0 - 10, true), // nbf/iat exactly at the leeway
        (T0 - 11, false),
    ] {
        clock_secs.store(at, Ordering::SeqCst);
        let result = verify(&v, &token).await;
        if ok {
            assert!(result.is_ok(), "at T0{:+}: {result:?}", at - T0);
        } else if at > T0 {
            assert!(
                matches!(result, Err(VerifyError::Expired)),
                "at T0{:+}: {result:?}",
                at - T0
            );
        } else {
            assert!(
                matches!(result, Err(VerifyError::NotYetValid)),
                "at T0{:+}: {result:?}",
                at - T0
            );
        }
    }
}

#[tokio::test]
async fn at_08_exp_missing_or_not_an_integer_rejected() {
    let (tp, v) = setup().await;
    let now = now();
    assert_missing_rejected(&tp, &v, "exp").await;
    let invalid = [
        ("string", json!((now + 300).to_string())),
        ("float", json!(1.5e9)),
        ("float in the future", json!(now as f64 + 300.5)),
        ("huge float", json!(1e300)),
        ("bool", json!(true)),
        ("null", Value::Null),
        ("array", json!([now + 300])),
        ("too large", json!(u64::MAX)),
    ];
    assert_claim_rejected!(tp, v, "exp", invalid, VerifyError::InvalidClaim("exp"));
}

#[tokio::test]
async fn at_08_nbf_and_iat_in_the_future_rejected() {
    let (tp, v) = setup().await;
    let now = now();
    let token = tp.token().claim("nbf", now + 120).sign();
    assert_rejected!(v, token, VerifyError::NotYetValid, "nbf +120");
    let token = tp.token().claim("iat", now + 120).sign();
    assert_rejected!(v, token, VerifyError::IssuedInFuture, "iat +120");
    let token = tp
        .token()
        .claim("iat", now + 86_400 * 365)
        .claim("exp", now + 86_400 * 366)
        .sign();
    assert_rejected!(v, token, VerifyError::IssuedInFuture, "iat far future");
    // Within the leeway.
    let token = tp
        .token()
        .claim("nbf", now + 30)
        .claim("iat", now + 30)
        .sign();
    accepted(&v, &token, "nbf/iat +30 s").await;
    // Wrong types.
    let token = tp.token().claim("nbf", "soon").sign();
    assert_rejected!(v, token, VerifyError::InvalidClaim("nbf"), "nbf string");
    let token = tp.token().claim("iat", 1.5).sign();
    assert_rejected!(v, token, VerifyError::InvalidClaim("iat"), "iat float");
}

#[tokio::test]
async fn at_08_missing_iat_rejected_unless_not_required() {
    let (tp, v) = setup().await;
    let token = tp.token().without_claim("iat").sign();
    assert_rejected!(v, token, VerifyError::MissingClaim("iat"), "missing iat");
    let relaxed = v.require_iat(false);
    accepted(&relaxed, &token, "iat not required").await;
    // Not required, but still checked when present.
    let future = tp.token().claim("iat", now() + 3600).sign();
    assert_rejected!(
        relaxed,
        future,
        VerifyError::IssuedInFuture,
        "iat future, not required"
    );
}

// ---------------------------------------------------------------------------------------------
// IDT-09 subject
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn idt_09_bad_subject_rejected() {
    let (tp, v) = setup().await;
    assert_missing_rejected(&tp, &v, "sub").await;
    let invalid = [
        ("empty", json!("")),
        ("number", json!(12345)),
        ("null", Value::Null),
        ("array", json!(["user-1"])),
        ("256 chars", json!("a".repeat(256))),
        ("4096 chars", json!("a".repeat(4096))),
    ];
    assert_claim_rejected!(tp, v, "sub", invalid, VerifyError::InvalidClaim("sub"));
    let token = tp.token().claim("sub", "a".repeat(255)).sign();
    let claims = accepted(&v, &token, "255 chars").await;
    assert_eq!(claims.subject().len(), 255);
}

// ---------------------------------------------------------------------------------------------
// AT-09 header-directed key lookup
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_09_jku_x5u_jwk_headers_ignored_without_connection() {
    let (tp, v) = setup().await;
    let (addr, hits) = counting_listener().await;
    let url = format!("http://{addr}/jwks");
    let foreign_jwk = tp.foreign_public_jwk(SigningAlg::RS256);
    let foreign_kid = foreign_jwk["kid"].as_str().unwrap().to_owned();
    // Load the real keys first, so that an unknown kid has no forced refetch to hide behind.
    accepted(&v, &tp.token().sign(), "warm-up").await;
    let fetches = tp.jwks_fetch_count();

    let base = tp
        .token()
        .header("jku", url.as_str())
        .header("x5u", url.as_str())
        .header("jwk", foreign_jwk.clone())
        .header(
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        );
    // The provider's kid, the attacker's key (the one the embedded jwk describes).
    let token = base.sign_with_foreign_key();
    assert_rejected!(
        v,
        token,
        VerifyError::InvalidSignature,
        "jku+x5u+jwk, provider kid"
    );
    // The attacker's own kid: not in the provider's set.
    let token = base
        .clone()
        .header("kid", foreign_kid.as_str())
        .sign_with_foreign_key();
    assert_rejected!(
        v,
        token,
        VerifyError::UnknownKey,
        "jku+x5u+jwk, foreign kid"
    );
    // No kid at all: the single fitting key of the provider's set, not the embedded one.
    let token = base.clone().without_header("kid").sign_with_foreign_key();
    assert_rejected!(
        v,
        token,
        VerifyError::InvalidSignature,
        "jku+x5u+jwk, no kid"
    );
    // Each header alone.
    for name in ["jku", "x5u"] {
        let token = tp
            .token()
            .header(name, url.as_str())
            .sign_with_foreign_key();
        assert_rejected!(v, token, VerifyError::InvalidSignature, name);
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the verifier connected to the jku/x5u host"
    );
    // The foreign kid may force one refetch of the provider's own JWKS, nothing more.
    assert!(
        tp.jwks_fetch_count() <= fetches + 1,
        "at most one forced refetch of the provider's JWKS"
    );

    // The headers are ignored, not forbidden: a genuine token carrying them still verifies.
    let genuine = tp.token().header("jku", url.as_str()).sign();
    accepted(&v, &genuine, "genuine token with jku").await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn at_09_crit_header_rejected() {
    let (tp, v) = setup().await;
    for crit in [
        json!(["x-unknown"]),
        json!(["b64"]),
        json!([]),
        json!("x-unknown"),
    ] {
        let token = tp
            .token()
            .header("crit", crit.clone())
            .header("x-unknown", true)
            .sign();
        assert_rejected!(v, token, VerifyError::CriticalHeader, crit);
    }
    assert_eq!(tp.jwks_fetch_count(), 0, "rejected before any key lookup");
}

#[tokio::test]
async fn at_09_kid_traversal_and_injection_rejected() {
    let (tp, v) = setup().await;
    let traversal = "../../../../dev/null";
    let token = tp.token().header("kid", traversal).sign_hs256(b"");
    assert_rejected!(
        v,
        token,
        VerifyError::DisallowedAlgorithm,
        "traversal hs256"
    );
    accepted(&v, &tp.token().sign(), "warm-up").await;
    for kid in [
        traversal,
        "/dev/null",
        "' OR '1'='1",
        "rsa1-RS256' --",
        "rsa1-rs256",
        "rsa1-RS256 ",
        "",
        "rsa1-RS256\u{0}",
    ] {
        let token = tp.token().header("kid", kid).sign();
        assert_rejected!(v, token, VerifyError::UnknownKey, format!("{kid:?}"));
    }
    // A kid that is not a string is a malformed header.
    let token = tp.token().header("kid", 1).sign();
    assert_rejected!(v, token, VerifyError::InvalidHeader, "numeric kid");
}

// ---------------------------------------------------------------------------------------------
// DOS-01 token size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dos_01_one_mib_token_rejected_before_any_work() {
    let (tp, v) = setup().await;
    let token = tp.token().claim("pad", "A".repeat(1024 * 1024)).sign();
    assert!(token.len() > 1024 * 1024);
    assert_rejected!(
        v,
        token,
        VerifyError::TooLarge { limit: 16_384 },
        "1 MiB signed token"
    );
    let junk = "x".repeat(1024 * 1024);
    assert_rejected!(v, junk, VerifyError::TooLarge { .. }, "1 MiB junk");
    assert_eq!(tp.discovery_fetch_count(), 0, "nothing fetched");
    assert_eq!(tp.jwks_fetch_count(), 0, "nothing fetched");
    assert!(!v.provider().readiness().keys);
}

#[tokio::test]
async fn dos_01_max_token_size_respected() {
    let (tp, v) = setup().await;
    // 20 KiB: over the 16 KiB default.
    let token = tp.token().claim("pad", "A".repeat(20 * 1024)).sign();
    assert_rejected!(
        v,
        token,
        VerifyError::TooLarge { limit: 16_384 },
        "default cap"
    );
    let bigger = v.clone().with_max_token_size(token.len());
    accepted(&bigger, &token, "exactly at the raised cap").await;
    let smaller = v.with_max_token_size(token.len() - 1);
    assert_rejected!(smaller, token, VerifyError::TooLarge { limit } if limit == token.len() - 1, "one byte over");
    let tiny = tp.token().sign();
    let capped = smaller.with_max_token_size(tiny.len() - 1);
    assert_rejected!(capped, tiny, VerifyError::TooLarge { .. }, "small cap");
}
