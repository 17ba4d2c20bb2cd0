//! The JWKS cache: the provider's signing keys, by `kid`, shared by every verifier of a
//! [`Provider`](crate::Provider).
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
//!   fetch.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;
use tokio::time::Instant;

use crate::algorithm::Algorithm;
use crate::backoff::Backoff;
use crate::error::JwksError;

/// The most keys read from one JWK set; the rest are ignored.
const MAX_KEYS: usize = 64;

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

/// The shape of a key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyShape {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// One usable verification key, parsed when the set was loaded.
pub(crate) struct VerifyingKey {
    kid: Option<Arc<str>>,
    shape: KeyShape,
    alg: Option<Algorithm>,
    key: DecodingKey,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("shape", &self.shape)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Whether this key may verify a signature made with `alg`: the key type must fit the
    /// algorithm family (and curve), and a key that names its `alg` only verifies that one.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        let shape_fits = match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => self.shape == KeyShape::Rsa,
            ES256 => self.shape == KeyShape::P256,
            ES384 => self.shape == KeyShape::P384,
            EdDSA => self.shape == KeyShape::Ed25519,
        };
        shape_fits && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks `signature` over `message` (the first two token segments).
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        jsonwebtoken::crypto::verify(signature, message, &self.key, alg.to_jwt()).unwrap_or(false)
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn b64(field: &Option<String>) -> Result<Vec<u8>, &'static str> {
    let s = field.as_deref().ok_or("missing parameter")?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "parameter is not base64url")
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

fn parse_key(value: serde_json::Value) -> Result<VerifyingKey, &'static str> {
    let raw: RawJwk = serde_json::from_value(value).map_err(|_| "not a jwk")?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops lacks verify");
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => {
            Some(Algorithm::from_name(name).ok_or("alg is not a supported signature algorithm")?)
        }
    };
    let (shape, key) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let n = b64(&raw.n)?;
            let e = b64(&raw.e)?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = n.len() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err("rsa modulus size out of bounds");
            }
            if e.is_empty() || e.len() > 4 || e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
                return Err("rsa exponent is invalid");
            }
            (KeyShape::Rsa, DecodingKey::from_rsa_raw_components(n, e))
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (shape, len) = if crv == "P-256" {
                (KeyShape::P256, 32)
            } else {
                (KeyShape::P384, 48)
            };
            let x = b64(&raw.x)?;
            let y = b64(&raw.y)?;
            if x.len() != len || y.len() != len {
                return Err("ec coordinates have the wrong length");
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (shape, DecodingKey::from_ec_der(&point))
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(&raw.x)?;
            if x.len() != 32 {
                return Err("ed25519 key has the wrong length");
            }
            (KeyShape::Ed25519, DecodingKey::from_ed_der(&x))
        }
        _ => return Err("unsupported kty or crv"),
    };
    let parsed = VerifyingKey {
        kid: raw.kid.map(Arc::from),
        shape,
        alg,
        key,
    };
    if let Some(a) = alg
        && !parsed.fits(a)
    {
        return Err("alg does not fit the key type");
    }
    Ok(parsed)
}

/// Parses a JWK set document, skipping unusable keys.
pub(crate) fn parse_set(body: &[u8]) -> Result<Vec<Arc<VerifyingKey>>, JwksError> {
    // serde's derived structs also accept arrays; a JWK set is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JwksError::InvalidDocument(Arc::new(std::io::Error::other(
            "a jwk set must be a json object",
        ))));
    }
    let set: RawSet =
        serde_json::from_slice(body).map_err(|e| JwksError::InvalidDocument(Arc::new(e)))?;
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    for (index, value) in set.keys.into_iter().take(MAX_KEYS).enumerate() {
        match parse_key(value) {
            Ok(key) => {
                if let Some(kid) = key.kid.clone()
                    && !seen.insert(kid)
                {
                    tracing::debug!(index, "skipping jwk with a duplicate kid");
                    continue;
                }
                keys.push(Arc::new(key));
            }
            Err(reason) => tracing::debug!(index, reason, "skipping unusable jwk"),
        }
    }
    Ok(keys)
}

/// Reads `max-age` from a `Cache-Control` value.
pub(crate) fn max_age(cache_control: Option<&http::HeaderValue>) -> Option<Duration> {
    let value = cache_control?.to_str().ok()?;
    value.split(',').find_map(|directive| {
        let (name, secs) = directive.trim().split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("max-age") {
            return None;
        }
        secs.trim()
            .trim_matches('"')
            .parse::<u64>()
            .ok()
            .map(Duration::from_secs)
    })
}

/// A fetched key set and how long the provider asks to keep it.
#[derive(Debug)]
pub(crate) struct Fetched {
    pub(crate) keys: Vec<Arc<VerifyingKey>>,
    pub(crate) max_age: Option<Duration>,
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

/// The key cache. See the [module docs](crate::jwks).
pub(crate) struct JwksCache {
    by_kid: moka::sync::Cache<Arc<str>, Arc<VerifyingKey>>,
    flight: moka::future::Cache<u64, ()>,
    state: Mutex<State>,
    /// Whether a background refresh is under way.
    pub(crate) refreshing: std::sync::atomic::AtomicBool,
    timings: JwksTimings,
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
    pub(crate) fn new(timings: JwksTimings) -> Self {
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
            refreshing: std::sync::atomic::AtomicBool::new(false),
            timings,
        }
    }

    /// The key named `kid`, if the current set has it.
    pub(crate) fn get(&self, kid: &str) -> Option<Arc<VerifyingKey>> {
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
                                if st.loaded_at.is_none_or(|at| {
                                    at.elapsed() >= self.timings.max_stale
                                }) =>
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
                let new_kids: HashSet<&str> = fetched.keys.iter().filter_map(|k| k.kid()).collect();
                let gone: Vec<Arc<str>> = self
                    .by_kid
                    .iter()
                    .map(|(kid, _)| Arc::<str>::clone(&kid))
                    .filter(|kid| !new_kids.contains(kid.as_ref()))
                    .collect();
                for key in &fetched.keys {
                    if let Some(kid) = &key.kid {
                        self.by_kid.insert(kid.clone(), key.clone());
                    }
                }
                for kid in gone {
                    self.by_kid.invalidate(&kid);
                }
                tracing::debug!(keys = fetched.keys.len(), ?interval, "jwks loaded");
                st.all = Arc::from(fetched.keys);
                st.loaded_at = Some(started);
                st.fresh_until = Some(started + interval);
                st.backoff.succeeded();
                st.last_error = None;
                Ok(())
            }
            Err(e) => {
                tracing::warn!(error = %e, "jwks fetch failed");
                st.backoff.failed(Instant::now());
                st.last_error = Some(e.clone());
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests;
