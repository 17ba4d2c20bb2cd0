//! What instances of an app share besides the sessions themselves: which sessions belong to
//! a provider session (`sid`) or a user (`sub`), which sessions were ended by back-channel
//! logout, which logout tokens were already used, and who is refreshing a session's tokens.
//!
//! [`MemoryRegistry`] (the default) is right for one instance. Several instances behind one
//! session store need a registry they share: the Redis and PostgreSQL stores of this crate
//! (features `redis` and `postgres`) are registries too; see
//! [`LoginLayer::with_shared_store`](super::LoginLayer::with_shared_store).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;

/// A registry failure (the backend could not be reached or answered wrongly).
#[derive(Debug, Clone)]
pub struct RegistryError(Arc<dyn std::error::Error + Send + Sync>);

impl RegistryError {
    /// Wraps the backend's error.
    pub fn new(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self(Arc::new(source))
    }
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "session registry failed: {}", self.0)
    }
}

impl std::error::Error for RegistryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// Keys with a lifetime, and sets of members, shared by the instances of an app.
///
/// Keys and members are short ASCII strings chosen by the login layer (prefixed `oidc:`).
/// Every operation must be atomic on its own; none needs to be atomic with another.
#[async_trait]
pub trait SessionRegistry: std::fmt::Debug + Send + Sync + 'static {
    /// Sets `key` for `ttl` unless it is set (and not expired). Returns whether it was set by
    /// this call: the primitive behind "once only" and "one at a time".
    async fn insert(&self, key: &str, ttl: Duration) -> Result<bool, RegistryError>;

    /// Whether `key` is set and not expired.
    async fn contains(&self, key: &str) -> Result<bool, RegistryError>;

    /// Unsets `key` (no error when it is not set).
    async fn remove(&self, key: &str) -> Result<(), RegistryError>;

    /// Adds `member` to the set `set`, which lives at least `ttl` from now.
    async fn add_member(&self, set: &str, member: &str, ttl: Duration)
    -> Result<(), RegistryError>;

    /// Removes the set `set` and returns its members (empty when there is none).
    async fn take_members(&self, set: &str) -> Result<Vec<String>, RegistryError>;

    /// Sets the ended-session mark `key` for `ttl`: the session (or provider session) it names
    /// was ended, on whichever instance, and no instance may use it again.
    ///
    /// The default [`insert`](Self::insert)s the key. A registry that keeps a local view of
    /// the marks on each instance (as [`RedisStore`](crate::login::store::RedisStore) does)
    /// also tells the other instances here.
    async fn end(&self, key: &str, ttl: Duration) -> Result<(), RegistryError> {
        self.insert(key, ttl).await.map(|_| ())
    }

    /// Whether the ended-session mark `key` is set ([`end`](Self::end)), asked on every
    /// request that uses a session.
    ///
    /// The default asks [`contains`](Self::contains). An override may answer from a local
    /// view, but must see an `end` made on any instance within a bound it documents, and must
    /// ask the backend whenever its view may be incomplete (never "not ended" by default).
    async fn is_ended(&self, key: &str) -> Result<bool, RegistryError> {
        self.contains(key).await
    }
}

/// The in-process registry: right when a single instance serves the app.
///
/// Expired entries are dropped as the registry is used; its size is bounded by the number of
/// live sessions and logout tokens seen within their lifetime.
#[derive(Debug, Clone, Default)]
pub struct MemoryRegistry {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Debug, Default)]
struct Entries {
    keys: HashMap<String, Instant>,
    sets: HashMap<String, (Instant, HashSet<String>)>,
    ops: u32,
}

impl Entries {
    /// Every 1 024 operations, drops what expired.
    fn sweep(&mut self, now: Instant) {
        self.ops = self.ops.wrapping_add(1);
        if self.ops.is_multiple_of(1024) {
            self.keys.retain(|_, until| *until > now);
            self.sets.retain(|_, (until, _)| *until > now);
        }
    }
}

impl MemoryRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic while holding the lock cannot leave the maps inconsistent (every operation
        // is a single map call), so a poisoned lock is used as is.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionRegistry for MemoryRegistry {
    async fn insert(&self, key: &str, ttl: Duration) -> Result<bool, RegistryError> {
        let now = Instant::now();
        let mut entries = self.entries();
        entries.sweep(now);
        let until = now + ttl;
        match entries.keys.get_mut(key) {
            Some(existing) if *existing > now => Ok(false),
            Some(existing) => {
                *existing = until;
                Ok(true)
            }
            None => {
                entries.keys.insert(key.to_owned(), until);
                Ok(true)
            }
        }
    }

    async fn contains(&self, key: &str) -> Result<bool, RegistryError> {
        let now = Instant::now();
        Ok(self
            .entries()
            .keys
            .get(key)
            .is_some_and(|until| *until > now))
    }

    async fn remove(&self, key: &str) -> Result<(), RegistryError> {
        self.entries().keys.remove(key);
        Ok(())
    }

    async fn add_member(
        &self,
        set: &str,
        member: &str,
        ttl: Duration,
    ) -> Result<(), RegistryError> {
        let now = Instant::now();
        let mut entries = self.entries();
        entries.sweep(now);
        let until = now + ttl;
        let entry = entries
            .sets
            .entry(set.to_owned())
            .or_insert_with(|| (until, HashSet::new()));
        if entry.0 <= now {
            entry.1.clear();
        }
        entry.0 = entry.0.max(until);
        entry.1.insert(member.to_owned());
        Ok(())
    }

    async fn take_members(&self, set: &str) -> Result<Vec<String>, RegistryError> {
        let now = Instant::now();
        Ok(match self.entries().sets.remove(set) {
            Some((until, members)) if until > now => members.into_iter().collect(),
            _ => Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn insert_is_once_until_expiry_or_removal() {
        let r = MemoryRegistry::new();
        assert!(r.insert("a", Duration::from_millis(50)).await.unwrap());
        assert!(!r.insert("a", Duration::from_secs(60)).await.unwrap());
        assert!(r.contains("a").await.unwrap());
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(!r.contains("a").await.unwrap());
        assert!(r.insert("a", Duration::from_secs(60)).await.unwrap());
        r.remove("a").await.unwrap();
        assert!(!r.contains("a").await.unwrap());
        assert!(r.insert("a", Duration::from_secs(60)).await.unwrap());
    }

    #[tokio::test]
    async fn sets_collect_members_until_taken() {
        let r = MemoryRegistry::new();
        r.add_member("s", "1", Duration::from_secs(60))
            .await
            .unwrap();
        r.add_member("s", "2", Duration::from_secs(60))
            .await
            .unwrap();
        r.add_member("s", "2", Duration::from_secs(60))
            .await
            .unwrap();
        let mut got = r.take_members("s").await.unwrap();
        got.sort();
        assert_eq!(got, ["1", "2"]);
        assert!(r.take_members("s").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn expired_sets_are_empty() {
        let r = MemoryRegistry::new();
        r.add_member("s", "1", Duration::from_millis(20))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        assert!(r.take_members("s").await.unwrap().is_empty());
    }
}
