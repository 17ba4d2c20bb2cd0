//! Outbound calls on behalf of the signed-in user: token exchange (RFC 8693) or forwarding.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use oidc_core::flow::{ExchangeRequest, ExchangedToken, Secret, TokenExchanger};
use tower_layer::Layer;
use tower_service::Service;

use super::service::{OutboundError, send_with_retry};
use crate::future::{BoxResponseFuture, ResponseFuture};

/// The user's access token, the token an [`OnBehalfOf`] call acts for: a request extension
/// the handler inserts before it calls the upstream through the layer.
///
/// It comes from one of two places:
///
/// - a browser login: [`LoginSession::access_token`](crate::login::LoginSession::access_token)
///   (refreshed by the login layer before it expires), as `UserToken::from(token.clone())`;
/// - an API behind [`BearerAuthLayer`](crate::BearerAuthLayer) built with
///   [`keep_presented_token(true)`](crate::BearerAuthLayer::keep_presented_token): the
///   verified [`PresentedToken`](crate::PresentedToken) of the request, as
///   `UserToken::from(presented)`.
///
/// `Debug` does not show the token.
///
/// # Examples
///
/// ```
/// use oidc_core::flow::Secret;
/// use oidc_tower::outbound::UserToken;
///
/// let mut request = http::Request::new(String::new());
/// request
///     .extensions_mut()
///     .insert(UserToken::from(Secret::new("the-users-access-token")));
/// assert_eq!(format!("{:?}", request.extensions().get::<UserToken>().unwrap()), "UserToken(..)");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct UserToken {
    token: Secret,
    expires_at: Option<i64>,
}

impl UserToken {
    /// The user's access token `token`, of unknown expiry.
    pub fn new(token: Secret) -> Self {
        Self {
            token,
            expires_at: None,
        }
    }

    /// Sets when the token expires (seconds since the Unix epoch, for example the login's
    /// [`TokenSet::expires_at`](oidc_core::flow::TokenSet::expires_at)): an exchanged token is
    /// not reused after it, and an expired token is not exchanged. By default the expiry is
    /// unknown (a JWT's `exp` is still honoured).
    #[must_use]
    pub fn with_expires_at(mut self, expires_at: i64) -> Self {
        self.expires_at = Some(expires_at);
        self
    }

    /// The token. Never log it.
    pub fn secret(&self) -> &Secret {
        &self.token
    }

    /// When the token expires, when known.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

impl From<Secret> for UserToken {
    fn from(token: Secret) -> Self {
        Self::new(token)
    }
}

impl From<crate::PresentedToken> for UserToken {
    fn from(token: crate::PresentedToken) -> Self {
        Self::new(token.into_secret())
    }
}

impl std::fmt::Debug for UserToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UserToken(..)")
    }
}

/// How the user's identity travels to the upstream.
#[derive(Debug)]
enum Mode {
    /// Token exchange for `request`.
    Exchange {
        exchanger: TokenExchanger,
        request: ExchangeRequest,
    },
    /// The user's token as it is.
    Forward,
}

/// Calls an HTTP client service on behalf of the user whose [`UserToken`] is in the request:
/// with a token exchanged for the upstream (RFC 8693), or, opt-in, with the user's own token.
///
/// Holds only its configuration behind an `Arc`: cloning and layering are cheap. See the
/// [module docs](crate::outbound#on-behalf-of-the-user) for the modes and an example.
#[derive(Debug, Clone)]
#[must_use]
pub struct OnBehalfOfLayer {
    mode: Arc<Mode>,
}

impl OnBehalfOfLayer {
    /// Exchanges the user's token with `exchanger` for a token of `request` (its audience,
    /// resource and scopes) and sends that; on a 401, exchanges once more (bypassing the
    /// cached token) and retries once.
    pub fn exchange(exchanger: TokenExchanger, request: ExchangeRequest) -> Self {
        Self {
            mode: Arc::new(Mode::Exchange { exchanger, request }),
        }
    }

    /// Forwards the user's own token, unchanged, and never retries.
    ///
    /// Weaker than [`exchange`](Self::exchange): the upstream receives a token whose audience
    /// is this application (or whatever the user's token was issued for), so the upstream
    /// must accept tokens meant for someone else, and it can replay them against this
    /// application and every other service that accepts them. Use it only for an upstream
    /// that is part of the same trust domain and audience, when the provider offers no token
    /// exchange.
    pub fn forward() -> Self {
        Self {
            mode: Arc::new(Mode::Forward),
        }
    }

    /// Whether this layer forwards the user's token rather than exchanging it.
    pub fn is_forward(&self) -> bool {
        matches!(*self.mode, Mode::Forward)
    }
}

impl<S> Layer<S> for OnBehalfOfLayer {
    type Service = OnBehalfOf<S>;

    fn layer(&self, inner: S) -> Self::Service {
        OnBehalfOf {
            inner,
            mode: Arc::clone(&self.mode),
        }
    }
}

/// Middleware that sends each request with a token acting for the request's [`UserToken`];
/// see [`OnBehalfOfLayer`].
#[derive(Debug, Clone)]
pub struct OnBehalfOf<S> {
    inner: S,
    mode: Arc<Mode>,
}

impl<S> OnBehalfOf<S> {
    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OnBehalfOf<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Clone + Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = OutboundError<S::Error>;
    type Future = ResponseFuture<BoxResponseFuture<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(OutboundError::Service)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        // Keep the service that is ready; the clone waits for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let mode = Arc::clone(&self.mode);
        // Taken out: nothing further in (the HTTP client, its layers) sees the user's token
        // unless it is the one sent.
        let user = request.extensions_mut().remove::<UserToken>();
        ResponseFuture::boxed(async move {
            let user = user.ok_or(OutboundError::NoUserToken)?;
            match &*mode {
                Mode::Forward => {
                    let no_retry: Option<fn(Secret) -> std::future::Ready<_>> = None;
                    send_with_retry(inner, request, user.token, |t| t, no_retry).await
                }
                Mode::Exchange {
                    exchanger,
                    request: wanted,
                } => {
                    let token = match user.expires_at {
                        Some(exp) => {
                            exchanger
                                .exchange_with_expiry(&user.token, exp, wanted)
                                .await
                        }
                        None => exchanger.exchange(&user.token, wanted).await,
                    }
                    .map_err(OutboundError::Token)?;
                    let renew = |rejected: ExchangedToken| async move {
                        tracing::debug!(
                            client_id = %exchanger.client_id(),
                            "upstream refused the exchanged token, exchanging once more"
                        );
                        exchanger.renew(&user.token, wanted, &rejected).await
                    };
                    send_with_retry(
                        inner,
                        request,
                        token,
                        ExchangedToken::access_token,
                        Some(renew),
                    )
                    .await
                }
            }
        })
    }
}
