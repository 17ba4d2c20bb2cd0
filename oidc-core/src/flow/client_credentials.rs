//! The client credentials grant (RFC 6749 §4.4): service tokens for calls between services
//! (Keycloak "service accounts"), obtained, cached and renewed by [`ServiceClient`].
//!
//! # Caching and renewal
//!
//! A [`ServiceClient`] keeps one token per [`ServiceTokenRequest`] (its scopes, sorted and
//! without duplicates, its RFC 8707 `resource` and its `audience`); the cache belongs to the
//! client, so tokens of different clients never mix. A token is handed out only while it is
//! *fresh*: until its renewal time, which is the renewal margin (default 30 s, at most half
//! the token's lifetime) before `expires_in` runs out. After that the next caller renews it;
//! a token is never returned at or after its expiry by the configured [clock](ServiceClient::with_clock).
//!
//! Renewal is single-flight: however many tasks ask for the same request at once, one token
//! request is sent and every caller gets its result. A failed request is remembered for the
//! failure cooldown (default 1 s), so that callers waiting on it (and those arriving during
//! the cooldown) get the same error instead of each sending its own request to a provider
//! that just failed.
//!
//! When a resource server refuses a token (401) before its expiry, for example because the
//! provider revoked it, [`ServiceClient::renew`] replaces it, again single-flight: if another
//! task renewed it already, the newer token is returned and no request is sent.
//!
//! # Client authentication
//!
//! `client_secret_basic` (HTTP Basic with the id and secret form-urlencoded first, RFC 6749
//! §2.3.1) or `client_secret_post` (both in the body). Unless set with
//! [`with_auth_method`](ServiceClient::with_auth_method), the method is picked from the
//! provider's `token_endpoint_auth_methods_supported`: `client_secret_basic` when listed or
//! when the list is absent (its default, RFC 8414 §2), else `client_secret_post`. The token
//! request goes through the same code as the authorization code flow's.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_core::Provider;
//! use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
//! # let op = oidc_testing::TestProvider::start().await;
//! # op.register_client(oidc_testing::ClientRegistration::confidential(
//! #     "reports", "s3cret", "http://127.0.0.1/unused"));
//! # let issuer = op.issuer();
//!
//! let provider = Provider::builder(issuer).build()?;
//! let client = ServiceClient::new(provider, "reports", "s3cret");
//! let request = ServiceTokenRequest::new()
//!     .with_scopes(["api:read"])
//!     .with_resource("https://api.example.test");
//!
//! let token = client.token(&request).await?;
//! // `Authorization: Bearer {token}` on the outbound call; `token()` again reuses it.
//! assert_eq!(client.token(&request).await?.access_token(), token.access_token());
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! [`FlowError`]: [`TokenEndpoint`](FlowError::TokenEndpoint) with the OAuth error code when
//! the provider refuses (`invalid_client`, `invalid_scope`, `invalid_target`…),
//! [`UnsupportedClientAuth`](FlowError::UnsupportedClientAuth), or a provider failure. The
//! secret and the `error_description` never appear in an error.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use openidconnect::{OAuth2TokenResponse, Scope};

use super::client::{
    OcTokenClient, checked_access_token, provider_http, token_client, token_error,
};
use super::token_cache::{self, Slot};
use super::{ClientAuth, Secret};
use crate::clock::{self, Clock};
use crate::error::FlowError;
use crate::provider::Provider;

/// The lifetime assumed for a token whose response has no `expires_in` (RFC 6749 §5.1 only
/// recommends it).
const DEFAULT_LIFETIME_SECS: i64 = 60;
/// Distinct requests kept per client; an application asks for a handful.
const MAX_CACHED_REQUESTS: u64 = 256;

/// What a service token is asked for: scopes, RFC 8707 `resource`, `audience`.
///
/// The cache key of [`ServiceClient`]: scopes are split at spaces, sorted and deduplicated,
/// so that `["b", "a"]` and `["a b"]` share one token.
///
/// # Examples
///
/// ```
/// use oidc_core::flow::ServiceTokenRequest;
///
/// let a = ServiceTokenRequest::new().with_scopes(["orders:write", "orders:read"]);
/// let b = ServiceTokenRequest::new().with_scopes(["orders:read orders:write"]);
/// assert_eq!(a, b);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ServiceTokenRequest {
    scopes: Vec<String>,
    resource: Option<String>,
    audience: Option<String>,
}

impl ServiceTokenRequest {
    /// A request with no scope, resource or audience: the provider's defaults for the client.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the scopes. The default is none (no `scope` parameter).
    #[must_use]
    pub fn with_scopes<I: IntoIterator<Item = T>, T: AsRef<str>>(mut self, scopes: I) -> Self {
        let mut list: Vec<String> = scopes
            .into_iter()
            .flat_map(|s| {
                s.as_ref()
                    .split_ascii_whitespace()
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .collect();
        list.sort_unstable();
        list.dedup();
        self.scopes = list;
        self
    }

    /// Sets the RFC 8707 `resource` indicator, the API the token is for. The default is none.
    #[must_use]
    pub fn with_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    /// Sets the `audience` parameter, which some providers use instead of `resource`. The
    /// default is none.
    #[must_use]
    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// The scopes, sorted.
    pub fn scopes(&self) -> &[String] {
        &self.scopes
    }

    /// The `resource` indicator.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The `audience`.
    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }
}

/// A service access token with its times. `Debug` does not show the token.
#[derive(Debug, Clone)]
pub struct ServiceToken {
    access_token: Secret,
    expires_at: i64,
    renew_at: i64,
    scope: Option<String>,
}

impl ServiceToken {
    /// The access token, for `Authorization: Bearer`. Never log it.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// When the token expires, in seconds since the Unix epoch (from `expires_in`, or 60 s
    /// after issue when the provider sent none).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// From when on the client renews the token rather than hand it out.
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

/// A confidential client that obtains service tokens with the client credentials grant,
/// caches them per [`ServiceTokenRequest`] and renews them before they expire.
///
/// Cheap to clone; clones share the cache. See the [module docs](crate::flow::client_credentials)
/// for an example and the caching rules.
#[derive(Clone)]
pub struct ServiceClient {
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
    cache: Cache<ServiceTokenRequest, Slot<ServiceToken>>,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &*self.inner;
        f.debug_struct("ServiceClient")
            .field("issuer", &c.provider.issuer())
            .field("client_id", &c.client_id)
            .field("auth", &c.auth)
            .field("margin", &c.margin)
            .finish_non_exhaustive()
    }
}

impl ServiceClient {
    /// A client of `provider` with the id `client_id` and its `secret`.
    ///
    /// Defaults: client authentication from discovery (see the
    /// [module docs](crate::flow::client_credentials#client-authentication)), renewal margin
    /// 30 s, failure cooldown 1 s, the system clock.
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
                cache: new_cache(),
            }),
        }
    }

    fn config(&mut self) -> &mut Inner {
        // Settings are made before the first token; a changed copy gets a cache of its own.
        if Arc::get_mut(&mut self.inner).is_none() {
            let mut copy = (*self.inner).clone();
            copy.cache = new_cache();
            self.inner = Arc::new(copy);
        }
        Arc::make_mut(&mut self.inner)
    }

    /// Sets the client authentication method. The default is picked from the provider's
    /// `token_endpoint_auth_methods_supported`. [`ClientAuth::None`] makes every token
    /// request fail with [`FlowError::UnsupportedClientAuth`]: the grant needs a secret.
    #[must_use]
    pub fn with_auth_method(mut self, auth: ClientAuth) -> Self {
        self.config().auth = Some(auth);
        self
    }

    /// Sets how long before its expiry a token is renewed (capped at half its lifetime). The
    /// default value is 30 s.
    #[must_use]
    pub fn with_renewal_margin(mut self, margin: Duration) -> Self {
        self.config().margin = clock::leeway_secs(margin);
        self
    }

    /// Sets how long a failed token request is remembered and its error returned without a new
    /// request. The default value is 1 s.
    #[must_use]
    pub fn with_failure_cooldown(mut self, cooldown: Duration) -> Self {
        self.config().failure_cooldown = cooldown;
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

    /// A fresh token for `request`: the cached one, or a new one (single-flight).
    ///
    /// # Errors
    ///
    /// [`FlowError`] when no token could be obtained; see the
    /// [module docs](crate::flow::client_credentials#errors).
    pub async fn token(&self, request: &ServiceTokenRequest) -> Result<ServiceToken, FlowError> {
        self.obtain(request, None).await
    }

    /// A token other than `rejected`, which a resource server refused: a new one, unless
    /// another caller already replaced `rejected` with a fresh token, which is then returned.
    ///
    /// # Errors
    ///
    /// As [`token`](Self::token).
    pub async fn renew(
        &self,
        request: &ServiceTokenRequest,
        rejected: &ServiceToken,
    ) -> Result<ServiceToken, FlowError> {
        self.obtain(request, Some(rejected)).await
    }

    /// Forgets the cached token (or failure) of `request`.
    pub async fn invalidate(&self, request: &ServiceTokenRequest) {
        self.inner.cache.invalidate(request).await;
    }

    async fn obtain(
        &self,
        request: &ServiceTokenRequest,
        rejected: Option<&ServiceToken>,
    ) -> Result<ServiceToken, FlowError> {
        let usable = |token: &ServiceToken| {
            token.is_fresh(self.now())
                && rejected.is_none_or(|r| r.access_token != token.access_token)
        };
        token_cache::obtain(
            &self.inner.cache,
            request,
            usable,
            self.inner.failure_cooldown,
            || self.fetch(request),
        )
        .await
    }

    /// One token request to the provider.
    async fn fetch(&self, request: &ServiceTokenRequest) -> Result<ServiceToken, FlowError> {
        let c = &*self.inner;
        let metadata = c.provider.metadata().await.map_err(FlowError::Discovery)?;
        let client = secret_client(&c.provider, &c.client_id, &c.secret, c.auth, &metadata)?;
        let mut token_request = client
            .exchange_client_credentials()
            .add_scopes(request.scopes.iter().cloned().map(Scope::new));
        if let Some(resource) = &request.resource {
            token_request = token_request.add_extra_param("resource", resource.clone());
        }
        if let Some(audience) = &request.audience {
            token_request = token_request.add_extra_param("audience", audience.clone());
        }
        let response = token_request
            .request_async(&provider_http(&c.provider))
            .await
            .map_err(token_error)?;
        let access_token = checked_access_token(&response)?;
        // It goes into an `Authorization` header: visible ASCII only (RFC 6749 A.12).
        if !access_token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(FlowError::InvalidResponse(
                "the access token has characters not allowed in a header",
            ));
        }
        let lifetime = response.expires_in().map_or(DEFAULT_LIFETIME_SECS, |d| {
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
        });
        if lifetime <= 0 {
            return Err(FlowError::InvalidResponse(
                "the service token expires immediately",
            ));
        }
        let now = self.now();
        let expires_at = now.saturating_add(lifetime);
        let renew_at = expires_at.saturating_sub(c.margin.min(lifetime / 2));
        tracing::debug!(
            client_id = %c.client_id,
            lifetime,
            "service token obtained"
        );
        Ok(ServiceToken {
            access_token: Secret::new(access_token),
            expires_at,
            renew_at,
            scope: response
                .scopes()
                .map(|s| s.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")),
        })
    }
}

fn new_cache() -> Cache<ServiceTokenRequest, Slot<ServiceToken>> {
    Cache::builder().max_capacity(MAX_CACHED_REQUESTS).build()
}

/// The token endpoint client of a confidential client that authenticates with `secret` by
/// `auth`, or by the method [`negotiate`]d from the provider's metadata: the client
/// credentials grant and token exchange share it. [`ClientAuth::None`] is refused: these
/// grants need a secret.
pub(crate) fn secret_client(
    provider: &Provider,
    client_id: &str,
    secret: &Secret,
    auth: Option<ClientAuth>,
    metadata: &crate::discovery::ProviderMetadata,
) -> Result<OcTokenClient, FlowError> {
    let auth = match auth {
        Some(auth) => auth,
        None => negotiate(metadata.token_endpoint_auth_methods_supported())?,
    };
    if auth == ClientAuth::None {
        return Err(FlowError::UnsupportedClientAuth);
    }
    token_client(provider, client_id, Some(secret), auth, metadata)
}

/// The method to use when none was configured: `client_secret_basic` when the provider lists
/// it or lists nothing (RFC 8414 §2), else `client_secret_post`.
pub(crate) fn negotiate(supported: Option<&[String]>) -> Result<ClientAuth, FlowError> {
    let Some(supported) = supported else {
        return Ok(ClientAuth::ClientSecretBasic);
    };
    if supported.iter().any(|m| m == "client_secret_basic") {
        Ok(ClientAuth::ClientSecretBasic)
    } else if supported.iter().any(|m| m == "client_secret_post") {
        Ok(ClientAuth::ClientSecretPost)
    } else {
        Err(FlowError::UnsupportedClientAuth)
    }
}

#[cfg(test)]
mod tests;
