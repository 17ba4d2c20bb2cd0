//! The errors of the token issuer: loading keys, building the issuer, minting, and the
//! revalidation of users with their provider. Startup errors ([`KeyError`], [`BuildError`])
//! are kept apart from the errors of a mint ([`MintError`], [`RevalidationError`]). No error
//! carries a key, a token or a claim value.

use std::time::Duration;

use crate::error::{ConfigError, FlowError};

/// A signing key could not be loaded, generated or stored.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The algorithm cannot sign app-issued tokens: only `ES256` and `EdDSA` can.
    #[error("unsupported signing algorithm {0}: only ES256 and EdDSA are supported")]
    UnsupportedAlgorithm(crate::Algorithm),
    /// The PEM text holds no unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`).
    #[error(
        "invalid key file: {0} (expected an unencrypted PKCS#8 PEM, `-----BEGIN PRIVATE KEY-----`; convert with `openssl pkcs8 -topk8 -nocrypt`)"
    )]
    InvalidPem(&'static str),
    /// The PKCS#8 document is neither a P-256 (ES256) nor an Ed25519 (EdDSA) private key.
    #[error(
        "unsupported or invalid private key: only P-256 (ES256) and Ed25519 (EdDSA) keys are supported"
    )]
    UnsupportedKey,
    /// The key file could not be read or written.
    #[error("key file {path:?}: {kind}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong (`std::io::ErrorKind`).
        kind: std::io::ErrorKind,
    },
    /// The cryptographic library failed (key generation or serialization).
    #[error("key generation or serialization failed")]
    Crypto,
    /// The key is already published by this issuer (same `kid`): a set with one `kid` twice
    /// is refused by verifiers.
    #[error("the key {kid:?} is already published by this issuer")]
    DuplicateKey {
        /// The `kid` of the key.
        kid: String,
    },
    /// Too many keys are still published (retired keys wait until their last token has
    /// expired): rotate less often.
    #[error("too many published keys ({max}): wait until retired keys are dropped")]
    TooManyKeys {
        /// The most keys published at once.
        max: usize,
    },
}

/// An invalid setting, found while building a [`TokenIssuer`](super::TokenIssuer) or a
/// [`Revalidator`](super::Revalidator).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The issuer URL is not acceptable (`https`, except on loopback hosts; no fragment,
    /// query or user info).
    #[error("invalid issuer url")]
    Issuer(#[source] ConfigError),
    /// The token lifetime is zero or above the cap.
    #[error("token lifetime must be between 1 s and {max:?}")]
    Lifetime {
        /// The longest lifetime allowed.
        max: Duration,
    },
    /// The default audience is empty.
    #[error("the default audience is empty")]
    EmptyAudience,
    /// The revalidation interval is zero.
    #[error("the revalidation interval must not be zero")]
    Interval,
}

/// A token could not be minted.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum MintError {
    /// An extra claim would override a registered claim (`iss`, `sub`, `aud`, `exp`, `nbf`,
    /// `iat`, `jti`); the issuer sets those itself.
    #[error("the extra claim {0:?} is set by the issuer and cannot be overridden")]
    ReservedClaim(String),
    /// The subject is empty or longer than 255 characters.
    #[error("the subject must be a non-empty string of at most 255 characters")]
    InvalidSubject,
    /// Neither the request nor the issuer names an audience.
    #[error("no audience: set one on the request or a default on the issuer")]
    NoAudience,
    /// The audience of the request is empty.
    #[error("the audience is empty")]
    EmptyAudience,
    /// The user may not get tokens (see [`RevalidationError`]).
    #[error("the user may not get tokens")]
    User(#[source] RevalidationError),
    /// Signing failed in the cryptographic library.
    #[error("signing failed")]
    Signing,
}

impl MintError {
    /// The revalidation failure, when the user was refused.
    pub fn revalidation(&self) -> Option<&RevalidationError> {
        match self {
            Self::User(e) => Some(e),
            _ => None,
        }
    }
}

/// The user could not be revalidated with the provider, so no token may be minted.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum RevalidationError {
    /// No login is registered under this key (never registered, removed, or evicted): the
    /// user must log in.
    #[error("no login is registered for this user")]
    UnknownUser,
    /// The token set of the login has no refresh token, so the user cannot be revalidated
    /// (request `offline_access`, and `prompt=consent` where the provider needs it).
    #[error("the login has no refresh token: the user cannot be revalidated")]
    NoRefreshToken,
    /// The provider said no: the refresh was refused (`invalid_grant`: the user was disabled
    /// or deleted, the grant revoked), the refreshed ID token changed, or UserInfo refused the
    /// new access token. Final: every later mint for this login is refused too, without
    /// asking the provider again, until the user logs in again.
    #[error("the provider no longer accepts this user's login")]
    Refused(#[source] FlowError),
    /// The provider could not be asked (down, slow, broken answer) and the last successful
    /// check is older than the revalidation interval: minting is refused (fail closed) until
    /// the provider answers. The next attempt asks again after `retry_after`.
    #[error("the provider could not revalidate the user; retry after {retry_after:?}")]
    Unavailable {
        /// When to try again.
        retry_after: Duration,
        /// Why the provider could not be asked.
        #[source]
        cause: FlowError,
    },
}

impl RevalidationError {
    /// Whether the failure is the provider's outage, not a verdict on the user (answer 503
    /// rather than 401).
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}
