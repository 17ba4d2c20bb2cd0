//! The default session store: in process, bounded in size, rid of what expired.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use moka::ops::compute::Op;
use moka::sync::Cache;
use tower_sessions::SessionStore;
use tower_sessions::cookie::time::OffsetDateTime;
use tower_sessions::session::{Id, Record};
use tower_sessions::session_store::Result;

/// Sessions kept in the process, at most a given number, each dropped at its expiry date: the
/// store a [`LoginLayer`](crate::login::LoginLayer) uses unless given another.
///
/// tower-sessions' own `MemoryStore` keeps every record it was given, expired or not, for as
/// long as the process runs: a stream of browsers without cookies, each one starting a login
/// (the transaction is a session), would grow it without bound (case DOS-03). This store
/// forgets a session at its expiry date and holds at most
/// [`DEFAULT_MAX_SESSIONS`](Self::DEFAULT_MAX_SESSIONS) sessions (or the number given to
/// [`with_max_sessions`](Self::with_max_sessions)).
///
/// When it is full, a new session is kept only if it is used more often than the one it
/// would replace (moka's TinyLFU admission): sessions in use survive a flood of one-off
/// sessions, and a login started during such a flood may fail at the callback (its
/// transaction was not kept) and be started again. The login layer gives a session that
/// holds only pending logins the transaction lifetime (10 minutes by default), not the idle
/// timeout.
///
/// Saving a session that was deleted (logout) or that expired does not bring it back, as with
/// the shared stores of this module. Sessions are lost when the process ends; several
/// instances need a shared store.
///
/// ```
/// use oidc_tower::login::store::MemoryStore;
///
/// let store = MemoryStore::with_max_sessions(50_000);
/// assert_eq!(store.session_count(), 0);
/// ```
#[derive(Clone, Debug)]
pub struct MemoryStore {
    records: Cache<Id, Record>,
}

impl MemoryStore {
    /// How many sessions [`MemoryStore::default`] holds at most.
    pub const DEFAULT_MAX_SESSIONS: u64 = 100_000;

    /// A store holding at most `max` sessions (at least one).
    pub fn with_max_sessions(max: u64) -> Self {
        Self {
            records: Cache::builder()
                .max_capacity(max.max(1))
                .expire_after(UntilExpiryDate)
                .build(),
        }
    }

    /// How many sessions the store holds: an estimate that lags behind the latest changes by
    /// moments (expired and evicted sessions are counted until the cache's upkeep runs).
    pub fn session_count(&self) -> u64 {
        self.records.run_pending_tasks();
        self.records.entry_count()
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_max_sessions(Self::DEFAULT_MAX_SESSIONS)
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn create(&self, record: &mut Record) -> Result<()> {
        loop {
            let entry = self
                .records
                .entry(record.id)
                .or_insert_with(|| record.clone());
            if entry.is_fresh() {
                return Ok(());
            }
            // The id is taken: another one (128 random bits, so this practically never loops).
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> Result<()> {
        self.records
            .entry(record.id)
            .and_compute_with(|live| match live {
                Some(_) => Op::Put(record.clone()),
                None => Op::Nop,
            });
        Ok(())
    }

    async fn load(&self, session_id: &Id) -> Result<Option<Record>> {
        // moka no longer returns an entry past its expiry; the date is checked again for an
        // entry saved with an expiry date already past.
        Ok(self
            .records
            .get(session_id)
            .filter(|record| record.expiry_date > OffsetDateTime::now_utc()))
    }

    async fn delete(&self, session_id: &Id) -> Result<()> {
        self.records.invalidate(session_id);
        Ok(())
    }
}

/// Each record lives in the cache until its expiry date.
struct UntilExpiryDate;

impl UntilExpiryDate {
    fn remaining(record: &Record) -> Duration {
        Duration::try_from(record.expiry_date - OffsetDateTime::now_utc()).unwrap_or_default()
    }
}

impl moka::Expiry<Id, Record> for UntilExpiryDate {
    fn expire_after_create(&self, _: &Id, record: &Record, _: Instant) -> Option<Duration> {
        Some(Self::remaining(record))
    }

    fn expire_after_update(
        &self,
        _: &Id,
        record: &Record,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(Self::remaining(record))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tower_sessions::cookie::time;

    use super::*;

    fn record(lifetime: time::Duration) -> Record {
        Record {
            id: Id::default(),
            data: HashMap::from([("k".to_owned(), serde_json::json!("v"))]),
            expiry_date: OffsetDateTime::now_utc() + lifetime,
        }
    }

    #[tokio::test]
    async fn round_trip_and_delete() {
        let store = MemoryStore::default();
        let mut r = record(time::Duration::minutes(5));
        store.create(&mut r).await.unwrap();
        assert_eq!(store.load(&r.id).await.unwrap().unwrap().data, r.data);
        r.data.insert("k".to_owned(), serde_json::json!("w"));
        store.save(&r).await.unwrap();
        assert_eq!(store.load(&r.id).await.unwrap().unwrap().data["k"], "w");
        store.delete(&r.id).await.unwrap();
        assert!(store.load(&r.id).await.unwrap().is_none());
        assert_eq!(store.session_count(), 0);
    }

    #[tokio::test]
    async fn save_never_brings_back_a_deleted_session() {
        let store = MemoryStore::default();
        let mut r = record(time::Duration::minutes(5));
        store.create(&mut r).await.unwrap();
        store.delete(&r.id).await.unwrap();
        store.save(&r).await.unwrap();
        assert!(store.load(&r.id).await.unwrap().is_none());
        // Nor one it never had.
        let stranger = record(time::Duration::minutes(5));
        store.save(&stranger).await.unwrap();
        assert!(store.load(&stranger.id).await.unwrap().is_none());
        assert_eq!(store.session_count(), 0);
    }

    #[tokio::test]
    async fn create_with_a_taken_id_picks_another() {
        let store = MemoryStore::default();
        let mut first = record(time::Duration::minutes(5));
        store.create(&mut first).await.unwrap();
        let mut second = record(time::Duration::minutes(5));
        second.id = first.id;
        second
            .data
            .insert("k".to_owned(), serde_json::json!("second"));
        store.create(&mut second).await.unwrap();
        assert_ne!(second.id, first.id);
        assert_eq!(store.load(&first.id).await.unwrap().unwrap().data["k"], "v");
        assert_eq!(
            store.load(&second.id).await.unwrap().unwrap().data["k"],
            "second"
        );
    }

    #[tokio::test]
    async fn dos_03_expired_sessions_are_dropped() {
        let store = MemoryStore::default();
        let mut past = record(time::Duration::seconds(-1));
        store.create(&mut past).await.unwrap();
        assert!(store.load(&past.id).await.unwrap().is_none());
        let mut short = record(time::Duration::milliseconds(300));
        store.create(&mut short).await.unwrap();
        let mut long = record(time::Duration::minutes(5));
        store.create(&mut long).await.unwrap();
        assert!(store.load(&short.id).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(store.load(&short.id).await.unwrap().is_none());
        assert!(store.load(&long.id).await.unwrap().is_some());
        // Gone from memory, not only hidden (moka's timer wheel purges within seconds).
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.session_count() > 1 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(store.session_count(), 1);
        // A later save (an expiry date pushed forward) does not bring it back either.
        short.expiry_date = OffsetDateTime::now_utc() + time::Duration::minutes(5);
        store.save(&short).await.unwrap();
        assert!(store.load(&short.id).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn dos_03_a_flood_is_bounded_and_sessions_in_use_survive_it() {
        let store = MemoryStore::with_max_sessions(100);
        let mut in_use = Vec::new();
        for _ in 0..50 {
            let mut r = record(time::Duration::minutes(30));
            store.create(&mut r).await.unwrap();
            in_use.push(r.id);
        }
        // Sessions in use are read on every request.
        for _ in 0..5 {
            for id in &in_use {
                assert!(store.load(id).await.unwrap().is_some());
            }
            store.records.run_pending_tasks();
        }
        // 10 000 one-off sessions (login starts without cookies) while the sessions in use go
        // on being read, a request each per 100 one-offs.
        for round in 0..100 {
            for _ in 0..100 {
                let mut r = record(time::Duration::minutes(10));
                store.create(&mut r).await.unwrap();
            }
            for id in &in_use {
                assert!(
                    store.load(id).await.unwrap().is_some(),
                    "{id} evicted in round {round}"
                );
            }
        }
        let count = store.session_count();
        assert!(count <= 100, "{count} sessions held for a capacity of 100");
        for id in &in_use {
            assert!(store.load(id).await.unwrap().is_some(), "{id} evicted");
        }
    }
}
