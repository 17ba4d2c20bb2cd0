//! The login-only example's router against the in-process provider of `oidc-testing`: a
//! browser (cookies kept by hand, redirects not followed) logs in and out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use oidc_axum::{OidcClient, Provider};
use oidc_testing::{ClientRegistration, TestProvider};
use reqwest::header::{ACCEPT, COOKIE, LOCATION, ORIGIN, SET_COOKIE};

const CLIENT_ID: &str = "web-app";
const SECRET: &str = "s3cret";
/// The session cookie on an `http` app URL.
const SESSION_COOKIE: &str = "oidc-session";
/// The user the provider signs in.
const USER: &str = "alice";

/// A response, read completely.
struct Resp {
    status: u16,
    location: Option<String>,
    set_cookies: Vec<String>,
    body: String,
}

/// The provider, the example's app on a loopback port, and a browser for it.
struct Fixture {
    op: TestProvider,
    url: String,
    http: reqwest::Client,
    /// The browser's session cookie for the app (value only).
    cookie: Option<String>,
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
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        Self {
            op,
            url,
            http,
            cookie: None,
        }
    }

    /// Sends `req` with the session cookie and keeps the cookie the answer sets.
    async fn send(&mut self, mut req: reqwest::RequestBuilder) -> Resp {
        if let Some(value) = &self.cookie {
            req = req.header(COOKIE, format!("{SESSION_COOKIE}={value}"));
        }
        let res = req.send().await.unwrap();
        let location = res
            .headers()
            .get(LOCATION)
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies: Vec<String> = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        for set in &set_cookies {
            let pair = set.split(';').next().unwrap();
            if let Some(value) = pair.strip_prefix(&format!("{SESSION_COOKIE}=")) {
                let removed = value.is_empty() || set.to_ascii_lowercase().contains("max-age=0");
                self.cookie = (!removed).then(|| value.to_owned());
            }
        }
        Resp {
            status: res.status().as_u16(),
            location,
            set_cookies,
            body: res.text().await.unwrap(),
        }
    }

    /// A top-level browser navigation to `path` on the app, or to an absolute URL.
    async fn nav(&mut self, path: &str) -> Resp {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        let req = self.http.get(url).header(ACCEPT, "text/html");
        self.send(req).await
    }

    /// Logs in from `GET /`: the app sends the browser to the provider, which signs the user
    /// in and sends it back to the callback, which sends it back to `/`.
    async fn login(&mut self) {
        let start = self.nav("/").await;
        assert_eq!(start.status, 303, "{}", start.body);
        let authorize = start.location.unwrap();
        assert!(
            authorize.starts_with(&self.op.authorization_endpoint()),
            "{authorize}"
        );
        // The provider's own cookies are not the app's: a fresh request.
        let at_op = self.http.get(&authorize).send().await.unwrap();
        assert_eq!(at_op.status(), 303);
        let callback = at_op.headers()[LOCATION].to_str().unwrap().to_owned();
        let done = self.nav(&callback).await;
        assert_eq!(done.status, 303, "callback: {}", done.body);
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
        .http
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
    let old = app.cookie.clone().unwrap();

    let req = app
        .http
        .post(format!("{}/auth/logout", app.url))
        .header(ORIGIN, &app.url);
    let res = app.send(req).await;
    assert_eq!(res.status, 303, "{}", res.body);
    let to = res.location.unwrap();
    assert!(to.starts_with(&app.op.end_session_endpoint()), "{to}");
    assert!(
        app.cookie.is_none(),
        "the cookie is removed: {:?}",
        res.set_cookies
    );

    // A browser that kept the old cookie is not logged in any more.
    app.cookie = Some(old);
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
        .http
        .post(format!("{}/auth/logout", app.url))
        .header(ORIGIN, "http://evil.example");
    let res = app.send(req).await;
    assert_eq!(res.status, 403, "{}", res.body);
    assert!(res.location.is_none());
    assert!(app.op.end_session_requests().is_empty());
    let page = app.nav("/").await;
    assert_eq!(page.status, 200, "still logged in: {}", page.body);
}
