//! The extractors of `oidc-axum` in a real axum `Router` behind `BearerAuthLayer`, driven with
//! `tower::ServiceExt::oneshot`, against an in-process OpenID Provider.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Request, Response, StatusCode, header};
use axum::routing::get;
use oidc_axum::{Authenticated, Claims, RequireScopes, scope_set};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_testing::TestProvider;
use oidc_tower::{BearerAuthLayer, RequireLayer};
use serde::Deserialize;
use tower::ServiceExt as _;

scope_set!(ApiWrite = ["api:write"]);
scope_set!(ApiReadWrite = ["api:read", "api:write"]);

fn verifier(tp: &TestProvider) -> AccessTokenVerifier {
    let provider = Provider::builder(tp.issuer()).build().unwrap();
    AccessTokenVerifier::new(provider, "api://default")
}

fn get_req(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::get(uri);
    if let Some(token) = token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    b.body(Body::empty()).unwrap()
}

async fn send(
    app: &Router,
    uri: &str,
    token: Option<&str>,
) -> (StatusCode, Response<Body>, String) {
    let res = app.clone().oneshot(get_req(uri, token)).await.unwrap();
    let status = res.status();
    let (parts, body) = res.into_parts();
    let text = String::from_utf8(to_bytes(body, 1 << 20).await.unwrap().to_vec()).unwrap();
    (status, Response::from_parts(parts, Body::empty()), text)
}

fn www_authenticate(res: &Response<Body>) -> Option<&str> {
    res.headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap())
}

/// Asserts that `GET uri` (with `token`, if any) answers 200 with the body `want`.
async fn assert_ok(app: &Router, uri: &str, token: Option<&str>, want: &str) {
    let (status, _, body) = send(app, uri, token).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, want), "GET {uri}");
}

/// Asserts the layer's 401 for a request without a token: the bare `Bearer realm="api"`.
#[track_caller]
fn assert_missing_token(status: StatusCode, res: &Response<Body>) {
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(res), Some(r#"Bearer realm="api""#));
}

/// Asserts the layer's 401 for a refused token: a challenge with `error="invalid_token"`.
#[track_caller]
fn assert_invalid_token(status: StatusCode, res: &Response<Body>) {
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        www_authenticate(res)
            .unwrap()
            .contains(r#"error="invalid_token""#)
    );
}

#[derive(Clone, Default)]
struct Hits(Arc<AtomicUsize>);

impl Hits {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }

    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Debug, Clone, Deserialize)]
struct MyClaims {
    tenant: String,
}

#[derive(Debug, Clone, Deserialize)]
struct Other {
    #[allow(dead_code)]
    x: Option<String>,
}

#[tokio::test]
async fn claims_extractor_gets_subject_and_scopes() {
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/me",
            get(move |claims: Claims| async move {
                h.hit();
                let scopes: Vec<&str> = claims.scopes().iter().collect();
                format!(
                    "{} {} {} {}",
                    claims.subject(),
                    scopes.join(","),
                    claims.client_id().unwrap_or("-"),
                    claims.custom()["jti"].is_string()
                )
            }),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)));

    let token = tp.token().sign();
    let (status, _, body) = send(&app, "/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "user-1 openid,api:read client-1 true");
    assert_eq!(hits.get(), 1);

    // The layer answers before the handler runs.
    let (status, res, body) = send(&app, "/me", None).await;
    assert_missing_token(status, &res);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(body, "");

    let (status, res, body) = send(&app, "/me", Some(&tp.token().sign_with_foreign_key())).await;
    assert_invalid_token(status, &res);
    assert_eq!(body, "");
    assert_eq!(hits.get(), 1);
}

#[tokio::test]
async fn optional_claims_behind_allow_anonymous() {
    let tp = TestProvider::start().await;
    let app = Router::new()
        .route(
            "/",
            get(|user: Option<Claims>| async move {
                user.map_or("hello stranger".to_owned(), |c| {
                    format!("hello {}", c.subject())
                })
            }),
        )
        .route(
            "/who",
            get(|user: Option<Authenticated>| async move {
                user.map_or("nobody".to_owned(), |a| a.subject().to_owned())
            }),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)).allow_anonymous(true));

    assert_ok(&app, "/", None, "hello stranger").await;
    assert_ok(&app, "/who", None, "nobody").await;
    assert_eq!(tp.jwks_fetch_count(), 0);

    let token = tp.token().sign();
    assert_ok(&app, "/", Some(&token), "hello user-1").await;
    assert_ok(&app, "/who", Some(&token), "user-1").await;

    // A bad token is refused, never downgraded to anonymous.
    let (status, res, _) = send(&app, "/", Some(&tp.token().expires_in(-3600).sign())).await;
    assert_invalid_token(status, &res);
}

#[tokio::test]
async fn optional_claims_without_allow_anonymous_never_reaches_handler() {
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/",
            get(move |user: Option<Claims>| async move {
                h.hit();
                user.is_some().to_string()
            }),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)));

    let (status, res, _) = send(&app, "/", None).await;
    assert_missing_token(status, &res);
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn authenticated_extractor_works_with_any_claim_type() {
    let tp = TestProvider::start().await;
    let handler = |who: Authenticated| async move { format!("{} {}", who.subject(), who.issuer()) };
    let default_app = Router::new()
        .route("/", get(handler))
        .layer(BearerAuthLayer::new(verifier(&tp)));
    let typed_app = Router::new()
        .route("/", get(handler))
        .layer(BearerAuthLayer::new(verifier(&tp)).with_claims::<MyClaims>());

    let token = tp.token().claim("tenant", "acme").sign();
    let want = format!("user-1 {}", tp.issuer());
    for app in [&default_app, &typed_app] {
        let (status, _, body) = send(app, "/", Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, want);
    }
}

#[tokio::test]
async fn custom_claims_with_with_claims_layer() {
    let tp = TestProvider::start().await;
    let app = Router::new()
        .route(
            "/",
            get(|claims: Claims<MyClaims>| async move {
                format!("{}@{}", claims.subject(), claims.custom().tenant)
            }),
        )
        .route(
            "/write",
            get(|claims: RequireScopes<ApiWrite, MyClaims>| async move {
                claims.custom().tenant.clone()
            }),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)).with_claims::<MyClaims>());

    let token = tp.token().claim("tenant", "acme").sign();
    assert_ok(&app, "/", Some(&token), "user-1@acme").await;

    let token = tp.token().claim("tenant", "acme").scope("api:write").sign();
    assert_ok(&app, "/write", Some(&token), "acme").await;

    // Claims that don't fit the type: the layer refuses the token.
    let (status, res, _) = send(&app, "/", Some(&tp.token().sign())).await;
    assert_invalid_token(status, &res);
}

#[tokio::test]
async fn missing_layer_500_names_bearer_auth_layer() {
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let (h1, h2, h3) = (hits.clone(), hits.clone(), hits.clone());
    let app: Router = Router::new()
        .route("/claims", get(move |_: Claims| async move { h1.hit() }))
        .route("/who", get(move |_: Authenticated| async move { h2.hit() }))
        .route(
            "/write",
            get(move |_: RequireScopes<ApiWrite>| async move { h3.hit() }),
        );

    // With and without a (valid, but unverified here) token.
    let token = tp.token().scope("api:write").sign();
    for uri in ["/claims", "/who", "/write"] {
        for token in [None, Some(token.as_str())] {
            let (status, res, body) = send(&app, uri, token).await;
            assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{uri}");
            assert!(body.contains("BearerAuthLayer"), "{uri}: {body}");
            assert!(www_authenticate(&res).is_none(), "{uri}");
        }
    }
    assert_eq!(hits.get(), 0);
    assert_eq!(tp.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn claims_of_another_type_than_the_layer_inserts_500() {
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let (h1, h2) = (hits.clone(), hits.clone());
    // The layer inserts the default claims; the handler asks for `Claims<Other>`.
    let default_layer = Router::new()
        .route("/", get(move |_: Claims<Other>| async move { h1.hit() }))
        .layer(BearerAuthLayer::new(verifier(&tp)));
    // The layer inserts `Claims<MyClaims>`; the handler asks for the default claims.
    let typed_layer = Router::new()
        .route("/", get(move |_: Claims| async move { h2.hit() }))
        .layer(BearerAuthLayer::new(verifier(&tp)).with_claims::<MyClaims>());

    let token = tp.token().claim("tenant", "acme").sign();
    let (status, _, body) = send(&default_layer, "/", Some(&token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("BearerAuthLayer"), "{body}");
    assert!(
        body.contains("Other"),
        "names the claim type asked for: {body}"
    );

    let (status, _, body) = send(&typed_layer, "/", Some(&token)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("BearerAuthLayer"), "{body}");
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn require_scopes_403_without_scope_200_with() {
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let (h1, h2) = (hits.clone(), hits.clone());
    let app = Router::new()
        .route(
            "/write",
            get(move |claims: RequireScopes<ApiWrite>| async move {
                h1.hit();
                format!("write {}", claims.subject())
            }),
        )
        .route(
            "/rw",
            get(
                move |RequireScopes(claims, ..): RequireScopes<ApiReadWrite>| async move {
                    h2.hit();
                    format!("rw {}", claims.subject())
                },
            ),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)));

    // The default token has "openid api:read".
    let token = tp.token().sign();
    let (status, res, body) = send(&app, "/write", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let challenge = www_authenticate(&res).unwrap();
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#),
        "{challenge}"
    );
    assert!(challenge.contains(r#"scope="api:write""#), "{challenge}");
    assert!(body.contains("api:write"), "{body}");

    let (status, res, _) = send(&app, "/rw", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        www_authenticate(&res)
            .unwrap()
            .contains(r#"scope="api:read api:write""#)
    );
    assert_eq!(hits.get(), 0);

    let token = tp.token().scope("openid api:read api:write").sign();
    assert_ok(&app, "/write", Some(&token), "write user-1").await;
    assert_ok(&app, "/rw", Some(&token), "rw user-1").await;
    assert_eq!(hits.get(), 2);
}

#[tokio::test]
async fn require_scopes_403_names_the_layer_realm_like_require_layer() {
    // The extractor's 403 and the layer's 403 come from one builder: same challenge, with the
    // realm the bearer layer was configured with (not a default, not none).
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let h = hits.clone();
    let app = Router::new()
        .route(
            "/write",
            get(move |_: RequireScopes<ApiWrite>| async move { h.hit() }),
        )
        .route(
            "/layer",
            get(|c: Claims| async move { c.subject().to_owned() })
                .route_layer(RequireLayer::scopes(["api:write"])),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)).with_realm("orders"));
    let want = r#"Bearer realm="orders", error="insufficient_scope", scope="api:write", error_description="a required scope is missing""#;
    let token = tp.token().sign();
    // Twice: the second request is answered from the token cache.
    for _ in 0..2 {
        let (status, res, body) = send(&app, "/write", Some(&token)).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        assert_eq!(www_authenticate(&res), Some(want));
        assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
        assert!(body.contains("api:write"), "{body}");
    }
    let (status, res, _) = send(&app, "/layer", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(www_authenticate(&res), Some(want));
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn require_layer_as_route_layer() {
    let tp = TestProvider::start().await;
    let app = Router::new()
        .route(
            "/admin",
            get(|c: Claims| async move { c.subject().to_owned() })
                .route_layer(RequireLayer::scopes(["api:write"])),
        )
        .route(
            "/me",
            get(|c: Claims| async move { c.subject().to_owned() }),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)));

    let token = tp.token().sign();
    let (status, res, body) = send(&app, "/admin", Some(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        www_authenticate(&res),
        Some(
            r#"Bearer realm="api", error="insufficient_scope", scope="api:write", error_description="a required scope is missing""#
        )
    );
    assert_eq!(body, "");
    assert_ok(&app, "/me", Some(&token), "user-1").await;

    let token = tp.token().scope("api:write").sign();
    assert_ok(&app, "/admin", Some(&token), "user-1").await;
}

#[tokio::test]
async fn anonymous_request_to_a_claims_route_fails_closed() {
    // `allow_anonymous(true)` on the router, a handler that requires `Claims`: a request
    // without credentials must never reach the handler.
    let tp = TestProvider::start().await;
    let hits = Hits::default();
    let h = hits.clone();
    let app = Router::new()
        .route("/me", get(move |_: Claims| async move { h.hit() }))
        .layer(BearerAuthLayer::new(verifier(&tp)).allow_anonymous(true));
    let (status, _, _) = send(&app, "/me", None).await;
    assert!(!status.is_success(), "{status}");
    assert_eq!(hits.get(), 0);
}

#[tokio::test]
async fn anonymous_request_to_a_claims_route_401() {
    let tp = TestProvider::start().await;
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims| async move { c.subject().to_owned() }),
        )
        .layer(BearerAuthLayer::new(verifier(&tp)).allow_anonymous(true));
    let (status, res, _) = send(&app, "/me", None).await;
    assert_missing_token(status, &res);
}
