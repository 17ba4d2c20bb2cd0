//! The session store behind a [`LoginLayer`](super::LoginLayer), and the shared stores.
//!
//! The layer keeps sessions in any tower-sessions store
//! ([`LoginLayer::with_store`](super::LoginLayer::with_store)); the default is this module's
//! [`MemoryStore`], which, unlike tower-sessions' store of that name, drops sessions at their
//! expiry date and holds a bounded number of them. Apps served by several instances use a store they share and that is also a
//! [`SessionRegistry`] ([`LoginLayer::with_shared_store`](super::LoginLayer::with_shared_store)).
//!
//! # Shared stores
//!
//! | feature | store | built from |
//! |---|---|---|
//! | `redis` | [`RedisStore`] | a [`fred`] `Pool` (Redis 7.0 or later, or Valkey) |
//! | `postgres` | [`PostgresStore`] | a [`sqlx`] `PgPool`; call [`PostgresStore::migrate`] at startup |
//!
//! `fred` and `sqlx` are re-exported here, so that the pool you build has the types the store
//! takes. You configure and connect the pool: TLS (enable the TLS features of `fred` or `sqlx`
//! in your own `Cargo.toml`), credentials, and the timeouts that turn an outage into errors
//! (fred's command and connection timeouts, sqlx's `acquire_timeout`). While the store fails,
//! the login layer answers 503 (fail closed); requests succeed again once it is back.
//!
//! ```no_run
//! # #[cfg(feature = "redis")]
//! # async fn demo(client: oidc_core::flow::OidcClient) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use oidc_tower::login::LoginLayer;
//! use oidc_tower::login::store::RedisStore;
//! use oidc_tower::login::store::fred::prelude::*;
//!
//! let pool = Builder::from_config(Config::from_url("redis://redis.internal:6379/0")?)
//!     .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(2))
//!     .with_connection_config(|c| c.connection_timeout = Duration::from_secs(2))
//!     .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
//!     .build_pool(4)?;
//! pool.init().await?;
//! let login = LoginLayer::new(client, "https://app.example.com")?
//!     .with_shared_store(RedisStore::new(pool));
//! # let _ = login;
//! # Ok(())
//! # }
//! ```
//!
//! ## The stores' own code
//!
//! Both stores read and write their records themselves, with `fred` and `sqlx` (they used to
//! wrap tower-sessions-redis-store and tower-sessions-sqlx-store, which are built on
//! tower-sessions-core 0.14). The format and places are those of the tower-sessions stores,
//! so sessions written by either version stay readable.
//!
//! ## Several apps on one store
//!
//! Every [`LoginLayer`](super::LoginLayer) keeps its part of a store apart under its
//! namespace ([`LoginLayer::with_store_namespace`](super::LoginLayer::with_store_namespace);
//! by default the client id of its first provider): registry keys and set names below are
//! prefixed `app:<length>:<namespace>:`, a session's key is its cookie id mixed with a mask
//! derived from the namespace, and each record names its namespace (`oidc.app`) and its
//! login's client id. A record of another app is treated as no session. Instances of one app
//! share sessions by sharing the namespace; apps on one Redis or PostgreSQL server never accept
//! each other's sessions. The empty namespace keeps the keys of versions before namespaces.
//!
//! ## What is stored
//!
//! - **Sessions**: one MessagePack value per session (its id, its data, its expiry date),
//!   which holds the tokens of the login: protect the store like a credential store (network
//!   access, authentication, TLS, backups). In Redis, under the session id (22 base64url
//!   characters) with an expiry at the session's expiry date; in PostgreSQL, in the table
//!   `tower_sessions.session` (`id`, `data`, `expiry_date`).
//! - **Registry keys** ([`SessionRegistry::insert`]), for "once only" and "one at a time": in
//!   Redis, `oidc-registry:key:<key>` with a millisecond expiry; in PostgreSQL, the table
//!   `tower_sessions.oidc_registry_key` (`name`, `expires_at`).
//! - **Registry sets** ([`SessionRegistry::add_member`]), the sessions of a provider session
//!   or user: in Redis, the set `oidc-registry:set:<name>`; in PostgreSQL, one row per set in
//!   `tower_sessions.oidc_registry_set` (`name`, `members text[]`, `expires_at`). Keys and sets
//!   are distinct namespaces, as in [`MemoryRegistry`](super::MemoryRegistry).
//!
//! Expiry is decided by the server's clock (Redis TTLs, PostgreSQL's `now()`), the same for
//! every instance. Redis deletes what expired by itself; PostgreSQL ignores expired rows in
//! every query and deletes them (sessions included) every 256 operations of a store.
//!
//! ## Atomicity
//!
//! Each registry operation is one atomic command or statement, so concurrent callers on any
//! number of instances see a consistent result:
//!
//! | operation | Redis | PostgreSQL |
//! |---|---|---|
//! | `insert` | `SET key 1 PX ttl NX` | `INSERT … ON CONFLICT DO UPDATE … WHERE expired RETURNING` |
//! | `contains` | `EXISTS` | `SELECT EXISTS (… not expired)` |
//! | `remove` | `DEL` | `DELETE` |
//! | `add_member` | `MULTI; SADD; PEXPIRE NX; PEXPIRE GT; EXEC` (a set's lifetime only grows) | `INSERT … ON CONFLICT DO UPDATE` (an expired set starts again empty) |
//! | `take_members` | `MULTI; SMEMBERS; DEL; EXEC` | `DELETE … RETURNING` |
//!
//! Saving a session never brings back one that was deleted (logout on another instance) or
//! that expired meanwhile: Redis saves with `SET … PXAT XX`, PostgreSQL with an `UPDATE` of a
//! live row. Creating a session with an id already taken picks another id (Redis `SET … NX`,
//! PostgreSQL `INSERT … ON CONFLICT DO UPDATE … WHERE expired RETURNING`).
//!
//! ## Ended sessions
//!
//! Every request with a session asks whether it was ended on another instance
//! ([`SessionRegistry::is_ended`]). [`PostgresStore`] asks the database (the default,
//! `contains`). [`RedisStore`] pushes ends to every instance instead: [`SessionRegistry::end`]
//! sets the mark, numbers it in the sorted sets `oidc-registry:ends:by-seq` and
//! `oidc-registry:ends:by-expiry` and publishes it on the channel `oidc-registry:ended`, in
//! one script; each instance keeps the live marks in memory from a subscriber connection
//! (built from the pool's configuration) and reads the marks it may have missed every 250 ms
//! (`ZRANGEBYSCORE` after the last number it read). It answers from memory only while it is
//! subscribed and its last read is under 750 ms old; otherwise it asks Redis (`PTTL`). An end
//! is so seen by every instance at once, and within 1 s when its message is lost.

use std::sync::Arc;

use async_trait::async_trait;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Result;

pub(crate) use self::namespace::AppBinding;
use self::namespace::{BoundRegistry, BoundSessions};
use super::registry::SessionRegistry;

mod memory;
mod namespace;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;

/// The Redis client the [`RedisStore`] is built on (the version it needs).
#[cfg(feature = "redis")]
pub use fred;
/// The database library the [`PostgresStore`] is built on (the version it needs).
#[cfg(feature = "postgres")]
pub use sqlx;

pub use self::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use self::redis::RedisStore;

/// The store a [`LoginLayer`](super::LoginLayer) keeps its sessions in, as its session
/// manager sees it.
///
/// It holds this app's part of the store: keys in the app's namespace, and only records this
/// app wrote (see [`LoginLayer::with_store_namespace`](super::LoginLayer::with_store_namespace)).
#[derive(Clone)]
pub struct LoginStore {
    /// The app's sessions (namespaced and checked).
    pub(crate) sessions: Arc<dyn SessionStore>,
    /// The app's registry (namespaced).
    pub(crate) registry: Arc<dyn SessionRegistry>,
    /// The stores as given, to bind them again when the app's identity changes.
    given: (Arc<dyn SessionStore>, Arc<dyn SessionRegistry>),
}

impl LoginStore {
    /// `sessions` and `registry` for the app `app`.
    pub(crate) fn new(
        sessions: Arc<dyn SessionStore>,
        registry: Arc<dyn SessionRegistry>,
        app: AppBinding,
    ) -> Self {
        let app = Arc::new(app);
        Self {
            sessions: Arc::new(BoundSessions {
                inner: sessions.clone(),
                app: app.clone(),
            }),
            registry: Arc::new(BoundRegistry {
                inner: registry.clone(),
                app,
            }),
            given: (sessions, registry),
        }
    }

    /// The same stores for the app `app`.
    pub(crate) fn rebind(&self, app: AppBinding) -> Self {
        Self::new(self.given.0.clone(), self.given.1.clone(), app)
    }
}

impl std::fmt::Debug for LoginStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginStore")
            .field("sessions", &self.sessions)
            .field("registry", &self.registry)
            .finish()
    }
}

#[async_trait]
impl SessionStore for LoginStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.sessions.create(record).await
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.sessions.save(record).await
    }

    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        self.sessions.load(id).await
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        self.sessions.delete(id).await
    }
}
