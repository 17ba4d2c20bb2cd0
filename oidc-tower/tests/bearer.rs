//! HTTP-level answers of `BearerAuthLayer` (RFC 6750), black-box, against an in-process
//! OpenID Provider. Tests are named after the case ids of `SECURITY-CASES.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;
mod log_capture;

use log_capture::Capture;

use std::convert::Infallible;
use std::future::poll_fn;
use std::io::Read as _;
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt as _, Full};
use oidc_core::error::VerifyError;
use oidc_core::{AdditionalClaims, Claims, Identity};
use oidc_testing::{Failure, SigningAlg, TestProvider};
use oidc_tower::{AuthError, AuthErrorKind, BearerAuthLayer, RequireLayer};
use serde::Deserialize;
use serde_json::json;
use tower::{Layer as _, Service, ServiceBuilder, ServiceExt as _, service_fn};

use common::{
    Calls, INVALID_TOKEN, assert_authenticated, assert_no_fetch, assert_not_echoed,
    assert_rejected, bearer, bearer_setup, echo, request, request_to, send, verifier,
};

const MISSING: &str = r#"Bearer realm="api""#;

fn invalid_request(description: &str) -> String {
    format!(r#"Bearer realm="api", error="invalid_request", error_description="{description}""#)
}

fn kind(res: &Response<String>) -> AuthErrorKind {
    res.extensions()
        .get::<AuthError>()
        .expect("the default rejection attaches the AuthError")
        .kind()
}

/// Asserts the default 401 `invalid_token` rejection of `token` (case `name`), which doesn't
/// echo the token.
#[track_caller]
fn assert_invalid_token(res: &Response<String>, name: &str, token: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{name}");
    assert_rejected(res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    assert_eq!(kind(res), AuthErrorKind::InvalidToken, "{name}");
    assert_not_echoed(res, token);
}

// ---------------------------------------------------------------------------------------------
// AT-01: a valid token

#[tokio::test]
async fn at_01_valid_token_reaches_inner_with_identity_and_claims() {
    let (tp, calls, svc) = bearer_setup().await;
    let res = send(&svc, bearer(&tp.token().sign())).await;

    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), "ok");
    assert_eq!(calls.get(), 1);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());

    let id = res
        .extensions()
        .get::<Identity>()
        .expect("Identity in the extensions");
    assert_eq!(id.subject(), "user-1");
    assert_eq!(id.issuer(), tp.issuer());
    assert_eq!(id.audience(), ["api://default".to_owned()]);
    assert_eq!(id.client_id(), Some("client-1"));
    assert_eq!(
        id.scopes().iter().collect::<Vec<_>>(),
        ["openid", "api:read"]
    );
    assert!(id.scopes().contains("api:read"));
    assert!(!id.scopes().contains("api:write"));

    let claims = res
        .extensions()
        .get::<Claims<AdditionalClaims>>()
        .expect("Claims<AdditionalClaims> in the extensions");
    assert_eq!(claims.subject(), "user-1");
    assert_eq!(claims.custom()["client_id"], "client-1");
    assert_eq!(claims.custom()["scope"], "openid api:read");
    assert!(res.extensions().get::<AuthError>().is_none());
}

#[tokio::test]
async fn at_01_es256_and_audience_array_accepted() {
    let (tp, calls, svc) = bearer_setup().await;
    let tokens = [
        tp.token().alg(SigningAlg::ES256).sign(),
        tp.token()
            .audience(json!(["api://other", "api://default"]))
            .sign(),
        // client_credentials: the subject is the client.
        tp.token().claim("sub", "client-1").scope("api:read").sign(),
    ];
    for token in &tokens {
        let res = send(&svc, bearer(token)).await;
        assert_eq!(res.status(), StatusCode::OK, "{token}");
        assert!(res.extensions().get::<Identity>().is_some());
    }
    assert_eq!(calls.get(), tokens.len());
}

// ---------------------------------------------------------------------------------------------
// AT-02: no credentials

#[tokio::test]
async fn at_02_no_token_401_without_error() {
    let (tp, calls, svc) = bearer_setup().await;
    let res = send(&svc, request(&[])).await;

    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(MISSING));
    assert!(res.headers().get(header::RETRY_AFTER).is_none());
    assert_eq!(kind(&res), AuthErrorKind::MissingToken);
    assert_eq!(calls.get(), 0);
    assert_no_fetch(&tp);
}

#[tokio::test]
async fn at_02_with_realm_changes_the_challenge() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let with_realm = |realm| {
        BearerAuthLayer::new(verifier(&tp))
            .with_realm(realm)
            .layer(echo(&calls))
    };

    let res = send(&with_realm("x"), request(&[])).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(r#"Bearer realm="x""#));

    // The realm is a quoted-string: quotes and backslashes are escaped, controls dropped.
    let res = send(&with_realm("a\"b\\c\r\nd"), request(&[])).await;
    assert_rejected(
        &res,
        StatusCode::UNAUTHORIZED,
        Some(r#"Bearer realm="a\"b\\cd""#),
    );

    // The realm appears in every challenge.
    let res = send(&with_realm("x"), bearer("not-a-jwt")).await;
    assert_rejected(
        &res,
        StatusCode::UNAUTHORIZED,
        Some(
            r#"Bearer realm="x", error="invalid_token", error_description="the access token is invalid""#,
        ),
    );

    assert_eq!(calls.get(), 0);
    assert_no_fetch(&tp);
}

// ---------------------------------------------------------------------------------------------
// AT-03: malformed credentials

#[tokio::test]
async fn at_03_malformed_request_400_invalid_request() {
    let (tp, calls, svc) = bearer_setup().await;
    let token = tp.token().sign();
    let with_token = format!("Bearer {token}");

    let empty = "the bearer credential is empty";
    let syntax = "the bearer credential has invalid syntax";
    let cases: Vec<(&str, Request<String>, &str)> = vec![
        ("scheme alone", request(&["Bearer"]), empty),
        ("scheme and space", request(&["Bearer "]), empty),
        ("two credentials", request(&["Bearer a b"]), syntax),
        ("comma", request(&["Bearer a,b"]), syntax),
        ("quote", request(&["Bearer a\"b"]), syntax),
        ("percent", request(&["Bearer a%2Eb"]), syntax),
        ("padding only", request(&["Bearer ==="]), syntax),
        ("padding inside", request(&["Bearer a=b"]), syntax),
        (
            "two headers",
            request(&[&with_token, &with_token]),
            "several authorization headers",
        ),
        (
            "two headers, one not bearer",
            request(&["Basic dXNlcjpwYXNz", &with_token]),
            "several authorization headers",
        ),
        (
            "query token with header",
            request_to(&format!("/?access_token={token}"), &[&with_token]),
            "tokens are not accepted in the url",
        ),
        (
            "query token alone",
            request_to(&format!("/x?a=1&access_token={token}"), &[]),
            "tokens are not accepted in the url",
        ),
        (
            "query token empty",
            request_to("/?access_token", &[]),
            "tokens are not accepted in the url",
        ),
    ];
    let mut not_ascii = request(&[]);
    not_ascii.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer abc\xff").unwrap(),
    );

    for (name, req, description) in cases.into_iter().chain([(
        "not visible ascii",
        not_ascii,
        "the authorization header is not visible ascii",
    )]) {
        let res = send(&svc, req).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{name}");
        assert_rejected(
            &res,
            StatusCode::BAD_REQUEST,
            Some(&invalid_request(description)),
        );
        assert_eq!(kind(&res), AuthErrorKind::InvalidRequest, "{name}");
        assert_not_echoed(&res, &token);
    }
    assert_eq!(calls.get(), 0);
    // Syntax errors are answered before the provider is contacted.
    assert_no_fetch(&tp);
}

#[tokio::test]
async fn at_03_other_scheme_401_without_error() {
    let (tp, calls, svc) = bearer_setup().await;
    let token = tp.token().sign();

    for value in [
        "Basic dXNlcjpwYXNz".to_owned(),
        "Token abc".to_owned(),
        format!("DPoP {token}"),
        format!("Bearer{token}"),
    ] {
        let res = send(&svc, request(&[&value])).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{value}");
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(MISSING));
        assert_eq!(kind(&res), AuthErrorKind::MissingToken);
    }
    assert_eq!(calls.get(), 0);
    assert_no_fetch(&tp);
}

#[tokio::test]
async fn at_03_scheme_is_case_insensitive() {
    let (tp, calls, svc) = bearer_setup().await;
    let token = tp.token().sign();

    for scheme in ["bearer", "BEARER", "BeArEr", "Bearer"] {
        let res = send(&svc, request(&[&format!("{scheme} {token}")])).await;
        assert_authenticated(&res, scheme);
    }
    assert_eq!(calls.get(), 4);
}

#[tokio::test]
async fn at_03_opaque_or_malformed_token_401_invalid_token() {
    let (tp, calls, svc) = bearer_setup().await;
    let valid = tp.token().sign();
    let segments: Vec<&str> = valid.split('.').collect();

    let cases = [
        ("opaque", "2YotnFZFEjr1zCsicMWpAA".to_owned()),
        ("rfc 6750 example", "mF_9.B5f-4.1JqM".to_owned()),
        ("two segments", format!("{}.{}", segments[0], segments[1])),
        ("extra segment", format!("{valid}.{}", segments[2])),
        (
            "empty signature",
            format!("{}.{}.", segments[0], segments[1]),
        ),
        (
            "standard base64",
            format!("{}+/.{}.{}", segments[0], segments[1], segments[2]),
        ),
        ("padded", format!("{valid}==")),
        (
            "header not json",
            format!("e30x.{}.{}", segments[1], segments[2]),
        ),
        (
            "header is an array",
            format!("WyJSUzI1NiJd.{}.{}", segments[1], segments[2]),
        ),
    ];
    for (name, token) in &cases {
        let res = send(&svc, bearer(token)).await;
        assert_invalid_token(&res, name, token);
        assert!(
            res.extensions()
                .get::<AuthError>()
                .unwrap()
                .verify_error()
                .is_some()
        );
    }
    assert_eq!(calls.get(), 0);
    // None of these got as far as a key lookup.
    assert_no_fetch(&tp);
}

// ---------------------------------------------------------------------------------------------
// AT-05..AT-09: forged and unacceptable tokens

/// Sends each token and asserts 401 `invalid_token` with an empty body that doesn't echo it.
async fn assert_all_invalid<S>(svc: &S, calls: &Calls, cases: &[(&str, String)])
where
    S: Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
{
    for (name, token) in cases {
        let res = send(svc, bearer(token)).await;
        assert_invalid_token(&res, name, token);
        assert!(res.extensions().get::<Identity>().is_none());
    }
    assert_eq!(
        calls.get(),
        0,
        "the inner service was called for a bad token"
    );
}

#[tokio::test]
async fn at_05_forged_signatures_401_invalid_token() {
    let (tp, calls, svc) = bearer_setup().await;
    let jwk = tp.public_jwks()["keys"][0].clone();
    let admin = tp
        .token()
        .claim("sub", "admin")
        .scope("openid api:read api:write");

    let cases = [
        ("alg none", admin.sign_none("none", "")),
        ("alg NONE with signature", admin.sign_none("NONE", "c2ln")),
        ("alg None", admin.sign_none("None", "c2ln")),
        (
            "hs256 keyed with the rsa pem",
            admin.sign_hs256(&tp.rsa_public_key_pem()),
        ),
        (
            "hs256 keyed with the jwk",
            admin.sign_hs256(jwk.to_string().as_bytes()),
        ),
        (
            "hs256 without kid",
            admin.clone().without_header("kid").sign_hs256(b"secret"),
        ),
        (
            "foreign rsa key, published kid",
            admin.sign_with_foreign_key(),
        ),
        (
            "foreign ec key, published kid",
            admin.clone().alg(SigningAlg::ES256).sign_with_foreign_key(),
        ),
        ("tampered signature", admin.sign_tampered_signature()),
        (
            "payload replaced",
            tp.token().sign_then_replace_claim("sub", "admin"),
        ),
        // An RSA key claimed for an EC algorithm: the key type must fit the algorithm.
        (
            "es256 header with the rsa kid",
            admin
                .clone()
                .alg(SigningAlg::ES256)
                .header("kid", tp.kid(SigningAlg::RS256))
                .sign(),
        ),
        // PS256 is not allowed by default.
        (
            "ps256 not allowed",
            admin.clone().alg(SigningAlg::PS256).sign(),
        ),
    ];
    assert_all_invalid(&svc, &calls, &cases).await;

    // Control: the same claims, properly signed, pass.
    let res = send(&svc, bearer(&admin.sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn at_06_strict_mode_rejects_missing_or_generic_typ() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp).require_at_jwt(true)).layer(echo(&calls));

    let cases = [
        ("no typ", tp.token().without_header("typ").sign()),
        ("typ JWT", tp.token().header("typ", "JWT").sign()),
        (
            "typ logout+jwt",
            tp.token().header("typ", "logout+jwt").sign(),
        ),
    ];
    assert_all_invalid(&svc, &calls, &cases).await;

    for typ in ["at+jwt", "application/at+jwt"] {
        let res = send(&svc, bearer(&tp.token().header("typ", typ).sign())).await;
        assert_eq!(res.status(), StatusCode::OK, "{typ}");
    }
}

#[tokio::test]
async fn at_06_id_token_and_logout_token_confusion() {
    // The compatible (default) mode: typ JWT is accepted, so claims tell the kinds apart.
    let (tp, calls, svc) = bearer_setup().await;
    let jwt = || tp.token().header("typ", "JWT");

    let cases = [
        (
            "id token with nonce",
            jwt().claim("nonce", "n-0S6_WzA2Mj").sign(),
        ),
        (
            "id token without typ, with nonce",
            tp.token().without_header("typ").claim("nonce", "n").sign(),
        ),
        (
            "id token with at_hash",
            jwt().claim("at_hash", "77QmUPtjPfzWtF2AnpK9RQ").sign(),
        ),
        (
            "id token with c_hash",
            jwt().claim("c_hash", "LDktKdoQak3Pk0cnXxCltA").sign(),
        ),
        (
            "logout token",
            tp.token()
                .header("typ", "logout+jwt")
                .claim(
                    "events",
                    json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
                )
                .sign(),
        ),
        (
            "events claim even with at+jwt",
            tp.token()
                .claim(
                    "events",
                    json!({"http://schemas.openid.net/event/backchannel-logout": {}}),
                )
                .sign(),
        ),
        ("keycloak ID typ claim", jwt().claim("typ", "ID").sign()),
        (
            "typ id_token+jwt",
            tp.token().header("typ", "id_token+jwt").sign(),
        ),
    ];
    assert_all_invalid(&svc, &calls, &cases).await;

    // Control: a generic JWT access token passes in the compatible mode.
    let res = send(&svc, bearer(&jwt().sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
}

#[tokio::test]
async fn at_07_wrong_issuer_or_audience_401_invalid_token() {
    let (tp, calls, svc) = bearer_setup().await;
    let issuer = tp.issuer();

    let cases = [
        (
            "other issuer",
            tp.token().claim("iss", "https://evil.example").sign(),
        ),
        (
            "issuer with trailing slash",
            tp.token().claim("iss", format!("{issuer}/")).sign(),
        ),
        (
            "issuer other case",
            tp.token().claim("iss", issuer.to_uppercase()).sign(),
        ),
        ("issuer missing", tp.token().without_claim("iss").sign()),
        ("other audience", tp.token().audience("api://other").sign()),
        (
            "audience array without the api",
            tp.token().audience(json!(["a", "b"])).sign(),
        ),
        ("audience missing", tp.token().without_claim("aud").sign()),
        ("audience a number", tp.token().audience(7).sign()),
    ];
    assert_all_invalid(&svc, &calls, &cases).await;
}

#[tokio::test]
async fn at_08_time_claims_401_invalid_token() {
    let (tp, calls, svc) = bearer_setup().await;
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();

    let cases = [
        (
            "expired beyond the leeway",
            tp.token().expires_in(-120).sign(),
        ),
        ("exp missing", tp.token().without_claim("exp").sign()),
        (
            "exp a string",
            tp.token().claim("exp", (now + 300).to_string()).sign(),
        ),
        ("exp a float", tp.token().claim("exp", json!(1.0e12)).sign()),
        (
            "nbf in the future",
            tp.token().claim("nbf", now + 3600).sign(),
        ),
        (
            "iat in the future",
            tp.token().claim("iat", now + 3600).sign(),
        ),
        ("iat missing", tp.token().without_claim("iat").sign()),
    ];
    assert_all_invalid(&svc, &calls, &cases).await;

    // Control: expired within the 60 s leeway is still accepted.
    let res = send(&svc, bearer(&tp.token().expires_in(-30).sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
}

/// A TCP listener that counts the connections it gets.
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counter.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut stream) = stream {
                let _ = stream.read(&mut [0; 1024]);
            }
        }
    });
    (base, hits)
}

#[tokio::test]
async fn at_09_header_directed_key_lookup_makes_no_outbound_connection() {
    let (tp, calls, svc) = bearer_setup().await;
    let (attacker, hits) = counting_listener();
    let foreign_jwk = tp.foreign_public_jwk(SigningAlg::RS256);
    let foreign_kid = foreign_jwk["kid"].as_str().unwrap().to_owned();
    let forged = || tp.token().claim("sub", "admin");

    let cases = [
        (
            "jku",
            forged()
                .header("kid", foreign_kid.as_str())
                .header("jku", format!("{attacker}/jwks.json"))
                .sign_with_foreign_key(),
        ),
        (
            "jku with the published kid",
            forged()
                .header("jku", format!("{attacker}/jwks.json"))
                .sign_with_foreign_key(),
        ),
        (
            "x5u",
            forged()
                .header("kid", foreign_kid.as_str())
                .header("x5u", format!("{attacker}/cert.pem"))
                .sign_with_foreign_key(),
        ),
        (
            "embedded jwk",
            forged()
                .header("kid", foreign_kid.as_str())
                .header("jwk", foreign_jwk.clone())
                .sign_with_foreign_key(),
        ),
        (
            "embedded jwk, published kid",
            forged()
                .header("jwk", foreign_jwk.clone())
                .sign_with_foreign_key(),
        ),
        (
            "crit unknown",
            tp.token()
                .header("crit", json!(["x-unknown"]))
                .header("x-unknown", 1)
                .sign(),
        ),
        (
            "kid traversal with hs256",
            forged()
                .header("kid", "../../../../dev/null")
                .sign_hs256(b""),
        ),
        ("sql kid", tp.token().header("kid", "' OR '1'='1").sign()),
    ];
    assert_all_invalid(&svc, &calls, &cases).await;

    // Give a connection that was (wrongly) started time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the verifier connected to a header-supplied url"
    );
}

// ---------------------------------------------------------------------------------------------
// DOS-01: oversized tokens

#[tokio::test]
async fn dos_01_one_mib_token_401_without_fetch() {
    let (tp, calls, svc) = bearer_setup().await;

    let huge = tp.token().claim("pad", "A".repeat(1024 * 1024)).sign();
    assert!(huge.len() > 1024 * 1024);
    let just_over = tp.token().claim("pad", "A".repeat(16 * 1024)).sign();

    for token in [&huge, &just_over] {
        let res = send(&svc, bearer(token)).await;
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
        let error = res.extensions().get::<AuthError>().unwrap();
        assert!(matches!(
            error.verify_error(),
            Some(VerifyError::TooLarge { .. })
        ));
        assert_not_echoed(&res, token);
    }
    assert_eq!(calls.get(), 0);
    // Refused before any key lookup.
    assert_no_fetch(&tp);
}

// ---------------------------------------------------------------------------------------------
// KEY-07: no keys on a cold start

fn retry_after(res: &Response<String>) -> u64 {
    res.headers()
        .get(header::RETRY_AFTER)
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is delay-seconds")
}

#[tokio::test]
async fn key_07_jwks_down_on_cold_start_503_then_recovers() {
    let (tp, calls, svc) = bearer_setup().await;
    tp.fail_jwks(Failure::Status(500));
    let token = tp.token().sign();

    for _ in 0..2 {
        let res = send(&svc, bearer(&token)).await;
        assert_rejected(&res, StatusCode::SERVICE_UNAVAILABLE, Some(MISSING));
        assert!(retry_after(&res) >= 1);
        let error = res.extensions().get::<AuthError>().unwrap();
        assert_eq!(error.kind(), AuthErrorKind::Unavailable);
        assert!(error.verify_error().unwrap().is_unavailable());
        assert_not_echoed(&res, &token);
    }
    assert_eq!(calls.get(), 0);
    assert!(tp.jwks_fetch_count() >= 1);

    // The provider recovers; once the retry backoff (100 ms, at most 200 ms) has passed the
    // same request goes through.
    tp.fail_jwks(Failure::None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = send(&svc, bearer(&token)).await;
    assert_authenticated(&res, "after the recovery");
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn key_07_discovery_down_on_cold_start_503() {
    let (tp, calls, svc) = bearer_setup().await;
    tp.fail_discovery(Failure::Status(502));
    let token = tp.token().sign();

    let res = send(&svc, bearer(&token)).await;
    assert_rejected(&res, StatusCode::SERVICE_UNAVAILABLE, Some(MISSING));
    assert!(retry_after(&res) >= 1);
    assert_eq!(calls.get(), 0);

    tp.fail_discovery(Failure::None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let res = send(&svc, bearer(&token)).await;
    assert_eq!(res.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Rejections

#[tokio::test]
async fn custom_rejection_closure_is_used() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .with_rejection(|e: &AuthError| {
            let mut res = Response::new(format!(
                r#"{{"status":{},"kind":"{:?}"}}"#,
                e.status().as_u16(),
                e.kind()
            ));
            *res.status_mut() = StatusCode::IM_A_TEAPOT;
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            res
        })
        .layer(echo(&calls));

    let cases = [
        (request(&[]), r#"{"status":401,"kind":"MissingToken"}"#),
        (
            request(&["Bearer a b"]),
            r#"{"status":400,"kind":"InvalidRequest"}"#,
        ),
        (
            bearer("not-a-jwt"),
            r#"{"status":401,"kind":"InvalidToken"}"#,
        ),
        (
            bearer(&tp.token().expires_in(-3600).sign()),
            r#"{"status":401,"kind":"InvalidToken"}"#,
        ),
    ];
    for (req, body) in cases {
        let res = send(&svc, req).await;
        assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);
        assert_eq!(res.body(), body);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
        // Nothing of the default rejection is added behind the closure's back.
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
        assert!(res.extensions().get::<AuthError>().is_none());
    }
    assert_eq!(calls.get(), 0);

    // Valid tokens still reach the inner service.
    let res = send(&svc, bearer(&tp.token().sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn default_rejection_puts_auth_error_in_extensions() {
    let (tp, calls, svc) = bearer_setup().await;

    let res = send(&svc, request(&[])).await;
    let e = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(e.kind(), AuthErrorKind::MissingToken);
    assert_eq!(e.status(), StatusCode::UNAUTHORIZED);
    assert!(e.verify_error().is_none());
    assert!(e.retry_after().is_none());

    let res = send(&svc, request(&["Bearer"])).await;
    let e = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(e.kind(), AuthErrorKind::InvalidRequest);
    assert_eq!(e.status(), StatusCode::BAD_REQUEST);

    let res = send(&svc, bearer(&tp.token().sign_tampered_signature())).await;
    let e = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(e.kind(), AuthErrorKind::InvalidToken);
    assert!(matches!(
        e.verify_error(),
        Some(VerifyError::InvalidSignature)
    ));
    assert_eq!(e.www_authenticate().unwrap(), INVALID_TOKEN);

    let res = send(&svc, bearer(&tp.token().audience("api://other").sign())).await;
    let e = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(e.kind(), AuthErrorKind::InvalidToken);
    assert!(matches!(
        e.verify_error(),
        Some(VerifyError::InvalidAudience)
    ));
    assert_eq!(calls.get(), 0);
}

// ---------------------------------------------------------------------------------------------
// allow_anonymous

#[tokio::test]
async fn allow_anonymous_lets_requests_without_token_through_without_identity() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .allow_anonymous(true)
        .layer(echo(&calls));

    for req in [request(&[]), request(&["Basic dXNlcjpwYXNz"])] {
        let res = send(&svc, req).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.extensions().get::<Identity>().is_none());
        assert!(res.extensions().get::<Claims<AdditionalClaims>>().is_none());
        assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    }
    assert_eq!(calls.get(), 2);
    assert_no_fetch(&tp);

    let res = send(&svc, bearer(&tp.token().sign())).await;
    assert_authenticated(&res, "with a token");
}

#[tokio::test]
async fn allow_anonymous_still_rejects_bad_tokens() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .allow_anonymous(true)
        .layer(echo(&calls));

    for token in [
        tp.token().sign_none("none", ""),
        tp.token().sign_with_foreign_key(),
        tp.token().expires_in(-3600).sign(),
        "opaque".to_owned(),
    ] {
        let res = send(&svc, bearer(&token)).await;
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    }
    let res = send(&svc, request(&["Bearer"])).await;
    assert_rejected(
        &res,
        StatusCode::BAD_REQUEST,
        Some(&invalid_request("the bearer credential is empty")),
    );
    let res = send(&svc, request_to("/?access_token=abc", &[])).await;
    assert_rejected(
        &res,
        StatusCode::BAD_REQUEST,
        Some(&invalid_request("tokens are not accepted in the url")),
    );
    assert_eq!(calls.get(), 0);
}

// ---------------------------------------------------------------------------------------------
// with_claims

#[derive(Debug, Clone, Deserialize)]
struct MyClaims {
    tenant: String,
    #[serde(default)]
    plan: Option<String>,
}

#[tokio::test]
async fn with_claims_inserts_typed_claims() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .with_claims::<MyClaims>()
        .layer(echo(&calls));

    let token = tp.token().claim("tenant", "acme").sign();
    let res = svc.oneshot(bearer(&token)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let claims = res
        .extensions()
        .get::<Claims<MyClaims>>()
        .expect("Claims<MyClaims>");
    assert_eq!(claims.custom().tenant, "acme");
    assert_eq!(claims.custom().plan, None);
    assert_eq!(claims.subject(), "user-1");
    assert_eq!(
        res.extensions().get::<Identity>().unwrap().subject(),
        "user-1"
    );
    // Only the configured claim type is inserted.
    assert!(res.extensions().get::<Claims<AdditionalClaims>>().is_none());
}

#[tokio::test]
async fn with_claims_rejects_token_not_fitting_the_type() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .with_claims::<MyClaims>()
        .layer(echo(&calls));

    for token in [
        tp.token().sign(),
        tp.token().claim("tenant", 42).sign(),
        tp.token()
            .claim("tenant", "acme")
            .claim("plan", json!({"x": 1}))
            .sign(),
    ] {
        let res = send(&svc, bearer(&token)).await;
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
        let e = res.extensions().get::<AuthError>().unwrap();
        assert!(matches!(e.verify_error(), Some(VerifyError::CustomClaims)));
    }
    assert_eq!(calls.get(), 0);
}

// ---------------------------------------------------------------------------------------------
// Genericity: bodies, non-axum services, composition, readiness

#[tokio::test]
async fn generic_full_bytes_bodies() {
    let tp = TestProvider::start().await;
    let inner = service_fn(|req: Request<Full<Bytes>>| async move {
        let sub = req
            .extensions()
            .get::<Identity>()
            .map(|i| i.subject().to_owned());
        let body = req.into_body().collect().await?.to_bytes();
        let text = format!(
            "{}:{}",
            sub.unwrap_or_default(),
            String::from_utf8_lossy(&body)
        );
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    });
    let svc = BearerAuthLayer::new(verifier(&tp)).layer(inner);

    let req = |auth: Option<String>| {
        let mut b = Request::post("/rpc");
        if let Some(auth) = auth {
            b = b.header(header::AUTHORIZATION, auth);
        }
        b.body(Full::new(Bytes::from_static(b"payload"))).unwrap()
    };

    let res = send(&svc, req(None)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], MISSING);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        res.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );

    let token = tp.token().sign();
    let res = send(&svc, req(Some(format!("Bearer {token}")))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "user-1:payload"
    );
}

/// A response body type of the application's own, without `Default`.
#[derive(Debug, PartialEq)]
enum Reply {
    Denied(u16),
    Hello(String),
}

#[tokio::test]
async fn generic_custom_body_without_default_via_closure_rejection() {
    let tp = TestProvider::start().await;
    let inner = service_fn(|req: Request<Vec<u8>>| async move {
        let id = req.extensions().get::<Identity>().unwrap();
        Ok::<_, Infallible>(Response::new(Reply::Hello(id.subject().to_owned())))
    });
    let svc = BearerAuthLayer::new(verifier(&tp))
        .with_rejection(|e: &AuthError| {
            let mut res = Response::new(Reply::Denied(e.status().as_u16()));
            *res.status_mut() = e.status();
            if let Some(challenge) = e.www_authenticate() {
                res.headers_mut()
                    .insert(header::WWW_AUTHENTICATE, challenge);
            }
            res
        })
        .layer(inner);

    let res = send(&svc, Request::new(Vec::new())).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(res.headers()[header::WWW_AUTHENTICATE], MISSING);
    assert_eq!(res.body(), &Reply::Denied(401));

    let mut req = Request::new(b"x".to_vec());
    req.headers_mut().insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {}", tp.token().sign())).unwrap(),
    );
    let res = send(&svc, req).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.body(), &Reply::Hello("user-1".to_owned()));
}

#[tokio::test]
async fn composes_under_service_builder() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .map_response(|mut res: Response<String>| {
            res.headers_mut()
                .insert("x-outer", HeaderValue::from_static("1"));
            res
        })
        .layer(BearerAuthLayer::new(verifier(&tp)).with_realm("orders"))
        .layer(RequireLayer::scopes(["api:read"]).with_realm("orders"))
        .service(echo(&calls));
    // The stack is a boxable, cloneable, Send service.
    let svc = tower::util::BoxCloneService::new(svc);

    let res = send(&svc, bearer(&tp.token().sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-outer"], "1");
    assert_eq!(calls.get(), 1);

    let res = send(&svc, request(&[])).await;
    assert_rejected(
        &res,
        StatusCode::UNAUTHORIZED,
        Some(r#"Bearer realm="orders""#),
    );
    assert_eq!(res.headers()["x-outer"], "1");

    let res = send(&svc, bearer(&tp.token().scope("openid").sign())).await;
    assert_rejected(
        &res,
        StatusCode::FORBIDDEN,
        Some(
            r#"Bearer realm="orders", error="insufficient_scope", scope="api:read", error_description="a required scope is missing""#,
        ),
    );
    assert_eq!(calls.get(), 1);
}

/// An inner service that is ready only once its gate is open, and that refuses calls it was
/// not driven to readiness for (the `tower::Service` contract).
#[derive(Clone)]
struct Gated {
    open: Arc<AtomicBool>,
    fail: Arc<AtomicBool>,
    ready: bool,
    calls: Calls,
}

impl Service<Request<String>> for Gated {
    type Response = Response<String>;
    type Error = &'static str;
    type Future = std::future::Ready<Result<Response<String>, &'static str>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.fail.load(Ordering::SeqCst) {
            return Poll::Ready(Err("inner failed"));
        }
        if self.open.load(Ordering::SeqCst) {
            self.ready = true;
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }

    fn call(&mut self, _req: Request<String>) -> Self::Future {
        if !std::mem::take(&mut self.ready) {
            return std::future::ready(Err("called without poll_ready"));
        }
        self.calls.add();
        std::future::ready(Ok(Response::new("ok".to_owned())))
    }
}

fn poll_once<S: Service<Request<String>>>(svc: &mut S) -> Poll<Result<(), S::Error>> {
    svc.poll_ready(&mut Context::from_waker(Waker::noop()))
}

#[tokio::test]
async fn poll_ready_is_delegated() {
    let tp = TestProvider::start().await;
    let open = Arc::new(AtomicBool::new(false));
    let fail = Arc::new(AtomicBool::new(false));
    let calls = Calls::default();
    let inner = Gated {
        open: Arc::clone(&open),
        fail: Arc::clone(&fail),
        ready: false,
        calls: calls.clone(),
    };
    let mut svc = BearerAuthLayer::new(verifier(&tp)).layer(inner);

    assert!(
        poll_once(&mut svc).is_pending(),
        "outer ready while inner is not"
    );
    open.store(true, Ordering::SeqCst);
    assert!(matches!(poll_once(&mut svc), Poll::Ready(Ok(()))));

    // The instance that was driven to readiness is the one called, also across the async
    // verification.
    let res = svc.call(bearer(&tp.token().sign())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.get(), 1);

    // And again, waiting for readiness as a server would.
    poll_fn(|cx| svc.poll_ready(cx)).await.unwrap();
    let res = svc.call(bearer(&tp.token().sign())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.get(), 2);

    // Readiness errors of the inner service come through.
    fail.store(true, Ordering::SeqCst);
    assert!(matches!(
        poll_once(&mut svc),
        Poll::Ready(Err("inner failed"))
    ));
}

#[tokio::test]
async fn require_poll_ready_is_delegated() {
    let open = Arc::new(AtomicBool::new(false));
    let inner = Gated {
        open: Arc::clone(&open),
        fail: Arc::new(AtomicBool::new(false)),
        ready: false,
        calls: Calls::default(),
    };
    let mut svc = RequireLayer::scopes(["api:read"]).layer(inner);
    assert!(poll_once(&mut svc).is_pending());
    open.store(true, Ordering::SeqCst);
    assert!(matches!(poll_once(&mut svc), Poll::Ready(Ok(()))));
}

// ---------------------------------------------------------------------------------------------
// EdDSA, key-bound tokens and duplicated kids (issue 11, items 12–14)

#[tokio::test]
async fn at_01_eddsa_token_accepted_by_default() {
    let (tp, calls, svc) = bearer_setup().await;
    let token = tp.token().alg(SigningAlg::EdDSA).sign();
    let res = send(&svc, bearer(&token)).await;
    assert_authenticated(&res, "eddsa");
    assert_eq!(calls.get(), 1);

    // The same algorithm with a forged signature is still invalid.
    let forged = tp.token().alg(SigningAlg::EdDSA).sign_with_foreign_key();
    let res = send(&svc, bearer(&forged)).await;
    assert_invalid_token(&res, "foreign ed25519 key", &forged);
    assert_eq!(calls.get(), 1);
}

/// RFC 9449 §7.1, RFC 8705 §3: an access token bound to a DPoP key or a client certificate is
/// not usable with the Bearer scheme: 401 `invalid_token`, also on a repeat (the token cache
/// never holds it), the handler never called.
#[tokio::test]
async fn sender_constrained_token_with_cnf_401_invalid_token() {
    let (tp, calls, svc) = bearer_setup().await;
    let cases = [
        (
            "dpop jkt",
            json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        ),
        (
            "mtls x5t#S256",
            json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        ),
        ("empty cnf", json!({})),
    ];
    for (what, cnf) in cases {
        let token = tp.token().claim("cnf", cnf).sign();
        for round in 0..2 {
            let res = send(&svc, bearer(&token)).await;
            assert_invalid_token(&res, &format!("{what} {round}"), &token);
            let error = res.extensions().get::<AuthError>().unwrap();
            assert!(
                matches!(error.verify_error(), Some(VerifyError::SenderConstrained)),
                "{what}: {error:?}"
            );
        }
    }
    assert_eq!(calls.get(), 0, "the inner service was called");
    // Control: without `cnf` the token passes.
    let res = send(&svc, bearer(&tp.token().sign())).await;
    assert_authenticated(&res, "unbound");
}

/// Two keys under one `kid` make it unusable: tokens naming it get 401 `invalid_token`
/// whichever key signed them, no refetch is forced however many arrive, other kids keep
/// working, and one warning per key set load names the kid, escaped.
#[tokio::test]
async fn key_05_duplicate_kid_401_invalid_token_one_warning_no_refetch() {
    let (capture, _guard) = Capture::start(tracing::Level::WARN);

    let tp = TestProvider::start().await;
    let calls = Calls::default();
    // A short unknown-kid cooldown: were the kid taken for unknown, each request would refetch.
    let provider = oidc_core::Provider::builder(tp.issuer())
        .with_unknown_kid_cooldown(Duration::ZERO)
        .build()
        .unwrap();
    let verifier = oidc_core::AccessTokenVerifier::new(provider, common::AUDIENCE);
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));

    // The kid has a newline and an ANSI escape: it must not reach the log raw.
    let kid = "dup\nkid\u{1b}[31m";
    let jwk = |kid_of: &str| {
        let mut jwk = tp.public_jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["kid"] == kid_of)
            .unwrap()
            .clone();
        jwk["kid"] = json!(kid);
        jwk
    };
    tp.publish_key("rsa2-RS256");
    let es256 = tp.public_jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == tp.kid(SigningAlg::ES256))
        .unwrap()
        .clone();
    let set = json!({ "keys": [jwk("rsa1-RS256"), jwk("rsa2-RS256"), es256] });
    tp.set_jwks_override(Some(serde_json::to_vec(&set).unwrap()));

    let by_rsa1 = tp.token().header("kid", kid).sign();
    let by_rsa2 = tp
        .token()
        .signing_kid("rsa2-RS256")
        .header("kid", kid)
        .sign();
    for round in 0..20 {
        for (what, token) in [("signed by rsa1", &by_rsa1), ("signed by rsa2", &by_rsa2)] {
            let res = send(&svc, bearer(token)).await;
            assert_invalid_token(&res, &format!("{what} {round}"), token);
            let error = res.extensions().get::<AuthError>().unwrap();
            assert!(
                matches!(error.verify_error(), Some(VerifyError::DuplicateKeyId)),
                "{what}: {error:?}"
            );
        }
    }
    assert_eq!(calls.get(), 0);
    assert_eq!(
        tp.jwks_fetch_count(),
        1,
        "a duplicated kid forced a refetch"
    );
    let res = send(&svc, bearer(&tp.token().alg(SigningAlg::ES256).sign())).await;
    assert_authenticated(&res, "another kid of the set");

    let logs = capture.text();
    let warnings: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("several keys under one kid"))
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per key set load: {logs}");
    assert!(warnings[0].contains("WARN"), "{}", warnings[0]);
    assert!(
        warnings[0].contains(r#""dup\nkid\u{1b}[31m""#),
        "the kid is escaped: {}",
        warnings[0]
    );
    assert!(!logs.contains('\u{1b}'), "a raw escape reached the log");
    assert!(!logs.contains("dup\nkid"), "a raw newline reached the log");
}
