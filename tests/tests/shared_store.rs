//! The shared session stores of `oidc-tower` (features `redis` and `postgres`) on real servers:
//! Debian's `redis-server` and PostgreSQL, started on loopback by [`oidc_e2e::servers`].
//!
//! - Registry conformance, the same checks for [`MemoryRegistry`], [`RedisStore`] and
//!   [`PostgresStore`]: "once only" under 50 concurrent callers, expiry, `contains` and
//!   `remove`, sets (members added once, lifetime that only grows, an expired set starts again
//!   empty), `take_members` atomic under concurrent takers, keys and sets in distinct
//!   namespaces.
//! - Sessions through the tower-sessions 0.14 → 0.15 adapter: create, save, load, delete,
//!   expiry, an id collision at create, and no resurrection by a save after a delete.
//! - Outage: the server is stopped mid-test; every operation fails (an error, no panic)
//!   within a bounded time; after a restart the store works again and what was written
//!   before is still there (Redis runs with an append-only file synced at every write).
//! - Two instances of an app (each its own `LoginLayer`, on the in-process provider of
//!   `oidc-testing`) sharing one store: a login on one is valid on the other, a logout on one
//!   ends the session on both.
//!
//! The conformance and two-instance tests share one server of each kind per test process
//! (their keys and sessions never collide); the outage tests have their own.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::response::Json;
use axum::routing::get;
use oidc_axum::User;
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_e2e::servers::{PostgresServer, RedisServer, Restartable};
use oidc_testing::{ClientRegistration, TestProvider};
use oidc_tower::login::store::sqlx::postgres::PgPoolOptions;
use oidc_tower::login::store::{PostgresStore, RedisStore};
use oidc_tower::login::{LoginLayer, MemoryRegistry, SessionRegistry};
use serde_json::{Value, json};
use tokio::sync::{Barrier, OnceCell};
use tower_sessions::SessionStore;
use tower_sessions::cookie::time::{Duration as TimeDuration, OffsetDateTime};
use tower_sessions::session::{Id, Record};

/// How long a failing store operation may take while the server is down.
const OUTAGE_BOUND: Duration = Duration::from_secs(8);

async fn redis_server() -> &'static RedisServer {
    static SERVER: OnceCell<RedisServer> = OnceCell::const_new();
    SERVER.get_or_init(RedisServer::start).await
}

async fn postgres_server() -> &'static PostgresServer {
    static SERVER: OnceCell<PostgresServer> = OnceCell::const_new();
    SERVER.get_or_init(PostgresServer::start).await
}

/// A Redis store with short timeouts: a command fails after 2 s, reconnection is retried
/// every 100 ms forever.
async fn redis_store(server: &RedisServer) -> RedisStore {
    server
        .store(Duration::from_secs(2), Duration::from_secs(1))
        .await
}

/// A migrated PostgreSQL store whose pool gives up acquiring a connection after 2 s.
async fn postgres_store(server: &PostgresServer) -> PostgresStore {
    server.store(Duration::from_secs(2)).await
}

/// A prefix no other test (or earlier run) uses.
fn namespace(what: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "oidc:test:{what}:{}:{nanos}:{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const LONG: Duration = Duration::from_secs(600);

/// The behaviour every `SessionRegistry` must have (see its docs).
async fn registry_conformance(r: Arc<dyn SessionRegistry>, what: &str) {
    let ns = namespace(what);

    // Once only, under 50 concurrent callers: exactly one wins.
    let once = |key: String| {
        let r = r.clone();
        async move {
            let barrier = Arc::new(Barrier::new(50));
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let (r, key, barrier) = (r.clone(), key.clone(), barrier.clone());
                    tokio::spawn(async move {
                        barrier.wait().await;
                        r.insert(&key, LONG).await.unwrap()
                    })
                })
                .collect();
            let mut winners = 0;
            for task in tasks {
                winners += usize::from(task.await.unwrap());
            }
            winners
        }
    };
    let key = format!("{ns}:once");
    assert_eq!(once(key.clone()).await, 1, "{what}: one insert wins");
    assert!(r.contains(&key).await.unwrap(), "{what}");
    assert!(!r.insert(&key, LONG).await.unwrap(), "{what}: still set");

    // remove / contains, and removing what is not there.
    r.remove(&key).await.unwrap();
    assert!(!r.contains(&key).await.unwrap(), "{what}: removed");
    r.remove(&key).await.unwrap();
    r.remove(&format!("{ns}:never")).await.unwrap();
    assert!(!r.contains(&format!("{ns}:never")).await.unwrap(), "{what}");
    assert!(r.insert(&key, LONG).await.unwrap(), "{what}: free again");

    // Expiry: a key is set for its ttl only; an expired key can be inserted again, once.
    let short = format!("{ns}:short");
    assert!(
        r.insert(&short, Duration::from_millis(400)).await.unwrap(),
        "{what}"
    );
    assert!(r.contains(&short).await.unwrap(), "{what}");
    assert!(
        !r.insert(&short, LONG).await.unwrap(),
        "{what}: not expired yet"
    );
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!r.contains(&short).await.unwrap(), "{what}: expired");
    assert_eq!(
        once(short.clone()).await,
        1,
        "{what}: one insert wins over an expired key"
    );
    assert!(r.contains(&short).await.unwrap(), "{what}");

    // Sets: members once each; take returns them and empties the set.
    let set = format!("{ns}:set");
    assert!(r.take_members(&set).await.unwrap().is_empty(), "{what}");
    for member in ["b", "a", "b", "c"] {
        r.add_member(&set, member, LONG).await.unwrap();
    }
    assert_eq!(
        sorted(r.take_members(&set).await.unwrap()),
        ["a", "b", "c"],
        "{what}"
    );
    assert!(r.take_members(&set).await.unwrap().is_empty(), "{what}");

    // A set lives as long as its longest ttl: a shorter one does not shorten it...
    let grows = format!("{ns}:grows");
    r.add_member(&grows, "1", Duration::from_millis(300))
        .await
        .unwrap();
    r.add_member(&grows, "2", LONG).await.unwrap();
    r.add_member(&grows, "3", Duration::from_millis(300))
        .await
        .unwrap();
    // ...and an expired set is empty, and starts again empty.
    let expires = format!("{ns}:expires");
    r.add_member(&expires, "old", Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        sorted(r.take_members(&grows).await.unwrap()),
        ["1", "2", "3"],
        "{what}: the set outlives its shorter ttls"
    );
    let restart = format!("{ns}:restart");
    r.add_member(&restart, "old", Duration::from_millis(300))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    r.add_member(&restart, "new", LONG).await.unwrap();
    assert!(
        r.take_members(&expires).await.unwrap().is_empty(),
        "{what}: expired set"
    );
    assert_eq!(
        r.take_members(&restart).await.unwrap(),
        ["new"],
        "{what}: an expired set starts again empty"
    );

    // take_members is atomic: concurrent takers never share a member, and none is lost.
    for round in 0..5 {
        let set = format!("{ns}:race:{round}");
        let members: BTreeSet<String> = (0..40).map(|i| format!("m{i}")).collect();
        for m in &members {
            r.add_member(&set, m, LONG).await.unwrap();
        }
        let barrier = Arc::new(Barrier::new(8));
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let (r, set, barrier) = (r.clone(), set.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    r.take_members(&set).await.unwrap()
                })
            })
            .collect();
        let mut taken = Vec::new();
        let mut non_empty = 0;
        for t in takers {
            let got = t.await.unwrap();
            non_empty += usize::from(!got.is_empty());
            taken.extend(got);
        }
        assert_eq!(non_empty, 1, "{what}: one taker gets the whole set");
        assert_eq!(taken.len(), members.len(), "{what}: no member twice");
        assert_eq!(
            taken.into_iter().collect::<BTreeSet<_>>(),
            members,
            "{what}"
        );
    }

    // Keys and sets are distinct namespaces.
    let both = format!("{ns}:both");
    assert!(r.insert(&both, LONG).await.unwrap(), "{what}");
    r.add_member(&both, "x", LONG).await.unwrap();
    assert!(r.contains(&both).await.unwrap(), "{what}");
    assert_eq!(r.take_members(&both).await.unwrap(), ["x"], "{what}");
    assert!(r.contains(&both).await.unwrap(), "{what}: the key stays");
    r.remove(&both).await.unwrap();
    r.add_member(&both, "y", LONG).await.unwrap();
    assert!(!r.contains(&both).await.unwrap(), "{what}");
    assert_eq!(r.take_members(&both).await.unwrap(), ["y"], "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_registry_conformance() {
    registry_conformance(Arc::new(MemoryRegistry::new()), "memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_registry_conformance() {
    let store = redis_store(redis_server().await).await;
    registry_conformance(Arc::new(store), "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_registry_conformance() {
    let store = postgres_store(postgres_server().await).await;
    registry_conformance(Arc::new(store), "postgres").await;
}

/// A record that expires `ttl` from now, with some data.
fn record(ttl: TimeDuration) -> Record {
    Record {
        id: Id::default(),
        data: HashMap::from([
            ("user".to_owned(), json!("alice")),
            (
                "nested".to_owned(),
                json!({"n": 1, "list": [true, null, "é"]}),
            ),
        ]),
        expiry_date: OffsetDateTime::now_utc() + ttl,
    }
}

/// Sessions through the store: round trip, no resurrection, id collision, expiry.
async fn session_round_trip(store: impl SessionStore + Clone, what: &str) {
    let mut first = record(TimeDuration::minutes(10));
    let wanted_id = first.id;
    store.create(&mut first).await.unwrap();
    assert_eq!(first.id, wanted_id, "{what}: a free id is kept");
    assert_eq!(
        store.load(&first.id).await.unwrap().as_ref(),
        Some(&first),
        "{what}: loaded as created"
    );

    let mut changed = first.clone();
    changed.data.insert("step".to_owned(), json!(2));
    changed.expiry_date += TimeDuration::minutes(5);
    store.save(&changed).await.unwrap();
    assert_eq!(
        store.load(&first.id).await.unwrap().as_ref(),
        Some(&changed),
        "{what}: saved"
    );

    // An id collision at create: the second record gets another id, the first is intact.
    let mut second = record(TimeDuration::minutes(10));
    second.id = first.id;
    second.data.insert("who".to_owned(), json!("second"));
    store.create(&mut second).await.unwrap();
    assert_ne!(second.id, first.id, "{what}: a taken id is replaced");
    assert_eq!(
        store.load(&first.id).await.unwrap().as_ref(),
        Some(&changed),
        "{what}: the existing session is not overwritten"
    );
    assert_eq!(
        store.load(&second.id).await.unwrap().as_ref(),
        Some(&second),
        "{what}"
    );

    // Delete; a save of the deleted session (a request that loaded it before the logout)
    // does not bring it back.
    store.delete(&first.id).await.unwrap();
    assert_eq!(
        store.load(&first.id).await.unwrap(),
        None,
        "{what}: deleted"
    );
    store.save(&changed).await.unwrap();
    assert_eq!(
        store.load(&first.id).await.unwrap(),
        None,
        "{what}: not resurrected by a save"
    );
    store.delete(&first.id).await.unwrap();
    assert_eq!(
        store.load(&Id::default()).await.unwrap(),
        None,
        "{what}: unknown id"
    );

    // Expiry: gone after its expiry date (Redis expires at whole seconds).
    let mut brief = record(TimeDuration::seconds(1));
    store.create(&mut brief).await.unwrap();
    assert!(store.load(&brief.id).await.unwrap().is_some(), "{what}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        store.load(&brief.id).await.unwrap(),
        None,
        "{what}: expired"
    );
    store.save(&brief).await.unwrap();
    assert_eq!(
        store.load(&brief.id).await.unwrap(),
        None,
        "{what}: an expired session is not brought back by a save"
    );
    assert!(store.load(&second.id).await.unwrap().is_some(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_round_trip() {
    let store = redis_store(redis_server().await).await;
    session_round_trip(store, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_sessions_round_trip() {
    let store = postgres_store(postgres_server().await).await;
    session_round_trip(store, "postgres").await;
}

/// `migrate` is idempotent, also when instances run it at the same time on a new database.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_migrate_concurrently_and_again() {
    let server = PostgresServer::start().await;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&server.url())
        .await
        .unwrap();
    let barrier = Arc::new(Barrier::new(6));
    let runs: Vec<_> = (0..6)
        .map(|_| {
            let (store, barrier) = (PostgresStore::new(pool.clone()), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                store.migrate().await
            })
        })
        .collect();
    for run in runs {
        run.await.unwrap().unwrap();
    }
    let store = PostgresStore::new(pool.clone());
    store.migrate().await.unwrap();
    // The tables work.
    assert!(store.insert("oidc:migrated", LONG).await.unwrap());
    let mut r = record(TimeDuration::minutes(1));
    store.create(&mut r).await.unwrap();
    assert!(store.load(&r.id).await.unwrap().is_some());
}

/// Runs `op` and asserts that it fails within [`OUTAGE_BOUND`].
async fn fails_soon<T: std::fmt::Debug, E: std::fmt::Display>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, E>>,
) {
    let start = Instant::now();
    match tokio::time::timeout(OUTAGE_BOUND, op).await {
        Ok(Err(error)) => {
            // The error says what failed, without any key or session id.
            let message = error.to_string();
            assert!(!message.contains("oidc:outage"), "{what}: {message}");
        }
        Ok(Ok(value)) => panic!("{what}: succeeded while the server is down: {value:?}"),
        Err(_) => panic!("{what}: still pending after {OUTAGE_BOUND:?}"),
    }
    assert!(start.elapsed() < OUTAGE_BOUND, "{what}");
}

/// Retries `op` until it succeeds, for at most 20 s.
async fn until_ok<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    what: &str,
    mut op: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match op().await {
            Ok(value) => return value,
            Err(error) if Instant::now() > deadline => {
                panic!("{what}: still failing 20 s after the restart: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// Writes, stops the server, checks that every operation fails in bounded time, restarts it,
/// checks that the store recovers with the data written before.
async fn outage<S>(store: S, server: &mut impl Restartable, what: &str)
where
    S: SessionStore + SessionRegistry + Clone,
{
    let mut session = record(TimeDuration::minutes(10));
    store.create(&mut session).await.unwrap();
    assert!(store.insert("oidc:outage:key", LONG).await.unwrap());
    store
        .add_member("oidc:outage:set", "member", LONG)
        .await
        .unwrap();

    server.stop().await;
    fails_soon(&format!("{what}: load"), store.load(&session.id)).await;
    fails_soon(&format!("{what}: save"), store.save(&session)).await;
    let mut other = record(TimeDuration::minutes(10));
    fails_soon(&format!("{what}: create"), store.create(&mut other)).await;
    fails_soon(&format!("{what}: delete"), store.delete(&other.id)).await;
    fails_soon(
        &format!("{what}: insert"),
        store.insert("oidc:outage:other", LONG),
    )
    .await;
    fails_soon(
        &format!("{what}: contains"),
        store.contains("oidc:outage:key"),
    )
    .await;
    fails_soon(&format!("{what}: remove"), store.remove("oidc:outage:x")).await;
    fails_soon(
        &format!("{what}: add_member"),
        store.add_member("oidc:outage:set", "other", LONG),
    )
    .await;
    fails_soon(
        &format!("{what}: take_members"),
        store.take_members("oidc:outage:set"),
    )
    .await;

    server.restart().await;
    let loaded = until_ok(&format!("{what}: load after restart"), || {
        store.load(&session.id)
    })
    .await;
    assert_eq!(loaded, Some(session), "{what}: the session survived");
    assert!(
        store.contains("oidc:outage:key").await.unwrap(),
        "{what}: the key survived"
    );
    assert!(
        !store.insert("oidc:outage:key", LONG).await.unwrap(),
        "{what}: still once only"
    );
    assert_eq!(
        store.take_members("oidc:outage:set").await.unwrap(),
        ["member"],
        "{what}: the set survived, and neither the add nor the take that failed during the \
         outage was applied later"
    );
    assert!(
        store.insert("oidc:outage:other", LONG).await.unwrap(),
        "{what}: an insert that failed during the outage was not applied later"
    );
    let mut fresh = record(TimeDuration::minutes(10));
    store.create(&mut fresh).await.unwrap();
    assert!(store.load(&fresh.id).await.unwrap().is_some(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_in_bounded_time_and_recovers() {
    let mut server = RedisServer::start().await;
    let store = redis_store(&server).await;
    outage(store, &mut server, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_in_bounded_time_and_recovers() {
    let mut server = PostgresServer::start().await;
    // Each operation waits this long for a connection while the server is down.
    let store = server.store(Duration::from_millis(750)).await;
    outage(store, &mut server, "postgres").await;
}

// ---- Two instances of an app sharing one store ----------------------------------------------

const COOKIE: &str = "oidc-session";
const USER: &str = "user-1";

/// Two instances of one app (one public URL, as behind a load balancer), each with its own
/// `LoginLayer`, sharing `store`; the provider is `oidc-testing`'s, logging in `USER`.
struct Instances {
    op: TestProvider,
    /// The app's public URL (the first instance's address).
    url: String,
    /// Where each instance listens.
    bases: [String; 2],
    http: reqwest::Client,
    servers: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Instances {
    fn drop(&mut self) {
        for server in &self.servers {
            server.abort();
        }
    }
}

async fn me(user: User) -> Json<Value> {
    Json(json!({
        "sub": user.subject(),
        "email": user.email(),
        "iss": user.issuer(),
        "claims": user.claims(),
    }))
}

impl Instances {
    async fn start<S>(store: S) -> Self
    where
        S: SessionStore + SessionRegistry + Clone,
    {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        let listeners = [
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
        ];
        let bases = listeners
            .each_ref()
            .map(|l| format!("http://{}", l.local_addr().unwrap()));
        let url = bases[0].clone();
        let redirect_uri = format!("{url}/auth/callback");
        op.register_client(
            ClientRegistration::confidential("web-app", "s3cret", &redirect_uri)
                .add_post_logout_redirect_uri(&format!("{url}/")),
        );
        let mut servers = Vec::new();
        for listener in listeners {
            // Each instance builds its own provider, client and layer, as separate processes do.
            let provider = Provider::builder(op.issuer()).build().unwrap();
            let client = OidcClient::new(provider, "web-app", redirect_uri.clone())
                .unwrap()
                .with_client_secret("s3cret");
            let layer = LoginLayer::new(client, &url)
                .unwrap()
                .with_shared_store(store.clone());
            let router = Router::new().route("/me", get(me)).layer(layer);
            servers.push(tokio::spawn(async move {
                let _ = axum::serve(listener, router).await;
            }));
        }
        let http = oidc_e2e::http_client_with_timeout(Duration::from_secs(20));
        Self {
            op,
            url,
            bases,
            http,
            servers,
        }
    }

    /// Sends `req` with the session cookie `cookie`; returns the status, the `Location`, the
    /// new value of the session cookie (`Some("")` when cleared) and the body.
    async fn send(
        &self,
        mut req: reqwest::RequestBuilder,
        cookie: Option<&str>,
    ) -> (u16, Option<String>, Option<String>, String) {
        if let Some(value) = cookie {
            req = req.header("cookie", format!("{COOKIE}={value}"));
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let location = res
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set = oidc_e2e::set_cookie_value(&res, COOKIE);
        (status, location, set, res.text().await.unwrap())
    }

    /// Logs in through instance `i`; returns the session cookie.
    async fn log_in(&self, i: usize) -> String {
        let (status, location, pre, body) = self
            .send(
                self.http
                    .get(format!("{}/auth/login?return_to=%2Fme", self.bases[i]))
                    .header("accept", "text/html"),
                None,
            )
            .await;
        assert_eq!(status, 303, "login start: {body}");
        let pre = pre.expect("a pre-login session cookie");
        let (status, callback, _, body) = self.send(self.http.get(location.unwrap()), None).await;
        assert_eq!(status, 303, "authorization: {body}");
        // The callback URL is the public one: deliver it to instance `i`.
        let callback = callback.unwrap().replacen(&self.url, &self.bases[i], 1);
        let (status, location, session, body) = self
            .send(
                self.http.get(callback).header("accept", "text/html"),
                Some(&pre),
            )
            .await;
        assert_eq!(status, 303, "callback: {body}");
        assert_eq!(location.as_deref(), Some("/me"));
        let session = session.expect("the session cookie");
        assert_ne!(session, pre, "the session id changes at login");
        session
    }

    /// `GET /me` on instance `i` as an API call: the status and the JSON body (if 200).
    async fn me(&self, i: usize, cookie: &str) -> (u16, Value) {
        let (status, _, _, body) = self
            .send(
                self.http
                    .get(format!("{}/me", self.bases[i]))
                    .header("accept", "application/json"),
                Some(cookie),
            )
            .await;
        let json = if status == 200 {
            serde_json::from_str(&body).unwrap()
        } else {
            Value::Null
        };
        (status, json)
    }

    /// `POST /auth/logout` on instance `i`, from the app's origin.
    async fn log_out(&self, i: usize, cookie: &str) {
        let (status, _, cleared, body) = self
            .send(
                self.http
                    .post(format!("{}/auth/logout", self.bases[i]))
                    .header("origin", &self.url),
                Some(cookie),
            )
            .await;
        assert_eq!(status, 303, "logout: {body}");
        assert_eq!(cleared.as_deref(), Some(""), "logout clears the cookie");
    }
}

/// A login on one instance is valid on the other (same claims); a logout on the other ends it
/// on both.
async fn two_instances_share_logins<S>(store: S, what: &str)
where
    S: SessionStore + SessionRegistry + Clone,
{
    let app = Instances::start(store).await;
    let session = app.log_in(0).await;
    let (status, on_a) = app.me(0, &session).await;
    assert_eq!(status, 200, "{what}: instance A");
    assert_eq!(on_a["sub"], USER, "{what}: {on_a}");
    let (status, on_b) = app.me(1, &session).await;
    assert_eq!(status, 200, "{what}: instance B knows the login of A");
    assert_eq!(on_b, on_a, "{what}: the same claims on both");
    assert_eq!(
        app.op.token_requests().len(),
        1,
        "{what}: one code redemption"
    );

    // Another browser's session is not affected by this one's logout.
    let other = app.log_in(1).await;
    assert_eq!(
        app.me(0, &other).await.0,
        200,
        "{what}: login through B, on A"
    );

    app.log_out(1, &session).await;
    assert_eq!(app.me(0, &session).await.0, 401, "{what}: logged out on A");
    assert_eq!(app.me(1, &session).await.0, 401, "{what}: logged out on B");
    assert_eq!(app.me(0, &other).await.0, 200, "{what}: the other session");
    assert_eq!(app.me(1, &other).await.0, 200, "{what}: the other session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_logins_on_redis() {
    let store = redis_store(redis_server().await).await;
    two_instances_share_logins(store, "redis").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_logins_on_postgres() {
    let store = postgres_store(postgres_server().await).await;
    two_instances_share_logins(store, "postgres").await;
}

/// Runs `script` (Lua, no keys) on the store's server.
async fn redis_eval(store: &RedisStore, script: &str) {
    use oidc_tower::login::store::fred::interfaces::LuaInterface as _;
    let _: oidc_tower::login::store::fred::types::Value = store
        .pool()
        .eval(script, Vec::<String>::new(), Vec::<String>::new())
        .await
        .unwrap();
}

/// Waits up to `bound` until `registry.is_ended(key)`; returns how long it took.
async fn until_ended(registry: &dyn SessionRegistry, key: &str, bound: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if registry.is_ended(key).await.unwrap() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < bound,
            "{key} not seen as ended within {bound:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A store whose subscriber has started and caught up (its first `is_ended` starts it).
async fn subscribed_redis_store(server: &RedisServer) -> RedisStore {
    let store = redis_store(server).await;
    assert!(!store.is_ended("oidc:ended:warm-up").await.unwrap());
    tokio::time::sleep(Duration::from_millis(800)).await;
    store
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_ends_reach_other_instances_through_their_subscription() {
    let server = redis_server().await;
    let (a, b) = (
        redis_store(server).await,
        subscribed_redis_store(server).await,
    );
    let key = format!("oidc:ended:{}", namespace("end"));
    assert!(!b.is_ended(&key).await.unwrap());
    a.end(&key, LONG).await.unwrap();
    assert!(
        a.is_ended(&key).await.unwrap(),
        "the ending instance at once"
    );
    assert!(
        a.contains(&key).await.unwrap(),
        "the mark is a registry key"
    );
    until_ended(&b, &key, Duration::from_secs(1)).await;

    // Only a message, no mark in Redis: seen, so it came through the subscription.
    let pushed = format!("oidc:ended:{}", namespace("pushed"));
    redis_eval(
        &a,
        &format!("return redis.call('PUBLISH', 'oidc-registry:ended', '60000 {pushed}')"),
    )
    .await;
    until_ended(&b, &pushed, Duration::from_secs(1)).await;
    assert!(!b.contains(&pushed).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_end_whose_message_is_lost_is_caught_by_the_poll() {
    let server = redis_server().await;
    let b = subscribed_redis_store(server).await;
    // Recorded in the list of recent ends as `end` does, but neither published nor set as a
    // key: only the poll can find it.
    let key = format!("oidc:ended:{}", namespace("polled"));
    redis_eval(
        &b,
        &format!(
            "local n = redis.call('INCR', 'oidc-registry:ends:seq') \
             redis.call('ZADD', 'oidc-registry:ends:by-seq', n, '{key}') \
             redis.call('ZADD', 'oidc-registry:ends:by-expiry', 99999999999999, '{key}')"
        ),
    )
    .await;
    let took = until_ended(&b, &key, Duration::from_secs(1)).await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    // A new instance reads every live end when it subscribes.
    let c = subscribed_redis_store(server).await;
    assert!(c.is_ended(&key).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_is_ended_asks_redis_until_subscribed() {
    let server = redis_server().await;
    let store = redis_store(server).await;
    // A mark set as a plain key (no message, not in the list): only Redis knows it.
    let key = format!("oidc:ended:{}", namespace("fallback"));
    assert!(store.insert(&key, LONG).await.unwrap());
    assert!(
        store.is_ended(&key).await.unwrap(),
        "not subscribed yet: the answer comes from Redis"
    );
    let unknown = format!("oidc:ended:{}", namespace("unknown"));
    assert!(!store.is_ended(&unknown).await.unwrap());
}
