//! The login-only example's router against the in-process provider of `oidc-testing`: a
//! browser (cookies kept by hand, redirects not followed) logs in and out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use oidc_axum::{OidcClient, Provider};
use oidc_testing::{Browser, ClientRegistration, Page, TestProvider};
use reqwest::header::{ACCEPT, ORIGIN};

const CLIENT_ID: &str = "web-app";
const SECRET: &str = "s3cret";
/// The session cookie on an `http` app URL.
const SESSION_COOKIE: &str = "oidc-session";
/// The user the provider signs in.
const USER: &str = "alice";

/// The provider, the example's app on a loopback port, and a browser for it.
struct Fixture {
    op: TestProvider,
    url: String,
    browser: Browser,
}

impl Fixture {
    async fn start() -> Self {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let callback = format!("{url}/auth/callback");
        op.register_client(
            ClientRegistration::confidential(CLIENT_ID, SECRET, &callback)
                .add_post_logout_redirect_uri(&format!("{url}/")),
        );
        let provider = Provider::builder(op.issuer()).build().unwrap();
        let client = OidcClient::new(provider, CLIENT_ID, callback)
            .unwrap()
            .with_client_secret(SECRET);
        let app = login_only::app(client, &url).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let browser = Browser::new(&url, SESSION_COOKIE);
        Self { op, url, browser }
    }

    /// Sends `req` with the session cookie and keeps the cookie the answer sets.
    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        self.browser.send(req).await
    }

    /// A top-level browser navigation to `path` on the app.
    async fn nav(&mut self, path: &str) -> Page {
        self.browser.nav(path).await
    }

    /// Logs in from `GET /`: the app sends the browser to the provider, which signs the user
    /// in and sends it back to the callback, which sends it back to `/`.
    async fn login(&mut self) {
        let done = self.browser.login(&self.op, "/").await;
        assert_eq!(done.location.as_deref(), Some("/"));
    }
}

#[tokio::test]
async fn unauthenticated_navigation_is_sent_to_the_provider() {
    let mut app = Fixture::start().await;
    let res = app.nav("/").await;
    assert_eq!(res.status, 303, "{}", res.body);
    let location = url::Url::parse(res.location.as_deref().unwrap()).unwrap();
    assert!(
        location
            .as_str()
            .starts_with(&format!("{}?", app.op.authorization_endpoint())),
        "{location}"
    );
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(param("client_id").as_deref(), Some(CLIENT_ID));
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert!(!res.body.contains(USER));
}

#[tokio::test]
async fn unauthenticated_api_request_is_401_without_a_session() {
    let mut app = Fixture::start().await;
    let req = app
        .browser
        .http()
        .get(format!("{}/", app.url))
        .header(ACCEPT, "application/json");
    let res = app.send(req).await;
    assert_eq!(res.status, 401, "{}", res.body);
    assert!(res.location.is_none());
    assert!(
        res.set_cookies.is_empty(),
        "no session: {:?}",
        res.set_cookies
    );
    assert!(app.op.authorization_requests().is_empty());
}

#[tokio::test]
async fn completed_login_shows_the_user() {
    let mut app = Fixture::start().await;
    app.login().await;
    let page = app.nav("/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains(&format!("<strong id=\"user\">{USER}</strong>")),
        "{}",
        page.body
    );
    assert!(page.body.contains("action=\"/auth/logout\""));
}

#[tokio::test]
async fn logout_ends_the_session_and_the_old_cookie_is_refused() {
    let mut app = Fixture::start().await;
    app.login().await;
    let old = app.browser.cookie().unwrap().to_owned();

    let req = app
        .browser
        .http()
        .post(format!("{}/auth/logout", app.url))
        .header(ORIGIN, &app.url);
    let res = app.send(req).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let to = res.location.unwrap();
    assert!(to.starts_with(&app.op.end_session_endpoint()), "{to}");
    assert!(
        app.browser.cookie().is_none(),
        "the cookie is removed: {:?}",
        res.set_cookies
    );

    // A browser that kept the old cookie is not logged in any more.
    app.browser.set_cookie(Some(old));
    let page = app.nav("/").await;
    assert_eq!(page.status, 303, "{}", page.body);
    assert!(!page.body.contains(USER));
    assert!(
        page.location
            .unwrap()
            .starts_with(&app.op.authorization_endpoint())
    );
}

#[tokio::test]
async fn cross_site_logout_is_refused_and_the_session_stays() {
    let mut app = Fixture::start().await;
    app.login().await;
    let req = app
        .browser
        .http()
        .post(format!("{}/auth/logout", app.url))
        .header(ORIGIN, "http://evil.example");
    let res = app.send(req).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.location.is_none());
    assert!(app.op.end_session_requests().is_empty());
    let page = app.nav("/").await;
    assert_eq!(page.status, 200, "still logged in: {}", page.body);
}
