//! [`PostgresStore`]: sessions and the session registry in PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::PgPool;
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};

use crate::login::registry::{RegistryError, SessionRegistry};

/// The schema of every table (tower-sessions-sqlx-store's default, kept so that sessions it
/// wrote stay readable).
const SCHEMA: &str = "tower_sessions";

/// Every this many operations, expired rows are deleted.
const CLEANUP_EVERY: u32 = 256;

/// The session table (as tower-sessions-sqlx-store created it) and the registry's tables.
const DDL: &str = r#"
create schema if not exists "tower_sessions";
create table if not exists "tower_sessions"."session" (
    id text primary key not null,
    data bytea not null,
    expiry_date timestamptz not null
);
create table if not exists "tower_sessions"."oidc_registry_key" (
    name text primary key not null,
    expires_at timestamptz not null
);
create index if not exists "oidc_registry_key_expires_at"
    on "tower_sessions"."oidc_registry_key" (expires_at);
create table if not exists "tower_sessions"."oidc_registry_set" (
    name text primary key not null,
    members text[] not null,
    expires_at timestamptz not null
);
create index if not exists "oidc_registry_set_expires_at"
    on "tower_sessions"."oidc_registry_set" (expires_at);
"#;

/// For the cleanup of expired sessions (tower-sessions-sqlx-store has no index on it).
const SESSION_INDEX_DDL: &str = r#"
create index if not exists "oidc_session_expiry_date"
    on "tower_sessions"."session" (expiry_date);
"#;

const CLEANUP: &str = r#"
delete from "tower_sessions"."oidc_registry_key" where expires_at <= now();
delete from "tower_sessions"."oidc_registry_set" where expires_at <= now();
delete from "tower_sessions"."session" where expiry_date <= now();
"#;

/// Sessions in PostgreSQL, shared by every instance of an app, and the [`SessionRegistry`]
/// that coordinates them; give it to
/// [`LoginLayer::with_shared_store`](crate::login::LoginLayer::with_shared_store).
///
/// Sessions are kept in the table `tower_sessions.session` (one MessagePack value per
/// session, as tower-sessions-sqlx-store kept them); the registry in two tables of the same schema; every
/// operation is a single statement. Call [`migrate`](Self::migrate) once at startup. See the
/// [module docs](super) for what is stored and how.
///
/// Cheap to clone (the pool is shared).
///
/// ```no_run
/// use std::time::Duration;
///
/// use oidc_tower::login::store::PostgresStore;
/// use oidc_tower::login::store::sqlx::postgres::PgPoolOptions;
///
/// # async fn demo() -> Result<(), oidc_tower::login::store::sqlx::Error> {
/// let pool = PgPoolOptions::new()
///     .acquire_timeout(Duration::from_secs(3))
///     .connect("postgres://app@db.internal/app")
///     .await?;
/// let store = PostgresStore::new(pool);
/// store.migrate().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    ops: Arc<AtomicU32>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the pool: its connect options hold the password.
        f.debug_struct("PostgresStore")
            .field("schema", &SCHEMA)
            .finish_non_exhaustive()
    }
}

/// `ttl` in seconds for `make_interval`, at most 100 years.
fn seconds(ttl: Duration) -> f64 {
    const MAX: f64 = 100.0 * 365.0 * 24.0 * 3600.0;
    ttl.as_secs_f64().min(MAX)
}

/// Whether `error` says that a concurrent `create … if not exists` won the race.
fn lost_creation_race(error: &sqlx::Error) -> bool {
    let code = error.as_database_error().and_then(|e| e.code());
    // unique_violation (on the catalogs), duplicate_table, duplicate_schema, duplicate_object.
    matches!(code.as_deref(), Some("23505" | "42P07" | "42P06" | "42710"))
}

/// The record as stored: its MessagePack encoding, and its expiry date in microseconds since
/// the Unix epoch.
fn encode(record: &Record) -> Result<(Vec<u8>, i64)> {
    let data = rmp_serde::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
    let micros = i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1000)
        .map_err(|_| Error::Encode("expiry date out of range".to_owned()))?;
    Ok((data, micros))
}

fn backend(error: sqlx::Error) -> Error {
    Error::Backend(error.to_string())
}

impl PostgresStore {
    /// A store on `pool`. The pool is used as configured: set its `acquire_timeout` so that a
    /// database outage turns into errors (answered 503 by the login layer) within the time
    /// you want.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            ops: Arc::new(AtomicU32::new(0)),
        }
    }

    /// The pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Creates what is missing: the schema `tower_sessions`, the session table
    /// `tower_sessions.session` and the registry's tables. Idempotent, and safe
    /// when several instances run it at once.
    ///
    /// # Errors
    ///
    /// When the database cannot be reached or refuses (the role may not create tables).
    pub async fn migrate(&self) -> std::result::Result<(), sqlx::Error> {
        // `create … if not exists` run concurrently can fail on the catalogs' unique indexes;
        // the next attempt then finds what the winner created.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.migrate_once().await {
                Err(e) if attempts < 5 && lost_creation_race(&e) => {}
                result => return result,
            }
        }
    }

    async fn migrate_once(&self) -> std::result::Result<(), sqlx::Error> {
        // Several statements in one simple query: PostgreSQL runs them in one transaction.
        sqlx::raw_sql(DDL).execute(&self.pool).await?;
        sqlx::raw_sql(SESSION_INDEX_DDL).execute(&self.pool).await?;
        Ok(())
    }

    /// Deletes expired rows every [`CLEANUP_EVERY`] operations; a failure is only logged
    /// (expired rows are ignored by every query anyway).
    async fn tick(&self) {
        let n = self.ops.fetch_add(1, Ordering::Relaxed);
        if n % CLEANUP_EVERY == CLEANUP_EVERY - 1
            && let Err(error) = sqlx::raw_sql(CLEANUP).execute(&self.pool).await
        {
            tracing::warn!(%error, "deleting expired sessions and registry entries failed");
        }
    }
}

#[async_trait]
impl SessionStore for PostgresStore {
    /// Inserts the session unless a live one has its id (an expired one is replaced); a taken
    /// id is replaced by a new random one.
    async fn create(&self, record: &mut Record) -> Result<()> {
        self.tick().await;
        for _ in 0..8 {
            let (data, micros) = encode(record)?;
            let inserted: Option<bool> = sqlx::query_scalar(
                r#"insert into "tower_sessions"."session" as s (id, data, expiry_date)
                   values ($1, $2, timestamptz 'epoch' + $3 * interval '1 microsecond')
                   on conflict (id) do update
                     set data = excluded.data, expiry_date = excluded.expiry_date
                     where s.expiry_date <= now()
                   returning true"#,
            )
            .bind(record.id.to_string())
            .bind(data)
            .bind(micros)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
            if inserted.is_some() {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id found".to_owned()))
    }

    /// Updates the session only while it exists and has not expired: a session deleted
    /// (logout) or expired meanwhile, maybe by another instance, is not brought back by a
    /// request that loaded it before. (tower-sessions saves only sessions it loaded or
    /// created; an upsert would insert it again.)
    async fn save(&self, record: &Record) -> Result<()> {
        let (data, micros) = encode(record)?;
        sqlx::query(
            r#"update "tower_sessions"."session"
               set data = $2, expiry_date = timestamptz 'epoch' + $3 * interval '1 microsecond'
               where id = $1 and expiry_date > now()"#,
        )
        .bind(record.id.to_string())
        .bind(data)
        .bind(micros)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(())
    }

    /// The live row of `id`, decoded from MessagePack.
    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let data: Option<Vec<u8>> = sqlx::query_scalar(
            r#"select data from "tower_sessions"."session"
               where id = $1 and expiry_date > now()"#,
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        data.map(|bytes| rmp_serde::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    async fn delete(&self, id: &Id) -> Result<()> {
        sqlx::query(r#"delete from "tower_sessions"."session" where id = $1"#)
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait]
impl SessionRegistry for PostgresStore {
    async fn insert(&self, key: &str, ttl: Duration) -> std::result::Result<bool, RegistryError> {
        self.tick().await;
        // A row comes back when the key was inserted, or replaced because it had expired;
        // none when a live key is there (concurrent inserts wait for each other on the row).
        let row: Option<bool> = sqlx::query_scalar(
            r#"insert into "tower_sessions"."oidc_registry_key" as k (name, expires_at)
               values ($1, now() + make_interval(secs => $2))
               on conflict (name) do update set expires_at = excluded.expires_at
               where k.expires_at <= now()
               returning true"#,
        )
        .bind(key)
        .bind(seconds(ttl))
        .fetch_optional(&self.pool)
        .await
        .map_err(RegistryError::new)?;
        Ok(row.is_some())
    }

    async fn contains(&self, key: &str) -> std::result::Result<bool, RegistryError> {
        sqlx::query_scalar(
            r#"select exists (select 1 from "tower_sessions"."oidc_registry_key"
               where name = $1 and expires_at > now())"#,
        )
        .bind(key)
        .fetch_one(&self.pool)
        .await
        .map_err(RegistryError::new)
    }

    async fn remove(&self, key: &str) -> std::result::Result<(), RegistryError> {
        sqlx::query(r#"delete from "tower_sessions"."oidc_registry_key" where name = $1"#)
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(RegistryError::new)?;
        Ok(())
    }

    async fn add_member(
        &self,
        set: &str,
        member: &str,
        ttl: Duration,
    ) -> std::result::Result<(), RegistryError> {
        self.tick().await;
        // One row per set: an expired set starts again empty; a live one gets the member
        // (once) and lives at least `ttl` from now.
        sqlx::query(
            r#"insert into "tower_sessions"."oidc_registry_set" as s (name, members, expires_at)
               values ($1, array[$2::text], now() + make_interval(secs => $3))
               on conflict (name) do update set
                 members = case
                   when s.expires_at <= now() then excluded.members
                   when $2::text = any (s.members) then s.members
                   else array_append(s.members, $2::text)
                 end,
                 expires_at = case
                   when s.expires_at <= now() then excluded.expires_at
                   else greatest(s.expires_at, excluded.expires_at)
                 end"#,
        )
        .bind(set)
        .bind(member)
        .bind(seconds(ttl))
        .execute(&self.pool)
        .await
        .map_err(RegistryError::new)?;
        Ok(())
    }

    async fn take_members(&self, set: &str) -> std::result::Result<Vec<String>, RegistryError> {
        // Deleting the row returns it to exactly one taker.
        let row: Option<(Vec<String>, bool)> = sqlx::query_as(
            r#"delete from "tower_sessions"."oidc_registry_set" where name = $1
               returning members, expires_at > now()"#,
        )
        .bind(set)
        .fetch_optional(&self.pool)
        .await
        .map_err(RegistryError::new)?;
        Ok(match row {
            Some((members, true)) => members,
            _ => Vec::new(),
        })
    }
}
