//! Options of `LoginLayer`, black-box: the login hook, bearer tokens next to sessions
//! (`accept_bearer`), and `require_login`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, Response};
use oidc_axum::{Authenticated, Claims};
use oidc_core::AccessTokenVerifier;
use oidc_testing::find_param;
use oidc_tower::login::{LoginInfo, LoginLayer, LoginRefused};
use oidc_tower::{BearerAuthLayer, RequireLayer};
use tower::ServiceExt as _;

use login_common::{App, Builder, CLIENT_ID, Jar, USER};

// ---------------------------------------------------------------------------------------------
// Login hook

#[tokio::test]
async fn hook_refusal_is_403_without_a_session() {
    let app = Builder::new()
        .layer(|l| {
            l.with_login_hook(|_: LoginInfo| async {
                Err(LoginRefused::new("<b>Your account is suspended</b>"))
            })
        })
        .start()
        .await;
    let res = app.expect_failed_login("hook refuses", 403).await;
    assert!(!res.body.contains("<b>"), "{}", res.body);
    assert!(
        res.body
            .contains("&lt;b&gt;Your account is suspended&lt;/b&gt;"),
        "the message, escaped: {}",
        res.body
    );
}

/// What the hook saw: issuer, subject, email, email verified.
type Seen = (String, String, Option<String>, bool);

#[tokio::test]
async fn hook_maps_the_user_to_a_local_id() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let app = Builder::new()
        .layer(move |l| {
            l.with_login_hook(move |info: LoginInfo| {
                record.lock().unwrap().push((
                    info.issuer().to_owned(),
                    info.subject().to_owned(),
                    info.email().map(str::to_owned),
                    info.email_verified(),
                ));
                async { Ok(Some("local-42".to_owned())) }
            })
        })
        .start()
        .await;
    let jar = app.login().await;
    let me = app.assert_logged_in(&jar).await;
    assert_eq!(me["local_user"], "local-42");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            app.op.issuer(),
            USER.to_owned(),
            Some("user-1@example.test".to_owned()),
            true
        )]
    );
}

#[tokio::test]
async fn hook_without_a_local_id_keeps_none() {
    let app = Builder::new()
        .layer(|l| l.with_login_hook(|_: LoginInfo| async { Ok(None) }))
        .start()
        .await;
    let jar = app.login().await;
    let me = app.assert_logged_in(&jar).await;
    assert!(me["local_user"].is_null());
}

// ---------------------------------------------------------------------------------------------
// accept_bearer

fn with_bearer(builder: Builder) -> Builder {
    builder.layer(|l| {
        let verifier = AccessTokenVerifier::new(l.client().provider().clone(), "api://default");
        l.accept_bearer(oidc_tower::BearerAuthLayer::new(verifier))
    })
}

async fn bearer_get(app: &App, path: &str, token: &str) -> login_common::Resp {
    let req = app
        .http
        .get(format!("{}{path}", app.url))
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {token}"));
    app.send(req, &mut Jar::default()).await
}

#[tokio::test]
async fn accept_bearer_lets_a_valid_token_through() {
    let app = with_bearer(Builder::new()).start().await;
    let token = app.op.token().claim("sub", "service-7").sign();
    let res = bearer_get(&app, "/whoami", &token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "service-7");
    assert!(
        res.set_cookies().is_empty(),
        "no session for bearer requests"
    );
    assert!(app.op.authorization_requests().is_empty());
}

#[tokio::test]
async fn accept_bearer_rejects_a_bad_token_with_invalid_token() {
    let app = with_bearer(Builder::new()).start().await;
    let bad = [
        ("foreign key", app.op.token().sign_with_foreign_key()),
        (
            "wrong audience",
            app.op.token().audience("api://other").sign(),
        ),
        (
            "expired",
            app.op
                .token()
                .claim("exp", login_common::now() - 3600)
                .sign(),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, token) in bad {
        let res = bearer_get(&app, "/whoami", &token).await;
        assert_eq!(res.status, 401, "{what}");
        let challenge = res.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        assert!(res.location().is_none(), "{what}: never a login redirect");
        assert!(res.set_cookies().is_empty(), "{what}");
    }
    // Even for a browser navigation, bad bearer credentials are judged alone.
    let req = app
        .http
        .get(format!("{}/me", app.url))
        .header("accept", "text/html")
        .header("authorization", "Bearer not-a-jwt");
    let res = app.send(req, &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    assert!(res.location().is_none());
    assert!(app.op.authorization_requests().is_empty());
}

#[tokio::test]
async fn accept_bearer_keeps_sessions_working() {
    let app = with_bearer(Builder::new()).start().await;
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
}

/// The app's layer (its store and provider) around a router of the test's own, called
/// in-process.
async fn call_with(layer: LoginLayer, router: Router, req: Request<Body>) -> Response<Body> {
    router.layer(layer).oneshot(req).await.unwrap()
}

fn api_request(path: &str, authorization: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .uri(path)
        .header("accept", "application/json");
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    req.body(Body::empty()).unwrap()
}

fn challenge(res: &Response<Body>) -> String {
    res.headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

#[derive(Clone, serde::Deserialize)]
struct Tenant {
    tenant: String,
}

/// `accept_bearer` takes a `BearerAuthLayer`: its realm names the challenges, and its claim
/// type decides what a token must carry (a token without `tenant` is refused for a
/// `Claims<Tenant>` layer, as `BearerAuthLayer` refuses it).
#[tokio::test]
async fn at_10_accept_bearer_applies_the_realm_and_claim_type_of_the_bearer_layer() {
    let app = App::start().await;
    let verifier = AccessTokenVerifier::new(app.layer.client().provider().clone(), "api://default");
    let layer = app.layer.clone().accept_bearer(
        BearerAuthLayer::new(verifier)
            .with_realm("orders")
            .with_claims::<Tenant>(),
    );
    let router = || {
        Router::new().route(
            "/tenant",
            get(|claims: Claims<Tenant>| async move { claims.custom().tenant.clone() }),
        )
    };

    let good = app.op.token().claim("tenant", "acme").sign();
    let res = call_with(
        layer.clone(),
        router(),
        api_request("/tenant", Some(&format!("Bearer {good}"))),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"acme");

    let untyped = app.op.token().sign();
    let res = call_with(
        layer.clone(),
        router(),
        api_request("/tenant", Some(&format!("Bearer {untyped}"))),
    )
    .await;
    assert_eq!(
        res.status(),
        401,
        "claims that do not fit the claim type are refused"
    );
    let header = challenge(&res);
    assert!(header.starts_with(r#"Bearer realm="orders""#), "{header}");
    assert!(header.contains(r#"error="invalid_token""#), "{header}");

    let res = call_with(
        layer,
        router(),
        api_request("/tenant", Some("Bearer not-a-jwt")),
    )
    .await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).starts_with(r#"Bearer realm="orders""#),
        "{}",
        challenge(&res)
    );
    assert!(
        res.headers().get("set-cookie").is_none(),
        "no session for bearer requests"
    );
}

/// An API request with neither a session nor credentials, to a login layer that accepts
/// bearer tokens, gets the bearer layer's RFC 6750 challenge (the bare 401 before told an
/// API client nothing), and no session is created.
#[tokio::test]
async fn at_01_accept_bearer_api_request_without_credentials_gets_the_bearer_challenge() {
    let app = with_bearer(Builder::new()).start().await;
    let res = app.api("/api/x", &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    assert_eq!(
        res.header("www-authenticate"),
        Some(r#"Bearer realm="api""#)
    );
    assert!(res.location().is_none());
    assert!(res.set_cookies().is_empty(), "no session created");
    assert!(
        app.op.authorization_requests().is_empty(),
        "no login started"
    );
}

/// With a bearer layer that allows anonymous requests, an API request without credentials
/// reaches the service marked anonymous (an optional extractor sees nobody), a route that
/// needs an identity still answers 401 with the bearer realm, navigations are still sent to
/// the login, and bad credentials are still refused.
#[tokio::test]
async fn accept_bearer_allow_anonymous_lets_api_requests_through_without_an_identity() {
    let app = App::start().await;
    let verifier = AccessTokenVerifier::new(app.layer.client().provider().clone(), "api://default");
    let layer = app.layer.clone().accept_bearer(
        BearerAuthLayer::new(verifier)
            .with_realm("orders")
            .allow_anonymous(true),
    );
    let router = || {
        Router::new()
            .route(
                "/hello",
                get(|who: Option<Authenticated>| async move {
                    who.map_or_else(|| "anonymous".to_owned(), |w| w.subject().to_owned())
                }),
            )
            .route(
                "/whoami",
                get(|who: Authenticated| async move { who.subject().to_owned() }),
            )
    };
    let res = call_with(layer.clone(), router(), api_request("/hello", None)).await;
    assert_eq!(res.status(), 200);
    let body = axum::body::to_bytes(res.into_body(), 1024).await.unwrap();
    assert_eq!(&body[..], b"anonymous");

    let res = call_with(layer.clone(), router(), api_request("/whoami", None)).await;
    assert_eq!(res.status(), 401);
    assert!(
        challenge(&res).starts_with(r#"Bearer realm="orders""#),
        "{}",
        challenge(&res)
    );

    let res = call_with(
        layer.clone(),
        router(),
        api_request("/hello", Some("Bearer not-a-jwt")),
    )
    .await;
    assert_eq!(res.status(), 401, "bad credentials are never ignored");

    let nav = Request::builder()
        .uri("/hello")
        .header("accept", "text/html")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-dest", "document")
        .body(Body::empty())
        .unwrap();
    let res = call_with(layer, router(), nav).await;
    assert_eq!(res.status(), 303, "a navigation still goes to the login");
}

/// A 403 decided behind the login layer for a session user names the login layer's realm
/// (`login`), as a 403 behind a bearer layer names that layer's.
#[tokio::test]
async fn at_10_403_behind_the_login_layer_names_the_login_realm() {
    let app = App::start().await;
    let jar = app.login().await;
    let router = Router::new()
        .route("/admin", get(|| async { "admin" }))
        .layer(RequireLayer::scopes(["admin"]));
    let req = Request::builder()
        .uri("/admin")
        .header("accept", "application/json")
        .header("cookie", jar.header().unwrap())
        .body(Body::empty())
        .unwrap();
    let res = call_with(app.layer.clone(), router, req).await;
    assert_eq!(res.status(), 403);
    let header = challenge(&res);
    assert!(header.starts_with(r#"Bearer realm="login""#), "{header}");
    assert!(header.contains(r#"error="insufficient_scope""#), "{header}");
}

// ---------------------------------------------------------------------------------------------
// require_login

#[tokio::test]
async fn require_login_default_sends_navigation_straight_to_the_provider() {
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app.nav("/me", &mut jar).await;
    assert_eq!(res.status, 303);
    let authorize = res.location().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{}?", app.op.authorization_endpoint())),
        "{authorize}"
    );
    let params = login_common::query_params(&authorize);
    assert_eq!(find_param(&params, "client_id"), Some(CLIENT_ID));
    assert_eq!(find_param(&params, "response_type"), Some("code"));

    let callback = app.authorize(&authorize).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.location(), Some("/me"));
    app.assert_logged_in(&jar).await;

    // Not a navigation: 401, no redirect.
    let res = app.api("/me", &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    assert!(res.location().is_none());
}

#[tokio::test]
async fn require_login_false_lets_anonymous_requests_through() {
    let app = Builder::new()
        .layer(|l| l.require_login(false))
        .start()
        .await;
    let mut jar = Jar::default();
    let res = app.nav("/", &mut jar).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "home");
    // The User extractor sends a navigation to the login route, an API call gets 401.
    let res = app.nav("/me", &mut jar).await;
    assert_eq!(res.status, 303);
    assert!(
        res.location().unwrap().starts_with("/auth/login"),
        "{:?}",
        res.location()
    );
    let res = app.api("/me", &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    // Logged in, the extractor gives the user.
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
}
