//! The service of outbound service-token calls, and its error.

use std::future::{Future, poll_fn};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use oidc_core::error::FlowError;
use oidc_core::flow::{Secret, ServiceClient, ServiceToken, ServiceTokenRequest};
use tower_layer::Layer;
use tower_service::Service;

use super::layer::{Config, OutboundAuthLayer};
use crate::future::{BoxResponseFuture, ResponseFuture};

/// Middleware that adds `Authorization: Bearer` with a service token to each request and
/// retries once with a fresh token when the upstream answers 401.
///
/// See the [module docs](crate::outbound) for an example.
#[derive(Debug, Clone)]
pub struct OutboundAuth<S> {
    pub(super) inner: S,
    pub(super) config: Arc<Config>,
}

impl<S> OutboundAuth<S> {
    /// Wraps `inner`, sending tokens of `client` obtained for `request`.
    pub fn new(inner: S, client: ServiceClient, request: ServiceTokenRequest) -> Self {
        OutboundAuthLayer::new(client, request).layer(inner)
    }

    /// The layer of this middleware; see [`OutboundAuthLayer::new`].
    pub fn layer(client: ServiceClient, request: ServiceTokenRequest) -> OutboundAuthLayer {
        OutboundAuthLayer::new(client, request)
    }

    define_inner_service_accessors!();
}

/// Why an outbound call failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OutboundError<E> {
    /// No token for the call could be obtained (a service token, or an exchanged token for an
    /// [`OnBehalfOf`](super::OnBehalfOf) call); the upstream was not called (or, after a 401,
    /// not called again).
    Token(FlowError),
    /// The inner service (the HTTP client) failed.
    Service(E),
    /// An [`OnBehalfOf`](super::OnBehalfOf) call had no [`UserToken`](super::UserToken) in
    /// its request extensions; the upstream was not called.
    NoUserToken,
}

impl<E> OutboundError<E> {
    /// Whether the token, not the upstream call, failed (no token obtained, or no user token
    /// to act for).
    pub fn is_token(&self) -> bool {
        matches!(self, Self::Token(_) | Self::NoUserToken)
    }
}

impl<E: std::fmt::Display> std::fmt::Display for OutboundError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("no token for the outbound call could be obtained"),
            Self::Service(e) => write!(f, "outbound request failed: {e}"),
            Self::NoUserToken => f.write_str(
                "no user token in the request to call the upstream on the user's behalf",
            ),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for OutboundError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Token(e) => Some(e),
            Self::Service(e) => Some(e),
            Self::NoUserToken => None,
        }
    }
}

/// `Bearer <token>`, marked sensitive, replacing every `Authorization` header of `headers`.
fn set_bearer<E>(headers: &mut http::HeaderMap, token: &Secret) -> Result<(), OutboundError<E>> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.secret())).map_err(|_| {
        OutboundError::Token(FlowError::InvalidResponse(
            "the access token is not a valid header value",
        ))
    })?;
    value.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, value);
    Ok(())
}

/// Sends `request` through `inner` with `token` as its bearer token (replacing the caller's
/// `Authorization`). On a 401, when `renew` is given, gets a token other than the refused one
/// from it and sends the request **once** more; a second 401 is the upstream's answer. Shared
/// by [`OutboundAuth`] and [`OnBehalfOf`](super::OnBehalfOf).
pub(super) async fn send_with_retry<S, ReqBody, ResBody, T, R, RFut>(
    mut inner: S,
    request: Request<ReqBody>,
    token: T,
    secret: fn(&T) -> &Secret,
    renew: Option<R>,
) -> Result<Response<ResBody>, OutboundError<S::Error>>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: Clone,
    R: FnOnce(T) -> RFut,
    RFut: Future<Output = Result<T, FlowError>>,
{
    let (mut parts, body) = request.into_parts();
    let replay = renew.is_some().then(|| (parts.clone(), body.clone()));
    set_bearer(&mut parts.headers, secret(&token))?;
    let response = inner
        .call(Request::from_parts(parts, body))
        .await
        .map_err(OutboundError::Service)?;
    let (Some(renew), Some((mut parts, body))) = (renew, replay) else {
        return Ok(response);
    };
    if response.status() != StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    // Refused before its expiry (revoked, rotated keys…): one more try with a token other
    // than this one. A second 401 is the upstream's answer.
    drop(response);
    let fresh = renew(token).await.map_err(OutboundError::Token)?;
    set_bearer(&mut parts.headers, secret(&fresh))?;
    poll_fn(|cx| inner.poll_ready(cx))
        .await
        .map_err(OutboundError::Service)?;
    inner
        .call(Request::from_parts(parts, body))
        .await
        .map_err(OutboundError::Service)
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for OutboundAuth<S>
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

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // Keep the service that is ready; the clone waits for the next call.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture::boxed(async move {
            let token = config
                .client
                .token(&config.request)
                .await
                .map_err(OutboundError::Token)?;
            let renew = |rejected: ServiceToken| async move {
                tracing::debug!(
                    client_id = %config.client.client_id(),
                    "upstream refused the service token, renewing it once"
                );
                config.client.renew(&config.request, &rejected).await
            };
            send_with_retry(
                inner,
                request,
                token,
                ServiceToken::access_token,
                Some(renew),
            )
            .await
        })
    }
}
