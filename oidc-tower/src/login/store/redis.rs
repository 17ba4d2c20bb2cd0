//! [`RedisStore`]: sessions and the session registry in Redis.

use std::time::Duration;

use async_trait::async_trait;
use fred::clients::{Pool, WithOptions};
use fred::interfaces::{
    ClientLike as _, KeysInterface as _, SetsInterface as _, TransactionInterface as _,
};
use fred::types::config::Options;
use fred::types::{Expiration, ExpireOptions, SetOptions};
use tower_sessions::SessionStore;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::{Error, Result};

use self::ended::EndedView;
use crate::login::registry::{RegistryError, SessionRegistry};

mod ended;

/// Where the registry's keys live in Redis: `oidc-registry:key:` + the key.
const KEY_PREFIX: &str = "oidc-registry:key:";
/// Where the registry's sets live in Redis: `oidc-registry:set:` + the set's name.
const SET_PREFIX: &str = "oidc-registry:set:";

/// Sessions in Redis, shared by every instance of an app, and the [`SessionRegistry`] that
/// coordinates them; give it to
/// [`LoginLayer::with_shared_store`](crate::login::LoginLayer::with_shared_store).
///
/// Sessions are stored as tower-sessions-redis-store stored them (one MessagePack value per
/// session, under the session id, expiring with the session); the registry uses single atomic
/// commands. Ended-session marks ([`SessionRegistry::end`]) are also published to every
/// instance, which answers [`SessionRegistry::is_ended`] from memory while its subscription
/// is up. See the [module docs](super) for what is stored and how.
///
/// Requires Redis 7.0 or later (or Valkey), for `PEXPIRE … NX|GT`. Cheap to clone (the pool
/// is shared).
///
/// ```no_run
/// use oidc_tower::login::store::RedisStore;
/// use oidc_tower::login::store::fred::prelude::*;
///
/// # async fn demo() -> Result<(), Error> {
/// let config = Config::from_url("redis://127.0.0.1:6379/0")?;
/// let pool = Builder::from_config(config).build_pool(4)?;
/// pool.init().await?;
/// let store = RedisStore::new(pool);
/// # let _ = store;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    /// For commands that may be sent again after a lost connection (idempotent ones).
    retrying: WithOptions<Pool>,
    /// For the others: sent at most once, so that an error never hides a success.
    once: WithOptions<Pool>,
    /// This instance's view of the ended-session marks (shared by clones).
    ended: EndedView,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("pool_size", &self.retrying.size())
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on `pool`, which you configure and connect (`pool.init()`) before use.
    ///
    /// Every command is sent with fred's `fail_fast`: while the connection is down, commands
    /// fail at once (the login layer answers 503) instead of waiting in fred's queue, from
    /// which a command whose caller already got a timeout could still be applied later.
    /// Commands that are not idempotent (`SET … NX`, the `MULTI` of `take_members`) are also
    /// written at most once. Set the pool's command timeout
    /// (`PerformanceConfig::default_command_timeout`) to bound how long a command may wait for
    /// a server that does not answer, and its reconnect policy.
    pub fn new(pool: Pool) -> Self {
        let retrying = pool.with_options(&Options {
            fail_fast: true,
            ..Options::default()
        });
        let once = pool.with_options(&Options {
            fail_fast: true,
            max_attempts: Some(1),
            ..Options::default()
        });
        Self {
            ended: EndedView::new(&pool),
            retrying,
            once,
        }
    }

    /// The pool.
    pub fn pool(&self) -> &Pool {
        &self.retrying
    }

    /// `SET <id> <record> PXAT <expiry> NX|XX`: whether the value was set.
    async fn set(&self, record: &Record, options: SetOptions) -> Result<bool> {
        let value = rmp_serde::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        let expiry =
            i64::try_from(record.expiry_date.unix_timestamp_nanos() / 1_000_000).unwrap_or(1);
        let client = match options {
            SetOptions::NX => &self.once,
            SetOptions::XX => &self.retrying,
        };
        // "OK" when set, nil when not.
        let set: Option<String> = client
            .set(
                record.id.to_string(),
                value.as_slice(),
                Some(Expiration::PXAT(expiry.max(1))),
                Some(options),
                false,
            )
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        Ok(set.is_some())
    }
}

/// `ttl` in milliseconds for `PX`/`PEXPIRE`: at least 1 (0 is refused by Redis), at most
/// 100 years (beyond, Redis refuses the expiry as overflowing).
fn millis(ttl: Duration) -> i64 {
    const MAX: i64 = 100 * 365 * 24 * 3600 * 1000;
    i64::try_from(ttl.as_millis()).unwrap_or(MAX).clamp(1, MAX)
}

#[async_trait]
impl SessionStore for RedisStore {
    /// `SET … NX`; a taken id is replaced by a new random one.
    async fn create(&self, record: &mut Record) -> Result<()> {
        for _ in 0..8 {
            if self.set(record, SetOptions::NX).await? {
                return Ok(());
            }
            record.id = Id::default();
        }
        Err(Error::Backend("no free session id found".to_owned()))
    }

    /// `SET … XX`: a session deleted (logout) or expired meanwhile, maybe by another
    /// instance, is not brought back.
    async fn save(&self, record: &Record) -> Result<()> {
        self.set(record, SetOptions::XX).await.map(|_| ())
    }

    /// `GET <id>`, decoded from MessagePack.
    async fn load(&self, id: &Id) -> Result<Option<Record>> {
        let value: Option<Vec<u8>> = self
            .retrying
            .get(id.to_string())
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        value
            .map(|bytes| rmp_serde::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string())))
            .transpose()
    }

    /// `DEL <id>`.
    async fn delete(&self, id: &Id) -> Result<()> {
        let _: i64 = self
            .retrying
            .del(id.to_string())
            .await
            .map_err(|e| Error::Backend(e.to_string()))?;
        Ok(())
    }
}

#[async_trait]
impl SessionRegistry for RedisStore {
    async fn insert(&self, key: &str, ttl: Duration) -> std::result::Result<bool, RegistryError> {
        // SET key 1 PX ttl NX: "OK" when set, nil when the key exists.
        let set: Option<String> = self
            .once
            .set(
                format!("{KEY_PREFIX}{key}"),
                1,
                Some(Expiration::PX(millis(ttl))),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(RegistryError::new)?;
        Ok(set.is_some())
    }

    async fn contains(&self, key: &str) -> std::result::Result<bool, RegistryError> {
        let found: i64 = self
            .retrying
            .exists(format!("{KEY_PREFIX}{key}"))
            .await
            .map_err(RegistryError::new)?;
        Ok(found > 0)
    }

    /// Sets the mark `key` (as [`insert`](SessionRegistry::insert)), records it in the list
    /// of recent ends and publishes it to every instance, in one script.
    async fn end(&self, key: &str, ttl: Duration) -> std::result::Result<(), RegistryError> {
        self.ended.end(&self.once, key, millis(ttl)).await
    }

    /// From this instance's view of the marks while its subscription is up and its poll
    /// succeeds; otherwise `EXISTS`, as [`contains`](SessionRegistry::contains).
    async fn is_ended(&self, key: &str) -> std::result::Result<bool, RegistryError> {
        if let Some(known) = self.ended.lookup(key) {
            return Ok(known);
        }
        // PTTL: -2 when the key does not exist, -1 without expiry, else milliseconds left.
        let left: i64 = self
            .retrying
            .pttl(format!("{KEY_PREFIX}{key}"))
            .await
            .map_err(RegistryError::new)?;
        if left == -2 {
            return Ok(false);
        }
        let left = u64::try_from(left).unwrap_or(60_000);
        self.ended.remember(key, Duration::from_millis(left));
        Ok(true)
    }

    async fn remove(&self, key: &str) -> std::result::Result<(), RegistryError> {
        let _: i64 = self
            .retrying
            .del(format!("{KEY_PREFIX}{key}"))
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
        // MULTI; SADD; PEXPIRE NX (a new set gets the ttl); PEXPIRE GT (an existing one only
        // lives longer); EXEC. The commands are queued locally and sent at `exec`.
        let name = format!("{SET_PREFIX}{set}");
        let ms = millis(ttl);
        // Idempotent: may be sent again. The transaction takes its first command's options.
        let tx = self.retrying.multi();
        let () = tx
            .with_options(&Options {
                fail_fast: true,
                ..Options::default()
            })
            .sadd(name.as_str(), member)
            .await
            .map_err(RegistryError::new)?;
        let () = tx
            .pexpire(name.as_str(), ms, Some(ExpireOptions::NX))
            .await
            .map_err(RegistryError::new)?;
        let () = tx
            .pexpire(name.as_str(), ms, Some(ExpireOptions::GT))
            .await
            .map_err(RegistryError::new)?;
        let _: (i64, i64, i64) = tx.exec(true).await.map_err(RegistryError::new)?;
        Ok(())
    }

    async fn take_members(&self, set: &str) -> std::result::Result<Vec<String>, RegistryError> {
        // MULTI; SMEMBERS; DEL; EXEC: no member is read by two takers, none is lost.
        let name = format!("{SET_PREFIX}{set}");
        // Sent at most once: a resent transaction would find the set already deleted.
        let tx = self.once.multi();
        let () = tx
            .with_options(&Options {
                fail_fast: true,
                max_attempts: Some(1),
                ..Options::default()
            })
            .smembers(name.as_str())
            .await
            .map_err(RegistryError::new)?;
        let () = tx.del(name.as_str()).await.map_err(RegistryError::new)?;
        let (members, _): (Vec<String>, i64) = tx.exec(true).await.map_err(RegistryError::new)?;
        Ok(members)
    }
}
