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
    #[error(
        "url {url:?} must use https (http is only allowed for loopback hosts or with the insecure setting)"
    )]
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
    /// A cookie name is empty, too long, or has a character other than letters, digits, `-`,
    /// `_` and `.`.
    #[error("invalid cookie name {name:?}: {reason}")]
    InvalidCookieName {
        /// The refused name.
        name: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// The algorithm list is empty or names an algorithm that cannot be used here.
    #[error("invalid algorithm list: {0}")]
    InvalidAlgorithms(&'static str),
    /// A claim path for roles is empty or malformed.
    #[error("invalid claim path {0:?}")]
    InvalidClaimPath(String),
    /// The default HTTP client could not be built.
    #[error("http client could not be built")]
    HttpClient(#[source] BoxError),
    /// A combination of verifiers was given no verifier.
    #[error("no verifier given: at least one issuer is required")]
    NoIssuer,
    /// A combination of verifiers names the same issuer more than once, so that a token of that
    /// issuer could not tell which one checks it.
    #[error("issuer {issuer:?} is configured in more than one verifier")]
    DuplicateIssuer {
        /// The issuer given twice.
        issuer: String,
    },
    /// A setting from the environment or a table ([`settings`](crate::settings)) is missing
    /// or wrong. The key is named as the user wrote it (`OIDC_CLIENT_ID`, `client_id`); the
    /// value is never shown.
    #[error("setting {key}: {problem}")]
    Setting {
        /// The key, as in the environment or the table.
        key: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// A grant (or response type) this library does not implement, or refuses: the implicit
    /// flow and the password grant, with the alternative to use (see
    /// [`flow::grants`](crate::flow::grants#refused-grants)).
    #[error("grant {grant:?} is not supported: {advice}")]
    UnsupportedGrant {
        /// The name as given (at most 64 characters of it).
        grant: String,
        /// What to use instead.
        advice: &'static str,
    },
    /// A provider configured by hand (no discovery) lacks an endpoint that a configured flow
    /// needs, for example the authorization endpoint for browser login.
    #[error("the provider configured by hand has no {endpoint}, which {needed_for} needs")]
    MissingEndpoint {
        /// The metadata name of the missing endpoint (`authorization_endpoint`, `jwks_uri`…).
        endpoint: &'static str,
        /// The flow that needs it (`browser login`…).
        needed_for: &'static str,
    },
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
            Self::Backoff { retry_after }
            | Self::Discovery(DiscoveryError::Backoff { retry_after }) => Some(*retry_after),
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
    /// The provider's key set has several usable keys under the token's `kid`, so the `kid`
    /// names no key: the token is refused whichever of them signed it (see
    /// [Several keys under one `kid`](crate::jwks#several-keys-under-one-kid)).
    #[error("several keys of the provider share the token's key id")]
    DuplicateKeyId,
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
    /// The access token is sender-constrained: it carries a `cnf` claim (bound to a DPoP key,
    /// RFC 9449 §6, or to a client certificate, RFC 8705 §3), so whoever presents it must
    /// prove possession of that key. Such a token is refused as a plain bearer token
    /// (RFC 9449 §7.1): this library does not verify DPoP proofs or client certificates.
    #[error("token is bound to a key (cnf) and cannot be used as a bearer token")]
    SenderConstrained,
    /// The user's own claim type could not be deserialized from the verified claims.
    #[error("token claims do not match the application's claim type")]
    CustomClaims,
    /// Keys could not be obtained; the token was not checked.
    #[error("verification keys are unavailable")]
    KeysUnavailable(#[source] JwksError),
    /// The provider's introspection endpoint (RFC 7662) says the token is not active, or
    /// `active` is anything but the JSON value `true`.
    #[error("token is not active")]
    Inactive,
    /// The introspection endpoint could not be asked, or gave no usable answer (a transport
    /// error or timeout, a status other than 200, a body over the cap or not a JSON object,
    /// no endpoint or client authentication method): the token was not checked. Never
    /// cached.
    #[error("token introspection is unavailable: {0}")]
    IntrospectionUnavailable(&'static str),
}

impl VerifyError {
    /// Whether the failure says nothing about the token (keys could not be obtained).
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::KeysUnavailable(_) | Self::IntrospectionUnavailable(_)
        )
    }

    /// How long a caller should wait before trying again, when keys are unavailable.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::KeysUnavailable(e) => e.retry_after(),
            _ => None,
        }
    }
}

/// A step of the login flow failed (authorization request, callback, code exchange, refresh,
/// UserInfo).
///
/// [`FlowError::kind`] sorts failures the way an HTTP layer answers them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum FlowError {
    /// The callback is not bound to this transaction (state missing or different, duplicate
    /// parameters, RFC 9207 `iss` mismatch or missing when advertised).
    #[error("callback does not match the login transaction: {0}")]
    Unbound(&'static str),
    /// The provider answered the authorization request with an error (`access_denied`…).
    /// The description is kept out of the message: it is attacker-controlled text. The code
    /// is shown escaped (`{:?}`), since anyone can send it in a callback URL: no newline or
    /// control character of it reaches a log line.
    #[error("the provider refused the authorization request: {error:?}")]
    AuthorizationDenied {
        /// The `error` code.
        error: String,
        /// The `error_description`, unescaped: never put it in HTML without escaping.
        description: Option<String>,
    },
    /// The token endpoint answered with an OAuth error (`invalid_grant`…).
    #[error("the token endpoint refused the request: {error:?}")]
    TokenEndpoint {
        /// The `error` code.
        error: String,
    },
    /// The ID token failed validation, or no ID token was returned.
    #[error("id token rejected")]
    IdToken(#[source] VerifyError),
    /// A back-channel logout token was refused (or its keys were unavailable).
    #[error("logout token rejected")]
    LogoutToken(#[source] VerifyError),
    /// The token response has no `id_token` although `openid` was requested (IDT-15).
    #[error("the token response has no id token")]
    MissingIdToken,
    /// The UserInfo endpoint refused the access token (the grant was revoked).
    #[error("userinfo refused the access token with status {status}")]
    UserInfoRefused {
        /// The HTTP status.
        status: u16,
    },
    /// UserInfo's `sub` differs from the ID token's (OIDC Core §5.3.4).
    #[error("userinfo subject does not match the id token")]
    UserInfoSubjectMismatch,
    /// A refreshed ID token changed `iss`, `sub`, `aud` or added `azp` (OIDC Core §12.2).
    #[error("refreshed id token does not match the original")]
    RefreshMismatch,
    /// The provider's answer is malformed (not JSON, missing fields, a redirect, `token_type`
    /// not `Bearer`…).
    #[error("invalid response from the provider: {0}")]
    InvalidResponse(&'static str),
    /// The provider could not be reached or failed (timeouts are [`HttpError::Timeout`]).
    #[error("provider request failed")]
    Http(#[source] HttpError),
    /// Provider metadata is unavailable.
    #[error("provider metadata unavailable")]
    Discovery(#[source] DiscoveryError),
    /// The provider does not publish an endpoint this step needs.
    #[error("the provider has no {0}")]
    MissingEndpoint(&'static str),
    /// No client authentication method that both sides support: the provider's
    /// `token_endpoint_auth_methods_supported` names neither `client_secret_basic` nor
    /// `client_secret_post`, or the client was configured with
    /// [`ClientAuth::None`](crate::flow::ClientAuth::None) for a grant that needs a secret.
    #[error(
        "no supported client authentication method (client_secret_basic or client_secret_post)"
    )]
    UnsupportedClientAuth,
    /// The device code of a device authorization grant (RFC 8628) expired before the user
    /// approved: the provider answered `expired_token`, or the code's `expires_in` passed
    /// while polling. Start again with a new code.
    #[error("the device code expired before the user approved the login")]
    DeviceCodeExpired,
    /// The revocation endpoint (RFC 7009) refused the request with an OAuth error
    /// (`unsupported_token_type`, `invalid_client`…).
    #[error("the revocation endpoint refused the request: {error:?}")]
    RevocationRefused {
        /// The `error` code.
        error: String,
    },
    /// The pushed authorization request endpoint (RFC 9126) refused the request with an
    /// OAuth error (`invalid_client`, `invalid_request`…): the client's registration or
    /// authentication does not match the request. No browser was sent anywhere.
    #[error("the pushed authorization request endpoint refused the request: {error:?}")]
    PushedAuthorizationRefused {
        /// The `error` code.
        error: String,
    },
    /// Token exchange (RFC 8693) was not attempted: the subject token (the user's access
    /// token) has expired by its `exp` or the expiry the caller gave. Get the user a fresh
    /// token (refresh, or a new login).
    #[error("the subject token of the token exchange has expired")]
    SubjectTokenExpired,
    /// The authorization response carries tokens (`access_token`, `id_token`, `token_type`
    /// or `refresh_token`): an implicit or hybrid response, which this library never asks
    /// for. Refused before the transaction is looked up and before any token request; the
    /// tokens are not kept (see [`flow::grants`](crate::flow::grants#refused-grants)).
    #[error(
        "implicit responses are not accepted: the authorization response carries tokens; \
         use the authorization code flow (response type code, with PKCE)"
    )]
    ImplicitResponse,
    /// The authorization request was built with a parameter that asks for a refused grant
    /// (`response_type` other than `code`, `response_mode` other than `query`, a
    /// `grant_type`): nothing was sent. An error of the application's configuration.
    #[error(transparent)]
    UnsupportedGrant(ConfigError),
}

/// How an HTTP layer should answer a [`FlowError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowErrorKind {
    /// The callback is not bound to this browser: 400, no token request made.
    Unbound,
    /// Authentication failed: 401.
    Rejected,
    /// The provider is broken or unreachable: 502.
    ProviderFailure,
    /// The provider did not answer in time: 504.
    Timeout,
    /// The application asked for something this library refuses (a refused grant): 500,
    /// nothing sent to the provider.
    Misconfigured,
}

impl FlowError {
    /// The category, for choosing a status code.
    pub fn kind(&self) -> FlowErrorKind {
        match self {
            Self::Unbound(_) | Self::ImplicitResponse => FlowErrorKind::Unbound,
            Self::UnsupportedGrant(_) => FlowErrorKind::Misconfigured,
            Self::AuthorizationDenied { .. }
            | Self::TokenEndpoint { .. }
            | Self::UserInfoSubjectMismatch
            | Self::MissingIdToken
            | Self::UserInfoRefused { .. }
            | Self::RefreshMismatch
            | Self::DeviceCodeExpired
            | Self::RevocationRefused { .. }
            | Self::SubjectTokenExpired => FlowErrorKind::Rejected,
            Self::IdToken(VerifyError::KeysUnavailable(e))
            | Self::LogoutToken(VerifyError::KeysUnavailable(e)) => match e {
                JwksError::Http(h) | JwksError::Discovery(DiscoveryError::Http(h))
                    if h.is_timeout() =>
                {
                    FlowErrorKind::Timeout
                }
                _ => FlowErrorKind::ProviderFailure,
            },
            Self::IdToken(_) | Self::LogoutToken(_) => FlowErrorKind::Rejected,
            Self::Http(h) | Self::Discovery(DiscoveryError::Http(h)) if h.is_timeout() => {
                FlowErrorKind::Timeout
            }
            Self::InvalidResponse(_)
            | Self::Http(_)
            | Self::Discovery(_)
            | Self::MissingEndpoint(_)
            | Self::PushedAuthorizationRefused { .. }
            | Self::UnsupportedClientAuth => FlowErrorKind::ProviderFailure,
        }
    }

    /// Whether the token endpoint said the grant is no longer valid (`invalid_grant`): the
    /// session built on it should end.
    pub fn is_invalid_grant(&self) -> bool {
        matches!(self, Self::TokenEndpoint { error } if error == "invalid_grant")
    }
}
