//! Error types, one per failure domain.
//!
//! Startup errors ([`ConfigError`]) are kept apart from the errors that happen while serving
//! requests ([`DiscoveryError`], [`JwksError`], [`VerifyError`], [`HttpError`]). No error here
//! ever carries the contents of a token: messages name the check that failed, nothing more.

use std::time::Duration;

/// A shared, type-erased error: the `source()` of errors that come from dependencies or from
/// pluggable parts. Shared so that one failed fetch can be reported to every waiting caller.
pub type BoxError = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// An invalid setting, found while building a provider or a verifier.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not an absolute URL.
    #[error("invalid issuer url")]
    InvalidIssuer(#[source] BoxError),
    /// The URL is `http` on a non-loopback host and the insecure setting was not given.
    #[error("url {url:?} must use https (http is only allowed for loopback hosts or with the insecure setting)")]
    InsecureUrl {
        /// The refused URL.
        url: String,
    },
    /// A URL carries a fragment, user info or another part that is not allowed here.
    #[error("url {url:?} is not allowed: {reason}")]
    InvalidUrl {
        /// The refused URL.
        url: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// No audience was configured for a verifier.
    #[error("at least one audience is required")]
    MissingAudience,
    /// The algorithm list is empty or names an algorithm that cannot be used here.
    #[error("invalid algorithm list: {0}")]
    InvalidAlgorithms(&'static str),
    /// A claim path for roles is empty or malformed.
    #[error("invalid claim path {0:?}")]
    InvalidClaimPath(String),
    /// The default HTTP client could not be built.
    #[error("http client could not be built")]
    HttpClient(#[source] BoxError),
}

/// A failed HTTP exchange with the provider.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The request did not complete within the client's timeout.
    #[error("request timed out")]
    Timeout,
    /// The connection could not be established.
    #[error("connection failed")]
    Connect(#[source] BoxError),
    /// The response body exceeded the client's limit.
    #[error("response body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// Any other transport failure.
    #[error("request failed")]
    Other(#[source] BoxError),
}

impl HttpError {
    /// Whether the failure was a timeout (a gateway would answer 504 rather than 502).
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout)
    }
}

/// Provider metadata could not be obtained.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The HTTP exchange failed.
    #[error("discovery request failed")]
    Http(#[source] HttpError),
    /// The provider answered with a status other than 200.
    #[error("discovery answered with status {0}")]
    Status(u16),
    /// The document is not valid provider metadata.
    #[error("discovery document is invalid")]
    InvalidDocument(#[source] BoxError),
    /// The document's `issuer` is not exactly the configured issuer.
    #[error("discovery document issuer {found:?} does not equal the configured issuer")]
    IssuerMismatch {
        /// The issuer the document declared.
        found: String,
    },
    /// An endpoint in the document is not acceptable (for example `http` on a public host).
    #[error("discovery document endpoint is not acceptable")]
    InvalidEndpoint(#[source] ConfigError),
    /// An earlier attempt failed and the next one is not due yet.
    #[error("provider unavailable, next attempt in {retry_after:?}")]
    Backoff {
        /// Time until the next attempt.
        retry_after: Duration,
    },
}

/// Verification keys could not be obtained.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// Provider metadata, needed for the `jwks_uri`, is unavailable.
    #[error("provider metadata unavailable")]
    Discovery(#[source] DiscoveryError),
    /// The HTTP exchange failed.
    #[error("jwks request failed")]
    Http(#[source] HttpError),
    /// The provider answered with a status other than 200.
    #[error("jwks endpoint answered with status {0}")]
    Status(u16),
    /// The document is not a JWK set.
    #[error("jwks document is invalid")]
    InvalidDocument(#[source] BoxError),
    /// An earlier attempt failed and the next one is not due yet.
    #[error("keys unavailable, next attempt in {retry_after:?}")]
    Backoff {
        /// Time until the next attempt.
        retry_after: Duration,
    },
}

impl JwksError {
    /// How long a caller should wait before trying again, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Backoff { retry_after } | Self::Discovery(DiscoveryError::Backoff { retry_after }) => {
                Some(*retry_after)
            }
            _ => None,
        }
    }
}

/// A token failed verification.
///
/// Every variant but [`VerifyError::KeysUnavailable`] means the token is not acceptable
/// (RFC 6750 `invalid_token`). `KeysUnavailable` means the token could not be checked at all
/// because no keys could be obtained: the caller should fail closed with a retryable answer.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The token is larger than the configured cap; nothing of it was decoded.
    #[error("token exceeds {limit} bytes")]
    TooLarge {
        /// The cap in bytes.
        limit: usize,
    },
    /// The token is not a compact JWS (three base64url segments).
    #[error("token is malformed")]
    Malformed,
    /// The JOSE header is not valid JSON of the expected shape (including duplicate members).
    #[error("token header is invalid")]
    InvalidHeader,
    /// The header names an algorithm that is not allowed (including `none` and HMAC).
    #[error("token algorithm is not allowed")]
    DisallowedAlgorithm,
    /// The header has a `crit` member; no critical extension is understood.
    #[error("token has critical header extensions")]
    CriticalHeader,
    /// The header `typ` says this is another kind of token, or strict mode requires `at+jwt`.
    #[error("token type is not acceptable")]
    WrongTokenType,
    /// No key in the provider's key set has the token's `kid`.
    #[error("no key matches the token's key id")]
    UnknownKey,
    /// The token has no `kid` and no single key of the provider's set fits its algorithm.
    #[error("no single key fits the token's algorithm")]
    NoMatchingKey,
    /// The key identified by `kid` cannot be used with the token's algorithm.
    #[error("key does not fit the token's algorithm")]
    KeyAlgorithmMismatch,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    InvalidSignature,
    /// The payload is not a JSON object.
    #[error("token payload is invalid")]
    InvalidPayload,
    /// A required claim is absent.
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// A claim has the wrong type or an unacceptable value.
    #[error("token {0} claim is invalid")]
    InvalidClaim(&'static str),
    /// `iss` is not exactly the configured issuer.
    #[error("token issuer is not accepted")]
    InvalidIssuer,
    /// `aud` does not contain a configured audience.
    #[error("token audience is not accepted")]
    InvalidAudience,
    /// `exp` is in the past (beyond the leeway).
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future (beyond the leeway).
    #[error("token is not yet valid")]
    NotYetValid,
    /// `iat` is in the future (beyond the leeway).
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// The token carries claims of an ID token or logout token (`nonce`, `at_hash`, `events`…).
    #[error("token is not an access token")]
    NotAnAccessToken,
    /// The user's own claim type could not be deserialized from the verified claims.
    #[error("token claims do not match the application's claim type")]
    CustomClaims(#[source] BoxError),
    /// Keys could not be obtained; the token was not checked.
    #[error("verification keys are unavailable")]
    KeysUnavailable(#[source] JwksError),
}

impl VerifyError {
    /// Whether the failure says nothing about the token (keys could not be obtained).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }

    /// How long a caller should wait before trying again, when keys are unavailable.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::KeysUnavailable(e) => e.retry_after(),
            _ => None,
        }
    }
}
