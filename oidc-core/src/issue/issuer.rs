//! The token issuer: the key ring (current signer and retired keys kept until their last
//! token has expired), the JWKS and discovery documents, and minting.

use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use super::error::{BuildError, KeyError, MintError};
use super::key::SigningKey;
use crate::clock::{Clock, DEFAULT_LEEWAY_SECS, unix_secs};
use crate::flow::Secret;
use crate::url_policy::checked_url;

/// The default lifetime of a minted token: 5 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(5 * 60);
/// The longest lifetime a token issuer may be configured with: 1 hour.
pub const MAX_LIFETIME: Duration = Duration::from_secs(60 * 60);
/// The most keys published at once (the current one and retired ones).
pub const MAX_PUBLISHED_KEYS: usize = 16;

/// The claims the issuer sets itself, which extra claims may not override.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"];

/// Mints short-lived signed JWTs for this application's users, and publishes the keys that
/// verify them. Cheap to clone; clones share keys.
///
/// See the [module docs](crate::issue) for an example and the claims.
#[derive(Clone)]
pub struct TokenIssuer {
    inner: Arc<Inner>,
}

struct Inner {
    issuer: String,
    jwks_uri: String,
    default_audience: Option<String>,
    lifetime: Duration,
    leeway: Duration,
    clock: Option<Clock>,
    ring: RwLock<Ring>,
}

struct Ring {
    current: Arc<SigningKey>,
    /// Former signers, each with the time after which no token it signed can verify.
    retired: Vec<(Arc<SigningKey>, SystemTime)>,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = read(&self.inner.ring);
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.inner.issuer)
            .field("default_audience", &self.inner.default_audience)
            .field("lifetime", &self.inner.lifetime)
            .field("leeway", &self.inner.leeway)
            .field("signing_kid", &ring.current.kid())
            .field("retired_keys", &ring.retired.len())
            .finish_non_exhaustive()
    }
}

/// Builds a [`TokenIssuer`]. See [`TokenIssuer::builder`].
#[must_use]
pub struct TokenIssuerBuilder {
    issuer: String,
    key: SigningKey,
    default_audience: Option<String>,
    lifetime: Duration,
    leeway: Duration,
    clock: Option<Clock>,
}

impl std::fmt::Debug for TokenIssuerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuerBuilder")
            .field("issuer", &self.issuer)
            .field("key", &self.key)
            .field("default_audience", &self.default_audience)
            .field("lifetime", &self.lifetime)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// What to mint, besides the subject: the audience and extra claims.
///
/// # Examples
///
/// ```
/// use oidc_core::issue::MintRequest;
///
/// let request = MintRequest::new()
///     .with_audience("https://connector.example.com")
///     .with_claim("scope", "connector:read")
///     .with_claim("roles", serde_json::json!(["admin"]));
/// # let _ = request;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct MintRequest {
    audience: Option<String>,
    extra: Map<String, Value>,
}

impl MintRequest {
    /// A request for the issuer's default audience, without extra claims.
    pub fn new() -> Self {
        Self::default()
    }

    /// The `aud` of the token. The default is the issuer's
    /// [default audience](TokenIssuerBuilder::with_default_audience).
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Adds an extra claim (`scope`, `roles`, a tenant…). Registered claims (`iss`, `sub`,
    /// `aud`, `exp`, `nbf`, `iat`, `jti`) are refused when minting
    /// ([`MintError::ReservedClaim`]).
    pub fn with_claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.extra.insert(name.into(), value.into());
        self
    }
}

/// A minted token. `Debug` does not show the token.
#[derive(Debug, Clone)]
pub struct MintedToken {
    token: Secret,
    jti: String,
    kid: String,
    expires_at: SystemTime,
    lifetime: Duration,
}

impl MintedToken {
    /// The compact JWS, for `Authorization: Bearer`. Never log it.
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// The token's unique id (`jti`).
    pub fn jti(&self) -> &str {
        &self.jti
    }

    /// The `kid` of the key that signed it.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When it expires (`exp`).
    pub fn expires_at(&self) -> SystemTime {
        self.expires_at
    }

    /// Its lifetime (`exp - iat`), for an `expires_in` answer.
    pub fn expires_in(&self) -> Duration {
        self.lifetime
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl TokenIssuer {
    /// Starts configuring an issuer whose `iss` is `issuer` (the application's URL, exactly
    /// as the verifiers will be configured with it), signing with `key`.
    pub fn builder(issuer: impl Into<String>, key: SigningKey) -> TokenIssuerBuilder {
        TokenIssuerBuilder {
            issuer: issuer.into(),
            key,
            default_audience: None,
            lifetime: DEFAULT_LIFETIME,
            leeway: Duration::from_secs(DEFAULT_LEEWAY_SECS.unsigned_abs()),
            clock: None,
        }
    }

    /// The issuer identifier (`iss`).
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Where the JWKS is published: `{issuer}/.well-known/jwks.json`.
    pub fn jwks_uri(&self) -> &str {
        &self.inner.jwks_uri
    }

    /// The lifetime of minted tokens.
    pub fn lifetime(&self) -> Duration {
        self.inner.lifetime
    }

    /// The `kid` of the key that signs new tokens.
    pub fn signing_kid(&self) -> String {
        read(&self.inner.ring).current.kid().to_owned()
    }

    fn now(&self) -> SystemTime {
        self.inner
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |c| c())
    }

    /// How long a retired key stays published: a token it signed at the last moment
    /// verifies until `exp` plus the verifiers' leeway.
    fn retention(&self) -> Duration {
        self.inner.lifetime.saturating_add(self.inner.leeway)
    }

    /// Makes a new key of the current algorithm the signer. The previous key stays in the
    /// JWKS until every token it signed has expired (lifetime plus leeway), then is dropped.
    /// Returns the new `kid`.
    ///
    /// # Security
    ///
    /// Verifiers learn the new key when they first see a token with its `kid` (one key set
    /// fetch, at most once per their cooldown, 30 s by default for `AccessTokenVerifier`).
    /// To take a compromised key out at once, restart with a new key instead: a retired key
    /// keeps verifying the tokens it signed until they expire.
    ///
    /// # Errors
    ///
    /// [`KeyError::TooManyKeys`] when [`MAX_PUBLISHED_KEYS`] are still published, or a key
    /// generation failure.
    pub fn rotate(&self) -> Result<String, KeyError> {
        let alg = read(&self.inner.ring).current.algorithm();
        let key = SigningKey::generate(alg)?;
        let kid = key.kid().to_owned();
        self.rotate_to(key)?;
        Ok(kid)
    }

    /// Makes `key` the signer (see [`TokenIssuer::rotate`]), for a key generated or loaded
    /// elsewhere; it may use the other algorithm.
    ///
    /// # Errors
    ///
    /// [`KeyError::DuplicateKey`] when `key` is already published, [`KeyError::TooManyKeys`]
    /// when [`MAX_PUBLISHED_KEYS`] are still published.
    pub fn rotate_to(&self, key: SigningKey) -> Result<(), KeyError> {
        let now = self.now();
        let drop_at = now + self.retention();
        let mut ring = write(&self.inner.ring);
        ring.retired.retain(|(_, until)| *until > now);
        let published = std::iter::once(&ring.current).chain(ring.retired.iter().map(|(k, _)| k));
        if published.clone().any(|k| k.kid() == key.kid()) {
            return Err(KeyError::DuplicateKey {
                kid: key.kid().to_owned(),
            });
        }
        if published.count() >= MAX_PUBLISHED_KEYS {
            return Err(KeyError::TooManyKeys {
                max: MAX_PUBLISHED_KEYS,
            });
        }
        let old = std::mem::replace(&mut ring.current, Arc::new(key));
        ring.retired.insert(0, (old, drop_at));
        Ok(())
    }

    /// The public keys as a JWK set: the signer first, then the retired keys whose tokens
    /// can still be valid. Public members only (`kty`, `crv`, `x`, `y`, `kid`, `use`, `alg`).
    pub fn jwks(&self) -> Value {
        let now = self.now();
        let ring = read(&self.inner.ring);
        let keys: Vec<Value> = std::iter::once(ring.current.public_jwk())
            .chain(
                ring.retired
                    .iter()
                    .filter(|(_, until)| *until > now)
                    .map(|(k, _)| k.public_jwk()),
            )
            .collect();
        json!({ "keys": keys })
    }

    /// The discovery document served at `{issuer}/.well-known/openid-configuration`:
    /// `issuer`, `jwks_uri` and the signing algorithms (what `oidc-core`'s discovery and
    /// verifier use), plus `subject_types_supported`. This application is no OpenID
    /// Provider: no authorization or token endpoint is advertised.
    pub fn discovery_document(&self) -> Value {
        json!({
            "issuer": self.inner.issuer,
            "jwks_uri": self.inner.jwks_uri,
            // Each published JWK names its `alg`, so a key only verifies its own algorithm.
            "id_token_signing_alg_values_supported": ["ES256", "EdDSA"],
            "subject_types_supported": ["public"],
        })
    }

    /// Mints a token for `subject`: `iss`, `sub`, `aud`, `iat`, `nbf`, `exp` (now plus the
    /// lifetime), a random `jti`, then the request's extra claims; header `typ: at+jwt`
    /// (RFC 9068) and the signer's `kid`.
    ///
    /// This does not ask whether the user may still have tokens: that is the
    /// [`Revalidator`](super::Revalidator)'s job ([`Revalidator::mint`](super::Revalidator::mint)).
    ///
    /// # Errors
    ///
    /// [`MintError::ReservedClaim`] when an extra claim would override a registered one,
    /// [`MintError::InvalidSubject`], [`MintError::NoAudience`] / [`MintError::EmptyAudience`],
    /// [`MintError::Signing`].
    pub fn mint(&self, subject: &str, request: &MintRequest) -> Result<MintedToken, MintError> {
        if subject.is_empty() || subject.chars().count() > 255 {
            return Err(MintError::InvalidSubject);
        }
        if let Some(name) = request
            .extra
            .keys()
            .find(|k| REGISTERED.contains(&k.as_str()))
        {
            return Err(MintError::ReservedClaim(name.clone()));
        }
        let audience = request
            .audience
            .as_deref()
            .or(self.inner.default_audience.as_deref())
            .ok_or(MintError::NoAudience)?;
        if audience.is_empty() {
            return Err(MintError::EmptyAudience);
        }
        let now = self.now();
        let iat = unix_secs(now);
        let lifetime = self.inner.lifetime;
        let exp = iat.saturating_add(i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX));
        let mut jti = [0u8; 16];
        aws_lc_rs::rand::fill(&mut jti).map_err(|_| MintError::Signing)?;
        let jti = URL_SAFE_NO_PAD.encode(jti);

        let mut claims = Map::new();
        claims.insert("iss".into(), self.inner.issuer.clone().into());
        claims.insert("sub".into(), subject.into());
        claims.insert("aud".into(), audience.into());
        claims.insert("iat".into(), iat.into());
        claims.insert("nbf".into(), iat.into());
        claims.insert("exp".into(), exp.into());
        claims.insert("jti".into(), jti.clone().into());
        for (name, value) in &request.extra {
            claims.insert(name.clone(), value.clone());
        }

        let key = Arc::clone(&read(&self.inner.ring).current);
        let header = json!({ "alg": key.algorithm().as_str(), "kid": key.kid(), "typ": "at+jwt" });
        let header = serde_json::to_vec(&header).map_err(|_| MintError::Signing)?;
        let payload = serde_json::to_vec(&claims).map_err(|_| MintError::Signing)?;
        let mut token = URL_SAFE_NO_PAD.encode(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(payload, &mut token);
        let signature = key.sign(token.as_bytes()).ok_or(MintError::Signing)?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(MintedToken {
            token: Secret::new(token),
            jti,
            kid: key.kid().to_owned(),
            expires_at: SystemTime::UNIX_EPOCH
                + Duration::from_secs(u64::try_from(exp).unwrap_or_default()),
            lifetime,
        })
    }
}

impl TokenIssuerBuilder {
    /// The audience of tokens whose request names none. By default there is none, and every
    /// [`MintRequest`] must name its audience.
    pub fn with_default_audience(mut self, audience: impl Into<String>) -> Self {
        self.default_audience = Some(audience.into());
        self
    }

    /// The lifetime of minted tokens. The default value is 5 minutes; at most
    /// [`MAX_LIFETIME`] (1 hour), checked by [`build`](Self::build).
    ///
    /// # Security
    ///
    /// A minted token cannot be revoked: a user disabled at the provider keeps using the
    /// tokens minted before for up to this long (plus the verifiers' leeway). Keep it short.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The clock skew the verifiers tolerate, which decides how long a retired key stays
    /// published (lifetime plus leeway). The default value is 60 s, the default of
    /// [`AccessTokenVerifier`](crate::AccessTokenVerifier).
    pub fn with_leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Replaces the clock (`iat`, `exp`, key retention). The default is the system clock.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = Some(clock);
        self
    }

    /// Checks the settings and builds the issuer.
    ///
    /// # Errors
    ///
    /// [`BuildError::Issuer`] for an issuer that is not `https` (loopback hosts excepted) or
    /// has a query or fragment, [`BuildError::Lifetime`] for a lifetime of zero or over
    /// [`MAX_LIFETIME`], [`BuildError::EmptyAudience`].
    pub fn build(self) -> Result<TokenIssuer, BuildError> {
        let url = checked_url(&self.issuer, false).map_err(BuildError::Issuer)?;
        if url.query().is_some() {
            return Err(BuildError::Issuer(crate::error::ConfigError::InvalidUrl {
                url: self.issuer,
                reason: "an issuer has no query",
            }));
        }
        if self.lifetime < Duration::from_secs(1) || self.lifetime > MAX_LIFETIME {
            return Err(BuildError::Lifetime { max: MAX_LIFETIME });
        }
        if self.default_audience.as_deref() == Some("") {
            return Err(BuildError::EmptyAudience);
        }
        let jwks_uri = format!(
            "{}/.well-known/jwks.json",
            self.issuer.trim_end_matches('/')
        );
        Ok(TokenIssuer {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                jwks_uri,
                default_audience: self.default_audience,
                lifetime: self.lifetime,
                leeway: self.leeway,
                clock: self.clock,
                ring: RwLock::new(Ring {
                    current: Arc::new(self.key),
                    retired: Vec::new(),
                }),
            }),
        })
    }
}
