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
//! Keys are parsed into aws-lc-rs [`ParsedPublicKey`]s when the set is loaded and signatures
//! are checked with aws-lc-rs directly. jsonwebtoken's `crypto::verify` (used before) rebuilds
//! its verifier from the key's raw components on every call: it copies the modulus and
//! exponent, and aws-lc-rs then builds an RSA key from them (BIGNUM conversion and checks)
//! before each verification, a quarter of the cost of an RS256 verification. A pre-parsed key
//! skips all of that. jsonwebtoken serves the tests, as an independent signer and checker;
//! the checks around the signature (form, header, algorithm, key choice) are this crate's own
//! either way. See `BENCHMARKS.md` at the repository root for the figures.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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

/// The largest signature accepted, in bytes: RSA with an 8192-bit modulus.
const MAX_SIGNATURE: usize = 8192 / 8;

/// One usable verification key, parsed when the set was loaded.
pub(crate) struct VerifyingKey {
    kid: Option<Arc<str>>,
    shape: KeyShape,
    alg: Option<Algorithm>,
    /// The key's public parameters as published (RSA: modulus length, modulus, exponent; EC:
    /// the uncompressed point; Ed25519: `x`), to tell a re-published key from a changed one.
    material: Box<[u8]>,
    /// One parsed key per algorithm this key may verify (aws-lc-rs binds the padding and
    /// digest to the parsed key): six for an RSA key without `alg`, one otherwise.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
    /// Set when the key left the provider's set (or changed under the same `kid`): tokens
    /// validated with it must not be accepted from a token cache any more.
    retired: AtomicBool,
    /// How many signatures this key checked (tests: a token-cache hit must not check one).
    #[cfg(test)]
    pub(crate) verifications: std::sync::atomic::AtomicUsize,
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

    /// Checks `signature` (base64url, as in the token) over `message` (the first two token
    /// segments) with the key parsed for `alg`. No allocation: the signature is decoded into a
    /// stack buffer.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        let Some((_, key)) = self.parsed.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        #[cfg(test)]
        self.verifications.fetch_add(1, Ordering::Relaxed);
        // Room for the base64 decoder's estimate (it rounds up to whole 3-byte groups).
        let mut buf = [0u8; MAX_SIGNATURE + 3];
        if signature.len() > MAX_SIGNATURE.div_ceil(3) * 4 {
            return false;
        }
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature, &mut buf) else {
            return false;
        };
        let Some(signature) = buf.get(..len) else {
            return false;
        };
        key.verify_sig(message, signature).is_ok()
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether the key left the provider's set since it was loaded.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Whether `other` is this key published again: same `kid`, parameters and `alg`.
    fn same_as(&self, other: &VerifyingKey) -> bool {
        self.kid == other.kid
            && self.shape == other.shape
            && self.alg == other.alg
            && self.material == other.material
    }
}

/// Parses `material` (see [`VerifyingKey::material`]) for verification with `alg`. RSA keys
/// are limited to 2048–8192 bits (also checked when the set is parsed), as jsonwebtoken's
/// aws-lc-rs backend does.
fn parse_for(alg: Algorithm, material: &[u8]) -> Option<ParsedPublicKey> {
    let rsa = |params: &'static sig::RsaParameters| {
        rsa_components(material)?.to_parsed_public_key(params).ok()
    };
    match alg {
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, material).ok(),
        Algorithm::ES384 => ParsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, material).ok(),
        Algorithm::EdDSA => ParsedPublicKey::new(&sig::ED25519, material).ok(),
    }
}

/// Splits RSA key material (modulus length, modulus, exponent) back into its components.
fn rsa_components(material: &[u8]) -> Option<RsaPublicKeyComponents<&[u8]>> {
    let (len, rest) = material.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let (n, e) = rest.split_at_checked(len)?;
    Some(RsaPublicKeyComponents { n, e })
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
    let (shape, material) = match (raw.kty.as_str(), raw.crv.as_deref()) {
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
            let len = u32::try_from(n.len()).map_err(|_| "rsa modulus size out of bounds")?;
            let mut material = Vec::with_capacity(4 + n.len() + e.len());
            material.extend_from_slice(&len.to_be_bytes());
            material.extend_from_slice(n);
            material.extend_from_slice(e);
            (KeyShape::Rsa, material)
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
            (shape, point)
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(&raw.x)?;
            if x.len() != 32 {
                return Err("ed25519 key has the wrong length");
            }
            (KeyShape::Ed25519, x)
        }
        _ => return Err("unsupported kty or crv"),
    };
    let mut key = VerifyingKey {
        kid: raw.kid.map(Arc::from),
        shape,
        alg,
        material: material.into_boxed_slice(),
        parsed: Vec::new(),
        retired: AtomicBool::new(false),
        #[cfg(test)]
        verifications: std::sync::atomic::AtomicUsize::new(0),
    };
    if let Some(a) = alg
        && !key.fits(a)
    {
        return Err("alg does not fit the key type");
    }
    for a in Algorithm::ALL {
        if key.fits(a) {
            let parsed = parse_for(a, &key.material).ok_or("key parameters are invalid")?;
            key.parsed.push((a, parsed));
        }
    }
    Ok(key)
}

/// A parsed JWK set: its usable keys, and the `kid`s refused because several usable keys
/// share them (their keys are not in `keys`).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<VerifyingKey>>,
    pub(crate) duplicated: Vec<Arc<str>>,
}

/// Parses a JWK set document, skipping unusable keys and taking out the keys of every `kid`
/// that names more than one usable key (see the [module docs](self#several-keys-under-one-kid)).
pub(crate) fn parse_set(body: &[u8]) -> Result<KeySet, JwksError> {
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
    let mut duplicated: Vec<Arc<str>> = Vec::new();
    for (index, value) in set.keys.into_iter().take(MAX_KEYS).enumerate() {
        match parse_key(value) {
            Ok(key) => {
                if let Some(kid) = key.kid.clone()
                    && !seen.insert(kid.clone())
                    && !duplicated.contains(&kid)
                {
                    duplicated.push(kid);
                }
                keys.push(Arc::new(key));
            }
            Err(reason) => tracing::debug!(index, reason, "skipping unusable jwk"),
        }
    }
    if !duplicated.is_empty() {
        keys.retain(|k| k.kid.as_ref().is_none_or(|kid| !duplicated.contains(kid)));
        tracing::warn!(
            kids = ?duplicated,
            "the provider's key set has several keys under one kid: tokens naming these kids are refused"
        );
    }
    Ok(KeySet { keys, duplicated })
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
    pub(crate) keys: KeySet,
    pub(crate) max_age: Option<Duration>,
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

/// The key cache. See the [module docs](crate::jwks).
pub(crate) struct JwksCache {
    by_kid: moka::sync::Cache<Arc<str>, ByKid>,
    flight: moka::future::Cache<u64, ()>,
    state: Mutex<State>,
    /// Whether a background refresh is under way.
    pub(crate) refreshing: std::sync::atomic::AtomicBool,
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
            epoch: Instant::now(),
            due_at: AtomicU64::new(u64::MAX),
            stale_at: AtomicU64::new(0),
        }
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
    pub(crate) fn get(&self, kid: &str) -> Option<ByKid> {
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
                    if let Some(kid) = &key.kid {
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
                        key.retired.store(true, Ordering::Release);
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
