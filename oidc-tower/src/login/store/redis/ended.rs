//! The ended-session marks of a [`RedisStore`](super::RedisStore), pushed to every instance.
//!
//! [`end`](EndedView::end) runs one script: it sets the mark (`oidc-registry:key:<key>`, as
//! `insert`), gives it the next number of `oidc-registry:ends:seq`, records it in two sorted
//! sets (`oidc-registry:ends:by-seq`, scored by that number, and `oidc-registry:ends:by-expiry`,
//! scored by its expiry in the server's milliseconds; expired members are pruned as ends are
//! written) and publishes `<ttl ms> <key>` on the channel `oidc-registry:ended`.
//!
//! Each instance runs one task (started by the first lookup, stopped when the last clone of
//! the store is dropped) with a subscriber connection built from the pool's configuration. It
//! subscribes, reads every live mark from `by-seq` (so nothing ended before the subscription
//! is missed), then keeps a local set of the marks (moka, each with its remaining lifetime)
//! from the messages, and every [`POLL`] reads the marks numbered after the last one it read
//! (one cheap `ZRANGEBYSCORE`), which catches a message that was lost.
//!
//! The local set answers only while it is complete: the subscriber is connected and
//! subscribed, and a poll succeeded within [`FRESH`]. Otherwise (not started yet, reconnecting,
//! Redis unreachable, or the set overflowed its bound) a lookup says "unknown" and the caller
//! asks Redis (`PTTL`). So an end is seen on every instance at once by its message, and within
//! [`POLL`] plus one round trip when the message is lost.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fred::clients::{Pool, SubscriberClient, WithOptions};
use fred::interfaces::{
    ClientLike as _, EventInterface as _, LuaInterface as _, PubsubInterface as _,
};
use fred::types::Value;
use moka::notification::RemovalCause;
use moka::sync::Cache;

use super::KEY_PREFIX;
use crate::login::registry::RegistryError;

/// The channel ends are published on.
const CHANNEL: &str = "oidc-registry:ended";
/// The counter numbering the ends.
const SEQ: &str = "oidc-registry:ends:seq";
/// The recent ends, scored by their number.
const BY_SEQ: &str = "oidc-registry:ends:by-seq";
/// The same, scored by their expiry (server milliseconds), for pruning.
const BY_EXPIRY: &str = "oidc-registry:ends:by-expiry";

/// How often the task reads the ends it may have missed.
pub(crate) const POLL: Duration = Duration::from_millis(250);
/// How long after a successful poll the local set is trusted.
pub(crate) const FRESH: Duration = Duration::from_millis(750);
/// At most this many marks are held locally; beyond, lookups ask Redis.
const CAPACITY: u64 = 1_000_000;
/// Marks read per poll round trip.
const BATCH: usize = 1000;

/// KEYS: mark, by-seq, by-expiry, seq. ARGV: ttl ms, channel, key. Returns 1 when the mark was
/// set by this call.
const END_SCRIPT: &str = r#"
local set = redis.call('SET', KEYS[1], '1', 'PX', ARGV[1], 'NX')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 64)
for _, m in ipairs(old) do
  redis.call('ZREM', KEYS[2], m)
  redis.call('ZREM', KEYS[3], m)
end
local seq = redis.call('INCR', KEYS[4])
redis.call('ZADD', KEYS[2], seq, ARGV[3])
redis.call('ZADD', KEYS[3], 'GT', now + tonumber(ARGV[1]), ARGV[3])
redis.call('ZADD', KEYS[3], 'NX', now + tonumber(ARGV[1]), ARGV[3])
redis.call('PUBLISH', ARGV[2], ARGV[1] .. ' ' .. ARGV[3])
if set then return 1 else return 0 end
"#;

/// KEYS: by-seq, by-expiry. ARGV: last number read, batch size. Returns the highest number
/// read (or ARGV[1]), then each live mark numbered after ARGV[1] and its milliseconds left.
const POLL_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local new = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = { ARGV[1] }
for i = 1, #new, 2 do
  out[1] = new[i + 1]
  local exp = redis.call('ZSCORE', KEYS[2], new[i])
  if exp and tonumber(exp) > now then
    out[#out + 1] = new[i]
    out[#out + 1] = tostring(tonumber(exp) - now)
  end
end
return out
"#;

/// This instance's view of the marks; clones share it.
#[derive(Clone)]
pub(crate) struct EndedView {
    shared: Arc<Shared>,
    /// Stops the task when the last clone of the store goes.
    _task: Arc<Task>,
}

impl std::fmt::Debug for EndedView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndedView")
            .field("marks", &self.shared.marks.entry_count())
            .field("live", &self.shared.live())
            .finish()
    }
}

struct Shared {
    /// Mark → when it expires.
    marks: Cache<String, Instant>,
    /// Set when a mark was dropped for room: the set is no longer complete.
    overflowed: Arc<AtomicBool>,
    /// Whether the subscriber is connected, subscribed and caught up.
    subscribed: AtomicBool,
    /// Until when (milliseconds since `epoch`) the set is trusted.
    fresh_until: AtomicU64,
    epoch: Instant,
}

impl Shared {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn live(&self) -> bool {
        self.subscribed.load(Ordering::Acquire)
            && !self.overflowed.load(Ordering::Acquire)
            && self.now_ms() < self.fresh_until.load(Ordering::Acquire)
    }

    fn insert(&self, key: &str, ttl: Duration) {
        let until = Instant::now() + ttl;
        let current = self.marks.get(key);
        if current.is_none_or(|c| c < until) {
            self.marks.insert(key.to_owned(), until);
        }
    }

    fn set_down(&self) {
        self.subscribed.store(false, Ordering::Release);
        self.fresh_until.store(0, Ordering::Release);
    }
}

/// Each mark lives locally as long as it lives in Redis.
struct UntilExpiry;

impl moka::Expiry<String, Instant> for UntilExpiry {
    fn expire_after_create(&self, _: &String, until: &Instant, now: Instant) -> Option<Duration> {
        Some(until.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        until: &Instant,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(until.saturating_duration_since(now))
    }
}

/// The subscriber task, started once.
struct Task {
    pool: Pool,
    started: AtomicBool,
    handle: std::sync::Mutex<Option<(tokio::task::JoinHandle<()>, SubscriberClient)>>,
}

impl Drop for Task {
    fn drop(&mut self) {
        let taken = self
            .handle
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some((handle, subscriber)) = taken {
            handle.abort();
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = subscriber.quit().await;
                });
            }
        }
    }
}

impl EndedView {
    pub(crate) fn new(pool: &Pool) -> Self {
        let overflowed = Arc::new(AtomicBool::new(false));
        let flag = overflowed.clone();
        let marks = Cache::builder()
            .max_capacity(CAPACITY)
            .expire_after(UntilExpiry)
            .eviction_listener(move |_, _, cause| {
                if cause == RemovalCause::Size {
                    flag.store(true, Ordering::Release);
                }
            })
            .build();
        Self {
            shared: Arc::new(Shared {
                marks,
                overflowed,
                subscribed: AtomicBool::new(false),
                fresh_until: AtomicU64::new(0),
                epoch: Instant::now(),
            }),
            _task: Arc::new(Task {
                pool: pool.clone(),
                started: AtomicBool::new(false),
                handle: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Whether `key` is ended, when this instance knows for sure; `None`: ask Redis.
    pub(crate) fn lookup(&self, key: &str) -> Option<bool> {
        self.start();
        if self
            .shared
            .marks
            .get(key)
            .is_some_and(|until| until > Instant::now())
        {
            return Some(true);
        }
        self.shared.live().then_some(false)
    }

    /// Notes that `key` was found ended in Redis, with `ttl` left.
    pub(crate) fn remember(&self, key: &str, ttl: Duration) {
        self.shared.insert(key, ttl);
    }

    /// Ends `key` for `ttl_ms` (see the module docs).
    pub(crate) async fn end(
        &self,
        client: &WithOptions<Pool>,
        key: &str,
        ttl_ms: i64,
    ) -> Result<(), RegistryError> {
        let _: i64 = client
            .eval(
                END_SCRIPT,
                vec![
                    format!("{KEY_PREFIX}{key}"),
                    BY_SEQ.to_owned(),
                    BY_EXPIRY.to_owned(),
                    SEQ.to_owned(),
                ],
                vec![ttl_ms.to_string(), CHANNEL.to_owned(), key.to_owned()],
            )
            .await
            .map_err(RegistryError::new)?;
        // Seen here at once, whatever the subscription does.
        self.shared.insert(
            key,
            Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
        );
        Ok(())
    }

    /// Starts the task on the first call made inside a tokio runtime.
    fn start(&self) {
        let task = &self._task;
        if task.started.load(Ordering::Acquire) || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        if task.started.swap(true, Ordering::AcqRel) {
            return;
        }
        let pool = &task.pool;
        let client = pool.next();
        let subscriber = SubscriberClient::new(
            client.client_config(),
            Some(client.perf_config()),
            Some(client.connection_config().clone()),
            client.client_reconnect_policy(),
        );
        let handle = tokio::spawn(run(self.shared.clone(), subscriber.clone(), pool.clone()));
        *task
            .handle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((handle, subscriber));
    }
}

/// `<ttl ms> <key>`.
fn parse_message(value: &Value) -> Option<(String, Duration)> {
    let text = value.as_str()?;
    let (ttl, key) = text.split_once(' ')?;
    Some((key.to_owned(), Duration::from_millis(ttl.parse().ok()?)))
}

/// Reads the marks numbered after `*last` into `shared`, until none is left.
async fn poll(shared: &Shared, pool: &Pool, last: &mut String) -> Result<(), fred::error::Error> {
    loop {
        let out: Vec<String> = pool
            .eval(
                POLL_SCRIPT,
                vec![BY_SEQ.to_owned(), BY_EXPIRY.to_owned()],
                vec![last.clone(), BATCH.to_string()],
            )
            .await?;
        let mut items = out.into_iter();
        let Some(highest) = items.next() else {
            return Ok(());
        };
        let moved = highest != *last;
        *last = highest;
        while let (Some(key), Some(left)) = (items.next(), items.next()) {
            if let Ok(ms) = left.parse::<u64>() {
                shared.insert(&key, Duration::from_millis(ms));
            }
        }
        // A full batch may leave more behind: read on until nothing new comes back.
        if !moved {
            return Ok(());
        }
    }
}

/// The subscriber task.
async fn run(shared: Arc<Shared>, subscriber: SubscriberClient, pool: Pool) {
    let mut messages = subscriber.message_rx();
    let mut reconnects = subscriber.reconnect_rx();
    let mut errors = subscriber.error_rx();
    let _connection = subscriber.init().await;
    let mut last = "-inf".to_owned();
    let mut ticks = tokio::time::interval(POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Subscribe (again) at the next tick.
    let mut need_subscribe = true;
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => {
                    if let Some((key, ttl)) = parse_message(&message.value) {
                        shared.insert(&key, ttl);
                    }
                }
                // Lagged: messages were dropped locally; the poll catches them.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    shared.set_down();
                    return;
                }
            },
            _ = reconnects.recv() => {
                shared.set_down();
                need_subscribe = true;
            }
            _ = errors.recv() => {
                shared.set_down();
                need_subscribe = true;
            }
            _ = ticks.tick() => {
                if !subscriber.is_connected() {
                    shared.set_down();
                    need_subscribe = true;
                    continue;
                }
                if need_subscribe {
                    if let Err(error) = subscriber.subscribe(CHANNEL).await {
                        tracing::warn!(%error, "subscribing to ended sessions failed");
                        continue;
                    }
                    need_subscribe = false;
                }
                let started = shared.now_ms();
                match poll(&shared, &pool, &mut last).await {
                    Ok(()) => {
                        let fresh = u64::try_from(FRESH.as_millis()).unwrap_or(0);
                        shared.fresh_until.store(started.saturating_add(fresh), Ordering::Release);
                        shared.subscribed.store(subscriber.is_connected(), Ordering::Release);
                    }
                    Err(error) => {
                        tracing::warn!(%error, "reading ended sessions failed");
                        shared.set_down();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn messages_name_the_key_and_its_lifetime() {
        assert_eq!(
            parse_message(&Value::from("1500 app:1:a:oidc:ended:x")),
            Some((
                "app:1:a:oidc:ended:x".to_owned(),
                Duration::from_millis(1500)
            ))
        );
        assert_eq!(parse_message(&Value::from("x oidc:ended:x")), None);
        assert_eq!(parse_message(&Value::from("oidc:ended:x")), None);
    }

    #[tokio::test]
    async fn marks_expire_and_an_unsubscribed_view_does_not_answer() {
        let pool = fred::types::Builder::default_centralized()
            .build_pool(1)
            .unwrap();
        let view = EndedView::new(&pool);
        // No subscriber task in this test (it would connect to a default address).
        view._task.started.store(true, Ordering::Release);
        view.remember("a", Duration::from_millis(50));
        assert_eq!(view.lookup("a"), Some(true));
        assert_eq!(view.lookup("b"), None, "not subscribed: ask Redis");
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert_eq!(view.lookup("a"), None, "expired marks are forgotten");
        // Live: a miss is an answer; an overflow makes it unknown again.
        view.shared.subscribed.store(true, Ordering::Release);
        view.shared
            .fresh_until
            .store(view.shared.now_ms() + 10_000, Ordering::Release);
        assert_eq!(view.lookup("b"), Some(false));
        view.shared.overflowed.store(true, Ordering::Release);
        assert_eq!(view.lookup("b"), None);
        view.shared.overflowed.store(false, Ordering::Release);
        view.shared.fresh_until.store(0, Ordering::Release);
        assert_eq!(view.lookup("b"), None, "a stale poll makes it unknown");
    }
}
