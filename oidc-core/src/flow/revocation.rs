//! Token revocation (RFC 7009): telling the provider that a refresh or access token is no
//! longer needed, at logout.
//!
//! [`TokenRevoker`] sends the token to the provider's `revocation_endpoint` (from discovery,
//! or set by hand with [`TokenRevoker::with_endpoint`]) with a `token_type_hint`, and
//! authenticates exactly as the [`OidcClient`] does at the token endpoint
//! (`client_secret_basic`, `client_secret_post`, or only the `client_id` for a public
//! client). [`OidcClient::revoke`] is the short form with the endpoint from discovery.
//!
//! Revoking a refresh token also ends the access tokens of its grant at most providers
//! (RFC 7009 §2.1 "SHOULD"); [`TokenRevoker::revoke_tokens`] revokes the refresh token first,
//! then the access token, so that a provider that does not cascade still forgets both.
//!
//! # Example
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use oidc_core::Provider;
//! use oidc_core::flow::{OidcClient, Secret, TokenRevoker, TokenTypeHint};
//! # let op = oidc_testing::TestProvider::start().await;
//! # op.register_client(oidc_testing::ClientRegistration::public("cli", "http://127.0.0.1/callback"));
//! # let issuer = op.issuer();
//!
//! let provider = Provider::builder(issuer).build()?;
//! let client = OidcClient::new(provider, "cli", "http://127.0.0.1/callback")?;
//! let revoker = TokenRevoker::new(client);
//! // An unknown token is not an error (RFC 7009 §2.2): the provider answers 200.
//! revoker.revoke(&Secret::new("a-refresh-token"), TokenTypeHint::RefreshToken).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! [`FlowError::MissingEndpoint`] when the provider publishes no `revocation_endpoint` and
//! none was set (nothing is sent); [`FlowError::RevocationRefused`] with the OAuth error code
//! when the endpoint refuses (`unsupported_token_type`, `invalid_client`…); a provider
//! failure otherwise (a 503 is [`FlowError::InvalidResponse`]: try again later). Neither the
//! token nor the `error_description` appears in an error.

use std::pin::Pin;
use std::sync::Arc;

use openidconnect::core::CoreRevocableToken;
use openidconnect::{AccessToken, RefreshToken, RequestTokenError, RevocationUrl};

use super::{OidcClient, Secret, TokenSet};
use crate::error::HttpError;
use crate::error::{ConfigError, FlowError};
use crate::http::{HttpClient, HttpRequest, HttpResponse};
use crate::url_policy::checked_url;

/// What kind of token is revoked: the RFC 7009 `token_type_hint`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenTypeHint {
    /// `access_token`.
    AccessToken,
    /// `refresh_token`.
    RefreshToken,
}

/// Revokes tokens at a provider's RFC 7009 endpoint, authenticating as an [`OidcClient`].
///
/// Cheap to clone. See the [module docs](crate::flow::revocation) for an example.
#[derive(Debug, Clone)]
pub struct TokenRevoker {
    client: OidcClient,
    endpoint: Option<String>,
}

impl TokenRevoker {
    /// A revoker for `client`'s tokens at the provider's published `revocation_endpoint`.
    pub fn new(client: OidcClient) -> Self {
        Self {
            client,
            endpoint: None,
        }
    }

    /// Uses `url` as the revocation endpoint instead of the published one (for a provider
    /// configured by hand or one that does not publish it). The default is the provider's
    /// `revocation_endpoint` from discovery.
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

    /// The revocation endpoint to use: the configured one, else the published one, else
    /// `None` (the provider offers no revocation).
    ///
    /// # Errors
    ///
    /// [`FlowError`] when the provider's metadata is needed and unavailable.
    pub async fn endpoint(&self) -> Result<Option<String>, FlowError> {
        if let Some(url) = &self.endpoint {
            return Ok(Some(url.clone()));
        }
        let metadata = self.client.metadata().await?;
        Ok(metadata.revocation_endpoint().map(str::to_owned))
    }

    /// Revokes `token`, a token of kind `hint`. An unknown or already revoked token is not an
    /// error (RFC 7009 §2.2).
    ///
    /// # Errors
    ///
    /// See the [module docs](crate::flow::revocation#errors).
    pub async fn revoke(&self, token: &Secret, hint: TokenTypeHint) -> Result<(), FlowError> {
        let metadata = self.client.metadata().await?;
        let url = match &self.endpoint {
            Some(url) => url.clone(),
            None => {
                let url = metadata
                    .revocation_endpoint()
                    .ok_or(FlowError::MissingEndpoint("revocation endpoint"))?;
                checked_url(url, self.client.provider().allows_http())
                    .map_err(|_| FlowError::MissingEndpoint("revocation endpoint"))?;
                url.to_owned()
            }
        };
        let invalid = |_| FlowError::InvalidResponse("the revocation endpoint url is invalid");
        let target: http::Uri = url.parse().map_err(|_| invalid(()))?;
        // openidconnect refuses a revocation URL that is not https (RFC 7009 §2). The URL
        // policy of this crate, applied above, also allows `http` on a loopback host (and
        // with `insecure_allow_http`), as for every other endpoint: openidconnect builds the
        // request for the https form, and it is sent to the URL that passed the policy.
        let mut for_openidconnect = url::Url::parse(&url).map_err(|_| invalid(()))?;
        if for_openidconnect.scheme() == "http" {
            for_openidconnect
                .set_scheme("https")
                .map_err(|()| invalid(()))?;
        }
        let client = self
            .client
            .token_endpoint_client(&metadata)?
            .set_revocation_url(RevocationUrl::from_url(for_openidconnect));
        let send = send_to(self.client.provider().http_client(), target);
        let token = match hint {
            TokenTypeHint::AccessToken => {
                CoreRevocableToken::from(AccessToken::new(token.secret().to_owned()))
            }
            TokenTypeHint::RefreshToken => {
                CoreRevocableToken::from(RefreshToken::new(token.secret().to_owned()))
            }
        };
        let result = client
            .revoke_token(token)
            .map_err(|_| FlowError::MissingEndpoint("revocation endpoint"))?
            .request_async(&send)
            .await;
        match result {
            Ok(()) => {
                tracing::debug!(client_id = %self.client.client_id(), ?hint, "token revoked");
                Ok(())
            }
            Err(RequestTokenError::ServerResponse(e)) => Err(FlowError::RevocationRefused {
                error: e.error().as_ref().to_owned(),
            }),
            Err(RequestTokenError::Request(http)) => Err(FlowError::Http(http)),
            Err(RequestTokenError::Parse(_, _) | RequestTokenError::Other(_)) => Err(
                FlowError::InvalidResponse("the revocation endpoint answered unexpectedly"),
            ),
        }
    }

    /// Revokes the refresh token of `tokens` (when there is one), then its access token. Both
    /// are attempted; the first failure is returned.
    ///
    /// A provider may not revoke self-contained (JWT) access tokens: `unsupported_token_type`
    /// for the access token is not a failure here (RFC 7009 §2.2.1); that access token stays
    /// valid until it expires, while the revoked refresh token (and, at most providers, its
    /// grant) is gone.
    ///
    /// # Errors
    ///
    /// As [`revoke`](Self::revoke).
    pub async fn revoke_tokens(&self, tokens: &TokenSet) -> Result<(), FlowError> {
        let refresh = match tokens.refresh_token() {
            Some(refresh) => self.revoke(refresh, TokenTypeHint::RefreshToken).await,
            None => Ok(()),
        };
        let access = match self
            .revoke(tokens.access_token(), TokenTypeHint::AccessToken)
            .await
        {
            Err(FlowError::RevocationRefused { error }) if error == "unsupported_token_type" => {
                tracing::debug!("the provider does not revoke this access token");
                Ok(())
            }
            other => other,
        };
        refresh.and(access)
    }
}

impl OidcClient {
    /// Revokes `token` at the provider's published revocation endpoint (RFC 7009); see
    /// [`TokenRevoker`] to set the endpoint by hand.
    ///
    /// # Errors
    ///
    /// See the [revocation docs](crate::flow::revocation#errors).
    pub async fn revoke(&self, token: &Secret, hint: TokenTypeHint) -> Result<(), FlowError> {
        TokenRevoker::new(self.clone()).revoke(token, hint).await
    }
}

type SendFuture = Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>>;

/// The provider's HTTP client sending every request to `target`. A free function: a closure
/// written in `revoke` would carry its lifetimes, and its future would not be `Send` for
/// every caller.
fn send_to(http: Arc<dyn HttpClient>, target: http::Uri) -> impl Fn(HttpRequest) -> SendFuture {
    move |mut request: HttpRequest| -> SendFuture {
        *request.uri_mut() = target.clone();
        let http = Arc::clone(&http);
        Box::pin(async move { http.execute(request).await })
    }
}
