//! A configured OpenID Provider: its issuer, how to reach it, its metadata and its keys.
//!
//! Building a [`Provider`] does no I/O, so a service starts while its provider is down.
//! Discovery and key fetches happen on first need, are retried with backoff, and their state
//! can be queried with [`Provider::readiness`] (for a readiness probe) or forced with
//! [`Provider::warm_up`].
//!
//! This file does discovery and knows the endpoints; the keys belong to the
//! [JWKS cache](crate::jwks), which fetches them with the provider's HTTP client from the
//! `jwks_uri` the provider hands it ([`KeySetLocation`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::backoff::Backoff;
use crate::discovery::{self, ManualEndpoints, ProviderMetadata};
use crate::error::{ConfigError, DiscoveryError, JwksError};
use crate::http::HttpClient;
use crate::jwks::{JwksCache, JwksTimings, KeyLookup, KeySetLocation};
use crate::url_policy::checked_url;

/// A configured OpenID Provider, cheap to clone and shared by every verifier that uses it.
///
/// # Examples
///
/// ```
/// use oidc_core::Provider;
///
/// // Discovery happens later, on first need.
/// let provider = Provider::builder("https://id.example.com/realms/main").build()?;
/// assert_eq!(provider.issuer(), "https://id.example.com/realms/main");
///
/// // A provider configured by hand: no discovery at all.
/// let manual = Provider::builder("https://id.example.com")
///     .with_jwks_uri("https://id.example.com/keys")
///     .with_authorization_endpoint("https://id.example.com/authorize")
///     .with_token_endpoint("https://id.example.com/token")
///     .build()?;
/// manual.check_login_endpoints()?;
/// # Ok::<_, oidc_core::error::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Provider {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    issuer: String,
    allow_http: bool,
    http: Arc<dyn HttpClient>,
    manual: Option<Arc<ProviderMetadata>>,
    metadata: moka::future::Cache<(), Arc<ProviderMetadata>>,
    discovery_backoff: Mutex<Backoff>,
    jwks: Arc<JwksCache>,
}

/// Builds a [`Provider`]. See [`Provider::builder`].
///
/// # Configured by hand
///
/// A provider that publishes no discovery document (or one that should not be trusted) is
/// configured by hand, as openid-client's `new Issuer(…)`: give its JWKS location
/// ([`with_jwks_uri`](Self::with_jwks_uri)) and the endpoints the flows need
/// ([`with_authorization_endpoint`](ProviderBuilder::with_authorization_endpoint),
/// [`with_token_endpoint`](ProviderBuilder::with_token_endpoint), …). Setting any of them
/// makes the provider manual: discovery is then never fetched, and an endpoint not given is
/// not published (a flow that needs it fails with
/// [`FlowError::MissingEndpoint`](crate::error::FlowError::MissingEndpoint), or at startup
/// with [`ConfigError::MissingEndpoint`] where the flow is configured, for example
/// `LoginLayer` for browser login, see [`Provider::check_login_endpoints`]). The two are not
/// mixed: a hand-set endpoint does not complete a discovered document. Every URL passes the
/// same checks as discovered ones (`https`, or `http` on loopback or with
/// [`insecure_allow_http`](ProviderBuilder::insecure_allow_http); no user info, no fragment).
#[derive(Debug)]
#[must_use]
pub struct ProviderBuilder {
    issuer: String,
    jwks_uri: Option<String>,
    endpoints: ManualEndpoints,
    /// Whether any endpoint (other than the JWKS location) was set by hand.
    any_endpoint: bool,
    allow_http: bool,
    http: Option<Arc<dyn HttpClient>>,
    timings: JwksTimings,
}

/// What a provider has loaded so far, for readiness probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Readiness {
    /// Provider metadata is known (discovered, or configured by hand).
    pub metadata: bool,
    /// A key set is loaded and not older than the maximum staleness.
    pub keys: bool,
}

impl Readiness {
    /// Whether tokens can be verified without first reaching the provider.
    pub fn is_ready(&self) -> bool {
        self.metadata && self.keys
    }
}

impl Provider {
    /// Starts configuring the provider whose issuer identifier is `issuer`.
    ///
    /// The issuer must be `https`, except on loopback hosts (`localhost`, `127.0.0.0/8`,
    /// `[::1]`) or with [`ProviderBuilder::insecure_allow_http`].
    pub fn builder(issuer: impl Into<String>) -> ProviderBuilder {
        ProviderBuilder {
            issuer: issuer.into(),
            jwks_uri: None,
            endpoints: ManualEndpoints::default(),
            any_endpoint: false,
            allow_http: false,
            http: None,
            timings: JwksTimings::default(),
        }
    }

    /// The issuer identifier, exactly as configured.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// Whether `http` URLs are allowed on non-loopback hosts.
    pub(crate) fn allows_http(&self) -> bool {
        self.inner.allow_http
    }

    /// The HTTP client used for this provider.
    pub(crate) fn http_client(&self) -> Arc<dyn HttpClient> {
        self.inner.http.clone()
    }

    /// The metadata of a provider configured by hand, `None` for one that is discovered.
    /// Does no I/O.
    pub fn manual_metadata(&self) -> Option<&ProviderMetadata> {
        self.inner.manual.as_deref()
    }

    /// Checks, without I/O, that a provider configured by hand has the endpoints browser
    /// login (the authorization code flow) needs: the authorization and token endpoints (the
    /// JWKS location is required by [`ProviderBuilder::build`]). A discovered provider
    /// passes: its document is checked when it is fetched.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingEndpoint`] naming the first missing endpoint.
    pub fn check_login_endpoints(&self) -> Result<(), ConfigError> {
        let Some(m) = self.manual_metadata() else {
            return Ok(());
        };
        let missing = |endpoint| ConfigError::MissingEndpoint {
            endpoint,
            needed_for: "browser login",
        };
        if m.authorization_endpoint().is_none() {
            return Err(missing("authorization_endpoint"));
        }
        if m.token_endpoint().is_none() {
            return Err(missing("token_endpoint"));
        }
        Ok(())
    }

    /// What has been loaded so far. Does no I/O.
    pub fn readiness(&self) -> Readiness {
        Readiness {
            metadata: self.inner.manual.is_some() || self.inner.metadata.contains_key(&()),
            keys: self.inner.jwks.is_loaded(),
        }
    }

    /// Loads metadata and keys now, instead of on first need.
    ///
    /// # Errors
    ///
    /// Returns the [`JwksError`] of the failed step; a later call (or request) tries again.
    pub async fn warm_up(&self) -> Result<(), JwksError> {
        self.inner.jwks.warm_up(self).await
    }

    /// The provider's metadata, discovered on first call (single-flight, with backoff).
    ///
    /// # Errors
    ///
    /// Returns a [`DiscoveryError`] when the document cannot be fetched or is not acceptable,
    /// or [`DiscoveryError::Backoff`] while waiting to retry an earlier failure.
    pub async fn metadata(&self) -> Result<Arc<ProviderMetadata>, DiscoveryError> {
        if let Some(m) = &self.inner.manual {
            return Ok(m.clone());
        }
        if let Some(m) = self.inner.metadata.get(&()).await {
            return Ok(m);
        }
        {
            let backoff = lock(&self.inner.discovery_backoff);
            if let Err(retry_after) = backoff.check(Instant::now()) {
                return Err(DiscoveryError::Backoff { retry_after });
            }
        }
        let inner = &self.inner;
        inner
            .metadata
            .try_get_with((), async {
                let result =
                    discovery::fetch(inner.http.as_ref(), &inner.issuer, inner.allow_http).await;
                let mut backoff = lock(&inner.discovery_backoff);
                match result {
                    Ok(m) => {
                        backoff.succeeded();
                        Ok(Arc::new(m))
                    }
                    Err(e) => {
                        tracing::warn!(issuer = %inner.issuer, error = %e, "discovery failed");
                        backoff.failed(Instant::now());
                        Err(e)
                    }
                }
            })
            .await
            .map_err(|e| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
    }

    /// Finds the key for a token: by `kid`, or the single key that fits `alg` when the token
    /// has no `kid`. Loads or refreshes the key set as the JWKS rules allow.
    pub(crate) async fn key_for(
        &self,
        kid: Option<&str>,
        alg: crate::Algorithm,
    ) -> Result<KeyLookup, JwksError> {
        self.inner.jwks.key_for(kid, alg, self).await
    }

    /// Whether a token validated earlier may be accepted from a token cache, judged by the key
    /// set's age (see [`JwksCache::usable_for_cached`]). Lock-free unless a refresh is due.
    pub(crate) fn keys_usable_for_cached(&self) -> bool {
        self.inner.jwks.usable_for_cached(self)
    }
}

/// The provider hands the JWKS cache its `jwks_uri`: configured, or discovered on first need.
impl KeySetLocation for Provider {
    async fn jwks_uri(&self) -> Result<String, JwksError> {
        let metadata = self.metadata().await.map_err(JwksError::Discovery)?;
        Ok(metadata.jwks_uri().to_owned())
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ProviderBuilder {
    /// Configures the provider by hand: keys come from `jwks_uri` and no discovery is done.
    /// Required whenever the provider is configured by hand (see the
    /// [module docs](ProviderBuilder#configured-by-hand)).
    ///
    /// The default is to discover the provider's metadata.
    pub fn with_jwks_uri(mut self, jwks_uri: impl Into<String>) -> Self {
        self.jwks_uri = Some(jwks_uri.into());
        self
    }

    fn endpoint(mut self, set: impl FnOnce(&mut ManualEndpoints)) -> Self {
        set(&mut self.endpoints);
        self.any_endpoint = true;
        self
    }

    /// Sets the authorization endpoint (browser login) and configures the provider by hand:
    /// no discovery is done. The default is the discovered `authorization_endpoint`.
    pub fn with_authorization_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.authorization = Some(url))
    }

    /// Sets the token endpoint (code redemption, refresh, client credentials, device flow)
    /// and configures the provider by hand. The default is the discovered `token_endpoint`.
    pub fn with_token_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.token = Some(url))
    }

    /// Sets the UserInfo endpoint and configures the provider by hand. The default is the
    /// discovered `userinfo_endpoint`; without one, login takes the claims of the ID token
    /// alone.
    pub fn with_userinfo_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.userinfo = Some(url))
    }

    /// Sets the RP-initiated logout endpoint and configures the provider by hand. The
    /// default is the discovered `end_session_endpoint`; without one, logout is local only.
    pub fn with_end_session_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.end_session = Some(url))
    }

    /// Sets the RFC 7009 revocation endpoint and configures the provider by hand. The
    /// default is the discovered `revocation_endpoint`; without one, nothing is revoked at
    /// logout.
    pub fn with_revocation_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.revocation = Some(url))
    }

    /// Sets the RFC 7662 introspection endpoint and configures the provider by hand. The
    /// default is the discovered `introspection_endpoint`.
    pub fn with_introspection_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.introspection = Some(url))
    }

    /// Sets the RFC 8628 device authorization endpoint and configures the provider by hand.
    /// The default is the discovered `device_authorization_endpoint`.
    pub fn with_device_authorization_endpoint(self, url: impl Into<String>) -> Self {
        let url = url.into();
        self.endpoint(|e| e.device_authorization = Some(url))
    }

    /// For a provider configured by hand: whether it sends the RFC 9207 `iss` parameter in
    /// authorization responses, so that a response without it is refused (mix-up defence).
    /// The default value is `false` (an `iss` that is present is checked all the same); a
    /// discovered provider says so itself (`authorization_response_iss_parameter_supported`).
    pub fn require_authorization_response_iss(mut self, required: bool) -> Self {
        self.endpoints.iss_parameter = required;
        self
    }

    /// Replaces the HTTP client. The default is [`ReqwestClient::new`](crate::http::ReqwestClient::new)
    /// (feature `reqwest`).
    pub fn with_http_client(mut self, client: Arc<dyn HttpClient>) -> Self {
        self.http = Some(client);
        self
    }

    /// Allows `http` issuer and endpoint URLs on any host. The default is to allow `http` only
    /// on loopback hosts.
    ///
    /// # Security
    ///
    /// Without TLS, anyone on the network path can replace the provider's keys and so mint
    /// tokens this service accepts. Use it only on networks you control.
    pub fn insecure_allow_http(mut self) -> Self {
        self.allow_http = true;
        self
    }

    /// How long after a fetch a token with an unknown `kid` may force another one.
    /// The default value is 30 seconds.
    pub fn with_unknown_kid_cooldown(mut self, cooldown: Duration) -> Self {
        self.timings.unknown_kid_cooldown = cooldown;
        self
    }

    /// Bounds for the refresh interval taken from the JWKS response's `Cache-Control`.
    /// The default values are 60 seconds and 1 hour.
    pub fn with_refresh_bounds(mut self, min: Duration, max: Duration) -> Self {
        self.timings.min_refresh = min.min(max);
        self.timings.max_refresh = max.max(min);
        self
    }

    /// How long the last good keys keep working while the provider cannot be reached.
    /// The default value is 24 hours.
    pub fn with_max_stale(mut self, max_stale: Duration) -> Self {
        self.timings.max_stale = max_stale;
        self
    }

    /// Pacing of retries after a failed fetch: the first wait and the longest.
    /// The default values are 1 second and 60 seconds.
    pub fn with_retry_backoff(mut self, first: Duration, max: Duration) -> Self {
        self.timings.retry_base = first;
        self.timings.retry_max = max.max(first);
        self
    }

    /// Checks the settings and builds the provider. Does no I/O.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] when the issuer or an endpoint URL is not acceptable,
    /// [`ConfigError::MissingEndpoint`] for a provider configured by hand without a JWKS
    /// location, or a [`ConfigError`] when the default HTTP client cannot be built.
    pub fn build(self) -> Result<Provider, ConfigError> {
        checked_url(&self.issuer, self.allow_http)?;
        let e = &self.endpoints;
        for url in [
            &e.authorization,
            &e.token,
            &e.userinfo,
            &e.end_session,
            &e.revocation,
            &e.introspection,
            &e.device_authorization,
        ]
        .into_iter()
        .flatten()
        {
            checked_url(url, self.allow_http)?;
        }
        let manual = match self.jwks_uri {
            Some(uri) => {
                checked_url(&uri, self.allow_http)?;
                Some(Arc::new(ProviderMetadata::manual(
                    self.issuer.clone(),
                    uri,
                    self.endpoints,
                )))
            }
            None if self.any_endpoint => {
                return Err(ConfigError::MissingEndpoint {
                    endpoint: "jwks_uri",
                    needed_for: "checking token signatures",
                });
            }
            None => None,
        };
        let http = match self.http {
            Some(http) => http,
            None => default_client()?,
        };
        let jwks = Arc::new(JwksCache::new(self.timings, Arc::clone(&http)));
        Ok(Provider {
            inner: Arc::new(Inner {
                issuer: self.issuer,
                allow_http: self.allow_http,
                http,
                manual,
                metadata: moka::future::Cache::new(1),
                discovery_backoff: Mutex::new(Backoff::new(
                    self.timings.retry_base,
                    self.timings.retry_max,
                )),
                jwks,
            }),
        })
    }
}

#[cfg(feature = "reqwest")]
fn default_client() -> Result<Arc<dyn HttpClient>, ConfigError> {
    Ok(Arc::new(crate::http::ReqwestClient::new()?))
}

#[cfg(not(feature = "reqwest"))]
fn default_client() -> Result<Arc<dyn HttpClient>, ConfigError> {
    Err(ConfigError::HttpClient(Arc::new(std::io::Error::other(
        "no http client: enable the `reqwest` feature or call with_http_client",
    ))))
}
