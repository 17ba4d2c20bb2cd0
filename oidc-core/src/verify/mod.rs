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
//!    algorithms ([`AccessTokenVerifier::with_algorithms`]; by default `RS256`, `ES256` and,
//!    when the provider advertises it (step 5), `EdDSA`), which never include `none` or HMAC.
//!    `jku`, `x5u`, `jwk` and `x5c` are ignored: keys come only from the provider's JWKS, and
//!    the `kid` is only a key into that cache.
//! 4. Type: `typ` `at+jwt` (or `application/at+jwt`) is accepted; `JWT` or no `typ` is
//!    accepted too unless [`AccessTokenVerifier::require_at_jwt`] is set; any other `typ`
//!    (`logout+jwt`, `id_token+jwt`…) is refused.
//! 5. Key: the key with the token's `kid`; without `kid`, the single key of the set that fits
//!    the algorithm (several fitting keys are refused rather than tried: KEY-02). A `kid` under
//!    which the set has several usable keys is refused, whichever key signed the token
//!    ([`VerifyError::DuplicateKeyId`]; see
//!    [Several keys under one `kid`](crate::jwks#several-keys-under-one-kid)). The key's
//!    type (and curve) must fit the algorithm, and a key that names its `alg` is used only
//!    with that one. When the provider publishes `id_token_signing_alg_values_supported`, the
//!    algorithm must also be in it; without that list, the default algorithms accept only
//!    `RS256` and `ES256` (`EdDSA` needs the provider to advertise it, or
//!    [`AccessTokenVerifier::with_algorithms`]).
//! 6. Signature, with aws-lc-rs on keys parsed when the key set was loaded.
//! 7. Claims, only once the signature holds: `iss` equals the issuer exactly; `aud` (a string
//!    or an array) contains a configured audience; `sub` is a non-empty string of at most 255
//!    characters; `exp` is required and must be an integer; `nbf` and `iat`, when present,
//!    must be integers and not in the future; `iat` is required by default (RFC 9068 §2.2).
//!    The leeway for all times is 60 s by default.
//! 8. Not another kind of token: a token that carries `events` (a logout token) is refused;
//!    unless its `typ` is `at+jwt`, so is one that carries `nonce`, `at_hash` or `c_hash` (an
//!    ID token), or Keycloak's `typ` claim with a value other than `Bearer`.
//! 9. Not sender-constrained: a token with a `cnf` claim, whatever its value (`jkt`: bound to
//!    a DPoP key, RFC 9449 §6.1; `x5t#S256`: bound to a client certificate, RFC 8705 §3.1), is
//!    refused as [`VerifyError::SenderConstrained`]. Its holder would have to prove possession
//!    of that key, which a bearer token cannot; RFC 9449 §7.1 forbids accepting it as a plain
//!    bearer token, and this library does not verify DPoP proofs or certificates (yet). Such
//!    a token is never put in the token cache, since only tokens that passed every step are.
//!    (ID tokens may carry `cnf` too, OIDC Core §3.1.3.6; they are never bearer credentials,
//!    and the login flow leaves it alone.)
//!
//! # Security
//!
//! In the default (compatible) mode a token without `typ: at+jwt` is told apart from an ID
//! token only by its claims. An ID token issued to a client whose id is also this API's
//! audience, and issued without `nonce` or hashes, would pass. Give the API an audience of its
//! own (not a client id), or turn on [`AccessTokenVerifier::require_at_jwt`] when the
//! provider issues RFC 9068 tokens.
//!
//! # Several issuers
//!
//! An API that accepts tokens of several providers (one realm per tenant, a company provider
//! next to a partner's) combines one verifier per issuer with [`AccessTokenVerifier::any_of`].
//! Each keeps its own provider, audiences, algorithms and other settings:
//!
//! ```
//! use oidc_core::{AccessTokenVerifier, Provider};
//!
//! let acme = Provider::builder("https://id.example.com/realms/acme").build()?;
//! let globex = Provider::builder("https://login.example.net/globex").build()?;
//! let verifier = AccessTokenVerifier::any_of([
//!     AccessTokenVerifier::new(acme, "https://api.example.com"),
//!     AccessTokenVerifier::new(globex, "api://orders").require_at_jwt(true),
//! ])?;
//! assert_eq!(verifier.providers().count(), 2);
//! # Ok::<_, oidc_core::error::ConfigError>(())
//! ```
//!
//! - The token's `iss` is read, unverified, after the size cap (the largest of the
//!   verifiers' caps) and the split into segments, and only to choose a verifier: the one whose
//!   issuer is exactly that string (no case folding, no trailing-slash or prefix matching).
//!   Nothing else of the unverified token is used. A payload with `iss` twice, or that is not a
//!   JSON object, is refused as [`VerifyError::InvalidPayload`].
//! - A token whose `iss` names no configured issuer is refused as [`VerifyError::InvalidIssuer`]
//!   (`MissingClaim("iss")` without `iss`), like a wrong issuer with a single verifier, and
//!   without any request to any provider: a token never makes the service contact an issuer
//!   that is not configured.
//! - The chosen verifier then makes every check of [What is checked](#what-is-checked),
//!   `iss` included, with its own keys: a token that names issuer A but is signed with B's key
//!   is refused.
//! - Each verifier keeps its own [token cache](#token-cache); an entry is only ever answered
//!   by the verifier that validated it.
//! - Handlers tell the issuers apart by [`Identity::issuer`](crate::Identity::issuer) (also
//!   reachable through [`Claims`]), which is the chosen verifier's issuer. Subjects are unique
//!   per issuer only: key users by (`iss`, `sub`), never by `sub` alone.
//! - [`AccessTokenVerifier::readiness`] and [`AccessTokenVerifier::warm_up`] cover every
//!   issuer; builder methods called on the combined verifier change every verifier in it.
//! - Two verifiers for the same issuer are a configuration error (give one verifier several
//!   audiences with [`AccessTokenVerifier::add_audience`] instead).
//!
//! With a single issuer nothing of this runs: [`AccessTokenVerifier::any_of`] of one verifier
//! is that verifier.
//!
//! # Token cache
//!
//! A token that passed every check above is remembered, found by a keyed hash of the whole
//! token (random seed per cache) and answered only for the same token bytes (compared in
//! constant time: a hash collision never authenticates), so that the next request with the same token is answered without signature
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
//! - A hit hands out the claims decoded when the token was verified, shared rather than
//!   copied: the payload itself for the default claim type (`AdditionalClaims`), the decoding
//!   kept for the first other type asked for; any further type is decoded from the payload.

mod cache;
pub mod introspection;
mod issuers;
pub(crate) mod token;

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::algorithm::{Algorithm, Algorithms};
use crate::claims::{Claims, Identity, RoleSources};
use crate::clock::{self, unix_now};
use crate::error::{ConfigError, JwksError, VerifyError};
use crate::jwks::VerifyingKey;
use crate::jws;
use crate::provider::{Provider, Readiness};

use self::issuers::Issuers;
use self::token::TokenType;

pub use self::introspection::Introspector;
pub use crate::clock::Clock;

/// Verifies access tokens issued for this API by one provider, or by one of several
/// ([`AccessTokenVerifier::any_of`]).
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
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    /// One issuer: the common case, verified without any selection step.
    One(Arc<Config>),
    /// Several issuers, one of which the token's exact `iss` chooses.
    AnyOf(Arc<Issuers>),
}

/// The settings for one issuer, and the token cache filled under them.
#[derive(Clone)]
struct Config {
    provider: Provider,
    audiences: Vec<String>,
    algorithms: Algorithms,
    leeway: i64,
    max_token_size: usize,
    require_at_jwt: bool,
    require_iat: bool,
    roles: RoleSources,
    clock: Option<Clock>,
    cache: cache::Slot,
    /// Opaque tokens are introspected when set (RFC 7662).
    introspection: Option<Arc<introspection::Slot>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokenVerifier")
            .field("issuer", &self.provider.issuer())
            .field("audiences", &self.audiences)
            .field("algorithms", &self.algorithms)
            .field("leeway", &self.leeway)
            .field("max_token_size", &self.max_token_size)
            .field("require_at_jwt", &self.require_at_jwt)
            .field("require_iat", &self.require_iat)
            .field("token_cache", &self.cache.settings())
            .field(
                "introspection",
                &self.introspection.as_ref().map(|i| i.introspector()),
            )
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for AccessTokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.kind {
            Kind::One(config) => config.fmt(f),
            Kind::AnyOf(set) => f
                .debug_struct("AccessTokenVerifier")
                .field("any_of", &set.configs().collect::<Vec<_>>())
                .finish(),
        }
    }
}

/// `config`, to change: its token cache starts again empty, as its entries were checked under
/// the old rules. A configuration shared with other handles is copied first.
fn fresh(config: &mut Arc<Config>) -> &mut Config {
    let config = Arc::make_mut(config);
    config.cache = cache::Slot::new(config.cache.settings());
    config.introspection = config
        .introspection
        .as_ref()
        .map(|slot| Arc::new(slot.fresh()));
    config
}

impl AccessTokenVerifier {
    /// A verifier for tokens of `provider` whose `aud` contains `audience`.
    ///
    /// Defaults: algorithms `RS256` and `ES256`, and `EdDSA` when the provider advertises it
    /// in `id_token_signing_alg_values_supported`; leeway 60 s, 16 KiB size cap, `typ` `JWT`
    /// accepted besides `at+jwt`, `iat` required, a token cache of 10 000 tokens kept at most
    /// 5 minutes.
    pub fn new(provider: Provider, audience: impl Into<String>) -> Self {
        Self {
            kind: Kind::One(Arc::new(Config {
                provider,
                audiences: vec![audience.into()],
                algorithms: Algorithms::Default,
                leeway: clock::DEFAULT_LEEWAY_SECS,
                max_token_size: 16 * 1024,
                require_at_jwt: false,
                require_iat: true,
                roles: RoleSources::default(),
                clock: None,
                cache: cache::Slot::new(Some(cache::Settings::default())),
                introspection: None,
            })),
        }
    }

    /// A verifier for tokens of several issuers: each token is verified by the one of
    /// `verifiers` whose provider's issuer is exactly the token's `iss`, with that verifier's
    /// settings (audiences, algorithms, leeway…) and token cache. See
    /// [Several issuers](crate::verify#several-issuers).
    ///
    /// Verifiers that are themselves combinations are taken apart: their issuers join the
    /// list. A single verifier is returned as it is.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::DuplicateIssuer`] when two verifiers have the same issuer, and
    /// [`ConfigError::NoIssuer`] when `verifiers` is empty.
    ///
    /// # Examples
    ///
    /// ```
    /// use oidc_core::{error::ConfigError, AccessTokenVerifier, Provider};
    ///
    /// let staff = Provider::builder("https://id.example.com/realms/staff").build()?;
    /// let partners = Provider::builder("https://id.example.com/realms/partners").build()?;
    /// let verifier = AccessTokenVerifier::any_of([
    ///     AccessTokenVerifier::new(staff, "https://api.example.com"),
    ///     AccessTokenVerifier::new(partners, "https://api.example.com"),
    /// ])?;
    /// let issuers: Vec<&str> = verifier.providers().map(|p| p.issuer()).collect();
    /// assert_eq!(issuers.len(), 2);
    ///
    /// // The same issuer twice is refused.
    /// let again = Provider::builder("https://id.example.com/realms/staff").build()?;
    /// assert!(AccessTokenVerifier::any_of([
    ///     verifier.clone(),
    ///     AccessTokenVerifier::new(again, "api://other"),
    /// ])
    /// .is_err_and(|e| matches!(e, ConfigError::DuplicateIssuer { .. })));
    /// # Ok::<_, ConfigError>(())
    /// ```
    pub fn any_of(
        verifiers: impl IntoIterator<Item = AccessTokenVerifier>,
    ) -> Result<Self, ConfigError> {
        let mut configs: Vec<Arc<Config>> = Vec::new();
        for verifier in verifiers {
            match verifier.kind {
                Kind::One(config) => configs.push(config),
                Kind::AnyOf(set) => configs.extend(set.configs().cloned()),
            }
        }
        let mut configs = configs.into_iter();
        let Some(first) = configs.next() else {
            return Err(ConfigError::NoIssuer);
        };
        let others: Vec<Arc<Config>> = configs.collect();
        if others.is_empty() {
            return Ok(Self {
                kind: Kind::One(first),
            });
        }
        Ok(Self {
            kind: Kind::AnyOf(Arc::new(Issuers::new(first, others)?)),
        })
    }

    /// Applies `change` to the configuration of every issuer (each copied if shared, with a
    /// new, empty token cache).
    fn update(mut self, mut change: impl FnMut(&mut Config)) -> Self {
        match &mut self.kind {
            Kind::One(config) => change(fresh(config)),
            Kind::AnyOf(set) => Arc::make_mut(set).update(|config| change(fresh(config))),
        }
        self
    }

    /// The configuration of each issuer, in the order given to [`AccessTokenVerifier::any_of`].
    fn configs(&self) -> impl Iterator<Item = &Arc<Config>> {
        let (first, others): (&Arc<Config>, &[Arc<Config>]) = match &self.kind {
            Kind::One(config) => (config, &[]),
            Kind::AnyOf(set) => (set.first(), set.others()),
        };
        std::iter::once(first).chain(others)
    }

    /// Sizes the validated-token cache: at most `max_tokens` tokens, each kept at most
    /// `max_age` (and never past its `exp`). The default values are 10 000 tokens and
    /// 5 minutes. `0` for either turns the cache off. See the
    /// [module docs](crate::verify#token-cache). For several issuers, each gets a cache of
    /// this size.
    ///
    /// # Security
    ///
    /// A cached token is accepted without its signature being checked again, for as long as
    /// its entry lives: the time checks are repeated on every hit, and an entry is dropped as
    /// soon as a key refresh shows its key gone, but a key removal is only noticed at the next
    /// refresh of the key set (as without the cache). Issuer, audience and the other claim
    /// checks cannot change for the same token bytes under the same configuration. The cache
    /// is in memory only and holds each cached token, as the process does while serving it.
    #[must_use]
    pub fn with_token_cache(self, max_tokens: u64, max_age: Duration) -> Self {
        let settings = cache::Settings {
            capacity: max_tokens,
            max_age,
        };
        self.update(|c| c.cache = cache::Slot::new(Some(settings)))
    }

    /// Validates opaque tokens by the provider's token introspection endpoint (RFC 7662): a
    /// token that is not a compact JWS (three base64url segments) is introspected with
    /// `introspector` instead of refused as [`VerifyError::Malformed`]; a JWT is verified as
    /// before and never introspected. See [`introspection`] for the checks and the cache.
    ///
    /// With several issuers, each gets the introspector (with its own cache), and an opaque
    /// token is introspected at the first issuer, in the order given to
    /// [`AccessTokenVerifier::any_of`], that has one.
    ///
    /// # Security
    ///
    /// An accepted token is answered from the cache for up to 60 s by default (at most until
    /// its `exp`): a token revoked at the provider is still accepted that long. The
    /// introspector's secret is a credential of this service: keep it out of logs.
    #[must_use]
    pub fn with_introspection(self, introspector: Introspector) -> Self {
        self.update(|c| {
            c.introspection = Some(Arc::new(introspection::Slot::new(introspector.clone())))
        })
    }

    /// Turns the validated-token cache off: every token is verified in full, signature
    /// included, on every request. See the [module docs](crate::verify#token-cache).
    #[must_use]
    pub fn without_token_cache(self) -> Self {
        self.update(|c| c.cache = cache::Slot::new(None))
    }

    /// Accepts tokens for another audience too (for several issuers: from every issuer).
    #[must_use]
    pub fn add_audience(self, audience: impl Into<String>) -> Self {
        let audience = audience.into();
        self.update(|c| c.audiences.push(audience.clone()))
    }

    /// Replaces the allowed algorithms. By default `RS256` and `ES256` are allowed, and
    /// `EdDSA` when the provider advertises it in `id_token_signing_alg_values_supported`.
    ///
    /// A provider that publishes `id_token_signing_alg_values_supported` narrows the list to
    /// the algorithms it names; one that publishes none leaves the list as it is.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::InvalidAlgorithms`] for an empty list.
    pub fn with_algorithms(
        self,
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, ConfigError> {
        let list = Algorithms::configured(algorithms)?;
        Ok(self.update(|c| c.algorithms.clone_from(&list)))
    }

    /// Sets the clock skew tolerated for `exp`, `nbf` and `iat`. The default value is 60 s.
    ///
    /// # Security
    ///
    /// A large leeway keeps expired tokens working for that long.
    #[must_use]
    pub fn with_leeway(self, leeway: Duration) -> Self {
        let leeway = clock::leeway_secs(leeway);
        self.update(|c| c.leeway = leeway)
    }

    /// Sets the largest token accepted, in bytes. The default value is 16 KiB.
    #[must_use]
    pub fn with_max_token_size(self, bytes: usize) -> Self {
        self.update(|c| c.max_token_size = bytes)
    }

    /// Requires the RFC 9068 header `typ: at+jwt`. The default value is `false`, because
    /// Keycloak, Entra ID and Auth0 send `typ: JWT`.
    #[must_use]
    pub fn require_at_jwt(self, strict: bool) -> Self {
        self.update(|c| c.require_at_jwt = strict)
    }

    /// Requires the `iat` claim (RFC 9068 §2.2). The default value is `true`.
    #[must_use]
    pub fn require_iat(self, required: bool) -> Self {
        self.update(|c| c.require_iat = required)
    }

    /// Names the client whose Keycloak `resource_access.<client>.roles` count as roles.
    /// By default no client roles are read.
    #[must_use]
    pub fn with_client_id(self, client_id: impl Into<String>) -> Self {
        let client_id = client_id.into();
        self.update(|c| c.roles.client_id = Some(client_id.clone()))
    }

    /// Reads roles from another claim too, given as a dot-separated path to a string or an
    /// array of strings (`"permissions"`, `"app.roles"`).
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::InvalidClaimPath`] for an empty path or an empty segment.
    pub fn add_roles_claim(self, path: &str) -> Result<Self, ConfigError> {
        let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
        if segments.iter().any(String::is_empty) {
            return Err(ConfigError::InvalidClaimPath(path.to_owned()));
        }
        Ok(self.update(|c| c.roles.paths.push(segments.clone())))
    }

    /// Replaces the clock used for `exp`, `nbf` and `iat`. The default is the system clock.
    #[must_use]
    pub fn with_clock(self, clock: Clock) -> Self {
        self.update(|c| c.clock = Some(clock.clone()))
    }

    /// The provider whose tokens this verifier accepts; for several issuers, the first one
    /// given to [`AccessTokenVerifier::any_of`] (see [`AccessTokenVerifier::providers`]).
    pub fn provider(&self) -> &Provider {
        match &self.kind {
            Kind::One(config) => &config.provider,
            Kind::AnyOf(set) => &set.first().provider,
        }
    }

    /// The providers whose tokens this verifier accepts, in the order given to
    /// [`AccessTokenVerifier::any_of`]: one, unless it was built from several.
    pub fn providers(&self) -> impl Iterator<Item = &Provider> {
        self.configs().map(|c| &c.provider)
    }

    /// What the providers have loaded so far, for a readiness probe: metadata (or keys) count
    /// as loaded when they are for every issuer. Does no I/O. See [`Provider::readiness`].
    pub fn readiness(&self) -> Readiness {
        self.providers().map(Provider::readiness).fold(
            Readiness {
                metadata: true,
                keys: true,
            },
            |all, one| Readiness {
                metadata: all.metadata && one.metadata,
                keys: all.keys && one.keys,
            },
        )
    }

    /// Loads the metadata and keys of every issuer now, instead of on first need (all issuers
    /// at once). See [`Provider::warm_up`].
    ///
    /// # Errors
    ///
    /// Returns the error of the first issuer, in the order given to
    /// [`AccessTokenVerifier::any_of`], whose keys could not be loaded; the others are loaded
    /// all the same.
    pub async fn warm_up(&self) -> Result<(), JwksError> {
        match &self.kind {
            Kind::One(config) => config.provider.warm_up().await,
            Kind::AnyOf(set) => set.warm_up().await,
        }
    }

    /// Whether verification fails on tokens without `typ: at+jwt` (for several issuers: for
    /// every one of them).
    pub fn is_strict(&self) -> bool {
        self.configs().all(|c| c.require_at_jwt)
    }

    /// Verifies `token` and returns its claims, with the application's claims as `C`.
    ///
    /// For a verifier of several issuers, the token's `iss` first chooses the verifier (see
    /// [Several issuers](crate::verify#several-issuers)); [`Claims::issuer`](crate::Identity::issuer)
    /// tells which one accepted it.
    ///
    /// # Errors
    ///
    /// Returns a [`VerifyError`] naming the first check that failed. Only
    /// [`VerifyError::KeysUnavailable`] does not mean the token is bad.
    pub async fn verify<C>(&self, token: &str) -> Result<Claims<C>, VerifyError>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        // The introspector first (a field read), the token's shape only when there is one: a
        // verifier without introspection pays nothing for it.
        if let Some((config, slot)) = self
            .configs()
            .find_map(|c| c.introspection.as_ref().map(|slot| (c, slot)))
            && !introspection::is_jws(token)
        {
            return config.introspect(slot, token).await;
        }
        let config = match &self.kind {
            Kind::One(config) => config,
            Kind::AnyOf(set) => set.select(token)?,
        };
        config.verify(token).await
    }

    /// The claims of `token` as the token cache has them, without waiting for anything:
    /// `None` when the token must be verified in full with [`AccessTokenVerifier::verify`]
    /// (not cached, caching off, its key retired or the key set too old).
    ///
    /// A hit makes the same checks as a hit in [`AccessTokenVerifier::verify`]: the size cap,
    /// the issuer's choice among several, and the time checks again with the verifier's clock.
    /// See [Token cache](crate::verify#token-cache).
    ///
    /// # Errors
    ///
    /// `Some(Err(_))` for a token refused on the way (too large, an unknown issuer, expired
    /// since it was cached).
    pub fn verify_cached<C>(&self, token: &str) -> Option<Result<Claims<C>, VerifyError>>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        // One issuer: only verified JWTs are in the token cache, so an opaque token misses it
        // and goes to `verify` (introspection answers come from an async cache); its shape is
        // not looked at here. Several: the token's `iss` chooses, so an opaque one must be
        // told apart first.
        let config = match &self.kind {
            Kind::One(config) => config,
            Kind::AnyOf(set)
                if set.configs().any(|c| c.introspection.is_some())
                    && !introspection::is_jws(token) =>
            {
                return None;
            }
            Kind::AnyOf(set) => match set.select(token) {
                Ok(config) => config,
                Err(error) => return Some(Err(error)),
            },
        };
        config.cached(token)
    }
}

impl Config {
    fn now(&self) -> i64 {
        unix_now(self.clock.as_ref())
    }

    /// [`AccessTokenVerifier::verify`] for this issuer: from the token cache, or in full.
    async fn verify<C>(&self, token: &str) -> Result<Claims<C>, VerifyError>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        let Some(cache) = self.cache.get() else {
            let (identity, claims, _) = self.verify_in_full(token).await?;
            let custom = C::deserialize(Value::Object(claims))
                // The deserializer's message can quote claim values: keep it out of the error.
                .map_err(|_| VerifyError::CustomClaims)?;
            return Ok(Claims::new(identity, custom));
        };
        if let Some(answer) = self.cached(token) {
            return answer;
        }
        let key = self.cache.key(token);
        let (identity, claims, signing_key) = self.verify_in_full(token).await?;
        let times = (
            identity.expires_at(),
            jws::time(&claims, "nbf")?,
            jws::time(&claims, "iat")?,
        );
        let max_age = self.cache.settings().map(|s| s.max_age).unwrap_or_default();
        let payload = Arc::new(claims);
        let entry = cache::Entry::new(
            token,
            identity.clone(),
            Arc::clone(&payload),
            signing_key,
            times,
            self.now(),
            self.leeway,
            max_age,
        );
        let Some(entry) = entry else {
            // Its time ran out since it was checked: answered, not kept.
            return Ok(Claims::new(identity, cache::decode(&payload)?));
        };
        let custom = entry.custom::<C>()?;
        cache.insert(key, Arc::new(entry));
        Ok(Claims::shared(identity, custom))
    }

    /// The answer of the token cache, if it has one: `None` when caching is off or the token
    /// must be verified in full (an entry whose key is retired, or whose key set is too old,
    /// is dropped).
    fn cached<C>(&self, token: &str) -> Option<Result<Claims<C>, VerifyError>>
    where
        C: DeserializeOwned + Send + Sync + 'static,
    {
        let cache = self.cache.get()?;
        if token.len() > self.max_token_size {
            return Some(Err(VerifyError::TooLarge {
                limit: self.max_token_size,
            }));
        }
        let key = self.cache.key(token);
        let entry = cache.get(&key).filter(|entry| entry.is_for(token))?;
        if entry.key.is_retired() || !self.provider.keys_usable_for_cached() {
            cache.invalidate(&key);
            return None;
        }
        Some(
            entry
                .check_times(self.now(), self.leeway, self.require_iat)
                .and_then(|()| Ok(Claims::shared(entry.identity.clone(), entry.custom()?))),
        )
    }

    /// Every check of the [module docs](crate::verify): the identity, the payload and the key
    /// that verified it.
    async fn verify_in_full(
        &self,
        token: &str,
    ) -> Result<(Identity, Map<String, Value>, Arc<VerifyingKey>), VerifyError> {
        let strict = self.require_at_jwt;
        let jws::Signed {
            claims, typ, key, ..
        } = jws::verify_signature(
            &self.provider,
            &self.algorithms,
            self.max_token_size,
            token,
            |typ| match typ {
                TokenType::AccessToken => true,
                TokenType::Generic => !strict,
                TokenType::Other => false,
            },
        )
        .await?;
        let (audience, expires_at) = self.check_claims(&claims, typ)?;
        let identity = Identity::from_verified(&claims, audience, expires_at, &self.roles);
        Ok((identity, claims, key))
    }

    /// Checks the registered claims; returns the audiences and `exp`.
    fn check_claims(
        &self,
        claims: &Map<String, Value>,
        typ: TokenType,
    ) -> Result<(Vec<String>, i64), VerifyError> {
        let now = self.now();

        jws::check_issuer(claims, self.provider.issuer())?;
        let audience = jws::audiences(claims)?;
        if !audience
            .iter()
            .any(|a| !a.is_empty() && self.audiences.iter().any(|want| want == a))
        {
            return Err(VerifyError::InvalidAudience);
        }
        jws::check_subject(claims)?;
        let exp = jws::check_times(claims, now, self.leeway, self.require_iat)?;

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
        if claims.contains_key("cnf") {
            return Err(VerifyError::SenderConstrained);
        }
        Ok((audience, exp))
    }
}

#[cfg(test)]
mod tests;
