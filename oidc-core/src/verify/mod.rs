//! Access-token verification (RFC 9068 JWT access tokens, and the JWTs that Keycloak, Entra ID
//! and Auth0 issue as access tokens).
//!
//! # What is checked
//!
//! In this order, stopping at the first failure:
//!
//! 1. Size: a token over the cap (default 16 KiB) is refused before anything is decoded.
//! 2. Form: exactly three non-empty base64url segments.
//! 3. Header: valid JSON without duplicate members; no `crit`; `alg` must be one of the allowed
//!    algorithms ([`AccessTokenVerifier::with_algorithms`], default `RS256` and `ES256`), which
//!    never include `none` or HMAC. `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come only
//!    from the provider's JWKS, and the `kid` is only a key into that cache.
//! 4. Type: `typ` `at+jwt` (or `application/at+jwt`) is accepted; `JWT` or no `typ` is
//!    accepted too unless [`AccessTokenVerifier::require_at_jwt`] is set; any other `typ`
//!    (`logout+jwt`, `id_token+jwt`…) is refused.
//! 5. Key: the key with the token's `kid`; without `kid`, the single key of the set that fits
//!    the algorithm (several fitting keys are refused rather than tried: KEY-02). The key's
//!    type (and curve) must fit the algorithm, and a key that names its `alg` is used only
//!    with that one. When the provider publishes `id_token_signing_alg_values_supported`, the
//!    algorithm must also be in it.
//! 6. Signature, with aws-lc-rs on keys parsed when the key set was loaded.
//! 7. Claims, only once the signature holds: `iss` equals the issuer exactly; `aud` (a string
//!    or an array) contains a configured audience; `sub` is a non-empty string of at most 255
//!    characters; `exp` is required and must be an integer; `nbf` and `iat`, when present,
//!    must be integers and not in the future; `iat` is required by default (RFC 9068 §2.2).
//!    The leeway for all times is 60 s by default.
//! 8. Not another kind of token: a token that carries `events` (a logout token) is refused;
//!    unless its `typ` is `at+jwt`, so is one that carries `nonce`, `at_hash` or `c_hash` (an
//!    ID token), or Keycloak's `typ` claim with a value other than `Bearer`.
//!
//! # Security
//!
//! In the default (compatible) mode a token without `typ: at+jwt` is told apart from an ID
//! token only by its claims. An ID token issued to a client whose id is also this API's
//! audience, and issued without `nonce` or hashes, would pass. Give the API an audience of its
//! own (not a client id), or turn on [`AccessTokenVerifier::require_at_jwt`] when the
//! provider issues RFC 9068 tokens.
//!
//! # Token cache
//!
//! A token that passed every check above is remembered, keyed by the SHA-256 of the whole
//! token, so that the next request with the same token is answered without signature
//! verification (which is nearly all of the cost). On by default; see
//! [`AccessTokenVerifier::with_token_cache`] and [`AccessTokenVerifier::without_token_cache`].
//!
//! - The time checks (`exp`, `nbf`, `iat` with the leeway and the verifier's clock) are done
//!   again on every hit: a cached token that has expired since is refused as
//!   [`VerifyError::Expired`].
//! - An entry never outlives the token's `exp` (plus the leeway), nor the cache's maximum
//!   age (default 5 minutes); at most 10 000 tokens are kept by default, the least useful
//!   evicted first.
//! - When the key that verified a token leaves the provider's key set (or changes under the
//!   same `kid`), the tokens it verified are no longer answered from the cache. While every
//!   request hits the cache, the key set is still refreshed on its schedule; once it is older
//!   than the maximum staleness, tokens are verified in full again (and fail closed).
//! - Every verifier configuration has its own cache: a verifier changed by any builder method
//!   starts empty. Clones of one verifier share theirs.
//! - Errors are not cached: a rejected token is verified in full each time.
//! - The application's claim type is deserialized on every hit, from the cached payload.

mod cache;
pub(crate) mod jws;
pub(crate) mod token;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::algorithm::Algorithm;
use crate::claims::{Claims, Identity, RoleSources};
use crate::error::{ConfigError, VerifyError};
use crate::jwks::VerifyingKey;
use crate::provider::Provider;

use self::token::TokenType;

/// A source of the current time, for tests with a fixed clock.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Seconds since the Unix epoch by `clock`, or by the system clock.
pub(crate) fn unix_now(clock: Option<&Clock>) -> i64 {
    clock
        .map_or_else(SystemTime::now, |c| c())
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Verifies access tokens issued by one provider for this API.
///
/// Cheap to clone. The verifier is its own builder: every `with_*`, `add_*` and `require_*`
/// method returns the changed verifier. See the [module docs](crate::verify) for the checks.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use oidc_core::{AccessTokenVerifier, Algorithm, Provider};
///
/// let provider = Provider::builder("https://id.example.com").build()?;
/// let verifier = AccessTokenVerifier::new(provider, "https://api.example.com")
///     .with_algorithms([Algorithm::RS256, Algorithm::PS256])?
///     .with_leeway(Duration::from_secs(30))
///     .require_at_jwt(true);
/// # Ok::<_, oidc_core::error::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct AccessTokenVerifier {
    inner: Arc<Config>,
}

#[derive(Clone)]
struct Config {
    provider: Provider,
    audiences: Vec<String>,
    algorithms: Vec<Algorithm>,
    leeway: i64,
    max_token_size: usize,
    require_at_jwt: bool,
    require_iat: bool,
    roles: RoleSources,
    clock: Option<Clock>,
    cache: cache::Slot,
}

impl std::fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.inner;
        f.debug_struct("AccessTokenVerifier")
            .field("issuer", &c.provider.issuer())
            .field("audiences", &c.audiences)
            .field("algorithms", &c.algorithms)
            .field("leeway", &c.leeway)
            .field("max_token_size", &c.max_token_size)
            .field("require_at_jwt", &c.require_at_jwt)
            .field("require_iat", &c.require_iat)
            .field("token_cache", &c.cache.settings())
            .finish_non_exhaustive()
    }
}

impl AccessTokenVerifier {
    /// A verifier for tokens of `provider` whose `aud` contains `audience`.
    ///
    /// Defaults: algorithms `RS256` and `ES256`, leeway 60 s, 16 KiB size cap, `typ` `JWT`
    /// accepted besides `at+jwt`, `iat` required, a token cache of 10 000 tokens kept at most
    /// 5 minutes.
    pub fn new(provider: Provider, audience: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Config {
                provider,
                audiences: vec![audience.into()],
                algorithms: vec![Algorithm::RS256, Algorithm::ES256],
                leeway: 60,
                max_token_size: 16 * 1024,
                require_at_jwt: false,
                require_iat: true,
                roles: RoleSources::default(),
                clock: None,
                cache: cache::Slot::new(Some(cache::Settings::default())),
            }),
        }
    }

    /// The configuration, to change: the token cache starts again empty, as its entries were
    /// checked under the old rules.
    fn config(&mut self) -> &mut Config {
        let config = Arc::make_mut(&mut self.inner);
        config.cache = cache::Slot::new(config.cache.settings());
        config
    }

    /// Sizes the validated-token cache: at most `max_tokens` tokens, each kept at most
    /// `max_age` (and never past its `exp`). The default values are 10 000 tokens and
    /// 5 minutes. `0` for either turns the cache off. See the
    /// [module docs](crate::verify#token-cache).
    ///
    /// # Security
    ///
    /// A cached token is accepted without its signature being checked again, for as long as
    /// its entry lives: the time checks are repeated on every hit, and an entry is dropped as
    /// soon as a key refresh shows its key gone, but a key removal is only noticed at the next
    /// refresh of the key set (as without the cache). Issuer, audience and the other claim
    /// checks cannot change for the same token bytes under the same configuration. The cache
    /// is in memory and keyed by SHA-256, so it holds no token in clear.
    #[must_use]
    pub fn with_token_cache(mut self, max_tokens: u64, max_age: Duration) -> Self {
        self.config().cache = cache::Slot::new(Some(cache::Settings {
            capacity: max_tokens,
            max_age,
        }));
        self
    }

    /// Turns the validated-token cache off: every token is verified in full, signature
    /// included, on every request. See the [module docs](crate::verify#token-cache).
    #[must_use]
    pub fn without_token_cache(mut self) -> Self {
        self.config().cache = cache::Slot::new(None);
        self
    }

    /// Accepts tokens for another audience too.
    #[must_use]
    pub fn add_audience(mut self, audience: impl Into<String>) -> Self {
        self.config().audiences.push(audience.into());
        self
    }

    /// Replaces the allowed algorithms. The default value is `[RS256, ES256]`.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::InvalidAlgorithms`] for an empty list.
    pub fn with_algorithms(
        mut self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        let mut list: Vec<Algorithm> = Vec::new();
        for a in algorithms {
            if !list.contains(&a) {
                list.push(a);
            }
        }
        if list.is_empty() {
            return Err(ConfigError::InvalidAlgorithms("the list is empty"));
        }
        self.config().algorithms = list;
        Ok(self)
    }

    /// Sets the clock skew tolerated for `exp`, `nbf` and `iat`. The default value is 60 s.
    ///
    /// # Security
    ///
    /// A large leeway keeps expired tokens working for that long.
    #[must_use]
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.config().leeway = i64::try_from(leeway.as_secs()).unwrap_or(i64::MAX);
        self
    }

    /// Sets the largest token accepted, in bytes. The default value is 16 KiB.
    #[must_use]
    pub fn with_max_token_size(mut self, bytes: usize) -> Self {
        self.config().max_token_size = bytes;
        self
    }

    /// Requires the RFC 9068 header `typ: at+jwt`. The default value is `false`, because
    /// Keycloak, Entra ID and Auth0 send `typ: JWT`.
    #[must_use]
    pub fn require_at_jwt(mut self, strict: bool) -> Self {
        self.config().require_at_jwt = strict;
        self
    }

    /// Requires the `iat` claim (RFC 9068 §2.2). The default value is `true`.
    #[must_use]
    pub fn require_iat(mut self, required: bool) -> Self {
        self.config().require_iat = required;
        self
    }

    /// Names the client whose Keycloak `resource_access.<client>.roles` count as roles.
    /// By default no client roles are read.
    #[must_use]
    pub fn with_client_id(mut self, client_id: impl Into<String>) -> Self {
        self.config().roles.client_id = Some(client_id.into());
        self
    }

    /// Reads roles from another claim too, given as a dot-separated path to a string or an
    /// array of strings (`"permissions"`, `"app.roles"`).
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::InvalidClaimPath`] for an empty path or an empty segment.
    pub fn add_roles_claim(mut self, path: &str) -> Result<Self, ConfigError> {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError::InvalidClaimPath(path.to_owned()));
        }
        self.config().roles.paths.push(segments);
        Ok(self)
    }

    /// Replaces the clock used for `exp`, `nbf` and `iat`. The default is the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.config().clock = Some(clock);
        self
    }

    /// The provider whose tokens this verifier accepts.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    /// Whether verification fails on tokens without `typ: at+jwt`.
    pub fn is_strict(&self) -> bool {
        self.inner.require_at_jwt
    }

    fn now(&self) -> i64 {
        unix_now(self.inner.clock.as_ref())
    }

    /// Verifies `token` and returns its claims, with the application's claims as `C`.
    ///
    /// # Errors
    ///
    /// Returns a [`VerifyError`] naming the first check that failed. Only
    /// [`VerifyError::KeysUnavailable`] does not mean the token is bad.
    pub async fn verify<C: DeserializeOwned>(&self, token: &str) -> Result<Claims<C>, VerifyError> {
        let c = &*self.inner;
        let Some(cache) = c.cache.get() else {
            let (identity, claims, _) = self.verify_in_full(token).await?;
            let custom = C::deserialize(Value::Object(claims))
                // The deserializer's message can quote claim values: keep it out of the error.
                .map_err(|_| VerifyError::CustomClaims)?;
            return Ok(Claims::new(identity, custom));
        };
        if token.len() > c.max_token_size {
            return Err(VerifyError::TooLarge {
                limit: c.max_token_size,
            });
        }
        let key = cache::key(token);
        if let Some(entry) = cache.get(&key) {
            if !entry.key.is_retired() && c.provider.keys_usable_for_cached() {
                entry.check_times(self.now(), c.leeway, c.require_iat)?;
                let custom =
                    C::deserialize(&entry.claims).map_err(|_| VerifyError::CustomClaims)?;
                return Ok(Claims::new(entry.identity.clone(), custom));
            }
            cache.invalidate(&key);
        }
        let (identity, claims, signing_key) = self.verify_in_full(token).await?;
        let claims = Value::Object(claims);
        let custom = C::deserialize(&claims).map_err(|_| VerifyError::CustomClaims)?;
        if let Value::Object(map) = &claims {
            let times = (
                identity.expires_at(),
                jws::time(map, "nbf")?,
                jws::time(map, "iat")?,
            );
            let max_age = c.cache.settings().map(|s| s.max_age).unwrap_or_default();
            let entry = cache::Entry::new(
                identity.clone(),
                claims,
                signing_key,
                times,
                self.now(),
                c.leeway,
                max_age,
            );
            if let Some(entry) = entry {
                cache.insert(key, Arc::new(entry));
            }
        }
        Ok(Claims::new(identity, custom))
    }

    /// Every check of the [module docs](crate::verify): the identity, the payload and the key
    /// that verified it.
    async fn verify_in_full(
        &self,
        token: &str,
    ) -> Result<(Identity, Map<String, Value>, Arc<VerifyingKey>), VerifyError> {
        let c = &*self.inner;
        let strict = c.require_at_jwt;
        let jws::Signed {
            claims, typ, key, ..
        } = jws::verify_signature(&c.provider, &c.algorithms, c.max_token_size, token, |typ| {
            match typ {
                TokenType::AccessToken => true,
                TokenType::Generic => !strict,
                TokenType::Other => false,
            }
        })
        .await?;
        let (audience, expires_at) = self.check_claims(&claims, typ)?;
        let identity = Identity::from_verified(&claims, audience, expires_at, &c.roles);
        Ok((identity, claims, key))
    }

    /// Checks the registered claims; returns the audiences and `exp`.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        typ: TokenType,
    ) -> Result<(Vec<String>, i64), VerifyError> {
        let c = &*self.inner;
        let now = self.now();

        jws::check_issuer(claims, c.provider.issuer())?;
        let audience = jws::audiences(claims)?;
        if !audience
            .iter()
            .any(|a| !a.is_empty() && c.audiences.iter().any(|want| want == a))
        {
            return Err(VerifyError::InvalidAudience);
        }
        jws::check_subject(claims)?;
        let exp = jws::check_times(claims, now, c.leeway, c.require_iat)?;

        if claims.contains_key("events") {
            return Err(VerifyError::NotAnAccessToken);
        }
        if typ != TokenType::AccessToken {
            let id_token_claim = ["nonce", "at_hash", "c_hash"]
                .iter()
                .any(|name| claims.contains_key(*name));
            let keycloak_non_bearer = claims
                .get("typ")
                .and_then(Value::as_str)
                .is_some_and(|t| !t.eq_ignore_ascii_case("Bearer"));
            if id_token_claim || keycloak_non_bearer {
                return Err(VerifyError::NotAnAccessToken);
            }
        }
        Ok((audience, exp))
    }
}

#[cfg(test)]
mod tests;
