//! The several-providers example's router against two in-process providers of
//! `oidc-testing` ("corp" and "google"): a browser (cookies kept by hand, redirects not
//! followed) chooses one and logs in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use oidc_axum::{OidcClient, Provider};
use oidc_testing::{Browser, ClientRegistration, Page, TestProvider};
use several_providers::callback_url;

/// The session cookie on an `http` app URL.
const SESSION_COOKIE: &str = "oidc-session";

/// The two providers, the example's app on a loopback port, and a browser for it.
struct Fixture {
    corp: TestProvider,
    google: TestProvider,
    url: String,
    browser: Browser,
}

/// A provider that signs `user` in, with the app's client `client_id` registered.
async fn provider(user: &str, client_id: &str, callback: &str) -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    op.set_auto_login(Some(user));
    op.register_client(ClientRegistration::confidential(
        client_id, "s3cret", callback,
    ));
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let client = OidcClient::new(provider, client_id, callback)
        .unwrap()
        .with_client_secret("s3cret");
    (op, client)
}

impl Fixture {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (corp, corp_client) = provider("alice", "corp-app", &callback_url(&url, "corp")).await;
        let (google, google_client) =
            provider("bob", "google-app", &callback_url(&url, "google")).await;
        let app = several_providers::app(&url, corp_client, google_client).unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let browser = Browser::new(&url, SESSION_COOKIE);
        Self {
            corp,
            google,
            url,
            browser,
        }
    }

    /// A top-level browser navigation to `path` on the app, or to an absolute URL; sends the
    /// session cookie and keeps the one the answer sets.
    async fn nav(&mut self, path: &str) -> Page {
        self.browser.nav(path).await
    }

    /// Follows the link of provider `name` on the choice page up to the provider's answer:
    /// asserts that the login starts at `op`, and returns the callback URL `op` sends the
    /// browser to.
    async fn until_callback(&mut self, name: &str, op: &TestProvider) -> String {
        let start = self.nav(&format!("/auth/login/{name}")).await;
        assert_eq!(start.status, 303, "{}", start.body);
        let authorize = start.location.unwrap();
        self.browser.at_provider(op, &authorize).await
    }

    /// The number of token requests at both providers.
    fn token_requests(&self) -> usize {
        self.corp.token_requests().len() + self.google.token_requests().len()
    }
}

fn param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn choice_page_lists_both_providers() {
    let mut app = Fixture::start().await;
    let page = app.nav("/auth/login").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
    for (name, display) in [("corp", "Corporate account"), ("google", "Google")] {
        let link = format!("<a href=\"/auth/login/{name}\">{display}</a>");
        assert!(page.body.contains(&link), "{link} in {}", page.body);
    }
    // Listing makes no login: no session, nothing asked of either provider.
    assert!(page.set_cookies.is_empty(), "{:?}", page.set_cookies);
    assert!(app.corp.authorization_requests().is_empty());
    assert!(app.google.authorization_requests().is_empty());
}

#[tokio::test]
async fn unauthenticated_navigation_is_sent_to_the_choice_page() {
    let mut app = Fixture::start().await;
    let res = app.nav("/").await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert_eq!(res.location.as_deref(), Some("/auth/login?return_to=%2F"));
    assert!(
        app.browser.cookie().is_none(),
        "no session: {:?}",
        res.set_cookies
    );
}

#[tokio::test]
async fn each_link_starts_a_login_at_its_own_provider() {
    let mut app = Fixture::start().await;
    for (name, op, client_id) in [
        ("corp", app.corp.clone(), "corp-app"),
        ("google", app.google.clone(), "google-app"),
    ] {
        let res = app.nav(&format!("/auth/login/{name}")).await;
        assert_eq!(res.status, 303, "{name}: {}", res.body);
        let authorize = res.location.unwrap();
        assert!(
            authorize.starts_with(&format!("{}?", op.authorization_endpoint())),
            "{name}: {authorize}"
        );
        assert_eq!(param(&authorize, "client_id").as_deref(), Some(client_id));
        assert_eq!(
            param(&authorize, "redirect_uri"),
            Some(callback_url(&app.url, name))
        );
    }
}

#[tokio::test]
async fn unknown_provider_is_404_without_a_session() {
    let mut app = Fixture::start().await;
    let res = app.nav("/auth/login/github").await;
    assert_eq!(res.status, 404, "{}", res.body);
    assert!(res.location.is_none());
    assert!(res.set_cookies.is_empty(), "{:?}", res.set_cookies);
}

#[tokio::test]
async fn login_at_the_second_provider_shows_its_name() {
    let mut app = Fixture::start().await;
    let google = app.google.clone();
    let callback = app.until_callback("google", &google).await;
    assert!(
        callback.starts_with(&callback_url(&app.url, "google")),
        "{callback}"
    );
    let done = app.nav(&callback).await;
    assert_eq!(done.status, 303, "callback: {}", done.body);
    assert!(app.corp.token_requests().is_empty(), "corp was not asked");
    assert_eq!(app.google.token_requests().len(), 1);

    let page = app.nav("/").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.body, "Signed in with Google as bob.\n");
}

#[tokio::test]
async fn response_at_the_other_providers_callback_is_refused() {
    let mut app = Fixture::start().await;
    let google = app.google.clone();
    let callback = app.until_callback("google", &google).await;
    let before = app.browser.cookie().map(str::to_owned);
    // Google's answer (code and state) delivered at corp's callback: a mix-up attack.
    let mut moved = url::Url::parse(&callback).unwrap();
    moved.set_path("/auth/callback/corp");
    let res = app.nav(moved.as_str()).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(res.location.is_none());
    assert_eq!(app.token_requests(), 0, "no code redeemed anywhere");
    assert_eq!(
        app.browser.cookie().map(str::to_owned),
        before,
        "no new session: {:?}",
        res.set_cookies
    );

    let page = app.nav("/").await;
    assert_eq!(page.status, 303, "not logged in: {}", page.body);
}
