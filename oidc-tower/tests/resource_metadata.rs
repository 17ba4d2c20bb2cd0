//! RFC 9728 protected-resource metadata: the document, its route, and the `resource_metadata`
//! attribute in every challenge of a layer that names it; and the opt-in `PresentedToken`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use http::{Method, Request, StatusCode, header};
use oidc_testing::TestProvider;
use oidc_tower::resource_metadata::ProtectedResource;
use oidc_tower::{BearerAuthLayer, PresentedToken, Realm, RequireLayer};
use tower::{Layer as _, ServiceBuilder, ServiceExt as _};

use common::{Calls, bearer, challenge, echo, request, request_to, send, verifier};

const METADATA: &str = "http://127.0.0.1:3000/.well-known/oauth-protected-resource/mcp";

fn metadata(tp: &TestProvider) -> ProtectedResource {
    ProtectedResource::new("http://127.0.0.1:3000/mcp")
        .unwrap()
        .with_authorization_server(tp.issuer())
        .unwrap()
        .with_scopes_supported(["api:read", "api:write"])
}

/// Every refusal of the layer (no token, malformed request, bad token) and of a requirement
/// behind it (insufficient scope) names the metadata URL, so that a client that only knows
/// the API can find the authorization server (RFC 9728 §5.1); the inner service is never
/// called.
#[tokio::test]
async fn rs_01_every_challenge_names_the_resource_metadata() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            BearerAuthLayer::new(verifier(&tp))
                .with_realm("mcp")
                .with_resource_metadata(&metadata(&tp)),
        )
        .layer(RequireLayer::scopes(["api:write"]))
        .service(echo(&calls));
    let attrs = format!(r#"Bearer realm="mcp", resource_metadata="{METADATA}""#);

    let res = send(&svc, request(&[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(challenge(&res), Some(attrs.as_str()));

    let res = send(&svc, request(&["Bearer a b"])).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let got = challenge(&res).unwrap();
    assert!(
        got.starts_with(&format!(r#"{attrs}, error="invalid_request""#)),
        "{got}"
    );

    let res = send(&svc, bearer("not.a.token")).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let got = challenge(&res).unwrap();
    assert!(
        got.starts_with(&format!(r#"{attrs}, error="invalid_token""#)),
        "{got}"
    );

    // A valid token without the scope: the 403 of the RequireLayer behind names it too.
    let res = send(&svc, bearer(&tp.token().scope("api:read").sign())).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let got = challenge(&res).unwrap();
    assert!(
        got.starts_with(&format!(
            r#"{attrs}, error="insufficient_scope", scope="api:write""#
        )),
        "{got}"
    );
    assert_eq!(calls.get(), 0);

    // With the scope, the request passes and the Realm extension carries the URL.
    let res = send(&svc, bearer(&tp.token().scope("api:write").sign())).await;
    assert_eq!(res.status(), StatusCode::OK);
    let realm = res.extensions().get::<Realm>().unwrap();
    assert_eq!(realm.resource_metadata(), Some(METADATA));
    assert_eq!(calls.get(), 1);
}

/// A layer that lets anonymous requests through still names the URL when a route behind it
/// needs an identity; a layer without metadata names none.
#[tokio::test]
async fn rs_02_anonymous_401_names_it_and_layers_without_it_do_not() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = ServiceBuilder::new()
        .layer(
            BearerAuthLayer::new(verifier(&tp))
                .allow_anonymous(true)
                .with_resource_metadata(&metadata(&tp)),
        )
        .layer(RequireLayer::scopes(["api:read"]))
        .service(echo(&calls));
    let res = send(&svc, request(&[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        challenge(&res),
        Some(format!(r#"Bearer realm="api", resource_metadata="{METADATA}""#).as_str())
    );

    let plain = BearerAuthLayer::new(verifier(&tp)).layer(echo(&calls));
    let res = send(&plain, request(&[])).await;
    assert_eq!(challenge(&res), Some(r#"Bearer realm="api""#));
    assert_eq!(calls.get(), 0);
}

/// The document route: GET and HEAD answer the document (public, cacheable, readable from any
/// origin); other methods 405; other paths 404.
#[tokio::test]
async fn rs_03_document_route_answers_get_and_head_only() {
    let tp = TestProvider::start().await;
    let metadata = metadata(&tp);
    let path = metadata.path().to_owned();
    assert_eq!(path, "/.well-known/oauth-protected-resource/mcp");

    let req = |method: Method, uri: &str| Request::builder().method(method).uri(uri).body(());
    let res = metadata
        .clone()
        .oneshot(req(Method::GET, &path).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    assert_eq!(res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert!(
        res.headers()
            .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none()
    );
    let doc: serde_json::Value = serde_json::from_str(res.body()).unwrap();
    assert_eq!(doc["resource"], "http://127.0.0.1:3000/mcp");
    assert_eq!(
        doc["authorization_servers"],
        serde_json::json!([tp.issuer()])
    );
    assert_eq!(
        doc["bearer_methods_supported"],
        serde_json::json!(["header"])
    );
    assert_eq!(
        doc["scopes_supported"],
        serde_json::json!(["api:read", "api:write"])
    );

    let res = metadata
        .clone()
        .oneshot(req(Method::HEAD, &path).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.body().is_empty());

    for method in [Method::POST, Method::PUT, Method::DELETE] {
        let res = metadata
            .clone()
            .oneshot(req(method.clone(), &path).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(res.headers()[header::ALLOW], "GET, HEAD");
    }
    for other in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp/x",
        "/mcp",
        "/.well-known/oauth-protected-resource/mcp?x=1",
    ] {
        let res = metadata
            .clone()
            .oneshot(req(Method::GET, other).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{other}");
    }
}

/// The verified token is in the extensions only when the layer keeps it, on the verifying
/// path and on the cached one; a refused token never reaches the inner service.
#[tokio::test]
async fn presented_token_is_kept_only_when_asked_and_only_once_verified() {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let token = tp.token().sign();

    let default = BearerAuthLayer::new(verifier(&tp)).layer(echo(&calls));
    for _ in 0..2 {
        let res = send(&default, bearer(&token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(res.extensions().get::<PresentedToken>().is_none());
    }

    let keeping = BearerAuthLayer::new(verifier(&tp))
        .keep_presented_token(true)
        .layer(echo(&calls));
    // First the full verification, then the cache's answer.
    for _ in 0..2 {
        let res = send(&keeping, bearer(&token)).await;
        assert_eq!(res.status(), StatusCode::OK);
        let kept = res.extensions().get::<PresentedToken>().unwrap();
        assert_eq!(kept.secret().secret(), token);
        assert_eq!(format!("{kept:?}"), "PresentedToken(..)");
    }
    assert_eq!(calls.get(), 4);

    let forged = tp.token().claim("aud", "api://elsewhere").sign();
    let res = send(&keeping, bearer(&forged)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.extensions().get::<PresentedToken>().is_none());
    let res = send(&keeping, request_to("/x", &[])).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(calls.get(), 4);
}
