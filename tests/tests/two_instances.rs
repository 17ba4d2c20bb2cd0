//! Two quickstart processes on one shared session store (`SESSION_STORE=redis://…`, then
//! `postgres://…`), against the real OpenID Provider (npm `oidc-provider`), driven by the
//! scripted user agent of [`oidc_e2e::user_agent`].
//!
//! Both instances listen on `127.0.0.1` (different ports): the user agent keeps cookies per
//! host, like a browser, so the session cookie set by one is sent to the other, as behind a
//! load balancer.
//!
//! - A login through instance 1 is valid on instance 2 (same claims); a logout through
//!   instance 2 ends it on instance 1.
//! - Refresh-token rotation across instances: the provider rotates refresh tokens (a rotated
//!   one replayed revokes the grant). Once a refresh is due, concurrent requests hit both
//!   instances: the provider must see exactly one `refresh_token` grant, every request must
//!   answer as logged in, and the next refresh (through the other instance) must work, i.e.
//!   the rotated refresh token was stored for both.
//!
//! The Redis and PostgreSQL servers are Debian's, started on loopback by
//! [`oidc_e2e::servers`].

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use oidc_e2e::servers::{PostgresServer, RedisServer};
use oidc_e2e::user_agent::{Page, UserAgent};
use oidc_e2e::{LoginProvider, OpLogsOnPanic, Quickstart, RealProvider};
use serde_json::Value;
use tokio::sync::OnceCell;

/// Lifetime of the provider's access tokens for `web-app`, in seconds.
const AT_TTL: u64 = 8;
/// The quickstarts refresh this long before the access token expires: a refresh is due
/// `AT_TTL - REFRESH_MARGIN` seconds after a token was issued.
const REFRESH_MARGIN: u64 = 4;
const SESSION_COOKIE: &str = "oidc-session";
const APP_HOST: &str = "127.0.0.1";
/// Quickstarts started by the tests of this file (two per test).
const APPS: usize = 12;
/// Concurrent requests sent to each instance once a refresh is due.
const BURST: usize = 8;

async fn provider() -> &'static LoginProvider {
    static OP: OnceCell<LoginProvider> = OnceCell::const_new();
    LoginProvider::shared(&OP, APPS, AT_TTL).await
}

/// Two quickstarts on `store_url`, a user agent, the provider.
struct World {
    op: &'static RealProvider,
    apps: [Quickstart; 2],
    ua: UserAgent,
    op_host: String,
    _logs: OpLogsOnPanic<'static>,
}

impl World {
    async fn start(store_url: &str, extra: &[(&str, &str)]) -> Self {
        let login = provider().await;
        let op = login.op();
        let mut env = vec![("SESSION_STORE", store_url)];
        env.extend_from_slice(extra);
        let first = login.start_app(&env).await;
        let second = login.start_app(&env).await;
        let op_host = op.host();
        assert_ne!(op_host, APP_HOST);
        Self {
            op,
            apps: [first, second],
            ua: UserAgent::new(),
            op_host,
            _logs: OpLogsOnPanic(op),
        }
    }

    fn session_cookie(&self) -> Option<String> {
        self.ua.cookie(APP_HOST, SESSION_COOKIE).map(str::to_owned)
    }

    /// `GET /me` on instance `i` as an API call.
    async fn me(&mut self, i: usize) -> Page {
        let url = self.apps[i].url("/me");
        self.ua.get(&url, &[("accept", "application/json")]).await
    }

    /// A whole login through instance `i` for `account` (`login_path` starts it); asserts
    /// the callback's 303.
    async fn log_in(&mut self, i: usize, login_path: &str, account: &str) {
        let page = self.ua.navigate(&self.apps[i].url(login_path)).await;
        assert_eq!(page.status, 303, "login start: {page}");
        let authorize = page.location().unwrap();
        let (callback, _) = self
            .ua
            .log_in_through_op(&authorize, &self.op_host, APP_HOST, account)
            .await;
        let callback = self.ua.navigate(callback.as_str()).await;
        assert_eq!(callback.status, 303, "callback: {callback}");
    }

    /// Grants of `grant_type` the provider made to `web-app` for `account`.
    fn grants(&self, grant_type: &str, account: &str) -> usize {
        self.op.grants(grant_type, "web-app", account)
    }

    /// Waits up to 5 s until the provider logged `n` grants of `grant_type` for `account`.
    async fn wait_for_grants(&self, grant_type: &str, account: &str, n: usize) -> usize {
        self.op
            .wait_for_grants(grant_type, "web-app", account, n)
            .await
    }
}

/// Asserts a 200 JSON answer for `account` and returns the body.
fn logged_in_as(page: &Page, account: &str, what: &str) -> Value {
    assert_eq!(page.status, 200, "{what}: {page}");
    let body: Value = serde_json::from_str(&page.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {page}"));
    assert_eq!(body["sub"], account, "{what}: {body}");
    body
}

async fn login_on_one_logout_on_the_other(store_url: &str, account: &str) {
    let mut w = World::start(store_url, &[]).await;
    w.log_in(0, "/auth/login?return_to=%2Fme", account).await;
    let session = w.session_cookie().expect("the session cookie");
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);

    let on_first = logged_in_as(&w.me(0).await, account, "instance 1");
    let on_second = logged_in_as(&w.me(1).await, account, "instance 2, same cookie");
    assert_eq!(on_second, on_first, "the same claims on both instances");
    assert_eq!(on_second["email"], format!("{account}@example.com"));
    assert_eq!(w.session_cookie().as_deref(), Some(session.as_str()));

    // Logout through instance 2 (its own page's form, same origin).
    let home = w.ua.navigate(&w.apps[1].url("/")).await;
    assert!(home.body.contains("Signed in as"), "{home}");
    let form = home.form_with_action_ending("/auth/logout");
    let page = w.ua.submit(&form).await;
    assert_eq!(page.status, 303, "logout: {page}");
    assert_eq!(w.session_cookie(), None, "logout clears the cookie");

    // The old cookie is refused by both instances.
    w.ua.set_cookie(APP_HOST, SESSION_COOKIE, &session);
    for i in [0, 1] {
        let page = w.me(i).await;
        assert_eq!(page.status, 401, "instance {}: after logout: {page}", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn login_on_one_instance_logout_on_the_other_redis() {
    let redis = RedisServer::start().await;
    login_on_one_logout_on_the_other(&redis.url(), "two-redis-alice").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn login_on_one_instance_logout_on_the_other_postgres() {
    let postgres = PostgresServer::start().await;
    login_on_one_logout_on_the_other(&postgres.url(), "two-pg-alice").await;
}

/// Sends `BURST` concurrent `GET /me` to each instance with the user agent's cookies.
async fn burst(w: &World) -> Vec<(usize, Page)> {
    let mut tasks = Vec::new();
    for (i, app) in w.apps.iter().enumerate() {
        for _ in 0..BURST {
            let mut ua = w.ua.clone();
            let url = app.url("/me");
            tasks.push(tokio::spawn(async move {
                (i, ua.get(&url, &[("accept", "application/json")]).await)
            }));
        }
    }
    let mut pages = Vec::new();
    for task in tasks {
        pages.push(task.await.unwrap());
    }
    pages
}

async fn refresh_rotation_race(store_url: &str, account: &str) {
    let margin = REFRESH_MARGIN.to_string();
    let mut w = World::start(
        store_url,
        &[
            ("OIDC_SCOPES", "openid profile email offline_access"),
            ("OIDC_REFRESH_MARGIN_SECS", &margin),
        ],
    )
    .await;
    // oidc-provider grants `offline_access` (a refresh token) only with prompt=consent.
    w.log_in(0, "/auth/login?return_to=%2Fme&prompt=consent", account)
        .await;
    let issued = Instant::now();
    let session = w.session_cookie().expect("the session cookie");
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);
    assert_eq!(w.grants("refresh_token", account), 0, "no refresh at login");
    // Not due yet: both instances answer without refreshing.
    logged_in_as(&w.me(1).await, account, "instance 2 before the refresh");
    assert_eq!(w.grants("refresh_token", account), 0, "not due yet");

    // Due: concurrent requests on both instances.
    let due = Duration::from_secs(AT_TTL - REFRESH_MARGIN) + Duration::from_millis(700);
    tokio::time::sleep(due.saturating_sub(issued.elapsed())).await;
    let burst_at = Instant::now();
    for (i, page) in burst(&w).await {
        logged_in_as(&page, account, &format!("burst on instance {}", i + 1));
    }
    assert!(
        burst_at.elapsed() < Duration::from_secs(AT_TTL - REFRESH_MARGIN),
        "the burst took {:?}: the next refresh may have been due already",
        burst_at.elapsed()
    );
    assert_eq!(w.wait_for_grants("refresh_token", account, 1).await, 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        w.grants("refresh_token", account),
        1,
        "exactly one refresh_token grant for {BURST}×2 concurrent requests on two instances"
    );
    assert_eq!(w.session_cookie().as_deref(), Some(session.as_str()));

    // The next refresh, through instance 2 then instance 1, uses the rotated refresh token
    // that the first refresh stored (a lost update would replay the consumed one, and the
    // provider would revoke the grant).
    tokio::time::sleep(due.saturating_sub(burst_at.elapsed())).await;
    logged_in_as(&w.me(1).await, account, "instance 2, second refresh");
    logged_in_as(
        &w.me(0).await,
        account,
        "instance 1 after the second refresh",
    );
    assert_eq!(w.wait_for_grants("refresh_token", account, 2).await, 2);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(w.grants("refresh_token", account), 2, "one more refresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotation_race_across_instances_redis() {
    let redis = RedisServer::start().await;
    refresh_rotation_race(&redis.url(), "race-redis-bob").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_rotation_race_across_instances_postgres() {
    let postgres = PostgresServer::start().await;
    refresh_rotation_race(&postgres.url(), "race-pg-bob").await;
}

/// Sends `command` (one inline command) to the Redis server on `port` and returns the answer
/// line.
fn redis_command(port: u16, command: &str) -> String {
    use std::io::{BufRead as _, BufReader, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// Logs in through instance 1, makes instance 2 cache the login, then logs out through
/// instance 1 (after `before_logout`) and returns how long instance 2 kept answering the old
/// cookie as logged in, polling every 20 ms for at most 5 s.
async fn time_until_other_instance_refuses(
    redis: &RedisServer,
    account: &str,
    before_logout: impl FnOnce(),
) -> Duration {
    let mut w = World::start(&redis.url(), &[]).await;
    w.log_in(0, "/auth/login?return_to=%2Fme", account).await;
    let session = w.session_cookie().expect("the session cookie");
    // Instance 2 has seen the session (its cache of recent logins holds it) and is subscribed.
    for _ in 0..3 {
        logged_in_as(&w.me(1).await, account, "instance 2 before the logout");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let home = w.ua.navigate(&w.apps[0].url("/")).await;
    let form = home.form_with_action_ending("/auth/logout");
    before_logout();
    let page = w.ua.submit(&form).await;
    assert_eq!(page.status, 303, "logout: {page}");
    let ended = Instant::now();
    w.ua.set_cookie(APP_HOST, SESSION_COOKIE, &session);
    loop {
        let page = w.me(1).await;
        if page.status == 401 {
            return ended.elapsed();
        }
        assert_eq!(page.status, 200, "instance 2 after the logout: {page}");
        assert!(
            ended.elapsed() < Duration::from_secs(5),
            "instance 2 still accepts the session 5 s after the logout"
        );
        w.ua.set_cookie(APP_HOST, SESSION_COOKIE, &session);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_on_one_instance_is_refused_by_the_other_within_a_second_redis() {
    let redis = RedisServer::start().await;
    let took = time_until_other_instance_refuses(&redis, "ended-push-carol", || {}).await;
    assert!(
        took < Duration::from_secs(1),
        "instance 2 accepted the ended session for {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_is_seen_by_the_other_instance_within_a_second_when_its_subscription_is_lost() {
    let redis = RedisServer::start().await;
    let port = redis.port();
    let took = time_until_other_instance_refuses(&redis, "ended-lost-dave", || {
        // Every subscriber connection (both instances') is dropped: the logout's message
        // reaches no one.
        let answer = redis_command(port, "CLIENT KILL TYPE pubsub");
        assert!(answer.starts_with(':'), "CLIENT KILL: {answer}");
    })
    .await;
    assert!(
        took < Duration::from_secs(1),
        "instance 2 accepted the ended session for {took:?}"
    );
}
