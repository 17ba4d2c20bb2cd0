use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use oidc_core::error::{FlowError, FlowErrorKind};
use oidc_core::flow::{AuthorizationResponse, AuthorizeOptions, Transaction};
use oidc_core::{AdditionalClaims, Claims};
use serde_json::Value;
use tower_service::Service;
use tower_sessions::Session;

use super::hook::LoginInfo;
use super::layer::{LoginConfig, LoginLayer, UserInfoPolicy};
use super::pages::{error_page, see_other, status};
use super::policy::Unauthenticated;
use super::session::{LOGIN_KEY, LoginSession, LoginState, TX_KEY, prune};
use crate::bearer::bearer_token;
use crate::error::{Anonymous, AuthError, AuthErrorKind};
use crate::future::ResponseFuture;
use crate::response::{DefaultRejection, OnRejection, log};

/// The service of [`LoginLayer`]. See the [module docs](crate::login).
#[derive(Clone)]
pub struct Login<S> {
    inner: S,
    layer: LoginLayer,
}

impl<S: std::fmt::Debug> std::fmt::Debug for Login<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("inner", &self.inner)
            .field("layer", &self.layer)
            .finish()
    }
}

impl<S> Login<S> {
    /// Wraps `inner` with the settings of `layer`.
    pub fn new(inner: S, layer: LoginLayer) -> Self {
        Self { inner, layer }
    }

    define_inner_service_accessors!();
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for Login<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Default + From<String> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = ResponseFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let config = self.layer.config.clone();
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::new(handle(config, inner, req))
    }
}

const LOGIN_REALM: &str = "login";

async fn handle<S, ReqBody, ResBody>(
    config: Arc<LoginConfig>,
    mut inner: S,
    mut req: Request<ReqBody>,
) -> Result<Response<ResBody>, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: Default + From<String>,
{
    let path = req.uri().path().to_owned();
    if path == config.callback_path {
        let (parts, _) = req.into_parts();
        return Ok(callback(&config, &parts).await);
    }
    if path == config.login_path {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(method_not_allowed("GET, HEAD"));
        }
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            return Ok(missing_session_layer());
        };
        let query = req.uri().query().unwrap_or_default().to_owned();
        drop(req);
        let query = query.as_str();
        return Ok(start_login(&config, &session, options_from_query(query)).await);
    }
    if path == config.logout_path {
        if req.method() != Method::POST {
            return Ok(method_not_allowed("POST"));
        }
        let (parts, _) = req.into_parts();
        return Ok(logout(&config, &parts).await);
    }

    if let Some(verifier) = &config.bearer
        && req.headers().contains_key(header::AUTHORIZATION)
    {
        let realm: Arc<str> = Arc::from("api");
        let reject = |error: AuthError| {
            log(&error);
            Ok(DefaultRejection.on_rejection(&error))
        };
        let token = match bearer_token(req.headers(), req.uri().query()) {
            Ok(Some(token)) => token.to_owned(),
            Ok(None) => return reject(AuthError::new(AuthErrorKind::MissingToken, realm)),
            Err(description) => {
                return reject(
                    AuthError::new(AuthErrorKind::InvalidRequest, realm)
                        .with_description(description),
                );
            }
        };
        return match verifier.verify::<AdditionalClaims>(&token).await {
            Ok(claims) => {
                req.extensions_mut().insert(claims.identity().clone());
                req.extensions_mut().insert(claims);
                inner.call(req).await
            }
            Err(error) => reject(AuthError::from_verify(error, realm)),
        };
    }

    let Some(session) = req.extensions().get::<Session>().cloned() else {
        return Ok(missing_session_layer());
    };
    match load_login(&config, &session).await {
        Ok(Some(state)) => {
            let identity = state.identity();
            req.extensions_mut()
                .insert(Claims::new(identity.clone(), state.claims.clone()));
            req.extensions_mut().insert(identity);
            req.extensions_mut().insert(LoginSession { state });
            inner.call(req).await
        }
        Ok(None) if !config.require_login => {
            req.extensions_mut().insert(Anonymous::with_login(
                Arc::from(LOGIN_REALM),
                Arc::from(format!("{}{}", config.base_path, config.login_path)),
            ));
            inner.call(req).await
        }
        Ok(None) => {
            let (parts, body) = req.into_parts();
            let decision = (config.policy)(&parts);
            drop(body);
            match decision {
                Unauthenticated::Redirect => {
                    let return_to = format!(
                        "{}{}",
                        config.base_path,
                        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
                    );
                    let options = AuthorizeOptions::new().with_return_to(return_to);
                    Ok(start_login(&config, &session, options).await)
                }
                _ => Ok(status(StatusCode::UNAUTHORIZED)),
            }
        }
        Err(()) => Ok(error_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "The session store is unavailable. Please try again shortly.",
            None,
        )),
    }
}

fn session_of(parts: &Parts) -> Option<Session> {
    parts.extensions.get::<Session>().cloned()
}

fn missing_session_layer<B: From<String>>() -> Response<B> {
    tracing::error!(
        target: "oidc::rejection",
        "no session: add the layer of LoginLayer::session_layer (a tower-sessions SessionManagerLayer) around the LoginLayer"
    );
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "The server is misconfigured.",
        None,
    )
}

fn method_not_allowed<B: Default>(allow: &'static str) -> Response<B> {
    let mut res = status(StatusCode::METHOD_NOT_ALLOWED);
    res.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    res
}

/// `return_to`, `login_hint` and `prompt` of `/auth/login`.
fn options_from_query(query: &str) -> AuthorizeOptions {
    let mut options = AuthorizeOptions::new().with_return_to("/");
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "return_to" => options = options.with_return_to(&*value),
            "login_hint" if value.len() <= 256 => {
                options = options.with_login_hint(value.into_owned())
            }
            "prompt" if matches!(&*value, "login" | "consent" | "select_account" | "none") => {
                options = options.with_prompt(value.into_owned());
            }
            _ => {}
        }
    }
    options
}

/// Stores a new transaction and redirects to the provider.
async fn start_login<B: Default + From<String>>(
    config: &LoginConfig,
    session: &Session,
    options: AuthorizeOptions,
) -> Response<B> {
    let (url, tx) = match config.client.authorize(&options).await {
        Ok(started) => started,
        Err(e) => return flow_error_page(config, &e),
    };
    let now = config.client.now();
    let mut txs: Vec<Transaction> = match session.get(TX_KEY).await {
        Ok(txs) => txs.unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    };
    txs.push(tx);
    prune(
        &mut txs,
        now,
        config.transaction_lifetime,
        config.max_transactions,
    );
    if let Err(e) = session.insert(TX_KEY, &txs).await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    see_other(&url)
}

fn store_unavailable<B: From<String>>() -> Response<B> {
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The session store is unavailable. Please try again shortly.",
        None,
    )
}

fn login_link(config: &LoginConfig) -> String {
    format!("{}{}", config.base_path, config.login_path)
}

fn flow_error_page<B: From<String>>(config: &LoginConfig, error: &FlowError) -> Response<B> {
    let again = login_link(config);
    match error.kind() {
        FlowErrorKind::Unbound => {
            tracing::info!(target: "oidc::rejection", %error, "callback not bound to this browser");
            error_page(
                StatusCode::BAD_REQUEST,
                "This sign-in response does not belong to a sign-in started in this browser.",
                Some(&again),
            )
        }
        FlowErrorKind::Rejected => {
            tracing::info!(target: "oidc::rejection", %error, "authentication failed");
            error_page(StatusCode::UNAUTHORIZED, "Sign-in failed.", Some(&again))
        }
        FlowErrorKind::Timeout => {
            tracing::error!(target: "oidc::rejection", %error, "identity provider timed out");
            error_page(
                StatusCode::GATEWAY_TIMEOUT,
                "The identity provider did not answer in time.",
                Some(&again),
            )
        }
        _ => {
            tracing::error!(target: "oidc::rejection", %error, "identity provider failed");
            error_page(
                StatusCode::BAD_GATEWAY,
                "The identity provider could not be reached or answered incorrectly.",
                Some(&again),
            )
        }
    }
}

/// The redirect back from the provider.
async fn callback<B: Default + From<String>>(config: &LoginConfig, req: &Parts) -> Response<B> {
    if req.method != Method::GET {
        return method_not_allowed("GET");
    }
    let again = login_link(config);
    let Some(session) = session_of(req) else {
        return missing_session_layer();
    };
    let unbound = |message: &str| {
        tracing::info!(target: "oidc::rejection", message, "callback refused");
        error_page(StatusCode::BAD_REQUEST, message, Some(&again))
    };
    let response = match AuthorizationResponse::from_query(req.uri.query().unwrap_or_default()) {
        Ok(r) => r,
        Err(_) => return unbound("This sign-in response is malformed."),
    };
    let mut txs: Vec<Transaction> = match session.get(TX_KEY).await {
        Ok(txs) => txs.unwrap_or_default(),
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    };
    let position = response
        .state()
        .and_then(|state| txs.iter().position(|tx| tx.matches_state(state)));
    let Some(position) = position else {
        return unbound(
            "This sign-in response does not belong to a sign-in started in this browser.",
        );
    };
    // Single use: consumed whatever the outcome.
    let tx = txs.remove(position);
    let now = config.client.now();
    prune(
        &mut txs,
        now,
        config.transaction_lifetime,
        config.max_transactions,
    );
    let saved = if txs.is_empty() {
        session.remove_value(TX_KEY).await.map(|_| ())
    } else {
        session.insert(TX_KEY, &txs).await
    };
    // Persist the consumption now: tower-sessions does not save a session whose response is a
    // server error, so a 502/504 below would leave the transaction replayable.
    let saved = match saved {
        Ok(()) => session.save().await,
        Err(e) => Err(e),
    };
    if let Err(e) = saved {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    if tx.created_at().saturating_add(config.transaction_lifetime) <= now {
        return unbound("This sign-in took too long. Please start again.");
    }

    let tokens = match config.client.complete(&tx, response).await {
        Ok(tokens) => tokens,
        Err(e) => return flow_error_page(config, &e),
    };
    let mut claims = tokens.id_claims().clone();
    let wants_userinfo = match &config.userinfo {
        UserInfoPolicy::Always => true,
        UserInfoPolicy::Never => false,
        UserInfoPolicy::WhenMissing(names) => names.iter().any(|n| !claims.contains_key(n)),
    };
    if wants_userinfo {
        let has_endpoint = config
            .client
            .provider()
            .metadata()
            .await
            .is_ok_and(|m| m.userinfo_endpoint().is_some());
        if has_endpoint {
            match config
                .client
                .userinfo(tokens.access_token(), tokens.subject())
                .await
            {
                Ok(info) => {
                    for (name, value) in info {
                        claims.entry(name).or_insert(value);
                    }
                }
                Err(e) => return flow_error_page(config, &e),
            }
        }
    }

    let issuer = config.client.provider().issuer().to_owned();
    let local_user = match &config.hook {
        Some(hook) => {
            let info = LoginInfo {
                issuer: issuer.clone(),
                claims: claims.clone(),
            };
            match hook.on_login(info).await {
                Ok(local) => local,
                Err(refused) => {
                    tracing::info!(target: "oidc::rejection", %refused, "login hook refused the user");
                    return error_page(StatusCode::FORBIDDEN, refused.message(), None);
                }
            }
        }
        None => None,
    };
    let state = LoginState {
        issuer,
        tokens,
        claims,
        local_user,
        authenticated_at: now,
        last_seen: now,
        last_revalidated: now,
    };
    // A new session id at login (SES-01): a planted id is never authenticated.
    if let Err(e) = session.cycle_id().await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    if let Err(e) = session.insert(LOGIN_KEY, &state).await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    tracing::info!(sub = state.tokens.subject(), "login");
    see_other(tx.return_to())
}

/// Loads the logged-in state, enforcing timeouts, refreshing and revalidating.
///
/// `Ok(None)`: not logged in (or the session just ended). `Err(())`: the store failed.
async fn load_login(
    config: &LoginConfig,
    session: &Session,
) -> Result<Option<Arc<LoginState>>, ()> {
    let stored: Option<LoginState> = session.get(LOGIN_KEY).await.map_err(|e| {
        tracing::error!(error = %e, "session store failed");
    })?;
    let Some(mut state) = stored else {
        return Ok(None);
    };
    let now = config.client.now();
    let end = |reason: &'static str| async move {
        tracing::info!(reason, "session ended");
        session.flush().await.map_err(|e| {
            tracing::error!(error = %e, "session store failed");
        })?;
        Ok::<_, ()>(None)
    };
    if state.issuer != config.client.provider().issuer() {
        return end("issued by another provider").await;
    }
    if now.saturating_sub(state.authenticated_at) >= config.absolute_timeout {
        return end("absolute timeout").await;
    }
    if now.saturating_sub(state.last_seen) >= config.idle_timeout {
        return end("idle timeout").await;
    }
    let mut changed = false;
    let mut renewed = false;
    let refresh_due = state.tokens.refresh_token().is_some()
        && state
            .tokens
            .expires_at()
            .is_some_and(|exp| exp.saturating_sub(config.refresh_margin) <= now);
    let revalidation_due = now.saturating_sub(state.last_revalidated) >= config.revalidate_every;
    if refresh_due || revalidation_due {
        match renew(config, session, &state).await {
            Ok(fresh) => {
                state = (*fresh).clone();
                changed = true;
                renewed = true;
            }
            Err(e) if e.kind() == FlowErrorKind::Rejected => {
                return end("the provider no longer accepts the grant").await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "session revalidation failed; keeping the session");
                state.last_revalidated = now;
                changed = true;
            }
        }
    }
    if now.saturating_sub(state.last_seen) >= 60 {
        state.last_seen = now;
        changed = true;
    }
    if changed {
        session.insert(LOGIN_KEY, &state).await.map_err(|e| {
            tracing::error!(error = %e, "session store failed");
        })?;
        if renewed {
            // Store a rotated refresh token at once: tower-sessions does not save a session
            // whose response is a server error, and the used token would be replayed later.
            session.save().await.map_err(|e| {
                tracing::error!(error = %e, "session store failed");
            })?;
        }
    }
    Ok(Some(Arc::new(state)))
}

/// Refreshes the tokens (or checks UserInfo without a refresh token), once per session and
/// grant even under concurrent requests.
async fn renew(
    config: &LoginConfig,
    session: &Session,
    state: &LoginState,
) -> Result<Arc<LoginState>, FlowError> {
    // Keyed by the session and the access token being replaced: requests that saw the same
    // tokens share one refresh; the next refresh (a new access token) gets a new key even when
    // the provider does not rotate refresh tokens.
    let key = format!(
        "{}:{}",
        session.id().map(|id| id.to_string()).unwrap_or_default(),
        state.tokens.access_token().secret()
    );
    config
        .refreshes
        .try_get_with(key, async {
            let client = &config.client;
            let mut renewed = state.clone();
            if state.tokens.refresh_token().is_some() {
                renewed.tokens = client.refresh(&state.tokens).await?;
                for (name, value) in renewed.tokens.id_claims() {
                    if !matches!(value, Value::Null) {
                        renewed.claims.insert(name.clone(), value.clone());
                    }
                }
            } else {
                client
                    .userinfo(state.tokens.access_token(), state.tokens.subject())
                    .await?;
            }
            renewed.last_revalidated = client.now();
            tracing::debug!(sub = renewed.tokens.subject(), "session renewed");
            Ok(Arc::new(renewed))
        })
        .await
        .map_err(|e: Arc<FlowError>| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
}

/// `POST /auth/logout`: same-origin only (LO-02).
async fn logout<B: Default + From<String>>(config: &LoginConfig, req: &Parts) -> Response<B> {
    let headers = &req.headers;
    let same_origin = match headers.get(header::ORIGIN).map(HeaderValue::to_str) {
        Some(Ok(origin)) => origin == config.origin,
        Some(Err(_)) => false,
        None => headers
            .get("sec-fetch-site")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == "same-origin"),
    };
    if !same_origin {
        tracing::info!(target: "oidc::rejection", "cross-site logout refused");
        return error_page(StatusCode::FORBIDDEN, "Cross-site logout refused.", None);
    }
    let Some(session) = session_of(req) else {
        return missing_session_layer();
    };
    let state: Option<LoginState> = session.get(LOGIN_KEY).await.ok().flatten();
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    let Some(state) = state else {
        return see_other(&config.post_logout_redirect_uri);
    };
    tracing::info!(sub = state.tokens.subject(), "logout");
    match config
        .client
        .end_session_url(
            Some(state.tokens.id_token()),
            Some(&config.post_logout_redirect_uri),
        )
        .await
    {
        Ok(Some(url)) => see_other(&url),
        Ok(None) => see_other(&config.post_logout_redirect_uri),
        Err(e) => {
            tracing::warn!(error = %e, "no end-session url; logged out locally");
            see_other(&config.post_logout_redirect_uri)
        }
    }
}
