//! The validated-token cache: the outcome of a full verification, found by a keyed hash of the
//! token and answered only for the very same token bytes. See the
//! [module docs](super#token-cache).

use std::any::Any;
use std::hash::BuildHasher as _;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::claims::Identity;
use crate::error::VerifyError;
use crate::jwks::VerifyingKey;

/// The default number of tokens kept.
pub(crate) const DEFAULT_CAPACITY: u64 = 10_000;

/// The default longest time a token is kept.
pub(crate) const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);

/// How a verifier's token cache is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Settings {
    pub(crate) capacity: u64,
    pub(crate) max_age: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            max_age: DEFAULT_MAX_AGE,
        }
    }
}

/// A token that passed every check, as needed to answer it again without crypto.
pub(crate) struct Entry {
    /// The token itself: an entry answers only the token it was verified for, compared in
    /// constant time, so that a collision of the lookup hash never authenticates anything.
    token: TokenBytes,
    pub(crate) identity: Identity,
    /// The verified payload: the claims handed out as they are for the default claim type
    /// (`AdditionalClaims`), and decoded from for any other.
    payload: Arc<Map<String, Value>>,
    /// The payload decoded as the first other claim type asked for, handed out again to later
    /// requests for that type.
    typed: OnceLock<Arc<dyn Any + Send + Sync>>,
    /// The key that verified it: once retired (gone from the provider's set), the entry is
    /// not used any more.
    pub(crate) key: Arc<VerifyingKey>,
    pub(crate) exp: i64,
    pub(crate) nbf: Option<i64>,
    pub(crate) iat: Option<i64>,
    /// How long the entry may live: until `exp` (plus the leeway), at most the maximum age.
    ttl: Duration,
}

impl Entry {
    /// An entry living until `exp + leeway` as seen at `now`, at most `max_age`; `None` when
    /// that is already over.
    #[allow(clippy::too_many_arguments, reason = "one constructor, called once")]
    pub(crate) fn new(
        token: &str,
        identity: Identity,
        payload: Arc<Map<String, Value>>,
        key: Arc<VerifyingKey>,
        (exp, nbf, iat): (i64, Option<i64>, Option<i64>),
        now: i64,
        leeway: i64,
        max_age: Duration,
    ) -> Option<Self> {
        let left = exp.saturating_add(leeway).saturating_sub(now);
        let left = u64::try_from(left).ok().filter(|s| *s > 0)?;
        Some(Self {
            token: TokenBytes::new(token),
            identity,
            payload,
            typed: OnceLock::new(),
            key,
            exp,
            nbf,
            iat,
            ttl: Duration::from_secs(left).min(max_age),
        })
    }

    /// Whether this entry is for exactly `token` (constant time in the token's bytes).
    pub(crate) fn is_for(&self, token: &str) -> bool {
        self.token.is(token)
    }

    /// The application's claims as `C`, shared: the payload itself for the default claim
    /// type; for another, the decoding kept for the first such type asked for (decoded and
    /// kept now if none is), else decoded now.
    pub(crate) fn custom<C>(&self) -> Result<Arc<C>, VerifyError>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        let payload: Arc<dyn Any + Send + Sync> = self.payload.clone();
        if let Ok(same) = payload.downcast::<C>() {
            return Ok(same);
        }
        if let Some(typed) = self.typed.get() {
            if let Ok(typed) = Arc::clone(typed).downcast::<C>() {
                return Ok(typed);
            }
            return decode(&self.payload).map(Arc::new);
        }
        let custom: Arc<C> = decode(&self.payload).map(Arc::new)?;
        let kept: Arc<dyn Any + Send + Sync> = custom.clone();
        // Another request may have kept its type first: then this one is simply not kept.
        let _ = self.typed.set(kept);
        Ok(custom)
    }

    /// The time checks of a full verification, again, with the verifier's clock.
    pub(crate) fn check_times(
        &self,
        now: i64,
        leeway: i64,
        require_iat: bool,
    ) -> Result<(), VerifyError> {
        if now.saturating_sub(leeway) >= self.exp {
            return Err(VerifyError::Expired);
        }
        if self.nbf.is_some_and(|nbf| nbf > now.saturating_add(leeway)) {
            return Err(VerifyError::NotYetValid);
        }
        match self.iat {
            Some(iat) if iat > now.saturating_add(leeway) => Err(VerifyError::IssuedInFuture),
            None if require_iat => Err(VerifyError::MissingClaim("iat")),
            _ => Ok(()),
        }
    }
}

/// The token a cache entry answers, kept to be compared in constant time: a collision of the
/// lookup hash never authenticates another token. Shared by the validated-token cache and the
/// introspection cache.
pub(crate) struct TokenBytes(Box<[u8]>);

impl TokenBytes {
    pub(crate) fn new(token: &str) -> Self {
        Self(Box::from(token.as_bytes()))
    }

    /// Whether this is exactly `token` (constant time in the token's bytes).
    pub(crate) fn is(&self, token: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.0, token.as_bytes()).is_ok()
    }
}

/// The lookup hash of a token cache: a hash of the whole token keyed with a random seed per
/// cache. Not an identity: the entry found must still be for the token ([`TokenBytes::is`]).
#[derive(Default)]
pub(crate) struct Keyer(foldhash::quality::RandomState);

impl Keyer {
    pub(crate) fn key(&self, token: &str) -> u64 {
        self.0.hash_one(token.as_bytes())
    }
}

/// A cache entry that says how long it may live (on the monotonic clock).
pub(crate) trait Lifetime {
    fn ttl(&self) -> Duration;
}

impl Lifetime for Entry {
    fn ttl(&self) -> Duration {
        self.ttl
    }
}

/// The moka expiry of token caches: each entry lives its own [`Lifetime`].
pub(crate) struct EntryExpiry;

impl<V: Lifetime> moka::Expiry<u64, Arc<V>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &u64,
        value: &Arc<V>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl())
    }
}

pub(crate) type Cache = moka::sync::Cache<u64, Arc<Entry>>;

/// The cache of one verifier configuration, built on first use. A changed configuration
/// (any builder method) starts with an empty slot, so a token is never answered from a cache
/// filled under other rules.
pub(crate) struct Slot {
    settings: Option<Settings>,
    /// The lookup hash, keyed with a random seed per cache.
    hasher: Keyer,
    cache: OnceLock<Cache>,
}

impl Slot {
    pub(crate) fn new(settings: Option<Settings>) -> Self {
        Self {
            settings: settings.filter(|s| s.capacity > 0 && !s.max_age.is_zero()),
            hasher: Keyer::default(),
            cache: OnceLock::new(),
        }
    }

    /// Where `token` is looked up: a keyed hash of the whole token. Not an identity: the entry
    /// found must still be [`Entry::is_for`] the token.
    pub(crate) fn key(&self, token: &str) -> u64 {
        self.hasher.key(token)
    }

    pub(crate) fn settings(&self) -> Option<Settings> {
        self.settings
    }

    /// The cache, unless caching is off.
    pub(crate) fn get(&self) -> Option<&Cache> {
        let settings = self.settings?;
        Some(self.cache.get_or_init(|| {
            moka::sync::Cache::builder()
                .max_capacity(settings.capacity)
                .expire_after(EntryExpiry)
                .build()
        }))
    }
}

impl Clone for Slot {
    fn clone(&self) -> Self {
        Self::new(self.settings)
    }
}

/// `payload` as the application's claim type.
pub(crate) fn decode<C: DeserializeOwned>(payload: &Map<String, Value>) -> Result<C, VerifyError> {
    // The deserializer's message can quote claim values: keep it out of the error.
    C::deserialize(payload).map_err(|_| VerifyError::CustomClaims)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use oidc_testing::TestProvider;

    use super::super::{AccessTokenVerifier, Clock, Config, Kind};
    use crate::claims::AdditionalClaims;
    use crate::error::VerifyError;
    use crate::provider::Provider;

    fn config(v: &AccessTokenVerifier) -> &Config {
        match &v.kind {
            Kind::One(config) => config,
            Kind::AnyOf(_) => panic!("a verifier of several issuers"),
        }
    }

    async fn setup() -> (TestProvider, AccessTokenVerifier, Arc<AtomicI64>) {
        let tp = TestProvider::start().await;
        let now = Arc::new(AtomicI64::new(super::super::unix_now(None)));
        let read = Arc::clone(&now);
        let clock: Clock = Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(u64::try_from(read.load(Ordering::SeqCst)).unwrap())
        });
        let provider = Provider::builder(tp.issuer()).build().unwrap();
        let v = AccessTokenVerifier::new(provider, "api://default").with_clock(clock);
        (tp, v, now)
    }

    #[tokio::test]
    async fn sync_hit_answers_only_cached_tokens_and_rechecks_expiry() {
        let (tp, v, now) = setup().await;
        let token = tp
            .token()
            .claim("exp", now.load(Ordering::SeqCst) + 100)
            .sign();
        // Not cached yet: no answer without a full verification.
        assert!(v.verify_cached::<AdditionalClaims>(&token).is_none());
        v.verify::<AdditionalClaims>(&token).await.unwrap();
        let hit = v
            .verify_cached::<AdditionalClaims>(&token)
            .unwrap()
            .unwrap();
        assert_eq!(hit.subject(), "user-1");
        // Past exp + leeway (60 s): refused from the cached entry, not answered.
        now.fetch_add(161, Ordering::SeqCst);
        assert!(matches!(
            v.verify_cached::<AdditionalClaims>(&token),
            Some(Err(VerifyError::Expired))
        ));
        // Over the size cap: refused before any lookup.
        let big = "a".repeat(16 * 1024 + 1);
        assert!(matches!(
            v.verify_cached::<AdditionalClaims>(&big),
            Some(Err(VerifyError::TooLarge { .. }))
        ));
        // Caching off: never an answer.
        let off = v.clone().without_token_cache();
        assert!(off.verify_cached::<AdditionalClaims>(&token).is_none());
    }

    /// A lookup-hash collision (simulated: a forged token's slot holds a valid token's entry)
    /// never authenticates the forged token: the entry is only for its own token's bytes.
    #[tokio::test]
    async fn hash_collision_never_authenticates_another_token() {
        let (tp, v, _) = setup().await;
        let valid = tp.token().sign();
        v.verify::<AdditionalClaims>(&valid).await.unwrap();
        let config = config(&v);
        let cache = config.cache.get().unwrap();
        let entry = cache.get(&config.cache.key(&valid)).unwrap();
        assert!(entry.is_for(&valid));

        let forged = tp.token().sign_with_foreign_key();
        assert_eq!(
            forged.len(),
            valid.len(),
            "same length: only the bytes differ"
        );
        assert!(!entry.is_for(&forged));
        cache.insert(config.cache.key(&forged), entry);
        assert!(v.verify_cached::<AdditionalClaims>(&forged).is_none());
        assert!(matches!(
            v.verify::<AdditionalClaims>(&forged).await,
            Err(VerifyError::InvalidSignature)
        ));
    }
}
