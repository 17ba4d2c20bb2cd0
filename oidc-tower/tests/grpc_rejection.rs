//! `GrpcRejection`: every refusal of `BearerAuthLayer` and `RequireLayer` as a trailers-only
//! gRPC answer (HTTP 200, `content-type: application/grpc`, `grpc-status`), with the RFC 6750
//! challenge kept, and the inner service never called. The tonic client's view is tested in
//! examples/grpc-service.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use http::{Response, StatusCode};
use oidc_testing::{Failure, TestProvider};
use oidc_tower::{BearerAuthLayer, GrpcRejection, RequireLayer};
use tower::Layer as _;

use common::{AUDIENCE, Calls, bearer, echo, request, send, verifier};

#[track_caller]
fn assert_grpc_status(res: &Response<String>, code: &str, challenge_part: Option<&str>) {
    assert_eq!(res.status(), StatusCode::OK, "gRPC refusals are HTTP 200");
    assert_eq!(res.headers()["content-type"], "application/grpc");
    assert_eq!(res.headers()["grpc-status"], code);
    assert!(res.headers().contains_key("grpc-message"));
    assert!(res.body().is_empty());
    if let Some(part) = challenge_part {
        let challenge = res.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.contains(part), "{challenge}");
    }
}

#[tokio::test]
async fn refusals_are_grpc_statuses_with_the_challenge_and_the_service_is_not_called() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .with_rejection(GrpcRejection)
        .layer(
            RequireLayer::scopes(["orders:write"])
                .with_rejection(GrpcRejection)
                .layer(echo(&calls)),
        );

    // No token: UNAUTHENTICATED with a challenge without an error code.
    let res = send(&svc, request(&[])).await;
    assert_grpc_status(&res, "16", Some("Bearer realm="));
    assert!(
        !res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("error=")
    );

    // Two Authorization headers (malformed): UNAUTHENTICATED, invalid_request.
    let res = send(&svc, request(&["Bearer a", "Bearer b"])).await;
    assert_grpc_status(&res, "16", Some("error=\"invalid_request\""));

    // A forged token: UNAUTHENTICATED, invalid_token.
    let forged = tp.token().audience(AUDIENCE).sign_with_foreign_key();
    let res = send(&svc, bearer(&forged)).await;
    assert_grpc_status(&res, "16", Some("error=\"invalid_token\""));

    // A valid token without the scope: PERMISSION_DENIED, insufficient_scope naming it.
    let token = tp.token().audience(AUDIENCE).scope("orders:read").sign();
    let res = send(&svc, bearer(&token)).await;
    assert_grpc_status(&res, "7", Some("scope=\"orders:write\""));

    assert_eq!(calls.get(), 0, "no refused call reached the service");

    let token = tp.token().audience(AUDIENCE).scope("orders:write").sign();
    let res = send(&svc, bearer(&token)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!res.headers().contains_key("grpc-status"));
    assert_eq!(calls.get(), 1);
}

#[tokio::test]
async fn keys_unavailable_is_grpc_unavailable_with_retry_after() {
    let tp = TestProvider::start().await;
    tp.fail_discovery(Failure::Status(502));
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp))
        .with_rejection(GrpcRejection)
        .layer(echo(&calls));
    let res = send(&svc, bearer(&tp.token().audience(AUDIENCE).sign())).await;
    assert_grpc_status(&res, "14", None);
    assert!(res.headers().contains_key("retry-after"));
    assert_eq!(calls.get(), 0);
}

#[tokio::test]
async fn require_layer_without_authentication_is_grpc_internal() {
    let calls = Calls::default();
    let svc = RequireLayer::scopes(["orders:read"])
        .with_rejection(GrpcRejection)
        .layer(echo(&calls));
    let res = send(&svc, request(&[])).await;
    assert_grpc_status(&res, "13", None);
    assert_eq!(calls.get(), 0);
}
