use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{HeaderMap, Request, Response};
use oidc_core::AdditionalClaims;
use serde::de::DeserializeOwned;
use tower_service::Service;

use super::{BearerAuthLayer, PresentedToken, bearer_token};
use crate::error::{Anonymous, AuthError, AuthErrorKind, Challenge, Realm};
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
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let token = match self.layer.check::<C>(req.headers(), req.uri().query()) {
            Ok(Checked::Verified(claims, token)) => {
                let in_flight = crate::metrics::InFlight::new("bearer");
                let presented = self.layer.keep_token.then(|| PresentedToken::new(token));
                authenticated(req.extensions_mut(), claims, &self.layer.realm, presented);
                return ResponseFuture::inner_in_flight(self.inner.call(req), in_flight);
            }
            Ok(Checked::Pending(token)) => token,
            Ok(Checked::NoCredentials) if self.layer.allow_anonymous => {
                crate::metrics::outcome("anonymous", "");
                let realm = self.layer.realm.clone();
                req.extensions_mut().insert(Anonymous::new(realm));
                return ResponseFuture::inner(self.inner.call(req));
            }
            Ok(Checked::NoCredentials) => return self.reject(missing_token(&self.layer.realm)),
            Err(error) => return self.reject(error),
        };
        let token = token.to_owned();
        let keep_token = self.layer.keep_token;
        let realm = self.realm();
        let rejection = self.layer.rejection.clone();
        let verifier = self.layer.verifier.clone();
        // Keep the service that was driven to readiness; leave a fresh clone in its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let in_flight = crate::metrics::InFlight::new("bearer");
        let span = tracing::debug_span!("oidc.bearer", realm = %realm.realm());
        ResponseFuture::boxed(tracing::Instrument::instrument(
            async move {
                let _in_flight = in_flight;
                match verify::<C>(&verifier, &token, &realm).await {
                    Ok(claims) => {
                        let presented = keep_token.then(|| PresentedToken::new(&token));
                        drop(token);
                        authenticated(req.extensions_mut(), claims, &realm, presented);
                        inner.call(req).await
                    }
                    Err(error) => {
                        log(&error);
                        Ok(rejection.on_rejection(&error))
                    }
                }
            },
            span,
        ))
    }
}

impl<S, C, R> BearerAuth<S, C, R> {
    fn realm(&self) -> Challenge {
        self.layer.realm.clone()
    }

    /// The rejection's response for `error`, logged, at once.
    fn reject<F, T, E>(&self, error: AuthError) -> ResponseFuture<F>
    where
        F: Future<Output = Result<Response<T>, E>>,
        R: OnRejection<T>,
    {
        log(&error);
        ResponseFuture::ready(Ok(self.layer.rejection.on_rejection(&error)))
    }
}

/// What a request's credentials come to without waiting.
pub(crate) enum Checked<'a, C> {
    /// The request has no bearer credentials.
    NoCredentials,
    /// A token the cache answered (its claims, and the token as presented): no copy of it,
    /// no span, no waiting.
    Verified(oidc_core::Claims<C>, &'a str),
    /// A token that must be verified ([`verify`]).
    Pending(&'a str),
}

impl<C, R> BearerAuthLayer<C, R> {
    /// The first, synchronous step of the bearer path: the credentials (RFC 6750 §2.1, §3.1:
    /// malformed ones are the 400 `invalid_request` error of the layer's realm) and the cache.
    // The error is the rejection itself, built once on the (rare) refused path.
    #[allow(clippy::result_large_err)]
    pub(crate) fn check<'a, T>(
        &self,
        headers: &'a HeaderMap,
        query: Option<&str>,
    ) -> Result<Checked<'a, T>, AuthError>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let Some(token) = credentials(headers, query, &self.realm)? else {
            return Ok(Checked::NoCredentials);
        };
        match self.verifier.verify_cached::<T>(token) {
            Some(Ok(claims)) => Ok(Checked::Verified(claims, token)),
            Some(Err(error)) => Err(AuthError::from_verify(error, self.realm.clone())),
            None => Ok(Checked::Pending(token)),
        }
    }
}

/// The second step of the bearer path, for a token the cache did not answer.
async fn verify<C>(
    verifier: &oidc_core::AccessTokenVerifier,
    token: &str,
    realm: &Challenge,
) -> Result<oidc_core::Claims<C>, AuthError>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    verifier
        .verify::<C>(token)
        .await
        .map_err(|error| AuthError::from_verify(error, realm.clone()))
}

/// The 401 of a request without credentials.
fn missing_token(realm: &Challenge) -> AuthError {
    AuthError::new(AuthErrorKind::MissingToken, realm.clone())
}

/// The bearer credentials of a request: `Ok(None)` when it has none, the 400
/// `invalid_request` error of `realm` when they are malformed (RFC 6750 §2.1, §3.1).
#[allow(clippy::result_large_err)]
fn credentials<'a>(
    headers: &'a HeaderMap,
    query: Option<&str>,
    realm: &Challenge,
) -> Result<Option<&'a str>, AuthError> {
    bearer_token(headers, query).map_err(|description| {
        AuthError::new(AuthErrorKind::InvalidRequest, realm.clone()).with_description(description)
    })
}

/// Puts what handlers and the layers further in need into the request: the identity, the
/// claims, the [`Realm`] of this layer and, when the layer keeps it, the token.
pub(crate) fn authenticated<C: Send + Sync + 'static>(
    extensions: &mut http::Extensions,
    claims: oidc_core::Claims<C>,
    realm: &Challenge,
    presented: Option<PresentedToken>,
) {
    crate::metrics::outcome("authenticated", "bearer");
    extensions.insert(claims.identity().clone());
    extensions.insert(claims);
    extensions.insert(Realm::new(realm.clone()));
    if let Some(token) = presented {
        extensions.insert(token);
    }
}

/// The bearer path of a [`BearerAuthLayer`] with its claim type erased, for the login layer's
/// [`accept_bearer`](crate::login::LoginLayer::accept_bearer): the same credentials parsing,
/// cache, verification and extensions as [`BearerAuth`], answered with the
/// [`DefaultRejection`].
pub(crate) trait BearerPath: Send + Sync {
    /// The realm (and metadata URL) of the layer's challenges.
    fn realm(&self) -> &Challenge;

    /// Whether a request without credentials may pass without an identity.
    fn allows_anonymous(&self) -> bool;

    /// Verifies the request's credentials (it has an `Authorization` header) and, when they
    /// are good, puts the identity, the claims and the realm in `parts.extensions`.
    fn authenticate<'a>(
        &'a self,
        parts: &'a mut http::request::Parts,
    ) -> Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + 'a>>;
}

impl<C> BearerPath for BearerAuthLayer<C, DefaultRejection>
where
    C: DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn realm(&self) -> &Challenge {
        &self.realm
    }

    fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    fn authenticate<'a>(
        &'a self,
        parts: &'a mut http::request::Parts,
    ) -> Pin<Box<dyn Future<Output = Result<(), AuthError>> + Send + 'a>> {
        Box::pin(async move {
            let (claims, token) = match self.check::<C>(&parts.headers, parts.uri.query())? {
                Checked::Verified(claims, token) => (claims, token),
                Checked::Pending(token) => (
                    verify::<C>(&self.verifier, token, &self.realm).await?,
                    token,
                ),
                Checked::NoCredentials => return Err(missing_token(&self.realm)),
            };
            let presented = self.keep_token.then(|| PresentedToken::new(token));
            authenticated(&mut parts.extensions, claims, &self.realm, presented);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::convert::Infallible;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
    use std::time::{Duration, UNIX_EPOCH};

    use http::{StatusCode, header};
    use oidc_core::{AccessTokenVerifier, Identity, Provider};
    use oidc_testing::TestProvider;
    use tower::{Layer as _, ServiceExt as _, service_fn};

    use super::*;

    /// A token answered from the cache (the layer's synchronous path) is still refused once it
    /// has expired by the verifier's clock, and the inner service is not called; while valid,
    /// it gets the identity, the claims and the layer's realm, as on a full verification.
    #[tokio::test]
    async fn cached_token_is_refused_once_expired_and_gets_the_same_extensions() {
        let tp = TestProvider::start().await;
        let now = Arc::new(AtomicI64::new(
            i64::try_from(UNIX_EPOCH.elapsed().unwrap().as_secs()).unwrap(),
        ));
        let read = Arc::clone(&now);
        let verifier = AccessTokenVerifier::new(
            Provider::builder(tp.issuer()).build().unwrap(),
            "api://default",
        )
        .with_clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(u64::try_from(read.load(Ordering::SeqCst)).unwrap())
        }));
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let svc = BearerAuthLayer::new(verifier.clone())
            .with_realm("orders")
            .layer(service_fn(move |req: Request<String>| {
                seen.fetch_add(1, Ordering::SeqCst);
                let ext = req.extensions();
                let body = format!(
                    "{} {} {}",
                    ext.get::<Identity>().unwrap().subject(),
                    ext.get::<oidc_core::Claims>().unwrap().subject(),
                    ext.get::<Realm>().unwrap().as_str(),
                );
                async move { Ok::<_, Infallible>(Response::new(body)) }
            }));
        let token = tp
            .token()
            .claim("exp", now.load(Ordering::SeqCst) + 100)
            .sign();
        let req = || {
            Request::builder()
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(String::new())
                .unwrap()
        };
        for _ in 0..2 {
            let res = svc.clone().oneshot(req()).await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
            assert_eq!(res.body(), "user-1 user-1 orders");
        }
        assert!(verifier.verify_cached::<AdditionalClaims>(&token).is_some());
        // Past exp + leeway (60 s).
        now.fetch_add(161, Ordering::SeqCst);
        let res = svc.clone().oneshot(req()).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
        let challenge = res.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with(r#"Bearer realm="orders", error="invalid_token""#),
            "{challenge}"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
