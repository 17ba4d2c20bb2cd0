use std::task::{Context, Poll};

use http::{Request, Response};
use oidc_core::AdditionalClaims;
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{BearerAuthLayer, bearer_token};
use crate::error::{Anonymous, AuthError, AuthErrorKind};
use crate::future::ResponseFuture;
use crate::response::{DefaultRejection, OnRejection, log};

/// The service of [`BearerAuthLayer`]. See the [module docs](crate::bearer).
pub struct BearerAuth<S, C = AdditionalClaims, R = DefaultRejection> {
    inner: S,
    layer: BearerAuthLayer<C, R>,
}

impl<S, C, R> BearerAuth<S, C, R> {
    /// Wraps `inner` with the settings of `layer`.
    pub fn new(inner: S, layer: BearerAuthLayer<C, R>) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S: Clone, C, R: Clone> Clone for BearerAuth<S, C, R> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            layer: self.layer.clone(),
        }
    }
}

impl<S: std::fmt::Debug, C, R: std::fmt::Debug> std::fmt::Debug for BearerAuth<S, C, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BearerAuth")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S, C, R, ReqBody, ResBody> Service<Request<ReqBody>> for BearerAuth<S, C, R>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    C: DeserializeOwned + Clone + Send + Sync + 'static,
    R: OnRejection<ResBody> + Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let realm = self.layer.realm.clone();
        let rejection = self.layer.rejection.clone();
        let reject = move |error: AuthError| {
            log(&error);
            rejection.on_rejection(&error)
        };
        let token = match bearer_token(req.headers(), req.uri().query()) {
            Ok(Some(token)) => token.to_owned(),
            Ok(None) if self.layer.allow_anonymous => {
                crate::metrics::outcome("anonymous", "");
                req.extensions_mut().insert(Anonymous::new(realm));
                return ResponseFuture::new(self.inner.call(req));
            }
            Ok(None) => {
                let res = reject(AuthError::new(AuthErrorKind::MissingToken, realm));
                return ResponseFuture::new(async move { Ok(res) });
            }
            Err(description) => {
                let error = AuthError::new(AuthErrorKind::InvalidRequest, realm)
                    .with_description(description);
                let res = reject(error);
                return ResponseFuture::new(async move { Ok(res) });
            }
        };
        let verifier = self.layer.verifier.clone();
        // Keep the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let in_flight = crate::metrics::InFlight::new("bearer");
        let span = tracing::debug_span!("oidc.bearer", realm = %realm);
        ResponseFuture::new(tracing::Instrument::instrument(
            async move {
                let _in_flight = in_flight;
                match verifier.verify::<C>(&token).await {
                    Ok(claims) => {
                        crate::metrics::outcome("authenticated", "bearer");
                        drop(token);
                        req.extensions_mut().insert(claims.identity().clone());
                        req.extensions_mut().insert(claims);
                        inner.call(req).await
                    }
                    Err(error) => Ok(reject(AuthError::from_verify(error, realm))),
                }
            },
            span,
        ))
    }
}
