//! The service of outbound service-token calls, and its error.

use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{HeaderValue, Request, Response, StatusCode, header};
use oidc_core::error::FlowError;
use oidc_core::flow::{ServiceClient, ServiceToken, ServiceTokenRequest};
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
    /// No service token could be obtained; the upstream was not called (or, after a 401, not
    /// called again).
    Token(FlowError),
    /// The inner service (the HTTP client) failed.
    Service(E),
}

impl<E> OutboundError<E> {
    /// Whether the token, not the upstream call, failed.
    pub fn is_token(&self) -> bool {
        matches!(self, Self::Token(_))
    }
}

impl<E: std::fmt::Display> std::fmt::Display for OutboundError<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Token(_) => f.write_str("no service token could be obtained"),
            Self::Service(e) => write!(f, "outbound request failed: {e}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for OutboundError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Token(e) => Some(e),
            Self::Service(e) => Some(e),
        }
    }
}

/// `Bearer <token>`, marked sensitive, replacing every `Authorization` header of `headers`.
fn set_bearer<E>(
    headers: &mut http::HeaderMap,
    token: &ServiceToken,
) -> Result<(), OutboundError<E>> {
    let mut value = HeaderValue::try_from(format!("Bearer {}", token.access_token().secret()))
        .map_err(|_| {
            OutboundError::Token(FlowError::InvalidResponse(
                "the access token is not a valid header value",
            ))
        })?;
    value.set_sensitive(true);
    headers.insert(header::AUTHORIZATION, value);
    Ok(())
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
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = Arc::clone(&self.config);
        ResponseFuture::boxed(async move {
            let token = config
                .client
                .token(&config.request)
                .await
                .map_err(OutboundError::Token)?;
            let (mut parts, body) = request.into_parts();
            let replay = (parts.clone(), body.clone());
            set_bearer(&mut parts.headers, &token)?;
            let response = inner
                .call(Request::from_parts(parts, body))
                .await
                .map_err(OutboundError::Service)?;
            if response.status() != StatusCode::UNAUTHORIZED {
                return Ok(response);
            }
            // Refused before its expiry (revoked, rotated keys…): one more try with a token
            // other than this one. A second 401 is the upstream's answer.
            drop(response);
            tracing::debug!(
                client_id = %config.client.client_id(),
                "upstream refused the service token, renewing it once"
            );
            let fresh = config
                .client
                .renew(&config.request, &token)
                .await
                .map_err(OutboundError::Token)?;
            let (mut parts, body) = replay;
            set_bearer(&mut parts.headers, &fresh)?;
            poll_fn(|cx| inner.poll_ready(cx))
                .await
                .map_err(OutboundError::Service)?;
            inner
                .call(Request::from_parts(parts, body))
                .await
                .map_err(OutboundError::Service)
        })
    }
}
