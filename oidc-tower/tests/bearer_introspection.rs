//! `BearerAuthLayer` with a verifier that introspects opaque tokens (RFC 7662), against the
//! in-process OpenID Provider's introspection endpoint.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use http::StatusCode;
use oidc_core::verify::Introspector;
use oidc_testing::TestProvider;
use oidc_tower::{AuthError, AuthErrorKind, BearerAuthLayer};
use serde_json::json;
use tower::Layer as _;

use common::{
    AUDIENCE, Calls, INVALID_TOKEN, assert_authenticated, assert_not_echoed, assert_rejected,
    bearer, echo, send, verifier,
};

const OPAQUE: &str = "8xLOxBtZp8-opaque-access-token";

fn layer(tp: &TestProvider) -> BearerAuthLayer {
    BearerAuthLayer::new(verifier(tp).with_introspection(Introspector::new("api", "api-secret")))
}

#[tokio::test]
async fn inactive_opaque_token_is_401_invalid_token() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = layer(&tp).layer(echo(&calls));
    let res = send(&svc, bearer(OPAQUE)).await;
    assert_rejected(&res, StatusCode::UNAUTHORIZED, Some(INVALID_TOKEN));
    assert_not_echoed(&res, OPAQUE);
    assert_eq!(calls.get(), 0, "the inner service is not called");
    assert_eq!(tp.introspection_count(), 1);
}

#[tokio::test]
async fn active_opaque_token_reaches_the_service_with_its_subject() {
    let tp = TestProvider::start().await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tp.set_introspection(
        OPAQUE,
        json!({
            "active": true, "iss": tp.issuer(), "aud": AUDIENCE, "sub": "user-1",
            "exp": now + 300, "scope": "api:read",
        }),
    );
    let calls = Calls::default();
    let svc = layer(&tp).layer(echo(&calls));
    let res = send(&svc, bearer(OPAQUE)).await;
    assert_authenticated(&res, "active opaque token");
    assert_eq!(calls.get(), 1);
    // Cached: the second request sends no introspection.
    let res = send(&svc, bearer(OPAQUE)).await;
    assert_authenticated(&res, "cached opaque token");
    assert_eq!(tp.introspection_count(), 1);
}

#[tokio::test]
async fn introspection_endpoint_failure_is_503_not_401() {
    let tp = TestProvider::start().await;
    tp.fail_introspection(Some(500));
    let calls = Calls::default();
    let svc = layer(&tp).layer(echo(&calls));
    let res = send(&svc, bearer(OPAQUE)).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.extensions().get::<AuthError>().unwrap().kind(),
        AuthErrorKind::Unavailable
    );
    assert_not_echoed(&res, OPAQUE);
    assert_eq!(calls.get(), 0);
}
