//! Token exchange (RFC 8693): calling a downstream API on behalf of the signed-in user, with a
//! token the provider issues for that API in exchange for the user's access token.
//!
//! [`TokenExchanger`] is a confidential client, configured like a
//! [`ServiceClient`](super::ServiceClient) (provider, client id, secret), that sends the user's
//! access token (the *subject token*) to the provider's `token_endpoint` and gets back a token
//! for the audience or resource of an [`ExchangeRequest`]:
//!
//! ```text
//! grant_type=urn:ietf:params:oauth:grant-type:token-exchange
//! subject_token=<the user's access token>
//! subject_token_type=urn:ietf:params:oauth:token-type:access_token
//! requested_token_type=urn:ietf:params:oauth:token-type:access_token   (or …:jwt)
//! audience=… resource=… scope=…                                        (when set)
//! ```
//!
//! The endpoint comes from discovery (`token_endpoint`); client authentication is
//! `client_secret_basic` or `client_secret_post`, picked as for the
//! [client credentials grant](super::client_credentials#client-authentication), and the
//! request goes through the same code.
//!
//! # What is checked in the answer
//!
//! In this order; the first failure ends the exchange with a [`FlowError`] that carries
//! neither token:
//!
//! 1. The status: 200 is an answer; 400 or 401 with a JSON `error` (`invalid_grant`,
//!    `invalid_target`, `unauthorized_client`, `invalid_client`…) is
//!    [`FlowError::TokenEndpoint`] with that code (checked against RFC 6749's character set,
//!    at most 64 characters, else [`FlowError::InvalidResponse`]); any other status is
//!    [`FlowError::InvalidResponse`]. The `error_description` is never kept.
//! 2. A JSON object without repeated members and without an `error` member (CB-10).
//! 3. `access_token`: a non-empty string of visible ASCII (it goes into an `Authorization`
//!    header), at most [`with_max_token_size`](TokenExchanger::with_max_token_size) bytes
//!    (default 16 KiB), and not the subject token itself (a provider that echoes the user's
//!    token would defeat the audience restriction the exchange is for).
//! 4. `issued_token_type` equals the requested type ([`ExchangeTokenType`], an allow-list of
//!    the types that can be sent as a bearer token). RFC 8693 §2.2.1 lets a provider issue
//!    another type; this client refuses it rather than send, say, an ID token as a bearer.
//! 5. `token_type` is `Bearer` (in any case). `N_A` (RFC 8693 §2.2.1: the token is not an
//!    access token) is accepted only when a [`Jwt`](ExchangeTokenType::Jwt) was requested;
//!    asked for an access token, `N_A` contradicts the answer. Sender-constrained types
//!    (`DPoP`…) are refused: this client cannot present them.
//! 6. `expires_in`, when present, is a positive integer (a decimal string is accepted too) of
//!    at most a year. Without it the token is assumed to live 60 s.
//!
//! A `refresh_token` in the answer is ignored and dropped: the exchange is repeated with the
//! user's current token instead.
//!
//! # Caching
//!
//! Exchanged tokens are cached per (subject token, [`ExchangeRequest`]) in a bounded cache
//! (default 4096 entries; [`with_max_cached`](TokenExchanger::with_max_cached)) owned by the
//! exchanger. The key is an HMAC-SHA-256 of the subject token and the request (each field
//! length-prefixed) under a key drawn at random for each exchanger, never the token: a key
//! that reaches a log or a heap dump reveals nothing, and cannot be matched against a token
//! from elsewhere. The hash is collision resistant, so one user's exchanged token is never
//! served for another user's token or another request.
//!
//! A cached token is handed out only before its renewal time: the renewal margin (default
//! 30 s, at most half the token's lifetime) before its `expires_in` ends, and never after the
//! subject token's own expiry when it is known: the `exp` of a JWT subject token (read, not
//! verified: it can only shorten the cache), or the expiry given to
//! [`exchange_with_expiry`](TokenExchanger::exchange_with_expiry). An expired subject token is
//! not sent at all ([`FlowError::SubjectTokenExpired`]). Expired entries are evicted.
//!
//! Exchanges are single-flight per key: concurrent calls for one user and request send one
//! request and share its result. A refused or failed exchange is never cached as a token; its
//! error is remembered for the failure cooldown (default 1 s) so that a burst of calls with a
//! revoked token sends one request, not one each.
//!
//! When the downstream refuses an exchanged token (401), [`TokenExchanger::renew`] exchanges
//! again, bypassing the cached token (unless another caller already replaced it).
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_core::Provider;
//! use oidc_core::flow::{ExchangeRequest, Secret, TokenExchanger};
//! # let op = oidc_testing::TestProvider::start().await;
//! # op.register_client(oidc_testing::ClientRegistration::confidential(
//! #     "app", "s3cret", "http://127.0.0.1/unused"));
//! # let users_token = op.issue_access_token("app", "ada");
//! # let issuer = op.issuer();
//!
//! let provider = Provider::builder(issuer).build()?;
//! let exchanger = TokenExchanger::new(provider, "app", "s3cret");
//! let request = ExchangeRequest::new()
//!     .with_audience("https://orders.example.test")
//!     .with_scopes(["orders:read"]);
//!
//! // The user's access token, from the login session or the bearer layer.
//! let subject = Secret::new(users_token);
//! let token = exchanger.exchange(&subject, &request).await?;
//! // `Authorization: Bearer {token}` on the call to the orders API; reused until renewal.
//! assert_eq!(exchanger.exchange(&subject, &request).await?.access_token(), token.access_token());
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! [`FlowError`]: [`TokenEndpoint`](FlowError::TokenEndpoint) with the OAuth error code when
//! the provider refuses ([`FlowError::is_invalid_grant`] for a subject token that is expired,
//! revoked or not exchangeable), [`SubjectTokenExpired`](FlowError::SubjectTokenExpired),
//! [`InvalidResponse`](FlowError::InvalidResponse) for an answer that breaks the rules above,
//! [`UnsupportedClientAuth`](FlowError::UnsupportedClientAuth), or a provider failure. No
//! token, secret or `error_description` appears in an error.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use moka::future::Cache;
use openidconnect::{RequestTokenError, Scope};
use serde::Deserialize;
use serde_json::Value;

use super::client::provider_http_with;
use super::client_credentials::secret_client;
use super::token_cache::{self, Slot};
use super::{ClientAuth, Secret};
use crate::clock::{self, Clock};
use crate::error::{FlowError, HttpError};
use crate::http::{HttpRequest, HttpResponse};
use crate::provider::Provider;

/// The `grant_type` of token exchange (RFC 8693 §2.1).
pub const TOKEN_EXCHANGE_GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The token type URI of an OAuth access token (RFC 8693 §3): the `subject_token_type` sent.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The token type URI of a JWT (RFC 8693 §3).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// The lifetime assumed for a token whose answer has no `expires_in`.
const DEFAULT_LIFETIME_SECS: i64 = 60;
/// The longest `expires_in` accepted: a year.
const MAX_LIFETIME_SECS: u64 = 366 * 24 * 3600;
/// Default number of (user, request) pairs cached.
const DEFAULT_MAX_CACHED: u64 = 4096;

/// The kind of token asked for: the `requested_token_type`, and the `issued_token_type` the
/// answer must have. Only types that can be sent as a bearer token are offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExchangeTokenType {
    /// `urn:ietf:params:oauth:token-type:access_token`, an access token in whatever format the
    /// provider issues for the audience (the default).
    #[default]
    AccessToken,
    /// `urn:ietf:params:oauth:token-type:jwt`, a JWT (some providers issue assertions for
    /// downstream services this way; `token_type` may then be `N_A`).
    Jwt,
}

impl ExchangeTokenType {
    /// The token type URI (RFC 8693 §3).
    pub fn uri(self) -> &'static str {
        match self {
            Self::AccessToken => ACCESS_TOKEN_TYPE,
            Self::Jwt => JWT_TOKEN_TYPE,
        }
    }
}

/// What an exchanged token is asked for: `audience`s, RFC 8707 `resource`s, scopes and the
/// requested token type. Part of the cache key of [`TokenExchanger`].
///
/// Scopes are split at spaces, sorted and deduplicated; audiences and resources are sorted
/// and deduplicated, so that equal requests share a token.
///
/// # Examples
///
/// ```
/// use oidc_core::flow::ExchangeRequest;
///
/// let a = ExchangeRequest::new().with_audience("orders").with_scopes(["b", "a"]);
/// let b = ExchangeRequest::new().with_scopes(["a b"]).with_audience("orders");
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ExchangeRequest {
    audiences: Vec<String>,
    resources: Vec<String>,
    scopes: Vec<String>,
    requested_token_type: ExchangeTokenType,
}

impl ExchangeRequest {
    /// A request with no audience, resource or scope (the provider's defaults) for an access
    /// token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an `audience` (RFC 8693 §2.1: the logical name of the target service). None by
    /// default.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        insert_sorted(&mut self.audiences, audience.into());
        self
    }

    /// Adds a `resource` (RFC 8707 / RFC 8693 §2.1: the URI of the target service). None by
    /// default.
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        insert_sorted(&mut self.resources, resource.into());
        self
    }

    /// Replaces the scopes. The default is none (no `scope` parameter).
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = T>, T: AsRef<str>>(mut self, scopes: I) -> Self {
        let mut list: Vec<String> = Vec::new();
        for scope in scopes {
            list.extend(scope.as_ref().split_ascii_whitespace().map(str::to_owned));
        }
        list.sort_unstable();
        list.dedup();
        self.scopes = list;
        self
    }

    /// Sets the requested token type. The default value is
    /// [`ExchangeTokenType::AccessToken`].
    #[must_use]
    pub fn with_requested_token_type(mut self, token_type: ExchangeTokenType) -> Self {
        self.requested_token_type = token_type;
        self
    }

    /// The audiences, sorted.
    pub fn audiences(&self) -> &[String] {
        &self.audiences
    }

    /// The resources, sorted.
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The scopes, sorted.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The requested token type.
    pub fn requested_token_type(&self) -> ExchangeTokenType {
        self.requested_token_type
    }
}

fn insert_sorted(list: &mut Vec<String>, value: String) {
    if let Err(at) = list.binary_search(&value) {
        list.insert(at, value);
    }
}

/// A token obtained by token exchange, with its times. `Debug` does not show the token.
#[derive(Debug, Clone)]
pub struct ExchangedToken {
    access_token: Secret,
    issued_token_type: ExchangeTokenType,
    expires_at: i64,
    renew_at: i64,
    scope: Option<String>,
    /// The subject token's expiry the token was obtained under, for a renewal.
    subject_expires_at: Option<i64>,
}

impl ExchangedToken {
    /// The token, for `Authorization: Bearer` at the downstream. Never log it.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The `issued_token_type`: always the requested type.
    pub fn issued_token_type(&self) -> ExchangeTokenType {
        self.issued_token_type
    }

    /// When the token expires, in seconds since the Unix epoch (from `expires_in`, or 60 s
    /// after issue when the provider sent none).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// From when on the exchanger exchanges again rather than hand this token out: the
    /// renewal margin before [`expires_at`](Self::expires_at), and never after the subject
    /// token's expiry when known.
    pub fn renew_at(&self) -> i64 {
        self.renew_at
    }

    /// The scopes granted, when the provider said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    fn is_fresh(&self, now: i64) -> bool {
        now < self.renew_at
    }
}

/// The cache key: a keyed hash of the subject token (never the token) and the request.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct ExchangeKey([u8; 32]);

/// Evicts entries when they may no longer be served: a token at its renewal time, a failure
/// after its cooldown.
struct UntilStale;

impl UntilStale {
    fn ttl(slot: &Slot<ExchangedToken>) -> Duration {
        match slot {
            Slot::Token(token) => {
                let left = token.renew_at.saturating_sub(clock::unix_now(None));
                Duration::from_secs(u64::try_from(left).unwrap_or(0))
            }
            Slot::Failed { until, .. } => {
                until.saturating_duration_since(tokio::time::Instant::now())
            }
        }
    }
}

impl moka::Expiry<ExchangeKey, Slot<ExchangedToken>> for UntilStale {
    fn expire_after_create(
        &self,
        _key: &ExchangeKey,
        value: &Slot<ExchangedToken>,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        Some(Self::ttl(value))
    }

    fn expire_after_update(
        &self,
        _key: &ExchangeKey,
        value: &Slot<ExchangedToken>,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        Some(Self::ttl(value))
    }
}

/// A confidential client that exchanges users' access tokens for tokens of downstream APIs
/// (RFC 8693), caching them per user and request.
///
/// Cheap to clone; clones share the cache. See the [module docs](crate::flow::token_exchange)
/// for an example, the checks and the caching rules.
#[derive(Clone)]
pub struct TokenExchanger {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    provider: Provider,
    client_id: String,
    secret: Secret,
    auth: Option<ClientAuth>,
    margin: i64,
    failure_cooldown: Duration,
    clock: Option<Clock>,
    max_token_size: usize,
    max_cached: u64,
    /// The key of the subject token hashes; drawn at random for each exchanger.
    hash_key: hmac::Key,
    cache: Cache<ExchangeKey, Slot<ExchangedToken>>,
}

impl std::fmt::Debug for TokenExchanger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &*self.inner;
        f.debug_struct("TokenExchanger")
            .field("issuer", &c.provider.issuer())
            .field("client_id", &c.client_id)
            .field("auth", &c.auth)
            .field("margin", &c.margin)
            .field("max_cached", &c.max_cached)
            .finish_non_exhaustive()
    }
}

fn new_cache(max: u64) -> Cache<ExchangeKey, Slot<ExchangedToken>> {
    Cache::builder()
        .max_capacity(max)
        .expire_after(UntilStale)
        .build()
}

fn new_hash_key() -> hmac::Key {
    let mut bytes = [0u8; 32];
    // A failing system RNG leaves the key all zeros: the hash is then unkeyed, still
    // collision resistant, so the cache stays correct.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        tracing::warn!("no randomness for the token exchange cache key; using a fixed key");
    }
    hmac::Key::new(hmac::HMAC_SHA256, &bytes)
}

impl TokenExchanger {
    /// An exchanger of `provider` with the client id `client_id` and its `secret`.
    ///
    /// Defaults: client authentication from discovery (as
    /// [`ServiceClient`](super::ServiceClient)), renewal margin 30 s, failure cooldown 1 s,
    /// tokens of at most 16 KiB, 4096 cached entries, the system clock.
    pub fn new(
        provider: Provider,
        client_id: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                provider,
                client_id: client_id.into(),
                secret: Secret::new(secret),
                auth: None,
                margin: 30,
                failure_cooldown: Duration::from_secs(1),
                clock: None,
                max_token_size: 16 * 1024,
                max_cached: DEFAULT_MAX_CACHED,
                hash_key: new_hash_key(),
                cache: new_cache(DEFAULT_MAX_CACHED),
            }),
        }
    }

    fn config(&mut self) -> &mut Inner {
        // Settings are made before the first exchange; a changed copy gets a cache of its own.
        if Arc::get_mut(&mut self.inner).is_none() {
            let mut copy = (*self.inner).clone();
            copy.cache = new_cache(copy.max_cached);
            self.inner = Arc::new(copy);
        }
        Arc::make_mut(&mut self.inner)
    }

    /// Sets the client authentication method. The default is picked from the provider's
    /// `token_endpoint_auth_methods_supported`. [`ClientAuth::None`] makes every exchange
    /// fail with [`FlowError::UnsupportedClientAuth`]: the grant needs a secret.
    #[must_use]
    pub fn with_auth_method(mut self, auth: ClientAuth) -> Self {
        self.config().auth = Some(auth);
        self
    }

    /// Sets how long before its expiry an exchanged token is no longer handed out (capped at
    /// half its lifetime). The default value is 30 s.
    #[must_use]
    pub fn with_renewal_margin(mut self, margin: Duration) -> Self {
        self.config().margin = clock::leeway_secs(margin);
        self
    }

    /// Sets how long a failed exchange is remembered and its error returned without a new
    /// request. The default value is 1 s.
    #[must_use]
    pub fn with_failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.config().failure_cooldown = cooldown;
        self
    }

    /// Sets the largest exchanged token accepted, in bytes. The default value is 16 KiB.
    #[must_use]
    pub fn with_max_token_size(mut self, bytes: usize) -> Self {
        self.config().max_token_size = bytes;
        self
    }

    /// Sets how many (subject token, request) pairs are cached; the least used go first. The
    /// default value is 4096.
    #[must_use]
    pub fn with_max_cached(mut self, entries: u64) -> Self {
        let c = self.config();
        c.max_cached = entries;
        c.cache = new_cache(entries);
        self
    }

    /// Replaces the clock that decides expiry and renewal. The default is the system clock.
    #[must_use]
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.config().clock = Some(clock);
        self
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// The provider.
    pub fn provider(&self) -> &Provider {
        &self.inner.provider
    }

    fn now(&self) -> i64 {
        clock::unix_now(self.inner.clock.as_ref())
    }

    /// A token for `request` on behalf of the owner of `subject_token`: the cached one, or a
    /// new exchange (single-flight). When the subject token is a JWT, its `exp` (read, not
    /// verified) bounds how long the result is reused.
    ///
    /// # Errors
    ///
    /// [`FlowError`]; see the [module docs](crate::flow::token_exchange#errors).
    pub async fn exchange(
        &self,
        subject_token: &Secret,
        request: &ExchangeRequest,
    ) -> Result<ExchangedToken, FlowError> {
        self.obtain(subject_token, None, request, None).await
    }

    /// [`exchange`](Self::exchange) for a subject token known to expire at
    /// `subject_expires_at` (seconds since the Unix epoch; for example the `expires_in` of the
    /// login's token response): the result is not reused after it, and nothing is sent once
    /// it has passed.
    ///
    /// # Errors
    ///
    /// As [`exchange`](Self::exchange).
    pub async fn exchange_with_expiry(
        &self,
        subject_token: &Secret,
        subject_expires_at: i64,
        request: &ExchangeRequest,
    ) -> Result<ExchangedToken, FlowError> {
        self.obtain(subject_token, Some(subject_expires_at), request, None)
            .await
    }

    /// A token other than `rejected`, which the downstream refused: a new exchange, unless
    /// another caller already replaced `rejected` with a fresh token, which is then returned.
    ///
    /// # Errors
    ///
    /// As [`exchange`](Self::exchange).
    pub async fn renew(
        &self,
        subject_token: &Secret,
        request: &ExchangeRequest,
        rejected: &ExchangedToken,
    ) -> Result<ExchangedToken, FlowError> {
        self.obtain(
            subject_token,
            rejected.subject_expires_at,
            request,
            Some(rejected),
        )
        .await
    }

    /// Forgets the cached token (or failure) of `subject_token` and `request`.
    pub async fn invalidate(&self, subject_token: &Secret, request: &ExchangeRequest) {
        self.inner
            .cache
            .invalidate(&self.key(subject_token, request))
            .await;
    }

    /// The cache key: HMAC-SHA-256 of the subject token and the request, each field
    /// length-prefixed so that no two (token, request) pairs share an input.
    fn key(&self, subject_token: &Secret, request: &ExchangeRequest) -> ExchangeKey {
        let mut mac = hmac::Context::with_key(&self.inner.hash_key);
        let mut field = |bytes: &[u8]| {
            mac.update(&(bytes.len() as u64).to_be_bytes());
            mac.update(bytes);
        };
        field(subject_token.secret().as_bytes());
        field(request.requested_token_type.uri().as_bytes());
        for list in [&request.audiences, &request.resources, &request.scopes] {
            field(&(list.len() as u64).to_be_bytes());
            for item in list {
                field(item.as_bytes());
            }
        }
        let tag = mac.sign();
        let mut key = [0u8; 32];
        for (to, from) in key.iter_mut().zip(tag.as_ref()) {
            *to = *from;
        }
        ExchangeKey(key)
    }

    async fn obtain(
        &self,
        subject_token: &Secret,
        subject_expires_at: Option<i64>,
        request: &ExchangeRequest,
        rejected: Option<&ExchangedToken>,
    ) -> Result<ExchangedToken, FlowError> {
        if subject_expires_at.is_some_and(|exp| exp <= self.now()) {
            return Err(FlowError::SubjectTokenExpired);
        }
        let key = self.key(subject_token, request);
        let usable = |token: &ExchangedToken| {
            let now = self.now();
            token.is_fresh(now)
                && subject_expires_at.is_none_or(|exp| now < exp)
                && rejected.is_none_or(|r| r.access_token != token.access_token)
        };
        // A fresh cached token is never fresh past the subject token's `exp` (its renewal
        // time is capped by it), so the hit skips reading the `exp`.
        if let Some(Slot::Token(token)) = self.inner.cache.get(&key).await
            && usable(&token)
        {
            return Ok(token);
        }
        let subject_expires_at = match (subject_expires_at, unverified_exp(subject_token)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if subject_expires_at.is_some_and(|exp| exp <= self.now()) {
            return Err(FlowError::SubjectTokenExpired);
        }
        token_cache::obtain(
            &self.inner.cache,
            &key,
            usable,
            self.inner.failure_cooldown,
            || self.fetch(subject_token, subject_expires_at, request),
        )
        .await
    }

    /// One exchange request to the provider.
    async fn fetch(
        &self,
        subject_token: &Secret,
        subject_expires_at: Option<i64>,
        request: &ExchangeRequest,
    ) -> Result<ExchangedToken, FlowError> {
        let c = &*self.inner;
        let metadata = c.provider.metadata().await.map_err(FlowError::Discovery)?;
        let client = secret_client(&c.provider, &c.client_id, &c.secret, c.auth, &metadata)?;
        // openidconnect has no RFC 8693 request. Its client credentials request is the same
        // request (client authentication, `scope`, extra parameters) with another
        // `grant_type`, which `exchange_http` replaces: the client authentication code stays
        // the one every grant uses. Its parse of the answer is not used: the raw answer is
        // kept and checked here.
        let mut token_request = client
            .exchange_client_credentials()
            .add_scopes(request.scopes.iter().cloned().map(Scope::new))
            .add_extra_param("subject_token", subject_token.secret().to_owned())
            .add_extra_param("subject_token_type", ACCESS_TOKEN_TYPE)
            .add_extra_param("requested_token_type", request.requested_token_type.uri());
        for audience in &request.audiences {
            token_request = token_request.add_extra_param("audience", audience.clone());
        }
        for resource in &request.resources {
            token_request = token_request.add_extra_param("resource", resource.clone());
        }
        let captured: Arc<Mutex<Option<HttpResponse>>> = Arc::default();
        let http = exchange_http(&c.provider, Arc::clone(&captured));
        if let Err(RequestTokenError::Request(e)) = token_request.request_async(&http).await {
            return Err(FlowError::Http(e));
        }
        let response = captured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .ok_or(FlowError::InvalidResponse(
                "the token endpoint did not answer",
            ))?;
        let token = self.check_answer(&response, subject_token, subject_expires_at, request)?;
        tracing::debug!(
            client_id = %c.client_id,
            lifetime = token.expires_at.saturating_sub(self.now()),
            "token exchanged"
        );
        Ok(token)
    }

    /// The checks of the [module docs](self#what-is-checked-in-the-answer).
    fn check_answer(
        &self,
        response: &HttpResponse,
        subject_token: &Secret,
        subject_expires_at: Option<i64>,
        request: &ExchangeRequest,
    ) -> Result<ExchangedToken, FlowError> {
        let status = response.status().as_u16();
        if status == 400 || status == 401 {
            return Err(refusal(response.body()));
        }
        if status != 200 {
            tracing::warn!(status, "the token endpoint refused the token exchange");
            return Err(FlowError::InvalidResponse(
                "the token endpoint answered with an unexpected status",
            ));
        }
        let answer: Answer = serde_json::from_slice(response.body()).map_err(|_| {
            FlowError::InvalidResponse("the token exchange answer is not of the expected shape")
        })?;
        if let Some(error) = &answer.error {
            return Err(match error {
                Value::String(code) => oauth_error(code),
                _ => FlowError::InvalidResponse("the token response has an error"),
            });
        }
        let access_token = answer
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or(FlowError::InvalidResponse("the access token is empty"))?;
        if access_token.len() > self.inner.max_token_size {
            return Err(FlowError::InvalidResponse(
                "the exchanged token is larger than allowed",
            ));
        }
        if !access_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FlowError::InvalidResponse(
                "the access token has characters not allowed in a header",
            ));
        }
        if super::secret::ct_eq(access_token.as_bytes(), subject_token.secret().as_bytes()) {
            return Err(FlowError::InvalidResponse(
                "the exchanged token is the subject token",
            ));
        }
        let wanted = request.requested_token_type;
        if answer.issued_token_type.as_deref() != Some(wanted.uri()) {
            return Err(FlowError::InvalidResponse(
                "issued_token_type is not the requested token type",
            ));
        }
        match answer.token_type.as_deref() {
            Some(t) if t.eq_ignore_ascii_case("bearer") => {}
            Some(t)
                if t.eq_ignore_ascii_case("n_a") && wanted != ExchangeTokenType::AccessToken => {}
            _ => {
                return Err(FlowError::InvalidResponse(
                    "token_type is not Bearer (or N_A for a JWT)",
                ));
            }
        }
        let lifetime = match &answer.expires_in {
            None | Some(Value::Null) => DEFAULT_LIFETIME_SECS,
            Some(value) => lifetime(value).ok_or(FlowError::InvalidResponse(
                "expires_in is not a positive integer of at most a year",
            ))?,
        };
        let now = self.now();
        let expires_at = now.saturating_add(lifetime);
        let mut renew_at = expires_at.saturating_sub(self.inner.margin.min(lifetime / 2));
        if let Some(subject_exp) = subject_expires_at {
            renew_at = renew_at.min(subject_exp);
        }
        Ok(ExchangedToken {
            access_token: Secret::new(access_token),
            issued_token_type: wanted,
            expires_at,
            renew_at,
            scope: answer.scope,
            subject_expires_at,
        })
    }
}

/// The members of a token exchange answer that are read. Repeated members are refused by the
/// derived parser; unknown ones (`refresh_token`…) are ignored.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    issued_token_type: Option<String>,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    error: Option<Value>,
}

/// The error of a 400 or 401 answer (RFC 6749 §5.2).
fn refusal(body: &[u8]) -> FlowError {
    #[derive(Deserialize)]
    struct ErrorAnswer {
        error: String,
    }
    match serde_json::from_slice::<ErrorAnswer>(body) {
        Ok(answer) => oauth_error(&answer.error),
        Err(_) => FlowError::InvalidResponse("the token endpoint refused without an OAuth error"),
    }
}

/// [`FlowError::TokenEndpoint`] with `code` when it is an RFC 6749 error code (A.7:
/// `%x20-21 / %x23-5B / %x5D-7E`, here at most 64 characters).
fn oauth_error(code: &str) -> FlowError {
    if super::is_error_code(code) {
        FlowError::TokenEndpoint {
            error: code.to_owned(),
        }
    } else {
        FlowError::InvalidResponse("the token endpoint refused with a malformed error code")
    }
}

/// `expires_in` as seconds: a positive integer, or a string of digits, of at most a year.
fn lifetime(value: &Value) -> Option<i64> {
    let secs = match value {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
            s.parse().ok()?
        }
        _ => return None,
    };
    if secs == 0 || secs > MAX_LIFETIME_SECS {
        return None;
    }
    i64::try_from(secs).ok()
}

/// The `exp` of a JWT subject token, read without verification (it only shortens how long an
/// exchanged token is reused); `None` for an opaque token.
fn unverified_exp(token: &Secret) -> Option<i64> {
    let mut parts = token.secret().split('.');
    let (_, payload, _, None) = (parts.next()?, parts.next()?, parts.next()?, parts.next()) else {
        return None;
    };
    if payload.len() > 64 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    let claims: serde_json::Map<String, Value> = serde_json::from_slice(&bytes).ok()?;
    claims.get("exp")?.as_i64()
}

/// [`provider_http_with`] that sends the request with [`with_exchange_grant_type`].
fn exchange_http(
    provider: &Provider,
    captured: Arc<Mutex<Option<HttpResponse>>>,
) -> impl Fn(HttpRequest) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
    let http = provider_http_with(provider, captured);
    move |request| http(with_exchange_grant_type(request))
}

/// `request` with its `grant_type` form parameter set to token exchange.
fn with_exchange_grant_type(request: HttpRequest) -> HttpRequest {
    let (parts, body) = request.into_parts();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .into_owned()
        .map(|(name, value)| {
            if name == "grant_type" {
                (name, TOKEN_EXCHANGE_GRANT_TYPE.to_owned())
            } else {
                (name, value)
            }
        })
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes();
    HttpRequest::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_type_is_replaced_and_the_rest_kept() {
        let request = http::Request::post("https://op.example/token")
            .body(b"grant_type=client_credentials&scope=a+b&subject_token=x%2By".to_vec())
            .unwrap_or_default();
        let body = with_exchange_grant_type(request).into_body();
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&body).into_owned().collect();
        assert_eq!(
            pairs,
            [
                ("grant_type".into(), TOKEN_EXCHANGE_GRANT_TYPE.into()),
                ("scope".into(), "a b".into()),
                ("subject_token".into(), "x+y".into()),
            ]
        );
    }

    #[test]
    fn lifetime_accepts_positive_integers_up_to_a_year_only() {
        assert_eq!(lifetime(&Value::from(300)), Some(300));
        assert_eq!(lifetime(&Value::from("300")), Some(300));
        for bad in [
            Value::from(0),
            Value::from(-5),
            Value::from(1.5),
            Value::from(MAX_LIFETIME_SECS + 1),
            Value::from("-5"),
            Value::from(""),
            Value::from(true),
        ] {
            assert_eq!(lifetime(&bad), None, "{bad}");
        }
    }

    #[test]
    fn error_codes_outside_rfc_6749_are_not_kept() {
        assert!(
            matches!(oauth_error("invalid_target"), FlowError::TokenEndpoint { error } if error == "invalid_target")
        );
        for bad in ["", "a\"b", "a\\b", "line\nbreak", &"x".repeat(65)] {
            assert!(
                matches!(oauth_error(bad), FlowError::InvalidResponse(_)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn jwt_exp_is_read_and_opaque_tokens_have_none() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":1700000000}"#);
        assert_eq!(
            unverified_exp(&Secret::new(format!("e30.{payload}.sig"))),
            Some(1_700_000_000)
        );
        assert_eq!(unverified_exp(&Secret::new("opaque-token")), None);
        assert_eq!(
            unverified_exp(&Secret::new(format!("a.{payload}.b.c"))),
            None
        );
    }

    #[tokio::test]
    async fn cache_keys_hold_a_keyed_hash_not_the_token() {
        let provider = Provider::builder("https://op.example").build();
        let Ok(provider) = provider else {
            return;
        };
        let a = TokenExchanger::new(provider.clone(), "app", "s");
        let b = TokenExchanger::new(provider, "app", "s");
        let token = Secret::new("the-users-token");
        let request = ExchangeRequest::new();
        let key = a.key(&token, &request);
        assert!(key == a.key(&token, &request));
        assert!(key != a.key(&Secret::new("another"), &request));
        assert!(key != a.key(&token, &request.clone().with_audience("x")));
        // Fields cannot run into each other: audience "ab" is not audiences "a", "b".
        let ab = ExchangeRequest::new().with_audience("ab");
        let a_b = ExchangeRequest::new().with_audience("a").with_audience("b");
        assert!(a.key(&token, &ab) != a.key(&token, &a_b));
        let as_resource = ExchangeRequest::new().with_resource("a");
        let as_audience = ExchangeRequest::new().with_audience("a");
        assert!(a.key(&token, &as_resource) != a.key(&token, &as_audience));
        // Another exchanger's key differs: the hash cannot be matched across processes.
        assert!(key != b.key(&token, &request));
        let plain = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"the-users-token");
        assert_ne!(&key.0[..], plain.as_ref());
    }
}
