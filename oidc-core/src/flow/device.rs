//! The device authorization grant (RFC 8628): login on a device without a browser, or a
//! command line, by a code the user enters on another device.
//!
//! [`DeviceFlow::start`] asks the provider's `device_authorization_endpoint` (from discovery,
//! or set with [`DeviceFlow::with_endpoint`]) for a [`DeviceAuthorization`]: the user code and
//! the verification URI to show the user. [`DeviceFlow::wait`] then polls the token endpoint
//! until the user approves, and returns the [`TokenSet`]; [`DeviceFlow::poll`] is one step of
//! it. The client authenticates as the [`OidcClient`] does at the token endpoint; public
//! clients (no secret) are the usual case.
//!
//! # Polling
//!
//! - Between two polls the client waits the `interval` of the authorization (5 s when the
//!   provider sends none, at least 1 s whatever it sends). `authorization_pending` polls
//!   again after the interval; `slow_down` adds 5 s to the interval for this and every later
//!   poll (RFC 8628 §3.5).
//! - The code expires after its `expires_in`, capped by [`DeviceFlow::with_max_wait`] (default
//!   15 minutes), by the client's [clock](OidcClient::with_clock): no poll is sent after it,
//!   and `wait` ends with [`FlowError::DeviceCodeExpired`], as it does when the provider
//!   answers `expired_token`.
//! - `access_denied` (the user refused) ends with [`FlowError::AuthorizationDenied`]; any other
//!   OAuth error with [`FlowError::TokenEndpoint`].
//! - A poll that cannot reach the provider is retried after twice the interval, at most three
//!   times in a row (RFC 8628 §3.5 asks for a backoff), then its error is returned.
//! - The wait is a tokio sleep (replaceable with [`DeviceFlow::with_sleep`]): dropping the
//!   future of `wait` cancels the login, for example on Ctrl-C.
//!
//! The ID token, when the provider returns one, is validated exactly as in the code flow
//! (signature, `iss`, `aud`, `exp`, `iat`, `at_hash`…); there is no `nonce` to compare, the
//! grant has no authorization request.
//!
//! # Security
//!
//! The device code is a credential: it is kept in a [`Secret`] and never shown by `Debug`.
//! The user code and the verification URIs come from the provider and are shown to the user:
//! URIs must be `https` (or `http` on a loopback host, or when the provider allows `http`),
//! and the user code must be at most 64 characters without control characters, so that a
//! broken provider cannot write terminal escape sequences into the user's terminal. RFC 8628
//! §5.4: the user should only enter the code at a URI they recognise as their provider's.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_core::Provider;
//! use oidc_core::flow::{DeviceFlow, OidcClient};
//! # let op = oidc_testing::TestProvider::start().await;
//! # op.register_client(oidc_testing::ClientRegistration::public("cli", "http://127.0.0.1/callback"));
//! # op.set_device_interval(0);
//! # let issuer = op.issuer();
//!
//! let provider = Provider::builder(issuer).build()?;
//! // The redirect URI is not used by this grant.
//! let client = OidcClient::new(provider, "cli", "http://127.0.0.1/callback")?;
//! let device = DeviceFlow::new(client);
//!
//! let authorization = device.start().await?;
//! println!(
//!     "Open {} and enter the code {}",
//!     authorization.verification_uri(),
//!     authorization.user_code()
//! );
//! # op.approve_device(authorization.user_code(), "ada");
//! let tokens = tokio::select! {
//!     tokens = device.wait(&authorization) => tokens?,
//!     // Dropping `wait` (here: after 10 minutes, or on Ctrl-C) sends nothing more.
//!     () = tokio::time::sleep(std::time::Duration::from_secs(600)) => return Ok(()),
//! };
//! println!("logged in as {}", tokens.subject());
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! See [Polling](#polling); [`FlowError::MissingEndpoint`] when the provider publishes no
//! `device_authorization_endpoint` and none was set; [`FlowError::InvalidResponse`] for a
//! device authorization answer that breaks the rules above. An error of the device
//! authorization endpoint itself is reported as [`FlowError::TokenEndpoint`] with its code.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use openidconnect::core::CoreDeviceAuthorizationResponse;
use openidconnect::{DeviceAuthorizationUrl, RequestTokenError, Scope};
use tokio::sync::Notify;

use super::client::{provider_http, token_error};
use super::{OidcClient, Secret, TokenSet};
use crate::error::{ConfigError, FlowError, HttpError};
use crate::http::{HttpRequest, HttpResponse};
use crate::url_policy::checked_url;

/// A sleep, as [`DeviceFlow`] waits between polls.
pub type Sleep = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The shortest interval used, whatever the provider says.
const MIN_INTERVAL_SECS: u64 = 1;
/// What `slow_down` adds to the interval (RFC 8628 §3.5).
const SLOW_DOWN_SECS: u64 = 5;
/// Polls in a row that may fail to reach the provider before `wait` gives up.
const MAX_UNREACHABLE_POLLS: u32 = 3;
/// The longest user code shown.
const MAX_USER_CODE_CHARS: usize = 64;

/// The device authorization grant of an [`OidcClient`].
///
/// Cheap to clone. See the [module docs](crate::flow::device) for an example and the rules.
#[derive(Clone)]
pub struct DeviceFlow {
    client: OidcClient,
    endpoint: Option<String>,
    max_wait: Duration,
    sleep: Sleep,
}

impl std::fmt::Debug for DeviceFlow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceFlow")
            .field("client", &self.client)
            .field("endpoint", &self.endpoint)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

/// A pending device login: what to show the user, and the device code (kept secret) to poll
/// with. `Debug` shows neither code.
pub struct DeviceAuthorization {
    response: CoreDeviceAuthorizationResponse,
    device_code: Secret,
    user_code: String,
    verification_uri: String,
    verification_uri_complete: Option<String>,
    expires_at: i64,
    interval_secs: AtomicU64,
}

impl std::fmt::Debug for DeviceAuthorization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceAuthorization")
            .field("verification_uri", &self.verification_uri)
            .field("expires_at", &self.expires_at)
            .field("interval", &self.interval())
            .finish_non_exhaustive()
    }
}

impl DeviceAuthorization {
    /// The code the user enters at the verification URI.
    pub fn user_code(&self) -> &str {
        &self.user_code
    }

    /// Where the user enters the code.
    pub fn verification_uri(&self) -> &str {
        &self.verification_uri
    }

    /// The verification URI with the user code in it, when the provider sent one (for a QR
    /// code or a link; the user still confirms at the provider).
    pub fn verification_uri_complete(&self) -> Option<&str> {
        self.verification_uri_complete.as_deref()
    }

    /// When the device code expires, in seconds since the Unix epoch by the client's clock
    /// (capped by [`DeviceFlow::with_max_wait`]).
    pub fn expires_at(&self) -> i64 {
        self.expires_at
    }

    /// The current wait between polls; `slow_down` answers increase it.
    pub fn interval(&self) -> Duration {
        Duration::from_secs(self.interval_secs.load(Ordering::Relaxed))
    }

    /// The device code, the credential the client polls with. Never show or log it.
    pub fn device_code(&self) -> &Secret {
        &self.device_code
    }

    fn slow_down(&self) {
        let _ = self
            .interval_secs
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some(s.saturating_add(SLOW_DOWN_SECS))
            });
    }
}

/// The outcome of one [`DeviceFlow::poll`] that did not fail.
#[derive(Debug)]
#[non_exhaustive]
pub enum DevicePoll {
    /// The user approved: the validated tokens.
    Approved(Box<TokenSet>),
    /// `authorization_pending`: poll again after the [interval](DeviceAuthorization::interval).
    Pending,
    /// `slow_down`: the interval was increased by 5 s; poll again after it.
    SlowDown,
}

/// A poll's raw answer as the provider sent it, for telling `authorization_pending` from
/// `slow_down` (openidconnect treats both as "poll again").
type Captured = Arc<Mutex<Option<Result<Vec<u8>, HttpError>>>>;

impl DeviceFlow {
    /// The device grant of `client`, at the provider's published endpoint.
    ///
    /// Defaults: the endpoint from discovery, a maximum wait of 15 minutes, tokio's sleep.
    pub fn new(client: OidcClient) -> Self {
        Self {
            client,
            endpoint: None,
            max_wait: Duration::from_secs(15 * 60),
            sleep: Arc::new(|d| Box::pin(tokio::time::sleep(d))),
        }
    }

    /// Uses `url` as the device authorization endpoint instead of the published one. The
    /// default is the provider's `device_authorization_endpoint` from discovery.
    ///
    /// # Errors
    ///
    /// [`ConfigError`] when `url` is not `https` (or `http` on a loopback host, or the
    /// provider allows `http`).
    pub fn with_endpoint(mut self, url: impl Into<String>) -> Result<Self, ConfigError> {
        let url = url.into();
        checked_url(&url, self.client.provider().allows_http())?;
        self.endpoint = Some(url);
        Ok(self)
    }

    /// Caps how long a device code is polled, whatever `expires_in` the provider sent. The
    /// default value is 15 minutes.
    #[must_use]
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Replaces the sleep between polls (a test's clock, another runtime). The default is
    /// `tokio::time::sleep`.
    #[must_use]
    pub fn with_sleep(mut self, sleep: Sleep) -> Self {
        self.sleep = sleep;
        self
    }

    /// The client.
    pub fn client(&self) -> &OidcClient {
        &self.client
    }

    /// Asks the provider for a device code and a user code, for the client's scopes.
    ///
    /// # Errors
    ///
    /// See the [module docs](crate::flow::device#errors).
    pub async fn start(&self) -> Result<DeviceAuthorization, FlowError> {
        let metadata = self.client.metadata().await?;
        let url = match &self.endpoint {
            Some(url) => url.clone(),
            None => {
                let url = metadata
                    .device_authorization_endpoint()
                    .ok_or(FlowError::MissingEndpoint("device authorization endpoint"))?;
                checked_url(url, self.client.provider().allows_http())
                    .map_err(|_| FlowError::MissingEndpoint("device authorization endpoint"))?;
                url.to_owned()
            }
        };
        let url = DeviceAuthorizationUrl::new(url).map_err(|_| {
            FlowError::InvalidResponse("the device authorization endpoint url is invalid")
        })?;
        let client = self
            .client
            .token_endpoint_client(&metadata)?
            .set_device_authorization_url(url);
        let scopes = self
            .client
            .scopes()
            .iter()
            .filter(|s| *s != "openid")
            .cloned()
            .map(Scope::new);
        let response: CoreDeviceAuthorizationResponse = client
            .exchange_device_code()
            .add_scopes(scopes)
            .request_async(&provider_http(self.client.provider()))
            .await
            .map_err(token_error)?;
        self.authorization(response)
    }

    /// Checks the device authorization answer (see [Security](crate::flow::device#security)).
    fn authorization(
        &self,
        response: CoreDeviceAuthorizationResponse,
    ) -> Result<DeviceAuthorization, FlowError> {
        let allow_http = self.client.provider().allows_http();
        let user_code = response.user_code().secret().clone();
        if user_code.is_empty()
            || user_code.chars().count() > MAX_USER_CODE_CHARS
            || user_code.chars().any(char::is_control)
        {
            return Err(FlowError::InvalidResponse(
                "the user code is empty, too long or has control characters",
            ));
        }
        let verification_uri = response.verification_uri().as_str().to_owned();
        checked_url(&verification_uri, allow_http)
            .map_err(|_| FlowError::InvalidResponse("the verification uri is not acceptable"))?;
        let verification_uri_complete = response
            .verification_uri_complete()
            .map(|u| u.secret().clone());
        if let Some(uri) = &verification_uri_complete {
            checked_url(uri, allow_http).map_err(|_| {
                FlowError::InvalidResponse("the complete verification uri is not acceptable")
            })?;
        }
        let device_code = response.device_code().secret().clone();
        if device_code.is_empty() {
            return Err(FlowError::InvalidResponse("the device code is empty"));
        }
        let lifetime = response.expires_in().min(self.max_wait).as_secs();
        // openidconnect reads an absent interval as the default, 5 s.
        let interval = response.interval().as_secs().max(MIN_INTERVAL_SECS);
        Ok(DeviceAuthorization {
            device_code: Secret::new(device_code),
            user_code,
            verification_uri,
            verification_uri_complete,
            expires_at: self
                .client
                .now()
                .saturating_add(i64::try_from(lifetime).unwrap_or(i64::MAX)),
            interval_secs: AtomicU64::new(interval),
            response,
        })
    }

    /// Sends one token request for `authorization` (no wait before it).
    ///
    /// # Errors
    ///
    /// [`FlowError::DeviceCodeExpired`] when the code expired (then nothing is sent), or the
    /// provider answered `expired_token`; see the [module docs](crate::flow::device#polling)
    /// for the others.
    pub async fn poll(&self, authorization: &DeviceAuthorization) -> Result<DevicePoll, FlowError> {
        if self.client.now() >= authorization.expires_at {
            return Err(FlowError::DeviceCodeExpired);
        }
        let metadata = self.client.metadata().await?;
        let client = self.client.token_endpoint_client(&metadata)?;
        let captured: Captured = Arc::default();
        let http = capturing_http(self.client.provider(), Arc::clone(&captured));
        // openidconnect builds the request (client authentication as for every grant) and
        // parses the answer, but it polls in a loop of its own: the first time it wants to
        // sleep, this poll is over, and the captured answer says why.
        let asked_to_sleep = Arc::new(Notify::new());
        let notify = Arc::clone(&asked_to_sleep);
        let request = client
            .exchange_device_access_token(&authorization.response)
            .request_async(
                &http,
                move |_| {
                    notify.notify_one();
                    std::future::pending::<()>()
                },
                Some(Duration::from_secs(24 * 60 * 60)),
            );
        let result = tokio::select! {
            biased;
            result = request => Some(result),
            () = asked_to_sleep.notified() => None,
        };
        let Some(result) = result else {
            let answer = captured
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return match answer {
                Some(Ok(body)) if oauth_error(&body).as_deref() == Some("slow_down") => {
                    authorization.slow_down();
                    Ok(DevicePoll::SlowDown)
                }
                Some(Ok(_)) => Ok(DevicePoll::Pending),
                Some(Err(e)) => Err(FlowError::Http(e)),
                None => Err(FlowError::InvalidResponse(
                    "the token endpoint did not answer",
                )),
            };
        };
        match result {
            Ok(response) => {
                let tokens = self
                    .client
                    .token_set(response, None, None, None, None)
                    .await?;
                Ok(DevicePoll::Approved(Box::new(tokens)))
            }
            Err(RequestTokenError::ServerResponse(e)) => Err(match e.error().as_ref() {
                "expired_token" => FlowError::DeviceCodeExpired,
                "access_denied" => FlowError::AuthorizationDenied {
                    error: "access_denied".to_owned(),
                    description: None,
                },
                other => FlowError::TokenEndpoint {
                    error: other.to_owned(),
                },
            }),
            Err(RequestTokenError::Request(http)) => Err(FlowError::Http(http)),
            Err(RequestTokenError::Parse(_, _)) => Err(FlowError::InvalidResponse(
                "the token response is not of the expected shape",
            )),
            Err(RequestTokenError::Other(_)) => Err(FlowError::InvalidResponse(
                "the token endpoint answered unexpectedly",
            )),
        }
    }

    /// Polls until the user approves, refuses, or the code expires; see
    /// [Polling](crate::flow::device#polling).
    ///
    /// # Errors
    ///
    /// See the [module docs](crate::flow::device#errors).
    pub async fn wait(&self, authorization: &DeviceAuthorization) -> Result<TokenSet, FlowError> {
        let mut unreachable = 0u32;
        loop {
            match self.poll(authorization).await {
                Ok(DevicePoll::Approved(tokens)) => return Ok(*tokens),
                Ok(DevicePoll::Pending | DevicePoll::SlowDown) => {
                    unreachable = 0;
                    (self.sleep)(authorization.interval()).await;
                }
                Err(FlowError::Http(e)) if unreachable < MAX_UNREACHABLE_POLLS => {
                    unreachable += 1;
                    tracing::debug!(error = %e, unreachable, "device poll failed, backing off");
                    (self.sleep)(authorization.interval().saturating_mul(2)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// The OAuth `error` code of an error answer, if it has one.
fn oauth_error(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct ErrorBody {
        error: String,
    }
    serde_json::from_slice::<ErrorBody>(body)
        .ok()
        .map(|b| b.error)
}

/// The provider's HTTP client for openidconnect, keeping a copy of each answer (or failure).
fn capturing_http(
    provider: &crate::Provider,
    captured: Captured,
) -> impl Fn(HttpRequest) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
    let http = provider_http(provider);
    move |request| {
        let sent = http(request);
        let captured = Arc::clone(&captured);
        Box::pin(async move {
            let result = sent.await;
            *captured.lock().unwrap_or_else(PoisonError::into_inner) = Some(
                result
                    .as_ref()
                    .map(|r| r.body().clone())
                    .map_err(Clone::clone),
            );
            result
        })
    }
}
