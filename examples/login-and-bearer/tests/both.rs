//! The login-and-bearer example's router against the in-process provider of `oidc-testing`:
//! a browser (cookies kept by hand, redirects not followed) and an API client on one route.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use oidc_axum::{AccessTokenVerifier, OidcClient, Provider};
use oidc_testing::{Browser, ClientRegistration, Page, TestProvider};
use reqwest::header::ACCEPT;
use serde_json::Value;

const CLIENT_ID: &str = "web-app";
const SECRET: &str = "s3cret";
/// The audience of the provider's access tokens.
const AUDIENCE: &str = "api://default";
/// The session cookie on an `http` app URL.
const SESSION_COOKIE: &str = "oidc-session";
/// The user the provider signs in.
const USER: &str = "alice";

/// The body of `page` as JSON.
fn json(page: &Page) -> Value {
    serde_json::from_str(&page.body).unwrap()
}

/// The provider, the example's app on a loopback port, and a browser for it.
struct Fixture {
    op: TestProvider,
    browser: Browser,
}

impl Fixture {
    async fn start() -> Self {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let callback = format!("{url}/auth/callback");
        op.register_client(ClientRegistration::confidential(
            CLIENT_ID, SECRET, &callback,
        ));
        let provider = Provider::builder(op.issuer()).build().unwrap();
        let verifier = AccessTokenVerifier::new(provider.clone(), AUDIENCE);
        let client = OidcClient::new(provider, CLIENT_ID, callback)
            .unwrap()
            .with_client_secret(SECRET);
        let app = login_and_bearer::app(client, &url, verifier).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let browser = Browser::new(&url, SESSION_COOKIE);
        Self { op, browser }
    }

    /// `GET url` (a path on the app or an absolute URL) with `accept`, the session cookie and
    /// `token` as a bearer token if given; keeps the session cookie the answer sets.
    async fn get(&mut self, url: &str, accept: &str, token: Option<&str>) -> Page {
        let mut req = self
            .browser
            .http()
            .get(self.browser.url(url))
            .header(ACCEPT, accept);
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        self.browser.send(req).await
    }

    /// An API call to `GET /api/me` (JSON), with `token` if given.
    async fn api(&mut self, token: Option<&str>) -> Page {
        self.get("/api/me", "application/json", token).await
    }

    /// Logs in from a navigation to `/api/me`: the app sends the browser to the provider,
    /// which signs the user in and sends it back to the callback, then to `/api/me`.
    async fn login(&mut self) {
        self.browser.login(&self.op, "/api/me").await;
    }
}

/// Asserts a 401 with the bearer challenge of realm `api` and `error` (none: no error code).
fn assert_bearer_401(res: &Page, error: Option<&str>) {
    assert_eq!(res.status, 401, "{res:?}");
    assert!(res.location.is_none(), "{res:?}");
    let challenge = res.challenge.as_deref().expect("a WWW-Authenticate header");
    assert!(challenge.starts_with("Bearer realm=\"api\""), "{challenge}");
    match error {
        Some(error) => assert!(
            challenge.contains(&format!("error=\"{error}\"")),
            "{challenge}"
        ),
        None => assert!(!challenge.contains("error="), "{challenge}"),
    }
    assert!(!res.body.contains(USER), "the handler did not run: {res:?}");
}

#[tokio::test]
async fn browser_session_and_bearer_token_reach_the_same_handler() {
    let mut app = Fixture::start().await;
    app.login().await;
    let by_session = app.api(None).await;
    assert_eq!(by_session.status, 200, "{}", by_session.body);
    let body = json(&by_session);
    assert_eq!(
        (&body["sub"], &body["via"]),
        (&USER.into(), &"session".into())
    );
    assert_eq!(body["iss"], app.op.issuer());

    let token = app.op.token().claim("sub", "svc-1").sign();
    app.browser.set_cookie(None);
    let by_token = app.api(Some(&token)).await;
    assert_eq!(by_token.status, 200, "{}", by_token.body);
    let body = json(&by_token);
    assert_eq!(
        (&body["sub"], &body["via"]),
        (&"svc-1".into(), &"bearer".into())
    );
    assert_eq!(body["iss"], app.op.issuer());
    assert!(
        by_token.set_cookies.is_empty(),
        "a bearer call makes no session"
    );
}

#[tokio::test]
async fn bad_bearer_token_is_401_and_never_falls_back_to_the_session() {
    let mut app = Fixture::start().await;
    app.login().await;
    let good = app.op.token().claim("sub", "svc-1");
    for (what, token) in [
        ("forged", good.sign_then_replace_claim("sub", USER)),
        ("foreign key", good.sign_with_foreign_key()),
        (
            "other audience",
            good.clone().audience("api://other").sign(),
        ),
        ("expired", good.clone().expires_in(-3600).sign()),
        ("garbage", "not-a-jwt".to_owned()),
    ] {
        // The browser's session is valid, yet the request is judged by its token alone.
        let res = app.api(Some(&token)).await;
        assert_bearer_401(&res, Some("invalid_token"));
        assert!(res.set_cookies.is_empty(), "{what}: {:?}", res.set_cookies);
    }
    // A good token with the same cookie is the token's caller, not the session's.
    let res = app.api(Some(&good.sign())).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(json(&res)["via"], "bearer");
    assert_eq!(json(&res)["sub"], "svc-1");
    // And the session itself still works.
    assert_eq!(json(&app.api(None).await)["sub"], USER);
}

#[tokio::test]
async fn api_request_without_credentials_gets_the_bearer_challenge() {
    let mut app = Fixture::start().await;
    let res = app.api(None).await;
    assert_bearer_401(&res, None);
    assert!(
        res.set_cookies.is_empty(),
        "no session: {:?}",
        res.set_cookies
    );
    assert!(app.op.authorization_requests().is_empty());
}

#[tokio::test]
async fn browser_navigation_without_login_is_sent_to_the_provider() {
    let mut app = Fixture::start().await;
    let res = app.get("/api/me", "text/html", None).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let to = res.location.unwrap();
    assert!(
        to.starts_with(&format!("{}?", app.op.authorization_endpoint())),
        "{to}"
    );
}
