//! Faults (issue #7): the provider down, slow, broken, flapping or rotating its keys, and the
//! session store going down mid-session, each injected by the test.
//!
//! The app under test is built in process: `BearerAuthLayer` on `/api/me`, `LoginLayer` (with
//! its session layer) on everything else, and `/readyz` answering from
//! `Provider::readiness`. Its provider is the in-process OpenID Provider of `oidc-testing`,
//! reached **only through a [`FaultProxy`]**: the `Provider`'s issuer is the provider's own
//! (`http://127.0.0.1:<op port>`), and an `HttpClient` ([`ThroughProxy`]) sends every request
//! of the `Provider` (discovery, JWKS, token, UserInfo) to the proxy's port instead, through
//! oidc-core's default `ReqwestClient` with short timeouts. The browser (the test's reqwest
//! client) reaches the provider's authorization endpoint directly.
//!
//! Settings of the app's provider: connect timeout 300 ms, total 1 s, retry backoff 100 ms
//! doubling to 1 s (the "retry interval"), unknown-`kid` cooldown 1 s.
//!
//! The store tests run real Redis and PostgreSQL servers ([`oidc_e2e::servers`]), stopped
//! and restarted mid-session.
//!
//! Every request is bounded ([`BOUND`]); the time limits asserted are loose on purpose (they
//! separate "answered within the configured timeouts" from "hangs"), never exact.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::StatusCode;
use axum::response::Json;
use axum::routing::get;
use oidc_axum::{Claims, User};
use oidc_core::error::HttpError;
use oidc_core::flow::OidcClient;
use oidc_core::http::{HttpClient, HttpRequest, HttpResponse, ReqwestClient};
use oidc_core::{AccessTokenVerifier, Provider, ProviderBuilder};
use oidc_e2e::faults::{FaultProxy, Mode};
use oidc_e2e::servers::{PostgresServer, RedisServer, Restartable};
use oidc_testing::{ClientRegistration, Failure, SigningAlg, TestProvider};
use oidc_tower::BearerAuthLayer;
use oidc_tower::login::store::{LoginStore, PostgresStore, RedisStore};
use oidc_tower::login::{LoginLayer, SessionRegistry};
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tower_sessions::SessionStore;
use tower_sessions::session::Id;

const AUDIENCE: &str = "api://default";
const CLIENT_ID: &str = "web-app";
const SECRET: &str = "s3cret";
const USER: &str = "user-1";
const COOKIE: &str = "oidc-session";

/// The app's HTTP client timeouts towards the provider.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const TOTAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Retry backoff after a failed discovery or JWKS fetch: first wait, longest wait.
const RETRY_FIRST: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(1);
/// How often an unknown `kid` may force a JWKS refetch.
const COOLDOWN: Duration = Duration::from_secs(1);
/// Loose allowance for scheduling on a busy machine, added to the bounds above.
const SLACK: Duration = Duration::from_secs(2);
/// Every request of the tests must be answered within this, whatever the fault ("nothing
/// hangs").
const BOUND: Duration = Duration::from_secs(15);
/// How long a request may take while the session store is down.
const OUTAGE_BOUND: Duration = Duration::from_secs(8);

/// An access-token lifetime (seconds) shorter than the login layer's 60 s refresh margin:
/// every request of a session refreshes. Not 1 s: the provider counts whole seconds, and such a
/// token may already be expired when UserInfo checks it, a few milliseconds after it was
/// issued.
const REFRESH_ALWAYS: i64 = 30;

/// Serializes the tests that move large bodies or measure the process's memory.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

// ---- Routing the provider's HTTP through the proxy ------------------------------------------

/// oidc-core's `ReqwestClient` (timeouts, 1 MiB body cap, no redirects), with every request
/// for the provider's address sent to the proxy instead.
#[derive(Debug)]
struct ThroughProxy {
    inner: ReqwestClient,
    /// `http://127.0.0.1:<op port>`.
    op: String,
    /// `http://127.0.0.1:<proxy port>`.
    proxy: String,
}

impl HttpClient for ThroughProxy {
    // The shape `#[async_trait]` gives the trait's method (this crate does not depend on
    // async-trait).
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        mut request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async move {
            let uri = request.uri().to_string();
            let routed = match uri.strip_prefix(&self.op) {
                Some(rest) => format!("{}{rest}", self.proxy),
                // Nothing may bypass the proxy: a test would then see no fault at all.
                None => panic!("a request to another host than the provider: {uri}"),
            };
            *request.uri_mut() = routed.parse().unwrap();
            self.inner.execute(request).await
        })
    }
}

// ---- The app under test ---------------------------------------------------------------------

async fn me(user: User) -> Json<Value> {
    Json(json!({ "sub": user.subject(), "iss": user.issuer() }))
}

async fn api_me(claims: Claims) -> Json<Value> {
    Json(json!({ "sub": claims.subject() }))
}

/// Aborts the server task when the last clone of the app goes.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One instance of the app, served on loopback.
#[derive(Debug, Clone)]
struct App {
    /// The public URL (the redirect URI's origin).
    url: String,
    /// Where this instance listens.
    base: String,
    http: reqwest::Client,
    /// The login layer's view of its store: records by cookie id, in the app's namespace.
    store: LoginStore,
    server: Arc<AbortOnDrop>,
}

/// What a response said.
#[derive(Debug)]
struct Resp {
    status: u16,
    location: Option<String>,
    /// The new value of the session cookie (`Some("")` when it is removed).
    cookie: Option<String>,
    retry_after: Option<String>,
    www_authenticate: Option<String>,
    content_type: Option<String>,
    cache_control: Option<String>,
    body: String,
    elapsed: Duration,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

impl App {
    /// Starts an instance on a new port. With `public_url` `None` the instance is the app's
    /// public URL and registers the client at `op` (redirect URI, post-logout URI and
    /// back-channel logout URI); otherwise it is another instance of the app at that URL.
    async fn start(
        op: &TestProvider,
        provider: Provider,
        public_url: Option<&str>,
        configure: impl FnOnce(LoginLayer) -> LoginLayer,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let url = public_url.unwrap_or(&base).to_owned();
        let redirect_uri = format!("{url}/auth/callback");
        if public_url.is_none() {
            op.register_client(
                ClientRegistration::confidential(CLIENT_ID, SECRET, &redirect_uri)
                    .add_post_logout_redirect_uri(&format!("{url}/"))
                    .with_backchannel_logout_uri(&format!("{url}/auth/backchannel-logout")),
            );
        }
        let client = OidcClient::new(provider.clone(), CLIENT_ID, redirect_uri)
            .unwrap()
            .with_client_secret(SECRET);
        let login = configure(LoginLayer::new(client, &url).unwrap());
        let store = login.store().clone();
        let verifier = AccessTokenVerifier::new(provider.clone(), AUDIENCE);
        let api = Router::new()
            .route("/api/me", get(api_me))
            .layer(BearerAuthLayer::new(verifier));
        let web = Router::new().route("/me", get(me)).layer(login);
        let router = Router::new()
            .route(
                "/readyz",
                get(move || {
                    let ready = provider.readiness().is_ready();
                    async move {
                        if ready {
                            StatusCode::OK
                        } else {
                            StatusCode::SERVICE_UNAVAILABLE
                        }
                    }
                }),
            )
            .merge(api)
            .fallback_service(web);
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let http = oidc_e2e::http_client_with_timeout(BOUND);
        Self {
            url,
            base,
            http,
            store,
            server: Arc::new(AbortOnDrop(server)),
        }
    }

    /// Sends `req` (with the session cookie `cookie`); fails the test when no answer comes
    /// within [`BOUND`] or the connection fails (a panicking handler, for example).
    async fn send(&self, mut req: reqwest::RequestBuilder, cookie: Option<&str>) -> Resp {
        if let Some(value) = cookie {
            req = req.header("cookie", format!("{COOKIE}={value}"));
        }
        let req = req.build().unwrap();
        let what = format!("{} {}", req.method(), req.url());
        let started = Instant::now();
        let res = match tokio::time::timeout(BOUND, self.http.execute(req)).await {
            Ok(Ok(res)) => res,
            Ok(Err(e)) => panic!("{what}: no answer: {e}"),
            Err(_) => panic!("{what}: still pending after {BOUND:?}: it hangs"),
        };
        let header = |name: &str| {
            res.headers()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let cookie = oidc_e2e::set_cookie_value(&res, COOKIE);
        let (status, location, retry_after) = (
            res.status().as_u16(),
            header("location"),
            header("retry-after"),
        );
        let (www_authenticate, content_type, cache_control) = (
            header("www-authenticate"),
            header("content-type"),
            header("cache-control"),
        );
        let body = tokio::time::timeout(BOUND, res.text())
            .await
            .unwrap_or_else(|_| panic!("{what}: body still pending after {BOUND:?}"))
            .unwrap_or_else(|e| panic!("{what}: body failed: {e}"));
        Resp {
            status,
            location,
            cookie,
            retry_after,
            www_authenticate,
            content_type,
            cache_control,
            body,
            elapsed: started.elapsed(),
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http.get(format!("{}{path}", self.base))
    }

    /// `GET /api/me` with a bearer token.
    async fn bearer(&self, token: &str) -> Resp {
        self.send(
            self.get("/api/me")
                .header("authorization", format!("Bearer {token}")),
            None,
        )
        .await
    }

    /// `GET /readyz`: its status.
    async fn readyz(&self) -> u16 {
        self.send(self.get("/readyz"), None).await.status
    }

    /// `GET /auth/login?return_to=/me` as a browser navigation.
    async fn login_start(&self, cookie: Option<&str>) -> Resp {
        self.send(
            self.get("/auth/login?return_to=%2Fme")
                .header("accept", "text/html"),
            cookie,
        )
        .await
    }

    /// The provider's answer to the authorization request (auto-login): the callback URL,
    /// delivered to this instance.
    async fn authorize(&self, location: &str) -> String {
        let res = self.send(self.http.get(location), None).await;
        assert_eq!(
            res.status, 303,
            "authorization at the provider: {}",
            res.body
        );
        res.location
            .expect("the provider's redirect to the callback")
            .replacen(&self.url, &self.base, 1)
    }

    /// `GET` the callback URL with the pre-login session.
    async fn callback(&self, url: &str, cookie: Option<&str>) -> Resp {
        self.send(self.http.get(url).header("accept", "text/html"), cookie)
            .await
    }

    /// A whole login; returns the session cookie.
    async fn log_in(&self) -> String {
        let start = self.login_start(None).await;
        assert_eq!(start.status, 303, "login start: {}", start.body);
        let pre = start.cookie.clone().expect("a pre-login session cookie");
        let callback = self.authorize(start.location.as_deref().unwrap()).await;
        let res = self.callback(&callback, Some(&pre)).await;
        assert_eq!(res.status, 303, "callback: {}", res.body);
        assert_eq!(res.location.as_deref(), Some("/me"));
        let session = res.cookie.expect("the session cookie");
        assert!(!session.is_empty() && session != pre, "a new session id");
        session
    }

    /// `GET /me` as an API call.
    async fn me(&self, cookie: Option<&str>) -> Resp {
        self.send(self.get("/me").header("accept", "application/json"), cookie)
            .await
    }

    /// `GET /me` as a browser navigation.
    async fn me_nav(&self, cookie: Option<&str>) -> Resp {
        self.send(self.get("/me").header("accept", "text/html"), cookie)
            .await
    }

    fn is_running(&self) -> bool {
        !self.server.0.is_finished()
    }
}

/// The provider, the proxy in front of it, and the app whose `Provider` goes through the
/// proxy.
struct Rig {
    op: TestProvider,
    proxy: FaultProxy,
    app: App,
}

impl Rig {
    /// `tune` may change the provider's settings (applied after the defaults of this file).
    async fn start(tune: impl FnOnce(ProviderBuilder) -> ProviderBuilder) -> Self {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        let proxy = FaultProxy::start(op.addr()).await;
        let http = ThroughProxy {
            inner: ReqwestClient::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT).unwrap(),
            op: op.issuer(),
            proxy: format!("http://{}", proxy.addr()),
        };
        let provider = tune(
            Provider::builder(op.issuer())
                .with_http_client(Arc::new(http))
                .with_retry_backoff(RETRY_FIRST, RETRY_MAX)
                .with_unknown_kid_cooldown(COOLDOWN),
        )
        .build()
        .unwrap();
        // UserInfo at every login, so that the logins also go through that endpoint.
        let app = App::start(&op, provider, None, |l| l.fetch_userinfo(true)).await;
        Self { op, proxy, app }
    }

    fn refreshes(&self) -> usize {
        self.op
            .token_requests()
            .iter()
            .filter(|t| t.param("grant_type") == Some("refresh_token"))
            .count()
    }

    fn code_redemptions(&self) -> usize {
        self.op
            .token_requests()
            .iter()
            .filter(|t| t.param("grant_type") == Some("authorization_code"))
            .count()
    }
}

// ---- Assertions -----------------------------------------------------------------------------

/// The bearer layer's fail-closed answer: 503, `Retry-After` of at least a second, a bare
/// `Bearer` challenge, no body.
fn assert_unavailable(res: &Resp, what: &str) {
    assert_eq!(res.status, 503, "{what}: {res:?}");
    let wait: u64 = res
        .retry_after
        .as_deref()
        .unwrap_or_else(|| panic!("{what}: 503 without Retry-After"))
        .parse()
        .unwrap_or_else(|_| panic!("{what}: Retry-After is not seconds: {res:?}"));
    assert!(wait >= 1, "{what}: {res:?}");
    assert!(
        res.www_authenticate
            .as_deref()
            .is_some_and(|c| c.starts_with("Bearer ")),
        "{what}: {res:?}"
    );
    assert!(res.body.is_empty(), "{what}: {res:?}");
}

/// A login error page of the layer: `status`, HTML saying `says`, `no-store`.
fn assert_page(res: &Resp, status: u16, says: &str, what: &str) {
    assert_eq!(res.status, status, "{what}: {res:?}");
    assert!(
        res.content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("text/html")),
        "{what}: {res:?}"
    );
    assert!(
        res.body.contains(&format!("<h1>{status} ")) && res.body.contains(says),
        "{what}: {}",
        res.body
    );
    assert_eq!(res.cache_control.as_deref(), Some("no-store"), "{what}");
    assert!(res.location.is_none(), "{what}: no redirect: {res:?}");
}

const PROVIDER_PAGE: &str = "The identity provider";
const STORE_PAGE: &str = "The session store is unavailable";

/// Polls `ok` every 50 ms until it holds; fails the test after `max`. Returns how long it
/// took.
async fn until(what: &str, max: Duration, mut ok: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    loop {
        if ok().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() <= max,
            "{what}: not within {max:?} (waited {:?})",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An ES256 token whose `kid` is in no key set.
fn random_kid_token(op: &TestProvider, i: u64) -> String {
    let mixed = (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    op.token()
        .alg(SigningAlg::ES256)
        .header("kid", format!("attacker-{mixed:016x}"))
        .sign()
}

/// The resident set size of this process, in KiB (`VmRSS` of `/proc/self/status`).
fn vm_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// `GET /me` with a session whose every request refreshes: `true` when it answers (refreshed
/// or not). A logged-in session keeps working whether its refresh succeeds or fails, with one
/// exception, a limit of refresh-token rotation: when the answer to a refresh is lost after the
/// provider rotated the token, the next refresh presents the spent token, the provider revokes
/// the grant (reuse detection, as oidc-provider does) and the session ends. It must then end
/// cleanly (401, cookie removed) and for that reason only: the refresh of this request, the
/// last one the provider saw (the caller sends one request at a time), replayed a refresh
/// token presented before. Then `false`.
async fn session_alive(rig: &Rig, cookie: &str, what: &str) -> bool {
    let me = rig.app.me(Some(cookie)).await;
    if me.status == 200 {
        assert_ne!(me.cookie.as_deref(), Some(""), "{what}: {me:?}");
        assert_eq!(me.json()["sub"], USER, "{what}");
        return true;
    }
    assert_eq!(me.status, 401, "{what}: {me:?}");
    assert_eq!(me.cookie.as_deref(), Some(""), "{what}: ended: {me:?}");
    let presented: Vec<String> = rig
        .op
        .token_requests()
        .iter()
        .filter_map(|t| t.param("refresh_token").map(str::to_owned))
        .collect();
    let (last, earlier) = presented.split_last().expect("a refresh was made");
    assert!(
        earlier.contains(last),
        "{what}: the session ended, and not because a refresh token whose answer was lost was \
         presented again: {me:?}"
    );
    eprintln!("{what}: ended by the provider after a lost refresh answer (token replayed)");
    false
}

/// Every `period` for `total`, switches the proxy from [`Mode::Pass`] to the next of `down`
/// (in turn), or from a down mode back to [`Mode::Pass`]; ends in [`Mode::Pass`]. Returns the
/// number of switches.
async fn flap(proxy: &FaultProxy, period: Duration, total: Duration, down: &[Mode]) -> usize {
    let started = Instant::now();
    let mut switches = 0;
    let mut next_down = down.iter().cycle();
    loop {
        tokio::time::sleep(period).await;
        if started.elapsed() >= total {
            break;
        }
        let mode = if proxy.mode() == Mode::Pass {
            *next_down.next().unwrap()
        } else {
            Mode::Pass
        };
        proxy.set_mode(mode).await;
        switches += 1;
    }
    proxy.set_mode(Mode::Pass).await;
    switches
}

// ---- Provider down at start -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_provider_down_at_start_fails_closed_then_recovers_within_one_retry_interval() {
    let rig = Rig::start(|b| b).await;
    rig.proxy.set_mode(Mode::Refuse).await;
    let token = rig.op.token().sign();

    assert_eq!(rig.app.readyz().await, 503, "ready without keys");
    assert_unavailable(&rig.app.bearer(&token).await, "bearer, provider down");
    let res = rig.app.login_start(None).await;
    assert_page(&res, 502, PROVIDER_PAGE, "login start, provider down");
    assert!(res.cookie.is_none(), "no transaction stored: {res:?}");

    // Down for 2 s: the retries back off to their longest wait (1 s).
    let down_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < down_until {
        let res = rig.app.bearer(&token).await;
        assert_unavailable(&res, "bearer while down");
        assert!(res.elapsed < Duration::from_secs(1) + SLACK, "{res:?}");
        let res = rig.app.login_start(None).await;
        assert_page(&res, 502, PROVIDER_PAGE, "login start while down");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(rig.app.readyz().await, 503);
    assert_eq!(
        (rig.op.discovery_fetch_count(), rig.op.jwks_fetch_count()),
        (0, 0),
        "nothing reached the provider"
    );

    rig.proxy.set_mode(Mode::Pass).await;
    let app = &rig.app;
    let token = token.as_str();
    let recovered = until(
        "bearer 200 once the provider is back",
        RETRY_MAX + SLACK,
        async || app.bearer(token).await.status == 200,
    )
    .await;
    eprintln!(
        "provider down at start: bearer recovered {recovered:?} after the provider came back (retry max {RETRY_MAX:?})"
    );
    assert_eq!(rig.app.readyz().await, 200);
    let cookie = rig.app.log_in().await;
    let me = rig.app.me(Some(&cookie)).await;
    assert_eq!(me.status, 200, "{me:?}");
    assert_eq!(me.json()["sub"], USER);
    assert!(rig.app.is_running());
}

// ---- Provider down after a good start -------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_provider_down_after_good_start_keeps_cached_keys_and_sessions() {
    let rig = Rig::start(|b| b).await;
    let token = rig.op.token().sign();
    assert_eq!(rig.app.bearer(&token).await.status, 200);
    // Every request of the session refreshes (see `REFRESH_ALWAYS`).
    rig.op.set_access_token_lifetime(REFRESH_ALWAYS);
    let cookie = rig.app.log_in().await;
    assert_eq!(rig.app.me(Some(&cookie)).await.status, 200);
    let refreshes = rig.refreshes();
    assert!(refreshes >= 1, "the session refreshes on each request");
    let redemptions = rig.code_redemptions();

    // Down: every connection to the provider is reset (and counted by the proxy).
    rig.proxy.set_mode(Mode::Reset).await;

    // Bearer: the cached keys keep validating, without waiting on the provider (new tokens,
    // so that the signatures are checked, not found in the verifier's token cache).
    for i in 0..5 {
        let res = rig.app.bearer(&rig.op.token().claim("n", i).sign()).await;
        assert_eq!(res.status, 200, "cached keys while down: {res:?}");
        assert!(res.elapsed < Duration::from_secs(1), "{res:?}");
    }
    assert_eq!(rig.app.readyz().await, 200, "the keys are still loaded");

    // A token with an unknown kid: the forced refetch fails, the loaded set does not have the
    // key, so the token is refused as invalid (401), not 503: the keys are available, this
    // token is not signed by any of them (oidc_core::jwks, key_07 of oidc-core's tests).
    let attempts = rig.proxy.accepted();
    let unknown = rig.op.token().header("kid", "rotated-while-down").sign();
    let res = rig.app.bearer(&unknown).await;
    assert_eq!(res.status, 401, "unknown kid while down: {res:?}");
    assert!(
        res.www_authenticate
            .as_deref()
            .is_some_and(|c| c.contains("error=\"invalid_token\"")),
        "{res:?}"
    );
    assert_eq!(rig.proxy.accepted(), attempts + 1, "one forced refetch");
    assert_eq!(rig.app.bearer(&token).await.status, 200);

    // The session with a refresh due: the refresh fails, the session is kept and served.
    for what in ["API", "navigation"] {
        let attempts = rig.proxy.accepted();
        let res = if what == "API" {
            rig.app.me(Some(&cookie)).await
        } else {
            rig.app.me_nav(Some(&cookie)).await
        };
        assert_eq!(res.status, 200, "{what}: session kept while down: {res:?}");
        assert_eq!(res.json()["sub"], USER);
        assert_ne!(res.cookie.as_deref(), Some(""), "{what}: cookie kept");
        assert!(
            rig.proxy.accepted() > attempts,
            "{what}: the refresh was attempted"
        );
    }
    assert_eq!(
        rig.refreshes(),
        refreshes,
        "no refresh reached the provider"
    );

    // A login: its start needs no I/O (the metadata is cached), so it is sent to the
    // provider; the code cannot be redeemed: a 502 page.
    let start = rig.app.login_start(None).await;
    assert_eq!(start.status, 303, "{start:?}");
    let location = start.location.clone().unwrap();
    assert!(location.starts_with(&rig.op.authorization_endpoint()));
    let callback = rig.app.authorize(&location).await;
    let res = rig.app.callback(&callback, start.cookie.as_deref()).await;
    assert_page(&res, 502, PROVIDER_PAGE, "callback while down");
    assert_eq!(
        rig.code_redemptions(),
        redemptions,
        "nothing reached the provider"
    );

    // Back: the next request of the session refreshes, logins work, within a retry interval.
    rig.proxy.set_mode(Mode::Pass).await;
    let (app, rig_ref, cookie_ref) = (&rig.app, &rig, cookie.as_str());
    let recovered = until(
        "the session refreshes again once the provider is back",
        RETRY_MAX + SLACK,
        async || app.me(Some(cookie_ref)).await.status == 200 && rig_ref.refreshes() > refreshes,
    )
    .await;
    eprintln!(
        "provider down after a good start: session refreshed {recovered:?} after the provider came back"
    );
    assert_eq!(rig.app.bearer(&token).await.status, 200);
    let other = rig.app.log_in().await;
    assert_eq!(rig.app.me(Some(&other)).await.status, 200);
    assert!(rig.app.is_running());
}

// ---- Provider slow beyond the timeouts ------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_provider_slow_answers_within_bounds_without_piling_up_fetches() {
    let rig = Rig::start(|b| b).await;
    let token = rig.op.token().sign();

    // Cold, and the provider never answers: 40 API requests and 5 logins at once.
    rig.proxy.set_mode(Mode::Blackhole).await;
    let before = rig.proxy.accepted();
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for i in 0..45 {
        let (app, token) = (rig.app.clone(), token.clone());
        tasks.spawn(async move {
            if i < 40 {
                ("bearer", app.bearer(&token).await)
            } else {
                ("login", app.login_start(None).await)
            }
        });
    }
    let mut timeouts = 0;
    while let Some(done) = tasks.join_next().await {
        let (kind, res) = done.unwrap();
        assert!(
            res.elapsed <= TOTAL_TIMEOUT + SLACK,
            "{kind}: not bounded by the client timeout: {res:?}"
        );
        if kind == "bearer" {
            assert_unavailable(&res, "bearer, provider silent");
        } else {
            assert!(matches!(res.status, 502 | 504), "login: {res:?}");
            assert_page(&res, res.status, PROVIDER_PAGE, "login, provider silent");
            timeouts += usize::from(res.status == 504);
        }
    }
    let connections = rig.proxy.accepted() - before;
    eprintln!(
        "provider silent, cold: 45 concurrent requests answered in {:?} with {connections} \
         connection(s) to the provider",
        started.elapsed()
    );
    assert!(timeouts >= 1, "no login was answered 504 (gateway timeout)");
    assert!(
        (1..=2).contains(&connections),
        "{connections} connections: the concurrent requests did not share one fetch"
    );
    assert_eq!(rig.op.discovery_fetch_count(), 0);

    // Back, then slow after a good start: every answer held 3 s (the client gives up at 1 s).
    rig.proxy.set_mode(Mode::Pass).await;
    let (app, token_ref) = (&rig.app, token.as_str());
    until("bearer after the silence", RETRY_MAX + SLACK, async || {
        app.bearer(token_ref).await.status == 200
    })
    .await;
    let cookie = rig.app.log_in().await;
    rig.proxy
        .set_mode(Mode::DelayFirstByte(Duration::from_secs(3)))
        .await;
    let before = rig.proxy.accepted();

    let res = rig.app.bearer(&rig.op.token().claim("n", 1).sign()).await;
    assert_eq!(res.status, 200, "cached keys: {res:?}");
    assert!(
        res.elapsed < Duration::from_secs(1),
        "waited on the provider: {res:?}"
    );
    let res = rig.app.me(Some(&cookie)).await;
    assert_eq!(res.status, 200, "session: {res:?}");

    // 20 concurrent tokens with distinct unknown kids: one forced refetch, which times out.
    let mut tasks = JoinSet::new();
    for i in 0..20 {
        let (app, token) = (rig.app.clone(), random_kid_token(&rig.op, i));
        tasks.spawn(async move { app.bearer(&token).await });
    }
    while let Some(done) = tasks.join_next().await {
        let res = done.unwrap();
        assert_eq!(res.status, 401, "unknown kid, provider slow: {res:?}");
        assert!(res.elapsed <= TOTAL_TIMEOUT + SLACK, "{res:?}");
    }
    let refetches = rig.proxy.accepted() - before;
    eprintln!("provider slow: 20 concurrent unknown kids caused {refetches} connection(s)");
    assert!(
        (1..=2).contains(&refetches),
        "{refetches} connections for 20 unknown kids (single flight: one refetch)"
    );

    // A login: the start needs no I/O; the token request times out: 504.
    let start = rig.app.login_start(None).await;
    assert_eq!(start.status, 303, "{start:?}");
    let callback = rig.app.authorize(start.location.as_deref().unwrap()).await;
    let res = rig.app.callback(&callback, start.cookie.as_deref()).await;
    assert_page(&res, 504, PROVIDER_PAGE, "callback, provider slow");
    assert!(res.elapsed <= TOTAL_TIMEOUT + SLACK, "{res:?}");
    assert!(rig.app.is_running());
}

// ---- Garbage and huge bodies ----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_provider_garbage_and_huge_bodies_fail_closed_with_bounded_reads() {
    let _serial = SERIAL.lock().await;
    const HUGE: usize = 50 << 20;
    /// The most bytes the proxy may have passed towards the app for a 50 MiB body: the app
    /// reads at most 1 MiB (and refuses a larger `Content-Length` at once), the rest is what
    /// the kernel's socket buffers took in before the app closed the connection (a few MiB;
    /// `tcp_rmem` may let them grow larger).
    const READ_CAP: u64 = 16 << 20;
    let rig = Rig::start(|b| b).await;
    let token = rig.op.token().sign();

    // A discovery document that is not JSON.
    rig.op.fail_discovery(Failure::Garbage);
    assert_unavailable(&rig.app.bearer(&token).await, "garbage discovery");
    let res = rig.app.login_start(None).await;
    assert_page(&res, 502, PROVIDER_PAGE, "login, garbage discovery");
    assert_eq!(rig.app.readyz().await, 503);
    assert!(rig.op.discovery_fetch_count() >= 1);

    // A 50 MiB JWKS (with its Content-Length).
    rig.op.fail_discovery(Failure::None);
    rig.op.fail_jwks(Failure::Huge(HUGE));
    tokio::time::sleep(RETRY_MAX).await;
    let (bytes, fetches) = (rig.proxy.bytes_to_client(), rig.op.jwks_fetch_count());
    assert_unavailable(&rig.app.bearer(&token).await, "huge JWKS");
    assert_eq!(
        rig.op.jwks_fetch_count(),
        fetches + 1,
        "the huge JWKS was served"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let passed = rig.proxy.bytes_to_client() - bytes;
    eprintln!("huge JWKS: {passed} of {HUGE} bytes passed the proxy");
    assert!(
        passed < READ_CAP,
        "{passed} bytes of a {HUGE}-byte JWKS read"
    );
    // The login start needs only discovery; the callback needs the keys for the ID token.
    let start = rig.app.login_start(None).await;
    assert_eq!(start.status, 303, "{start:?}");
    let callback = rig.app.authorize(start.location.as_deref().unwrap()).await;
    tokio::time::sleep(RETRY_MAX).await;
    let res = rig.app.callback(&callback, start.cookie.as_deref()).await;
    assert_page(&res, 502, PROVIDER_PAGE, "callback, huge JWKS");

    // The JWKS cut in the middle of its body by the network.
    rig.op.fail_jwks(Failure::None);
    rig.proxy.set_mode(Mode::CutAfter(512)).await;
    tokio::time::sleep(RETRY_MAX).await;
    let fetches = rig.op.jwks_fetch_count();
    assert_unavailable(&rig.app.bearer(&token).await, "JWKS cut mid-body");
    assert_eq!(rig.op.jwks_fetch_count(), fetches + 1);

    rig.proxy.set_mode(Mode::Pass).await;
    let (app, token_ref) = (&rig.app, token.as_str());
    until(
        "bearer after the broken bodies",
        RETRY_MAX + SLACK,
        async || app.bearer(token_ref).await.status == 200,
    )
    .await;

    // Broken token and UserInfo answers at login: 502 pages, no session.
    for (what, endpoint, failure) in [
        ("garbage token response", "token", Failure::Garbage),
        ("huge token response", "token", Failure::Huge(HUGE)),
        ("garbage UserInfo", "userinfo", Failure::Garbage),
        ("huge UserInfo", "userinfo", Failure::Huge(HUGE)),
    ] {
        if endpoint == "token" {
            rig.op.fail_token(failure);
        } else {
            rig.op.fail_userinfo(failure);
        }
        let bytes = rig.proxy.bytes_to_client();
        let start = rig.app.login_start(None).await;
        assert_eq!(start.status, 303, "{what}: {start:?}");
        let callback = rig.app.authorize(start.location.as_deref().unwrap()).await;
        let res = rig.app.callback(&callback, start.cookie.as_deref()).await;
        assert_page(&res, 502, PROVIDER_PAGE, what);
        assert!(
            res.cookie.as_deref().is_none_or(str::is_empty),
            "{what}: {res:?}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let passed = rig.proxy.bytes_to_client() - bytes;
        eprintln!("{what}: {passed} bytes passed the proxy");
        assert!(passed < READ_CAP, "{what}: {passed} bytes read");
        rig.op.fail_token(Failure::None);
        rig.op.fail_userinfo(Failure::None);
    }

    let cookie = rig.app.log_in().await;
    assert_eq!(rig.app.me(Some(&cookie)).await.status, 200);
    assert!(rig.app.is_running());
}

// ---- Key rotation while the provider flaps --------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_rotated_keys_during_flapping_are_picked_up_within_the_cooldown() {
    let rig = Rig::start(|b| b).await;
    let old_kid = rig.op.kid(SigningAlg::RS256);
    let old = rig.op.token().sign();
    assert_eq!(rig.app.bearer(&old).await.status, 200);

    // The provider goes down and rotates its key, then flaps for 2 s.
    rig.proxy.set_mode(Mode::Refuse).await;
    let first_kid = rig.op.rotate_key(SigningAlg::RS256);
    let first = rig.op.token().sign();
    let requests = async {
        let started = Instant::now();
        let mut seen = BTreeMap::new();
        while started.elapsed() < Duration::from_secs(2) {
            let res = rig
                .app
                .bearer(&rig.op.token().signing_kid(&old_kid).sign())
                .await;
            assert_eq!(res.status, 200, "a cached key while flapping: {res:?}");
            let res = rig.app.bearer(&first).await;
            assert!(
                matches!(res.status, 200 | 401),
                "the new key while flapping: {res:?}"
            );
            *seen.entry(res.status).or_insert(0) += 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        seen
    };
    let flapping = flap(
        &rig.proxy,
        Duration::from_millis(200),
        Duration::from_secs(2),
        &[Mode::Refuse, Mode::Reset],
    );
    let (seen, switches) = tokio::join!(requests, flapping);
    eprintln!("rotation during flapping: {first_kid} answered {seen:?} over {switches} switches");

    // Down, and a second rotation meanwhile: the newest key cannot be fetched.
    rig.proxy.set_mode(Mode::Refuse).await;
    let newest_kid = rig.op.rotate_key(SigningAlg::RS256);
    let newest = rig.op.token().sign();
    let res = rig.app.bearer(&newest).await;
    assert_eq!(res.status, 401, "a key the app could not fetch: {res:?}");
    assert_eq!(rig.app.bearer(&old).await.status, 200);

    // Back: the newest key is picked up by one refetch, within a cooldown (and a backoff).
    rig.proxy.set_mode(Mode::Pass).await;
    let fetches = rig.op.jwks_fetch_count();
    let (app, newest_ref) = (&rig.app, newest.as_str());
    let took = until(
        "the newest key after the provider came back",
        COOLDOWN + RETRY_MAX + SLACK,
        async || app.bearer(newest_ref).await.status == 200,
    )
    .await;
    eprintln!(
        "{newest_kid} accepted {took:?} after the provider came back (cooldown {COOLDOWN:?})"
    );
    assert_eq!(
        rig.op.jwks_fetch_count(),
        fetches + 1,
        "one refetch for the new kid"
    );
    assert_eq!(rig.app.bearer(&first).await.status, 200);
    assert_eq!(rig.app.bearer(&old).await.status, 200);
    assert_eq!(rig.op.jwks_fetch_count(), fetches + 1);
}

// ---- Flapping -------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_flapping_provider_gets_only_designed_answers_and_recovers() {
    let rig = Rig::start(|b| b).await;
    let token = rig.op.token().sign();
    let unknown = rig.op.token().header("kid", "never-published").sign();
    // Every request of a session refreshes, or tries to (see `REFRESH_ALWAYS`).
    rig.op.set_access_token_lifetime(REFRESH_ALWAYS);

    // Cold start, the provider down, then up and down every 200 ms for 3 s.
    rig.proxy.set_mode(Mode::Refuse).await;
    let requests = async {
        let started = Instant::now();
        let mut seen: BTreeMap<(&str, u16), usize> = BTreeMap::new();
        let mut count = |kind, status: u16| *seen.entry((kind, status)).or_insert(0) += 1;
        let mut session: Option<String> = None;
        while started.elapsed() < Duration::from_secs(3) {
            let res = rig.app.bearer(&token).await;
            assert!(matches!(res.status, 200 | 503), "bearer: {res:?}");
            if res.status == 503 {
                assert_unavailable(&res, "bearer while flapping");
            }
            count("bearer", res.status);
            let res = rig.app.bearer(&unknown).await;
            assert!(matches!(res.status, 401 | 503), "unknown kid: {res:?}");
            count("unknown kid", res.status);
            let ready = rig.app.readyz().await;
            assert!(matches!(ready, 200 | 503), "readyz: {ready}");
            count("readyz", ready);
            if let Some(cookie) = session.clone() {
                let alive = session_alive(&rig, &cookie, "a session while flapping").await;
                count("session", if alive { 200 } else { 401 });
                if !alive {
                    session = None;
                }
            }
            let start = rig.app.login_start(None).await;
            count("login start", start.status);
            match start.status {
                303 => {
                    let callback = rig.app.authorize(start.location.as_deref().unwrap()).await;
                    let res = rig.app.callback(&callback, start.cookie.as_deref()).await;
                    count("callback", res.status);
                    match res.status {
                        303 => {
                            let me = rig.app.me(res.cookie.as_deref()).await;
                            assert_eq!(me.status, 200, "a finished login: {me:?}");
                            session = session.or(res.cookie);
                        }
                        502 | 504 => assert_page(&res, res.status, PROVIDER_PAGE, "callback"),
                        _ => panic!("callback while flapping: {res:?}"),
                    }
                }
                502 | 504 => assert_page(&start, start.status, PROVIDER_PAGE, "login start"),
                _ => panic!("login start while flapping: {start:?}"),
            }
        }
        (seen, session)
    };
    let flapping = flap(
        &rig.proxy,
        Duration::from_millis(200),
        Duration::from_secs(3),
        &[Mode::Reset, Mode::Refuse],
    );
    let ((seen, session), switches) = tokio::join!(requests, flapping);
    eprintln!("flapping: {switches} switches, answers {seen:?}");
    assert!(switches >= 10, "{switches} switches");
    assert!(
        seen.keys().any(|(_, status)| *status >= 500),
        "the flapping caused no failure at all: {seen:?}"
    );

    // Stopped, up: everything works within a retry interval.
    let (app, token_ref) = (&rig.app, token.as_str());
    let took = until("bearer after the flapping", RETRY_MAX + SLACK, async || {
        app.bearer(token_ref).await.status == 200
    })
    .await;
    eprintln!("flapping: bearer recovered {took:?} after it stopped");
    assert_eq!(rig.app.readyz().await, 200);
    assert_eq!(rig.app.bearer(&unknown).await.status, 401);
    let refreshes = rig.refreshes();
    if let Some(cookie) = &session
        && session_alive(&rig, cookie, "the session after the flapping").await
    {
        assert!(rig.refreshes() > refreshes, "the session refreshes again");
    }
    let cookie = rig.app.log_in().await;
    assert_eq!(rig.app.me(Some(&cookie)).await.status, 200);
    assert!(rig.app.is_running());
}

// ---- Memory and fetches under a random-kid flood during an outage ---------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_random_kid_flood_during_outage_keeps_fetches_and_memory_bounded() {
    let _serial = SERIAL.lock().await;
    /// Allowed growth of the resident set of the whole test process.
    const RSS_BOUND_KIB: u64 = 64 * 1024;
    let rig = Rig::start(|b| b).await;
    let token = rig.op.token().sign();
    assert_eq!(rig.app.bearer(&token).await.status, 200);
    let tokens: Vec<String> = (0..1000).map(|i| random_kid_token(&rig.op, i)).collect();

    // A 5 s outage (every connection reset and counted) with 1 000 requests, 20 every 100 ms.
    rig.proxy.set_mode(Mode::Reset).await;
    let rss_before = vm_rss_kib();
    let before = rig.proxy.accepted();
    let started = Instant::now();
    for (round, batch) in tokens.chunks(20).enumerate() {
        let mut tasks = JoinSet::new();
        for token in batch {
            let (app, token) = (rig.app.clone(), token.clone());
            tasks.spawn(async move { app.bearer(&token).await });
        }
        while let Some(done) = tasks.join_next().await {
            let res = done.unwrap();
            assert_eq!(res.status, 401, "random kid during the outage: {res:?}");
        }
        let next = started + Duration::from_millis(100) * (round as u32 + 1);
        tokio::time::sleep_until(next.into()).await;
    }
    let elapsed = started.elapsed();
    assert_eq!(rig.app.bearer(&token).await.status, 200, "valid token");
    let attempts = rig.proxy.accepted() - before;
    let rss_after = vm_rss_kib();
    let allowed = 1 + (elapsed.as_millis() / COOLDOWN.as_millis()) as usize;
    let growth = rss_after.saturating_sub(rss_before);
    eprintln!(
        "random-kid flood: 1000 requests in {elapsed:?}, {attempts} JWKS fetch attempts \
         (allowed {allowed} with a {COOLDOWN:?} cooldown), VmRSS {rss_before} → {rss_after} KiB \
         (+{growth} KiB)"
    );
    assert!(attempts >= 1, "the flood forced no refetch at all");
    assert!(
        attempts <= allowed,
        "{attempts} fetch attempts in {elapsed:?}: more than one per cooldown"
    );
    assert!(
        growth < RSS_BOUND_KIB,
        "VmRSS grew by {growth} KiB during the flood"
    );

    rig.proxy.set_mode(Mode::Pass).await;
    let (app, fresh) = (&rig.app, random_kid_token(&rig.op, 5000));
    let fresh = fresh.as_str();
    until(
        "unknown kids answered 401 after the outage",
        RETRY_MAX + SLACK,
        async || app.bearer(fresh).await.status == 401,
    )
    .await;
    assert_eq!(rig.app.bearer(&token).await.status, 200);
}

// ---- Session store down mid-session ---------------------------------------------------------

/// A Redis store whose commands fail after 1 s while the server is down; reconnection is
/// retried every 100 ms.
async fn redis_store(server: &RedisServer) -> RedisStore {
    server
        .store(Duration::from_secs(1), Duration::from_millis(500))
        .await
}

/// A migrated PostgreSQL store whose pool gives up on a connection after 750 ms.
async fn postgres_store(server: &PostgresServer) -> PostgresStore {
    server.store(Duration::from_millis(750)).await
}

/// Failed expectations, collected so that one broken answer does not hide the rest of the
/// scenario; [`Checks::assert_none`] fails the test with all of them.
#[derive(Default)]
struct Checks(Vec<String>);

impl Checks {
    fn check(&mut self, ok: bool, message: impl FnOnce() -> String) {
        if !ok {
            self.0.push(message());
        }
    }

    /// The store outage page: 503, HTML, no redirect, the session cookie untouched, in time.
    fn store_page(&mut self, res: &Resp, what: &str) {
        let ok = res.status == 503
            && res.body.contains(STORE_PAGE)
            && res.location.is_none()
            && res.cookie.is_none()
            && res.elapsed <= OUTAGE_BOUND;
        self.check(ok, || {
            format!("{what}: expected the 503 store page within {OUTAGE_BOUND:?}, got {res:?}")
        });
    }

    fn assert_none(self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{what}: {} failed expectation(s):\n- {}",
            self.0.len(),
            self.0.join("\n- ")
        );
    }
}

/// Logs in, stops the store's server, checks that the app fails closed, restarts the server,
/// checks that the session written before the outage is logged in again and that back-channel
/// logout works again.
async fn store_outage<S>(store: S, server: &mut impl Restartable, what: &str)
where
    S: SessionStore + SessionRegistry + Clone,
{
    let op = TestProvider::start().await;
    op.set_auto_login(Some(USER));
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let app = App::start(&op, provider.clone(), None, |l| {
        l.with_shared_store(store.clone())
    })
    .await;
    let cookie = app.log_in().await;
    let me = app.me(Some(&cookie)).await;
    assert_eq!(me.status, 200, "{what}: {me:?}");
    assert_eq!(me.json()["sub"], USER);
    let id: Id = cookie.parse().unwrap();
    assert!(
        app.store.load(&id).await.unwrap().is_some(),
        "{what}: stored"
    );

    server.stop().await;
    let mut checks = Checks::default();
    // The logged-in browser: an API call and a navigation get the 503 page, never the app
    // (200) and never a redirect to the provider (which would replace the session).
    let res = app.me(Some(&cookie)).await;
    checks.store_page(&res, &format!("{what}: API request with the session"));
    let res = app.me_nav(Some(&cookie)).await;
    checks.store_page(&res, &format!("{what}: navigation with the session"));
    // Logins cannot start: the transaction cannot be stored.
    let res = app.login_start(Some(&cookie)).await;
    checks.store_page(&res, &format!("{what}: login start with the session"));
    let res = app.login_start(None).await;
    checks.store_page(&res, &format!("{what}: login start of a new browser"));
    let res = app.me_nav(None).await;
    checks.store_page(&res, &format!("{what}: navigation of a new browser"));
    // An API call without a session needs no store: 401, as always.
    let res = app.me(None).await;
    checks.check(res.status == 401 && res.elapsed <= OUTAGE_BOUND, || {
        format!("{what}: API request without a session: {res:?}")
    });
    // A back-channel logout cannot be applied: 503 with Retry-After, to be redelivered.
    let started = Instant::now();
    let refused = op
        .send_backchannel_logout(CLIENT_ID, Some(USER), None)
        .await;
    checks.check(
        refused.status == Some(503)
            && refused.header("retry-after").is_some()
            && started.elapsed() <= OUTAGE_BOUND,
        || format!("{what}: back-channel logout while down: {refused:?}"),
    );
    assert!(app.is_running(), "{what}: the server died");

    server.restart().await;
    // The same cookie is logged in again, on this instance...
    let (app_ref, cookie_ref) = (&app, cookie.as_str());
    let took = until(
        &format!("{what}: the session after the restart"),
        Duration::from_secs(20),
        async || app_ref.me(Some(cookie_ref)).await.status == 200,
    )
    .await;
    eprintln!("{what}: the session answered again {took:?} after the restart");
    assert_eq!(app.me(Some(&cookie)).await.json()["sub"], USER);
    // ...and on a new instance, which has no cache: the record written before the outage is
    // in the store.
    let fresh = App::start(&op, provider.clone(), Some(&app.url), |l| {
        l.with_shared_store(store.clone())
    })
    .await;
    let res = fresh.me(Some(&cookie)).await;
    assert_eq!(
        res.status, 200,
        "{what}: a new instance after the restart: {res:?}"
    );
    assert_eq!(res.json()["sub"], USER);
    assert!(
        fresh.store.load(&id).await.unwrap().is_some(),
        "{what}: the record"
    );

    // Back-channel logout works again: the delivery refused during the outage is accepted
    // now (its jti was not spent), and ends the session everywhere.
    let again = op
        .deliver_logout_token(CLIENT_ID, &refused.logout_token)
        .await;
    assert_eq!(again.status, Some(200), "{what}: redelivery: {again:?}");
    assert_eq!(
        app.me(Some(&cookie)).await.status,
        401,
        "{what}: logged out"
    );
    assert_eq!(
        fresh.me(Some(&cookie)).await.status,
        401,
        "{what}: logged out"
    );
    assert!(
        app.store.load(&id).await.unwrap().is_none(),
        "{what}: deleted"
    );
    let other = app.log_in().await;
    assert_eq!(app.me(Some(&other)).await.status, 200, "{what}: new login");

    checks.assert_none(&format!("{what}, while the store was down"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_redis_down_mid_session_fails_closed_and_recovers() {
    let mut server = RedisServer::start().await;
    let store = redis_store(&server).await;
    store_outage(store, &mut server, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_store_postgres_down_mid_session_fails_closed_and_recovers() {
    let mut server = PostgresServer::start().await;
    let store = postgres_store(&server).await;
    store_outage(store, &mut server, "postgres").await;
}
