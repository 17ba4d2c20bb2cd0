//! `BearerAuthLayer` with a verifier for several issuers (`AccessTokenVerifier::any_of`),
//! black-box, against two in-process OpenID Providers (and a third, not configured, one).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use oidc_core::error::{ConfigError, VerifyError};
use oidc_core::{AccessTokenVerifier, AdditionalClaims, Claims, Identity};
use oidc_testing::{Failure, SigningAlg, TestProvider};
use oidc_tower::{AuthError, AuthErrorKind, BearerAuthLayer};
use serde_json::json;
use tower::{Layer as _, ServiceExt as _};

use common::{
    AUDIENCE, Calls, INVALID_TOKEN, assert_no_fetch, assert_not_echoed, assert_rejected, bearer,
    echo, provider, send,
};

/// Two providers whose tokens are accepted, each with its own RS256 key: the committed test
/// keys are shared by every `TestProvider`, so `b` signs with another key (`rsa2`) and does
/// not publish `a`'s.
struct Two {
    a: TestProvider,
    b: TestProvider,
    verifier: AccessTokenVerifier,
}

const AUDIENCE_B: &str = "api://b";

async fn two() -> Two {
    let a = TestProvider::start().await;
    let b = TestProvider::start().await;
    let a_kid = a.kid(SigningAlg::RS256);
    assert_ne!(b.rotate_key(SigningAlg::RS256), a_kid);
    b.remove_key(&a_kid);
    let verifier = AccessTokenVerifier::any_of([
        AccessTokenVerifier::new(provider(&a), AUDIENCE),
        AccessTokenVerifier::new(provider(&b), AUDIENCE_B).require_at_jwt(true),
    ])
    .unwrap();
    Two { a, b, verifier }
}

fn verify_error(res: &http::Response<String>) -> &VerifyError {
    res.extensions()
        .get::<AuthError>()
        .expect("the default rejection attaches the AuthError")
        .verify_error()
        .expect("a verification failure")
}

#[tokio::test]
async fn tokens_of_both_issuers_accepted_with_their_issuer() {
    let Two { a, b, verifier } = two().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));

    for (tp, token) in [
        (&a, a.token().claim("sub", "alice").sign()),
        (
            &b,
            b.token().audience(AUDIENCE_B).claim("sub", "alice").sign(),
        ),
    ] {
        let res = send(&svc, bearer(&token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let id = res.extensions().get::<Identity>().unwrap();
        assert_eq!((id.issuer(), id.subject()), (tp.issuer().as_str(), "alice"));
        let claims = res.extensions().get::<Claims<AdditionalClaims>>().unwrap();
        assert_eq!(claims.issuer(), tp.issuer());
        assert_eq!(claims.custom()["iss"], tp.issuer());
    }
    assert_eq!(calls.get(), 2);
}

#[tokio::test]
async fn each_issuer_keeps_its_own_settings() {
    let Two { a, b, verifier } = two().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));
    let cases = [
        // A's audience is not B's, and the reverse.
        (a.token().audience(AUDIENCE_B).sign(), "InvalidAudience"),
        (b.token().audience(AUDIENCE).sign(), "InvalidAudience"),
        // B (only) requires `typ: at+jwt`.
        (
            b.token().audience(AUDIENCE_B).header("typ", "JWT").sign(),
            "WrongTokenType",
        ),
    ];
    for (token, want) in &cases {
        let res = send(&svc, bearer(token)).await;
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
        assert_eq!(format!("{:?}", verify_error(&res)), *want);
    }
    let res = send(&svc, bearer(&a.token().header("typ", "JWT").sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn unconfigured_issuer_401_without_any_request() {
    let Two { a, b, verifier } = two().await;
    let c = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));

    let token = c.token().sign();
    let res = send(&svc, bearer(&token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    assert!(matches!(verify_error(&res), VerifyError::InvalidIssuer));
    assert_eq!(
        res.extensions().get::<AuthError>().unwrap().kind(),
        AuthErrorKind::InvalidToken
    );
    assert_not_echoed(&res, &token);

    assert_eq!(calls.get(), 0);
    for tp in [&a, &b, &c] {
        assert_no_fetch(tp);
        assert!(tp.token_requests().is_empty());
        assert_eq!(tp.userinfo_request_count(), 0);
    }
}

#[tokio::test]
async fn issuer_variants_401_without_any_request() {
    let Two { a, b, verifier } = two().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));
    let ia = a.issuer();
    let ib = b.issuer();
    let variants = [
        // Prefixes and suffixes of a configured issuer.
        format!("{ia}/"),
        format!("{ia}/tenant"),
        format!("{ia}0"),
        ia[..ia.len() - 1].to_owned(),
        "http://127.0.0.1".to_owned(),
        format!("x{ia}"),
        // Case variants.
        ia.to_uppercase(),
        ia.replace("http://", "HTTP://"),
        // Whitespace, an escaped NUL, and both issuers in one string.
        format!("{ia} "),
        format!("{ia}\u{0}"),
        format!("{ia} {ib}"),
        String::new(),
    ];
    for iss in &variants {
        let token = a.token().claim("iss", iss.as_str()).sign();
        let res = send(&svc, bearer(&token)).await;
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
        assert!(
            matches!(verify_error(&res), VerifyError::InvalidIssuer),
            "{iss:?}"
        );
    }
    // `iss` that is not a string, missing, or twice in the payload.
    let twice = {
        let token = a.token().sign();
        let parts: Vec<&str> = token.split('.').collect();
        let payload = format!(r#"{{"iss":"{ia}","iss":"{ib}","sub":"x"}}"#);
        use base64::Engine as _;
        let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload);
        format!("{}.{payload}.{}", parts[0], parts[2])
    };
    for token in [
        a.token().claim("iss", json!([ia])).sign(),
        a.token().claim("iss", json!(null)).sign(),
        a.token().without_claim("iss").sign(),
        twice,
    ] {
        let res = send(&svc, bearer(&token)).await;
        assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    }
    assert_eq!(calls.get(), 0);
    assert_no_fetch(&a);
    assert_no_fetch(&b);
}

#[tokio::test]
async fn issuer_a_signed_with_b_key_401() {
    let Two { a, b, verifier } = two().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));

    // B's key under B's kid, claiming A: A does not know the kid.
    let token = b.token().claim("iss", a.issuer()).sign();
    let res = send(&svc, bearer(&token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    assert!(matches!(verify_error(&res), VerifyError::UnknownKey));

    // B's key under A's kid, claiming A: the signature does not hold.
    let token = b
        .token()
        .claim("iss", a.issuer())
        .header("kid", a.kid(SigningAlg::RS256))
        .sign();
    let res = send(&svc, bearer(&token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    assert!(matches!(verify_error(&res), VerifyError::InvalidSignature));

    // A's key (rsa1) claiming B, with B's audience: B does not publish it.
    let token = a
        .token()
        .claim("iss", b.issuer())
        .audience(AUDIENCE_B)
        .sign();
    let res = send(&svc, bearer(&token)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    assert!(matches!(verify_error(&res), VerifyError::UnknownKey));

    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn readiness_and_warm_up_cover_every_issuer() {
    let Two { a, b, verifier } = two().await;
    assert!(!verifier.readiness().is_ready());
    assert_eq!(verifier.providers().count(), 2);

    // One issuer loaded is not enough.
    verifier.provider().warm_up().await.unwrap();
    assert!(verifier.provider().readiness().is_ready());
    assert!(!verifier.readiness().is_ready());

    // B down: warm_up fails, A stays loaded, B is not.
    b.fail_jwks(Failure::Status(503));
    assert!(verifier.warm_up().await.is_err());
    assert!(!verifier.readiness().keys);

    // B back (after the short retry backoff of `common::provider`).
    b.fail_jwks(Failure::None);
    tokio::time::sleep(Duration::from_millis(300)).await;
    verifier.warm_up().await.unwrap();
    assert!(verifier.readiness().is_ready());
    for tp in [&a, &b] {
        assert_eq!(tp.discovery_fetch_count(), 1);
    }
    assert_eq!((a.jwks_fetch_count(), b.jwks_fetch_count()), (1, 2));

    // Once warm, both issuers' tokens are served without another request.
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));
    for token in [a.token().sign(), b.token().audience(AUDIENCE_B).sign()] {
        let res = send(&svc, bearer(&token)).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!((a.jwks_fetch_count(), b.jwks_fetch_count()), (1, 2));
}

#[tokio::test]
async fn one_issuer_down_503_other_still_served() {
    let Two { a, b, verifier } = two().await;
    b.fail_jwks(Failure::Status(500));
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier).layer(echo(&calls));

    let res = send(&svc, bearer(&b.token().audience(AUDIENCE_B).sign())).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let res = send(&svc, bearer(&a.token().sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn duplicate_issuers_refused_at_configuration() {
    let a = TestProvider::start().await;
    let err = AccessTokenVerifier::any_of([
        AccessTokenVerifier::new(provider(&a), AUDIENCE),
        AccessTokenVerifier::new(provider(&a), "api://other"),
    ])
    .unwrap_err();
    assert!(matches!(err, ConfigError::DuplicateIssuer { issuer } if issuer == a.issuer()));
    assert!(matches!(
        AccessTokenVerifier::any_of([]),
        Err(ConfigError::NoIssuer)
    ));
    assert_no_fetch(&a);
}

/// What a multi-tenant axum handler sees: the issuer tells the tenant.
#[tokio::test]
async fn axum_handlers_tell_the_issuer() {
    let Two { a, b, verifier } = two().await;
    async fn whoami(claims: oidc_axum::Claims) -> String {
        format!("{} {}", claims.issuer(), claims.subject())
    }
    let app = Router::new()
        .route("/whoami", get(whoami))
        .layer(BearerAuthLayer::new(verifier));
    for (tp, token) in [
        (&a, a.token().sign()),
        (&b, b.token().audience(AUDIENCE_B).sign()),
    ] {
        let req = Request::get("/whoami")
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, format!("{} user-1", tp.issuer()));
    }
}
