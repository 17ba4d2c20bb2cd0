//! A browser for tests of an app's login: one session cookie kept by hand, redirects not
//! followed, so that each step of a login can be looked at.

use std::time::Duration;

use reqwest::header::{
    ACCEPT, CONTENT_TYPE, COOKIE, HeaderName, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};

/// An answer of the app, read completely.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Page {
    /// The status code.
    pub status: u16,
    /// The `Location` header.
    pub location: Option<String>,
    /// The `WWW-Authenticate` header.
    pub challenge: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// Every `Set-Cookie` header, as sent.
    pub set_cookies: Vec<String>,
    /// The body.
    pub body: String,
}

/// A browser for one app: it sends the app's session cookie (named `cookie_name`) with each
/// request and keeps the one each answer sets (an empty value or `Max-Age=0` removes it). It
/// follows no redirect.
///
/// Test support: a request that cannot be sent or read is a failed test, so the methods panic
/// on it.
///
/// ```no_run
/// # async fn doc(op: oidc_testing::TestProvider) {
/// let mut browser = oidc_testing::Browser::new("http://127.0.0.1:3000", "oidc-session");
/// browser.login(&op, "/").await;
/// assert_eq!(browser.nav("/").await.status, 200);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Browser {
    http: reqwest::Client,
    base: String,
    cookie_name: String,
    cookie: Option<String>,
}

impl Browser {
    /// A browser for the app at `base` (e.g. `http://127.0.0.1:3000`) whose session cookie is
    /// `cookie_name`.
    ///
    /// # Panics
    ///
    /// When the HTTP client cannot be built (no TLS back end).
    #[allow(clippy::expect_used)]
    pub fn new(base: impl Into<String>, cookie_name: impl Into<String>) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("an HTTP client");
        Self {
            http,
            base: base.into().trim_end_matches('/').to_owned(),
            cookie_name: cookie_name.into(),
            cookie: None,
        }
    }

    /// The HTTP client (no redirects, no cookies of its own), for requests outside the
    /// browser's session.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The app's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The session cookie's value, if the browser has one.
    pub fn cookie(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// Replaces the session cookie (`None` forgets it).
    pub fn set_cookie(&mut self, value: Option<String>) {
        self.cookie = value;
    }

    /// `path` on the app, or `path` itself when it is an absolute URL.
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    /// Sends `req` with the session cookie and keeps the cookie the answer sets.
    ///
    /// # Panics
    ///
    /// When the request fails or a header is not visible ASCII.
    #[allow(clippy::expect_used)]
    pub async fn send(&mut self, mut req: reqwest::RequestBuilder) -> Page {
        if let Some(value) = &self.cookie {
            req = req.header(COOKIE, format!("{}={value}", self.cookie_name));
        }
        let res = req.send().await.expect("the request is answered");
        let header = |name: HeaderName| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().expect("a visible-ASCII header").to_owned())
        };
        let (location, challenge) = (header(LOCATION), header(WWW_AUTHENTICATE));
        let content_type = header(CONTENT_TYPE);
        let set_cookies: Vec<String> = res
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .map(|v| v.to_str().expect("a visible-ASCII Set-Cookie").to_owned())
            .collect();
        let prefix = format!("{}=", self.cookie_name);
        for set in &set_cookies {
            let pair = set.split(';').next().unwrap_or_default();
            if let Some(value) = pair.strip_prefix(&prefix) {
                let removed = value.is_empty() || set.to_ascii_lowercase().contains("max-age=0");
                self.cookie = (!removed).then(|| value.to_owned());
            }
        }
        Page {
            status: res.status().as_u16(),
            location,
            challenge,
            content_type,
            set_cookies,
            body: res.text().await.expect("the body is read"),
        }
    }

    /// A request of `accept` to `path` (see [`Browser::url`]), with the session cookie.
    pub async fn get(&mut self, path: &str, accept: &str) -> Page {
        let req = self.http.get(self.url(path)).header(ACCEPT, accept);
        self.send(req).await
    }

    /// A top-level navigation (`Accept: text/html`) to `path` (see [`Browser::url`]).
    pub async fn nav(&mut self, path: &str) -> Page {
        self.get(path, "text/html").await
    }

    /// Takes the authorization request `authorize` to `op` (a fresh request: the provider's
    /// cookies are not the app's) and returns the callback URL the provider sends the browser
    /// back to. The provider must sign the user in by itself
    /// ([`TestProvider::set_auto_login`](crate::TestProvider::set_auto_login)).
    ///
    /// # Panics
    ///
    /// When `authorize` is not at `op`'s authorization endpoint or the provider does not
    /// redirect.
    #[allow(clippy::expect_used, clippy::panic)]
    pub async fn at_provider(&self, op: &crate::TestProvider, authorize: &str) -> String {
        let endpoint = format!("{}?", op.authorization_endpoint());
        assert!(
            authorize.starts_with(&endpoint),
            "not at the provider: {authorize}"
        );
        let res = self
            .http
            .get(authorize)
            .send()
            .await
            .expect("the provider answers");
        assert_eq!(res.status().as_u16(), 303, "the provider redirects back");
        res.headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .expect("a Location back to the app")
            .to_owned()
    }

    /// Logs in from a navigation to `path`: the app sends the browser to `op` (303), which
    /// signs the user in and sends it back to the callback, whose 303 is returned; the browser
    /// then has the session cookie.
    ///
    /// # Panics
    ///
    /// When a step does not answer as described.
    #[allow(clippy::expect_used)]
    pub async fn login(&mut self, op: &crate::TestProvider, path: &str) -> Page {
        let start = self.nav(path).await;
        assert_eq!(start.status, 303, "the login starts: {}", start.body);
        let authorize = start.location.expect("a redirect to the provider");
        let callback = self.at_provider(op, &authorize).await;
        let done = self.nav(&callback).await;
        assert_eq!(done.status, 303, "callback: {}", done.body);
        assert!(self.cookie.is_some(), "a session cookie after the login");
        done
    }
}
