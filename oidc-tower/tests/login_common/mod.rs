//! The harness of the `login_*` integration tests: a real axum app behind `LoginLayer` (wired as
//! in the quickstart) served on a loopback port, an `oidc-testing` provider on another, and an
//! HTTP client that follows no redirects and carries cookies by hand.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::response::Json;
use axum::routing::get;
use oidc_axum::{Authenticated, User};
use oidc_core::flow::{ClientAuth, OidcClient};
use oidc_core::http::ReqwestClient;
use oidc_core::{Provider, ProviderBuilder};
use oidc_testing::{ClientRegistration, TestProvider, TokenEndpointAuth};
use oidc_tower::login::LoginLayer;
use oidc_tower::login::store::LoginStore;
use reqwest::header::{self, HeaderMap};
use serde_json::{Value, json};
use tower_sessions::session::Id;
use tower_sessions::{MemoryStore, SessionStore as _};

/// The client id registered at the provider.
pub(crate) const CLIENT_ID: &str = "web-app";
/// The client secret of the default (confidential, `client_secret_basic`) client.
pub(crate) const SECRET: &str = "s3cret";
/// The session cookie name on an `http` app URL.
pub(crate) const COOKIE: &str = "oidc-session";
/// The user the provider logs in automatically.
pub(crate) const USER: &str = "user-1";

type Edit<T> = Box<dyn FnOnce(T) -> T + Send>;

/// How the client authenticates at the token endpoint (both sides are configured alike).
#[derive(Debug, Clone)]
pub(crate) enum Auth {
    Basic(String),
    Post(String),
    Public,
}

/// Builds an [`App`]: the provider registration, the `Provider`, the `OidcClient` and the
/// `LoginLayer` can each be edited before the app starts.
pub(crate) struct Builder {
    op: Option<TestProvider>,
    client_id: String,
    auth: Auth,
    registration: Vec<Edit<ClientRegistration>>,
    provider: Vec<Edit<ProviderBuilder>>,
    client: Vec<Edit<OidcClient>>,
    layer: Vec<Edit<LoginLayer>>,
    store: Option<Edit<LoginLayer>>,
    timeouts: Option<(Duration, Duration)>,
}

impl Builder {
    pub(crate) fn new() -> Self {
        Self {
            op: None,
            client_id: CLIENT_ID.to_owned(),
            auth: Auth::Basic(SECRET.to_owned()),
            registration: Vec::new(),
            provider: Vec::new(),
            client: Vec::new(),
            layer: Vec::new(),
            store: None,
            timeouts: None,
        }
    }

    /// Uses this provider instead of a fresh one.
    pub(crate) fn op(mut self, op: &TestProvider) -> Self {
        self.op = Some(op.clone());
        self
    }

    pub(crate) fn client_id(mut self, id: &str) -> Self {
        self.client_id = id.to_owned();
        self
    }

    pub(crate) fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    pub(crate) fn registration(
        mut self,
        f: impl FnOnce(ClientRegistration) -> ClientRegistration + Send + 'static,
    ) -> Self {
        self.registration.push(Box::new(f));
        self
    }

    /// Edits the `Provider` (its builder starts from the provider's issuer).
    pub(crate) fn provider(
        mut self,
        f: impl FnOnce(ProviderBuilder) -> ProviderBuilder + Send + 'static,
    ) -> Self {
        self.provider.push(Box::new(f));
        self
    }

    pub(crate) fn client(
        mut self,
        f: impl FnOnce(OidcClient) -> OidcClient + Send + 'static,
    ) -> Self {
        self.client.push(Box::new(f));
        self
    }

    pub(crate) fn layer(
        mut self,
        f: impl FnOnce(LoginLayer) -> LoginLayer + Send + 'static,
    ) -> Self {
        self.layer.push(Box::new(f));
        self
    }

    /// Keeps the sessions in `store`, shared with whoever else has it (the default: a fresh
    /// in-memory store of this app's own).
    pub(crate) fn shared_store<S>(mut self, store: S) -> Self
    where
        S: tower_sessions::SessionStore + oidc_tower::login::SessionRegistry + Clone,
    {
        self.store = Some(Box::new(move |layer| layer.with_shared_store(store)));
        self
    }

    /// The provider's HTTP client gets these connect and total timeouts.
    pub(crate) fn http_timeouts(mut self, connect: Duration, total: Duration) -> Self {
        self.timeouts = Some((connect, total));
        self
    }

    pub(crate) async fn start(self) -> App {
        let op = match self.op {
            Some(op) => op,
            None => TestProvider::start().await,
        };
        op.set_auto_login(Some(USER));

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let redirect_uri = format!("{url}/auth/callback");

        let mut registration = match &self.auth {
            Auth::Basic(secret) => {
                ClientRegistration::confidential(&self.client_id, secret, &redirect_uri)
            }
            Auth::Post(secret) => {
                ClientRegistration::confidential(&self.client_id, secret, &redirect_uri)
                    .with_auth_method(TokenEndpointAuth::ClientSecretPost)
            }
            Auth::Public => ClientRegistration::public(&self.client_id, &redirect_uri),
        }
        .add_post_logout_redirect_uri(&format!("{url}/"));
        for edit in self.registration {
            registration = edit(registration);
        }
        op.register_client(registration);

        let mut builder = Provider::builder(op.issuer())
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100));
        if let Some((connect, total)) = self.timeouts {
            builder = builder.with_http_client(Arc::new(
                ReqwestClient::with_timeouts(connect, total).unwrap(),
            ));
        }
        for edit in self.provider {
            builder = edit(builder);
        }
        let provider = builder.build().unwrap();

        let mut client = OidcClient::new(provider, self.client_id.clone(), redirect_uri).unwrap();
        client = match &self.auth {
            Auth::Basic(secret) => client.with_client_secret(secret.clone()),
            Auth::Post(secret) => client
                .with_client_secret(secret.clone())
                .with_auth_method(ClientAuth::ClientSecretPost),
            Auth::Public => client,
        };
        for edit in self.client {
            client = edit(client);
        }

        let mut layer = LoginLayer::new(client, &url).unwrap();
        for edit in self.layer {
            layer = edit(layer);
        }
        let layer = match self.store {
            Some(shared) => shared(layer),
            None => layer.with_store(MemoryStore::default()),
        };
        // The layer's view of the store (sessions by cookie id, in the app's namespace).
        let store = layer.store().clone();
        let router = router(&layer, None);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });

        App {
            op,
            url,
            http: http_client(),
            store,
            layer,
            server,
        }
    }
}

/// The app of the tests, wired as in the quickstart; `store` replaces the layer's store.
pub(crate) fn router(layer: &LoginLayer, store: Option<MemoryStore>) -> Router {
    let layer = match store {
        Some(store) => layer.clone().with_store(store),
        None => layer.clone(),
    };
    Router::new()
        .route("/", get(|| async { "home" }))
        .route("/app", get(|| async { "app" }))
        .route("/me", get(me))
        .route(
            "/whoami",
            get(|who: Authenticated| async move { who.subject().to_owned() }),
        )
        .route("/api/x", get(|| async { "x" }).post(|| async { "x" }))
        .route(
            "/boom",
            get(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(layer)
}

async fn me(user: User) -> Json<Value> {
    Json(json!({
        "sub": user.subject(),
        "email": user.email(),
        "iss": user.issuer(),
        "local_user": user.local_user(),
        "claims": user.claims(),
    }))
}

/// A client that follows no redirects and keeps no cookies.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// A running app and its provider.
pub(crate) struct App {
    pub(crate) op: TestProvider,
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub(crate) url: String,
    pub(crate) http: reqwest::Client,
    /// The layer's view of its store: records by cookie id.
    pub(crate) store: LoginStore,
    pub(crate) layer: LoginLayer,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for App {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// A response, read completely.
#[derive(Debug, Clone)]
pub(crate) struct Resp {
    pub(crate) status: u16,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

impl Resp {
    pub(crate) fn location(&self) -> Option<&str> {
        self.headers
            .get(header::LOCATION)
            .map(|v| v.to_str().unwrap())
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    /// Every `Set-Cookie` header.
    pub(crate) fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `Set-Cookie` headers of the session cookie named `name`.
    pub(crate) fn session_cookies_named(&self, name: &str) -> Vec<String> {
        self.set_cookies()
            .into_iter()
            .filter(|c| {
                c.split(';')
                    .next()
                    .unwrap()
                    .split_once('=')
                    .unwrap()
                    .0
                    .trim()
                    == name
            })
            .collect()
    }

    /// The non-empty values the response sets for the session cookie.
    pub(crate) fn new_session_values(&self) -> Vec<String> {
        self.session_cookies_named(COOKIE)
            .iter()
            .filter(|c| !is_removal(c))
            .map(|c| cookie_value(c).to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    }

    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap()
    }
}

/// The value of a `Set-Cookie` header.
pub(crate) fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .trim()
}

/// Whether a `Set-Cookie` header removes its cookie.
pub(crate) fn is_removal(set_cookie: &str) -> bool {
    cookie_value(set_cookie).is_empty()
        || set_cookie
            .split(';')
            .any(|a| a.trim().eq_ignore_ascii_case("max-age=0"))
}

/// Cookies kept by hand, like a browser for one origin.
#[derive(Debug, Clone, Default)]
pub(crate) struct Jar(pub(crate) BTreeMap<String, String>);

impl Jar {
    pub(crate) fn with_session(value: &str) -> Self {
        let mut jar = Self::default();
        jar.0.insert(COOKIE.to_owned(), value.to_owned());
        jar
    }

    pub(crate) fn update(&mut self, resp: &Resp) {
        for set in resp.set_cookies() {
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            if is_removal(&set) {
                self.0.remove(name.trim());
            } else {
                self.0
                    .insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }

    pub(crate) fn header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    pub(crate) fn session(&self) -> Option<&str> {
        self.0.get(COOKIE).map(String::as_str)
    }
}

/// Sends `req` with the cookies of `jar`, reads the answer, and keeps its cookies in `jar`.
pub(crate) async fn send(mut req: reqwest::RequestBuilder, jar: &mut Jar) -> Resp {
    if let Some(cookies) = jar.header() {
        req = req.header(header::COOKIE, cookies);
    }
    let res = req.send().await.unwrap();
    let resp = Resp {
        status: res.status().as_u16(),
        headers: res.headers().clone(),
        body: res.text().await.unwrap(),
    };
    jar.update(&resp);
    resp
}

/// The query parameters of a URL, decoded, in order.
pub(crate) fn query_params(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

pub(crate) fn param(url: &str, name: &str) -> Option<String> {
    query_params(url)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// `url` with the parameter `name` set to `value` (`None` removes it).
pub(crate) fn with_param(url: &str, name: &str, value: Option<&str>) -> String {
    let mut parsed = url::Url::parse(url).unwrap();
    let mut pairs: Vec<(String, String)> = parsed
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    if let Some(value) = value {
        pairs.push((name.to_owned(), value.to_owned()));
    }
    parsed.query_pairs_mut().clear().extend_pairs(pairs);
    parsed.into()
}

/// The decoded payload of a JWT (no verification).
pub(crate) fn jwt_claims(token: &str) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub(crate) fn now() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

impl App {
    /// A fresh provider and the default app (confidential client, `client_secret_basic`).
    pub(crate) async fn start() -> Self {
        Builder::new().start().await
    }

    pub(crate) fn callback_url(&self) -> String {
        format!("{}/auth/callback", self.url)
    }

    /// Sends `req` with the cookies of `jar`, reads the answer, and keeps its cookies in `jar`.
    pub(crate) async fn send(&self, req: reqwest::RequestBuilder, jar: &mut Jar) -> Resp {
        send(req, jar).await
    }

    /// `POST /auth/logout` from the app's own origin (RP-initiated logout) with `jar`.
    pub(crate) async fn logout(&self, jar: &mut Jar) -> Resp {
        let req = self
            .http
            .post(format!("{}/auth/logout", self.url))
            .header(header::ORIGIN, &self.url);
        self.send(req, jar).await
    }

    /// A top-level browser navigation to `path` (or an absolute URL).
    pub(crate) async fn nav(&self, path: &str, jar: &mut Jar) -> Resp {
        let url = self.abs(path);
        let req = self
            .http
            .get(url)
            .header(header::ACCEPT, "text/html,application/xhtml+xml");
        self.send(req, jar).await
    }

    /// A JSON API request to `path`.
    pub(crate) async fn api(&self, path: &str, jar: &mut Jar) -> Resp {
        let req = self
            .http
            .get(self.abs(path))
            .header(header::ACCEPT, "application/json");
        self.send(req, jar).await
    }

    /// `GET /me` as an API request with a copy of `jar` (the jar is not changed).
    pub(crate) async fn me(&self, jar: &Jar) -> Resp {
        let mut copy = jar.clone();
        self.api("/me", &mut copy).await
    }

    /// Asserts that `jar` carries an authenticated session: `/me` answers 200 for `USER`.
    pub(crate) async fn assert_logged_in(&self, jar: &Jar) -> Value {
        let me = self.me(jar).await;
        assert_eq!(me.status, 200, "/me with {jar:?}: {}", me.body);
        let body = me.json();
        assert_eq!(body["sub"], USER);
        body
    }

    /// Asserts that `jar` carries no authenticated session (JSON request → 401).
    pub(crate) async fn assert_not_logged_in(&self, jar: &Jar) {
        let me = self.me(jar).await;
        assert_eq!(me.status, 401, "/me with {jar:?} must not be authenticated");
        assert!(me.location().is_none());
    }

    fn abs(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        }
    }

    /// `GET /auth/login` (with `return_to` when given): asserts 303 to the provider's
    /// authorization endpoint and returns that URL.
    pub(crate) async fn begin(&self, jar: &mut Jar, return_to: Option<&str>) -> String {
        let path = match return_to {
            Some(r) => format!(
                "/auth/login?{}",
                url::form_urlencoded::Serializer::new(String::new())
                    .append_pair("return_to", r)
                    .finish()
            ),
            None => "/auth/login".to_owned(),
        };
        let res = self.nav(&path, jar).await;
        assert_eq!(res.status, 303, "{path}: {}", res.body);
        let location = res.location().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}?", self.op.authorization_endpoint())),
            "{location}"
        );
        assert!(jar.session().is_some(), "a pre-login session cookie");
        location
    }

    /// The provider's answer to an authorization request (auto-login): asserts 303 to the
    /// callback and returns the callback URL.
    pub(crate) async fn authorize(&self, authorize_url: &str) -> String {
        let res = self
            .send(self.http.get(authorize_url), &mut Jar::default())
            .await;
        assert_eq!(res.status, 303, "authorize: {}", res.body);
        let location = res.location().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}?", self.callback_url())),
            "{location}"
        );
        location
    }

    /// Delivers the callback to the app with `jar`.
    pub(crate) async fn callback(&self, callback_url: &str, jar: &mut Jar) -> Resp {
        self.nav(callback_url, jar).await
    }

    /// Starts a login and gets the provider's callback URL: `(jar, callback_url)`.
    pub(crate) async fn until_callback(&self, return_to: Option<&str>) -> (Jar, String) {
        let mut jar = Jar::default();
        let authorize = self.begin(&mut jar, return_to).await;
        let callback = self.authorize(&authorize).await;
        (jar, callback)
    }

    /// The full flow with `return_to`; asserts a successful callback (303, a new session
    /// cookie) and returns the jar and the callback's answer.
    pub(crate) async fn login_to(&self, return_to: Option<&str>) -> (Jar, Resp) {
        let (mut jar, callback) = self.until_callback(return_to).await;
        let before = jar.session().unwrap().to_owned();
        let res = self.callback(&callback, &mut jar).await;
        assert_eq!(res.status, 303, "callback: {}", res.body);
        let fresh = res.new_session_values();
        assert_eq!(
            fresh.len(),
            1,
            "one new session cookie: {:?}",
            res.set_cookies()
        );
        assert_ne!(fresh[0], before, "the session id changes at login");
        (jar, res)
    }

    /// The full flow; returns the jar with the logged-in session cookie.
    pub(crate) async fn login(&self) -> Jar {
        self.login_to(None).await.0
    }

    /// Whether the session store has a live session for this cookie value.
    pub(crate) async fn store_has(&self, cookie_value: &str) -> bool {
        let Ok(id) = Id::from_str(cookie_value) else {
            return false;
        };
        self.store.load(&id).await.unwrap().is_some()
    }

    pub(crate) fn token_request_count(&self) -> usize {
        self.op.token_requests().len()
    }

    /// Asserts the conventions of a failed authentication at the callback: `res` has
    /// `status` and no redirect, no new session cookie is set, neither the pre-login cookie
    /// (`pre`) nor the cookies after the callback (`after`) are authenticated, and the
    /// transaction is consumed (a replay with the pre-login cookie answers 400 with no token
    /// request).
    pub(crate) async fn assert_failed_login(
        &self,
        what: &str,
        status: u16,
        res: &Resp,
        pre: &Jar,
        after: &Jar,
        callback: &str,
    ) {
        assert_eq!(res.status, status, "{what}: {}", res.body);
        assert!(res.location().is_none(), "{what}: no redirect");
        // No new session: the answer sets no session cookie, or only re-sends the unchanged
        // pre-login (unauthenticated) id.
        let pre_value = pre.session().map(str::to_owned);
        assert!(
            res.new_session_values()
                .iter()
                .all(|v| Some(v) == pre_value.as_ref()),
            "{what}: no new session cookie: {:?}",
            res.set_cookies()
        );
        assert!(!res.body.contains("eyJ"), "{what}: no token in the page");
        self.assert_not_logged_in(pre).await;
        self.assert_not_logged_in(after).await;
        let tokens = self.token_request_count();
        let mut replay_jar = pre.clone();
        let replay = self.callback(callback, &mut replay_jar).await;
        assert_eq!(
            replay.status, 400,
            "{what}: replay → 400 (transaction consumed): {}",
            replay.body
        );
        assert_eq!(
            self.token_request_count(),
            tokens,
            "{what}: the replay made no token request"
        );
        self.assert_not_logged_in(&replay_jar).await;
    }

    /// Runs a login that must fail at the callback with `status` (after the provider was
    /// configured to misbehave), asserting the conventions of [`App::assert_failed_login`].
    pub(crate) async fn expect_failed_login(&self, what: &str, status: u16) -> Resp {
        let (pre, callback) = self.until_callback(None).await;
        let mut after = pre.clone();
        let res = self.callback(&callback, &mut after).await;
        self.assert_failed_login(what, status, &res, &pre, &after, &callback)
            .await;
        res
    }
}
