//! The JWKS cache: the provider's signing keys, by `kid`, shared by every verifier of a
//! [`Provider`](crate::Provider).
//!
//! The cache owns the keys from end to end: it fetches the key set, parses it, decides when to
//! fetch again, and answers the lookups of token verification (by `kid`, or the single key
//! that fits the token's algorithm when it has no `kid`). The provider only tells it where the
//! set is (its `jwks_uri`, configured or discovered on first need) and lends it its
//! [HTTP client](crate::http).
//!
//! # Fetching
//!
//! - One `GET` of the `jwks_uri` with `Accept: application/jwk-set+json, application/json`,
//!   through the provider's [`HttpClient`] (timeouts, no redirects).
//! - Only a `200` answer is a key set; any other status, a redirect included, is a failed fetch
//!   ([`JwksError::Status`]).
//! - A body over 512 KiB is refused before it is parsed, whatever the HTTP client's own limit
//!   (DOS-04); at most 64 keys are read from a set.
//! - The document must be a JSON object with a `keys` array; `Cache-Control: max-age` sets
//!   the refresh interval (below).
//!
//! # Behaviour
//!
//! - Keys are parsed once, when a key set is loaded, and stored by `kid` in a moka cache; the
//!   request path does one lock-free lookup.
//! - The set is refreshed after the interval the provider's `Cache-Control: max-age` asks for,
//!   clamped to bounds (default 1 min to 1 h; 15 min without the header). A due refresh runs in
//!   the background: requests keep using the current keys meanwhile.
//! - A token with an unknown `kid` forces one refetch, at most once per cooldown (default 30 s),
//!   also when the cached set is empty. The cooldown counts from the last *forced* refetch, so
//!   the first token signed with a freshly rotated key is accepted at once (KEY-03), and it is
//!   tracked by time, not by the contents of the set, so random `kid`s cannot cause a refetch
//!   storm (KEY-04). A request that has just loaded the set itself does not force another.
//! - Refreshes are single-flight: any number of concurrent callers share one fetch (moka's
//!   coalescing `try_get_with`). No lock is held while the fetch is under way.
//! - Failed fetches are retried with exponential backoff (1 s doubling to 60 s). While the
//!   provider is down, the last good keys keep working for at most the maximum staleness
//!   (default 24 h), after which they expire and requests fail closed.
//! - A key that is unusable (unknown `kty`, `use` other than `sig`, `key_ops` without
//!   `verify`, an `alg` that does not fit its type, bad parameters, RSA outside 2048–8192 bits)
//!   is skipped with a debug log; the rest of the set is used. `oct` keys are never used.
//! - A key that disappears from the provider's set stops verifying at the next successful
//!   fetch, and the tokens validated with it leave the verifiers' token caches
//!   ([`verify`](crate::verify#token-cache)) at the same moment.
//!
//! # Several keys under one `kid`
//!
//! A `kid` that names more than one usable key of the set is unusable: a token naming it is
//! refused ([`VerifyError::DuplicateKeyId`](crate::error::VerifyError::DuplicateKeyId)),
//! whichever of the keys signed it, rather than checked with the first (or any) of them.
//! Which key the `kid` means is the provider's to say, and a set that says two things is not
//! guessed at.
//!
//! - Only usable signature keys count: a key skipped as unusable (above: `use: enc`, an
//!   unknown `kty`, bad parameters…) never verifies anything, so a `use: enc` key next to a
//!   `use: sig` key with the same `kid` leaves that `kid` to the signature key. Keys that
//!   differ only in `alg`, or in `kty` (RFC 7517 §4.5 allows "equivalent alternatives" under
//!   one `kid`), both count: the `kid` is refused.
//! - Two identical copies of one key under one `kid` are refused too. They would verify the
//!   same signatures, but a set that repeats a `kid` is broken or tampered with (a provider
//!   publishing its current key twice during a rotation has a bug to fix), and refusing does
//!   not depend on telling "identical" apart from "different" correctly.
//! - The keys of a refused `kid` are out of the set altogether: a token without `kid` never
//!   picks one of them as the single key that fits its algorithm.
//! - One warning per key set load names the refused `kid`s (escaped, with `{:?}`); it repeats
//!   at each refresh while the provider publishes the set.
//! - A refused `kid` is known, not unknown: a token naming it forces no refetch, so any number
//!   of such tokens cause no request to the provider. The periodic refresh picks up a
//!   corrected set; a key whose `kid` becomes duplicated is retired at that refresh, so the
//!   tokens it validated leave the token caches too.
//!
//! # Signature verification
//!
//! Keys are parsed into aws-lc-rs [`ParsedPublicKey`](aws_lc_rs::signature::ParsedPublicKey)s when the set is loaded, and signatures
//! are checked with aws-lc-rs directly: the request path rebuilds no key (a general JWT
//! library rebuilds its verifier from the key's raw components on every call, a quarter of
//! the cost of an RS256 verification). No JWT library is used at run time; jsonwebtoken is a
//! dev-dependency, the tests' independent signer and checker. The checks around the
//! signature (form, header, algorithm, key choice) are in the crate's JWS module. See
//! `BENCHMARKS.md` at the repository root for the figures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::algorithm::Algorithm;
use crate::backoff::Backoff;
use crate::error::JwksError;
use crate::http::HttpClient;

use self::fetch::Fetched;
pub(crate) use self::key::VerifyingKey;
use self::key::{KeySet, MAX_KEYS};

// `key.rs` parses a set into keys, `fetch.rs` fetches a set, this file is the cache: when to
// fetch, and the lookups.
mod fetch;
mod key;

/// Timings of the JWKS cache. See the [module docs](crate::jwks).
#[derive(Debug, Clone, Copy)]
pub(crate) struct JwksTimings {
    pub(crate) min_refresh: Duration,
    pub(crate) max_refresh: Duration,
    pub(crate) default_refresh: Duration,
    pub(crate) unknown_kid_cooldown: Duration,
    pub(crate) max_stale: Duration,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
}

impl Default for JwksTimings {
    fn default() -> Self {
        Self {
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            default_refresh: Duration::from_secs(900),
            unknown_kid_cooldown: Duration::from_secs(30),
            max_stale: Duration::from_secs(24 * 3600),
            retry_base: Duration::from_secs(1),
            retry_max: Duration::from_secs(60),
        }
    }
}

/// What the set holds under one `kid`.
#[derive(Debug, Clone)]
pub(crate) enum ByKid {
    /// The one usable key with this `kid`.
    Key(Arc<VerifyingKey>),
    /// Several usable keys share this `kid`: it is refused (not unknown, so no refetch).
    Duplicated,
}

/// Why a refresh is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Nothing loaded yet, or the set expired.
    Load,
    /// The set is due for its periodic refresh.
    Due,
    /// A token named a key the set does not have.
    UnknownKid,
}

#[derive(Debug)]
struct State {
    /// When the current set was fetched.
    loaded_at: Option<Instant>,
    /// When the current set should be refreshed.
    fresh_until: Option<Instant>,
    /// When the last fetch forced by an unknown `kid` started, whatever its outcome.
    last_forced: Option<Instant>,
    backoff: Backoff,
    /// Bumped when a fetch completes; callers that saw an older value do not fetch again.
    generation: u64,
    last_error: Option<JwksError>,
    /// Every key of the current set, for tokens without `kid`.
    all: Arc<[Arc<VerifyingKey>]>,
}

/// Where the key set is published: the provider's `jwks_uri`, configured by hand or
/// discovered. The cache asks only when it is about to fetch, so discovery still happens on
/// first need (and a loaded set keeps working while discovery is down).
pub(crate) trait KeySetLocation: Clone + Send + Sync + 'static {
    /// The URL of the key set.
    fn jwks_uri(&self) -> impl std::future::Future<Output = Result<String, JwksError>> + Send;
}

/// The outcome of a key lookup.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    Found(Arc<VerifyingKey>),
    /// No `kid`, and more than one key fits the algorithm (KEY-02: rejected, not guessed).
    Ambiguous,
    /// The set has several usable keys under the token's `kid` (refused, never refetched:
    /// the `kid` is known, and ambiguous).
    DuplicateKid,
    Missing,
}

/// The key cache: fetches the provider's key set with its HTTP client and answers key
/// lookups. See the [module docs](crate::jwks).
pub(crate) struct JwksCache {
    by_kid: moka::sync::Cache<Arc<str>, ByKid>,
    flight: moka::future::Cache<u64, ()>,
    state: Mutex<State>,
    /// The client the key set is fetched with (the provider's).
    http: Arc<dyn HttpClient>,
    /// Whether a background refresh is under way.
    refreshing: AtomicBool,
    timings: JwksTimings,
    /// The origin of the two deadlines below, which copy `State` for a lock-free read on the
    /// token caches' hit path.
    epoch: Instant,
    /// Nanoseconds after `epoch` when the set is due for refresh (`u64::MAX`: never loaded).
    due_at: AtomicU64,
    /// Nanoseconds after `epoch` when the set passes the maximum staleness (0: never loaded).
    stale_at: AtomicU64,
}

/// What a token cache may do with a token validated earlier, judged by the key set's age.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Freshness {
    /// The set is fresh: use the cached result.
    Fresh,
    /// The set is due for refresh: use the cached result, and start the refresh.
    Due,
    /// No set, or one older than the maximum staleness: verify in full (which fails closed).
    Stale,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("keys", &self.by_kid.entry_count())
            .field("timings", &self.timings)
            .finish_non_exhaustive()
    }
}

/// Locks a mutex, recovering from poisoning (the state stays consistent between statements).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl JwksCache {
    pub(crate) fn new(timings: JwksTimings, http: Arc<dyn HttpClient>) -> Self {
        Self {
            by_kid: moka::sync::Cache::builder()
                .max_capacity(MAX_KEYS as u64 * 2)
                .time_to_live(timings.max_stale)
                .build(),
            flight: moka::future::Cache::builder()
                .max_capacity(8)
                .time_to_live(Duration::from_secs(60))
                .build(),
            state: Mutex::new(State {
                loaded_at: None,
                fresh_until: None,
                last_forced: None,
                backoff: Backoff::new(timings.retry_base, timings.retry_max),
                generation: 0,
                last_error: None,
                all: Arc::from(Vec::new()),
            }),
            http,
            refreshing: AtomicBool::new(false),
            timings,
            epoch: Instant::now(),
            due_at: AtomicU64::new(u64::MAX),
            stale_at: AtomicU64::new(0),
        }
    }

    /// Finds the key for a token: by `kid`, or the single key that fits `alg` when the token
    /// has no `kid`. Loads the set from `location` on first need, starts the periodic
    /// refresh when it is due, and refetches once per cooldown for an unknown `kid`.
    pub(crate) async fn key_for<L: KeySetLocation>(
        self: &Arc<Self>,
        kid: Option<&str>,
        alg: Algorithm,
        location: &L,
    ) -> Result<KeyLookup, JwksError> {
        let just_loaded = !self.is_loaded();
        if just_loaded {
            self.fetch_from(Reason::Load, location).await?;
        } else if self.refresh_due() {
            self.spawn_refresh(location);
        }
        if let Some(found) = self.lookup(kid, alg) {
            return Ok(found);
        }
        if just_loaded {
            // The set is as fresh as it gets: a refetch could not know this key either.
            return Ok(KeyLookup::Missing);
        }
        // Unknown kid (or no fitting key): one forced refetch per cooldown.
        match self.fetch_from(Reason::UnknownKid, location).await {
            Ok(_) => {}
            Err(e) => tracing::debug!(error = %e, "refetch for unknown kid failed"),
        }
        Ok(self.lookup(kid, alg).unwrap_or(KeyLookup::Missing))
    }

    /// Loads the set from `location` now unless one is loaded.
    pub(crate) async fn warm_up<L: KeySetLocation>(&self, location: &L) -> Result<(), JwksError> {
        if self.is_loaded() {
            return Ok(());
        }
        self.fetch_from(Reason::Load, location).await.map(|_| ())
    }

    /// Whether a token validated earlier may be accepted from a token cache, judged by the key
    /// set's age: not when the set is older than the maximum staleness (a full verification
    /// then fails closed, or reloads). Starts the periodic refresh when it is due, as a full
    /// verification would, so that key removals are noticed while every request hits a cache.
    /// Lock-free unless a refresh is due.
    pub(crate) fn usable_for_cached<L: KeySetLocation>(self: &Arc<Self>, location: &L) -> bool {
        match self.freshness() {
            Freshness::Fresh => true,
            Freshness::Due => {
                if self.refresh_due() {
                    self.spawn_refresh(location);
                }
                true
            }
            Freshness::Stale => false,
        }
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Option<KeyLookup> {
        match kid {
            Some(kid) => self.get(kid).map(|entry| match entry {
                ByKid::Key(key) => KeyLookup::Found(key),
                ByKid::Duplicated => KeyLookup::DuplicateKid,
            }),
            None => {
                let all = self.all();
                let mut fitting = all.iter().filter(|k| k.fits(alg));
                match (fitting.next(), fitting.next()) {
                    (Some(one), None) => Some(KeyLookup::Found(one.clone())),
                    (Some(_), Some(_)) => Some(KeyLookup::Ambiguous),
                    (None, _) => None,
                }
            }
        }
    }

    /// Runs the due refresh in the background (at most one at a time); requests keep using
    /// the current keys meanwhile. Does nothing outside a tokio runtime.
    fn spawn_refresh<L: KeySetLocation>(self: &Arc<Self>, location: &L) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let cache = Arc::clone(self);
        let location = location.clone();
        handle.spawn(async move {
            let _ = cache.fetch_from(Reason::Due, &location).await;
            cache.refreshing.store(false, Ordering::Release);
        });
    }

    /// [`refresh`](Self::refresh) with the fetch of the set at `location`.
    async fn fetch_from<L: KeySetLocation>(
        &self,
        reason: Reason,
        location: &L,
    ) -> Result<bool, JwksError> {
        self.refresh(reason, || async {
            let jwks_uri = location.jwks_uri().await?;
            fetch::fetch(self.http.as_ref(), &jwks_uri).await
        })
        .await
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The set's age as a token cache sees it; no lock taken.
    pub(crate) fn freshness(&self) -> Freshness {
        let now = self.nanos_since_epoch(Instant::now());
        if now >= self.stale_at.load(Ordering::Acquire) {
            Freshness::Stale
        } else if now >= self.due_at.load(Ordering::Acquire) {
            Freshness::Due
        } else {
            Freshness::Fresh
        }
    }

    /// What the current set holds under `kid`: its key, the mark of a duplicated `kid`, or
    /// nothing.
    fn get(&self, kid: &str) -> Option<ByKid> {
        self.by_kid.get(kid)
    }

    /// The keys of the current set, unless it is older than the maximum staleness.
    pub(crate) fn all(&self) -> Arc<[Arc<VerifyingKey>]> {
        let st = lock(&self.state);
        match st.loaded_at {
            Some(at) if at.elapsed() < self.timings.max_stale => st.all.clone(),
            _ => Arc::from(Vec::new()),
        }
    }

    /// Whether a set is loaded and not older than the maximum staleness.
    pub(crate) fn is_loaded(&self) -> bool {
        lock(&self.state)
            .loaded_at
            .is_some_and(|at| at.elapsed() < self.timings.max_stale)
    }

    /// Whether the periodic refresh is due and allowed by the backoff.
    pub(crate) fn refresh_due(&self) -> bool {
        let st = lock(&self.state);
        let now = Instant::now();
        st.fresh_until.is_some_and(|at| now >= at) && st.backoff.check(now).is_ok()
    }

    /// Fetches the set with `load` unless the reason does not allow it right now.
    ///
    /// Returns `Ok(true)` when a fetch ran (here or in a concurrent caller) and succeeded,
    /// `Ok(false)` when no fetch was allowed (cooldown), and the error of the failed fetch or
    /// of the backoff otherwise.
    pub(crate) async fn refresh<F, Fut>(&self, reason: Reason, load: F) -> Result<bool, JwksError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Fetched, JwksError>>,
    {
        let generation = {
            let st = lock(&self.state);
            let now = Instant::now();
            if let Err(retry_after) = st.backoff.check(now) {
                return Err(JwksError::Backoff { retry_after });
            }
            match reason {
                Reason::UnknownKid => {
                    if st.last_forced.is_some_and(|at| {
                        now.duration_since(at) < self.timings.unknown_kid_cooldown
                    }) {
                        return Ok(false);
                    }
                }
                Reason::Due => {
                    if st.fresh_until.is_some_and(|at| now < at) {
                        return Ok(true);
                    }
                }
                Reason::Load => {
                    // Loaded by a concurrent caller since ours saw no set: share its fetch.
                    if st
                        .loaded_at
                        .is_some_and(|at| now.duration_since(at) < self.timings.max_stale)
                    {
                        return Ok(true);
                    }
                }
            }
            st.generation
        };
        self.flight
            .try_get_with(generation, async {
                let started = {
                    let mut st = lock(&self.state);
                    if st.generation != generation {
                        // A fetch completed between our check and now: report its outcome.
                        return match &st.last_error {
                            Some(e)
                                if st
                                    .loaded_at
                                    .is_none_or(|at| at.elapsed() >= self.timings.max_stale) =>
                            {
                                Err(e.clone())
                            }
                            _ => Ok(()),
                        };
                    }
                    let now = Instant::now();
                    if reason == Reason::UnknownKid {
                        st.last_forced = Some(now);
                    }
                    now
                };
                let result = load().await;
                self.finish(started, result)
            })
            .await
            .map(|()| true)
            .map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
    }

    fn finish(
        &self,
        started: Instant,
        result: Result<Fetched, JwksError>,
    ) -> Result<(), JwksError> {
        let mut st = lock(&self.state);
        st.generation = st.generation.wrapping_add(1);
        match result {
            Ok(fetched) => {
                let t = &self.timings;
                let interval = fetched
                    .max_age
                    .unwrap_or(t.default_refresh)
                    .clamp(t.min_refresh, t.max_refresh);
                // A key published again unchanged keeps its loaded instance (and the tokens
                // cached with it); any other key of the old set is retired.
                let KeySet { keys, duplicated } = fetched.keys;
                let keys: Vec<Arc<VerifyingKey>> = keys
                    .into_iter()
                    .map(|new| {
                        st.all
                            .iter()
                            .find(|old| old.same_as(&new))
                            .cloned()
                            .unwrap_or(new)
                    })
                    .collect();
                let new_kids: HashSet<&str> = keys
                    .iter()
                    .filter_map(|k| k.kid())
                    .chain(duplicated.iter().map(|kid| &**kid))
                    .collect();
                // Every key of the old set that is not carried over is retired, also one whose
                // kid is now duplicated (its kid stays, marked, so it is not retired as gone).
                let mut retired: Vec<Arc<VerifyingKey>> = Vec::new();
                let mut gone: Vec<Arc<str>> = Vec::new();
                for (kid, entry) in self.by_kid.iter() {
                    if let ByKid::Key(key) = entry
                        && !keys.iter().any(|k| Arc::ptr_eq(k, &key))
                    {
                        retired.push(key);
                    }
                    let name: &str = &kid;
                    if !new_kids.contains(name) {
                        gone.push(Arc::clone(&kid));
                    }
                }
                for key in &keys {
                    if let Some(kid) = key.kid_arc() {
                        self.by_kid.insert(kid.clone(), ByKid::Key(key.clone()));
                    }
                }
                for kid in &duplicated {
                    self.by_kid.insert(kid.clone(), ByKid::Duplicated);
                }
                for kid in gone {
                    self.by_kid.invalidate(&kid);
                }
                for key in retired.iter().chain(st.all.iter()) {
                    if !keys.iter().any(|k| Arc::ptr_eq(k, key)) {
                        key.retire();
                    }
                }
                let fetched = Fetched {
                    keys: KeySet { keys, duplicated },
                    ..fetched
                };
                tracing::debug!(keys = fetched.keys.keys.len(), ?interval, "jwks loaded");
                #[cfg(feature = "metrics")]
                metrics::counter!("oidc_jwks_fetches_total", "outcome" => "ok").increment(1);
                st.all = Arc::from(fetched.keys.keys);
                st.loaded_at = Some(started);
                st.fresh_until = Some(started + interval);
                st.backoff.succeeded();
                st.last_error = None;
                self.due_at.store(
                    self.nanos_since_epoch(started + interval),
                    Ordering::Release,
                );
                self.stale_at.store(
                    self.nanos_since_epoch(started + t.max_stale),
                    Ordering::Release,
                );
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "jwks fetch failed");
                #[cfg(feature = "metrics")]
                metrics::counter!("oidc_jwks_fetches_total", "outcome" => "error").increment(1);
                st.backoff.failed(Instant::now());
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
