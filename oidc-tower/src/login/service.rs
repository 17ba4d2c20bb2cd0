//! The service of the login layer: routes each request to the login start, the callback,
//! logout or back-channel logout, and lets the others through with their login.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Method, Request, Response, StatusCode, header};
use oidc_core::flow::AuthorizeOptions;
use tower_layer::Layer;
use tower_service::Service;
use tower_sessions::SessionManagerLayer;

use super::callback::callback;
use super::layer::{LoginConfig, LoginLayer};
use super::logout::logout;
use super::pages::{
    method_not_allowed, missing_session_layer, see_other, session_error_page, status,
};
use super::policy::Unauthenticated;
use super::session::{LoginSession, session_of};
use super::start::{login_link, options_from_query, provider_choice, start_login};
use super::store::LoginStore;
use crate::error::{Anonymous, AuthError, AuthErrorKind, Realm};
use crate::future::{BoxResponseFuture, ResponseFuture};
use crate::response::{DefaultRejection, OnRejection, log};

/// The service of [`LoginLayer`]. See the [module docs](crate::login).
///
/// It holds the session handling itself (tower-sessions' session manager on the layer's
/// store, with the layer's cookie settings) around the login logic: the one layer is all an
/// app adds.
pub struct Login<S> {
    inner: Managed<S>,
}

/// The session manager of tower-sessions around the login logic.
type Managed<S> = <SessionManagerLayer<LoginStore> as Layer<Authenticate<S>>>::Service;

impl<S: Clone> Clone for Login<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S> std::fmt::Debug for Login<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login").finish_non_exhaustive()
    }
}

impl<S> Login<S> {
    /// Wraps `inner` with the settings of `layer` (the same as `layer.layer(inner)`).
    pub fn new(inner: S, layer: LoginLayer) -> Self {
        let sessions = layer.session_manager();
        Self {
            inner: sessions.layer(Authenticate { inner, layer }),
        }
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Login<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default + From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<BoxResponseFuture<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        ResponseFuture::boxed(self.inner.call(req))
    }
}

/// The login logic, inside the session manager (which puts the [`Session`] in the request's
/// extensions).
#[derive(Clone)]
pub(crate) struct Authenticate<S> {
    inner: S,
    layer: LoginLayer,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Authenticate<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default + From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<BoxResponseFuture<Response<ResBody>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = self.layer.config.clone();
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        let in_flight = crate::metrics::InFlight::new("login");
        // The path only: a query could carry a code or state.
        let span =
            tracing::debug_span!("oidc.login", method = %req.method(), path = req.uri().path());
        ResponseFuture::boxed(tracing::Instrument::instrument(
            async move {
                let _in_flight = in_flight;
                handle(config, inner, req).await
            },
            span,
        ))
    }
}

/// The login logic of one request.
///
/// The rare routes (login start, callback, logout, back-channel logout) and a session that
/// must be loaded are awaited through boxes of their own: the future of this function, moved
/// on every request, stays the size of the common path (a cached session or a bearer token)
/// rather than that of a code exchange.
async fn handle<S, ReqBody, ResBody>(
    config: Arc<LoginConfig>,
    mut inner: S,
    req: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ReqBody: http_body::Body,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default + From<String>,
{
    let path = req.uri().path();
    if config.providers.iter().any(|p| p.callback_path == path) {
        let (parts, _) = req.into_parts();
        return Ok(Box::pin(callback(&config, &parts)).await);
    }
    let provider_segment = path
        .strip_prefix(config.login_path.as_str())
        .and_then(|rest| rest.strip_prefix('/'));
    if path == config.login_path || provider_segment.is_some() {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(method_not_allowed("GET, HEAD"));
        }
        let query = req.uri().query().unwrap_or_default();
        let provider = match provider_segment {
            Some(name) => match config.provider(name) {
                Some(provider) => provider,
                None => return Ok(status(StatusCode::NOT_FOUND)),
            },
            None if config.providers.len() == 1 => config.first(),
            None => return Ok(provider_choice(&config, query)),
        };
        let options = options_from_query(query);
        let (parts, _) = req.into_parts();
        let Some(session) = session_of(&parts) else {
            return Ok(missing_session_layer());
        };
        return Ok(Box::pin(start_login(&config, provider, &session, options)).await);
    }
    if path == config.backchannel_logout_path {
        return Ok(Box::pin(super::backchannel::backchannel_logout(&config, req)).await);
    }
    if path == config.logout_path {
        if req.method() != Method::POST {
            return Ok(method_not_allowed("POST"));
        }
        let (parts, _) = req.into_parts();
        return Ok(Box::pin(logout(&config, &parts)).await);
    }

    let (mut parts, body) = req.into_parts();
    if let Some(bearer) = &config.bearer
        && parts.headers.contains_key(header::AUTHORIZATION)
    {
        // Judged by the credentials alone, as `BearerAuthLayer` judges them.
        return match bearer.authenticate(&mut parts).await {
            Ok(()) => inner.call(Request::from_parts(parts, body)).await,
            Err(error) => Ok(reject(&error)),
        };
    }

    let Some(session) = session_of(&parts) else {
        return Ok(missing_session_layer());
    };
    let login = match config
        .sessions
        .current(&config.providers, &session, config.now())
        .await
    {
        Ok(login) => login,
        Err(e) => {
            crate::metrics::outcome("rejected", "store_unavailable");
            return Ok(session_error_page(&e, &login_link(&config)));
        }
    };
    if let Some(login) = login {
        crate::metrics::outcome("authenticated", "session");
        let extensions = &mut parts.extensions;
        extensions.insert(login.claims.clone());
        extensions.insert(login.identity.clone());
        extensions.insert(Realm::new(Arc::clone(&config.login_realm)));
        extensions.insert(LoginSession {
            state: login.state.clone(),
        });
        return inner.call(Request::from_parts(parts, body)).await;
    }
    let redirect = config.require_login && (config.policy)(&parts) == Unauthenticated::Redirect;
    let anonymous =
        !config.require_login || config.bearer.as_ref().is_some_and(|b| b.allows_anonymous());
    if !redirect && anonymous {
        crate::metrics::outcome("anonymous", "");
        let realm = config.bearer.as_ref().map_or_else(
            || crate::error::Challenge::from(Arc::clone(&config.login_realm)),
            |b| b.realm().clone(),
        );
        parts
            .extensions
            .insert(Anonymous::with_login(realm, Arc::from(login_link(&config))));
        return inner.call(Request::from_parts(parts, body)).await;
    }
    drop(body);
    if !redirect {
        return Ok(match &config.bearer {
            // An API that takes bearer tokens: the RFC 6750 challenge of its realm.
            Some(bearer) => reject(&AuthError::new(
                AuthErrorKind::MissingToken,
                bearer.realm().clone(),
            )),
            None => {
                crate::metrics::outcome("rejected", "unauthenticated");
                status(StatusCode::UNAUTHORIZED)
            }
        });
    }
    crate::metrics::outcome("redirected", "login");
    let return_to = format!(
        "{}{}",
        config.base_path,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
    );
    if config.providers.len() > 1 {
        // Let the user choose: the login page, with the way back.
        let encoded: String = url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
        return Ok(see_other(&format!(
            "{}?return_to={encoded}",
            login_link(&config)
        )));
    }
    let options = AuthorizeOptions::new().with_return_to(return_to);
    Ok(Box::pin(start_login(&config, config.first(), &session, options)).await)
}

/// The bearer path's answer for `error`, logged.
fn reject<B: Default>(error: &AuthError) -> Response<B> {
    log(error);
    DefaultRejection.on_rejection(error)
}
