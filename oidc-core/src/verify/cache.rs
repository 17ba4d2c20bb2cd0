//! The validated-token cache: the outcome of a full verification, by the SHA-256 of the token.
//! See the [module docs](super#token-cache).

use std::any::Any;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
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
    pub(crate) fn new(
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

struct EntryExpiry;

impl moka::Expiry<[u8; 32], Arc<Entry>> for EntryExpiry {
    fn expire_after_create(
        &self,
        _key: &[u8; 32],
        value: &Arc<Entry>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

pub(crate) type Cache = moka::sync::Cache<[u8; 32], Arc<Entry>>;

/// The cache of one verifier configuration, built on first use. A changed configuration
/// (any builder method) starts with an empty slot, so a token is never answered from a cache
/// filled under other rules.
pub(crate) struct Slot {
    settings: Option<Settings>,
    cache: OnceLock<Cache>,
}

impl Slot {
    pub(crate) fn new(settings: Option<Settings>) -> Self {
        Self {
            settings: settings.filter(|s| s.capacity > 0 && !s.max_age.is_zero()),
            cache: OnceLock::new(),
        }
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

/// The cache key of a token.
pub(crate) fn key(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}
