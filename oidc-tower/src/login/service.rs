use std::sync::Arc;
use std::task::{Context, Poll};

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use oidc_core::AdditionalClaims;
use oidc_core::error::{FlowError, FlowErrorKind};
use oidc_core::flow::{AuthorizationResponse, AuthorizeOptions, Transaction};
use serde_json::Value;
use tower_service::Service;
use tower_sessions::cookie::time;
use tower_sessions::{Expiry, Session};

use super::hook::LoginInfo;
use super::layer::{LoginConfig, LoginLayer, UserInfoPolicy};
use super::pages::{error_page, login_page, see_other, status};
use super::policy::Unauthenticated;
use super::providers::{LoginProvider, ProviderLink};
use super::session::{
    LOGIN_KEY, LoggedIn, LoginSession, LoginState, TX_KEY, ended_key, prune, refresh_lock_key,
    sid_ended_key, sid_set, sub_set,
};
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
    ReqBody: http_body::Body + Send + 'static,
    ReqBody::Data: Send,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
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
        let in_flight = crate::metrics::InFlight::new("login");
        // The path only: a query could carry a code or state.
        let span =
            tracing::debug_span!("oidc.login", method = %req.method(), path = req.uri().path());
        ResponseFuture::new(tracing::Instrument::instrument(
            async move {
                let _in_flight = in_flight;
                handle(config, inner, req).await
            },
            span,
        ))
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
    ReqBody: http_body::Body,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    ResBody: Default + From<String>,
{
    let path = req.uri().path().to_owned();
    if config.providers.iter().any(|p| p.callback_path == path) {
        let (parts, _) = req.into_parts();
        return Ok(callback(&config, &parts).await);
    }
    let provider_segment = path
        .strip_prefix(config.login_path.as_str())
        .and_then(|rest| rest.strip_prefix('/'));
    if path == config.login_path || provider_segment.is_some() {
        if req.method() != Method::GET && req.method() != Method::HEAD {
            return Ok(method_not_allowed("GET, HEAD"));
        }
        let query = req.uri().query().unwrap_or_default().to_owned();
        let provider = match provider_segment {
            Some(name) => match config.provider(name) {
                Some(provider) => provider,
                None => return Ok(status(StatusCode::NOT_FOUND)),
            },
            None if config.providers.len() == 1 => config.first(),
            None => return Ok(provider_choice(&config, &query)),
        };
        let Some(session) = req.extensions().get::<Session>().cloned() else {
            return Ok(missing_session_layer());
        };
        drop(req);
        let options = options_from_query(&query);
        return Ok(start_login(&config, provider, &session, options).await);
    }
    if path == config.backchannel_logout_path {
        return Ok(super::backchannel::backchannel_logout(&config, req).await);
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
                crate::metrics::outcome("authenticated", "bearer");
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
    match current_login(&config, &session).await {
        Ok(Some(login)) => {
            crate::metrics::outcome("authenticated", "session");
            req.extensions_mut().insert(login.claims.clone());
            req.extensions_mut().insert(login.identity.clone());
            req.extensions_mut().insert(LoginSession {
                state: login.state.clone(),
            });
            inner.call(req).await
        }
        Ok(None) if !config.require_login => {
            crate::metrics::outcome("anonymous", "");
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
                    crate::metrics::outcome("redirected", "login");
                    let return_to = format!(
                        "{}{}",
                        config.base_path,
                        parts.uri.path_and_query().map_or("/", |pq| pq.as_str())
                    );
                    if config.providers.len() > 1 {
                        // Let the user choose: the login page, with the way back.
                        let encoded: String =
                            url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
                        return Ok(see_other(&format!(
                            "{}?return_to={encoded}",
                            login_link(&config)
                        )));
                    }
                    let options = AuthorizeOptions::new().with_return_to(return_to);
                    Ok(start_login(&config, config.first(), &session, options).await)
                }
                _ => {
                    crate::metrics::outcome("rejected", "unauthenticated");
                    Ok(status(StatusCode::UNAUTHORIZED))
                }
            }
        }
        Err(()) => Ok({
            crate::metrics::outcome("rejected", "store_unavailable");
            error_page(
                StatusCode::SERVICE_UNAVAILABLE,
                "The session store is unavailable. Please try again shortly.",
                None,
            )
        }),
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

/// The page listing the providers, each link keeping `return_to` and `login_hint`.
fn provider_choice<B: From<String>>(config: &LoginConfig, query: &str) -> Response<B> {
    let kept: String = {
        let mut out = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if matches!(&*name, "return_to" | "login_hint" | "prompt") {
                out.append_pair(&name, &value);
            }
        }
        out.finish()
    };
    let links: Vec<ProviderLink> = config
        .providers
        .iter()
        .map(|p| {
            let mut href = format!("{}/{}", login_link(config), p.name);
            if !kept.is_empty() {
                href.push('?');
                href.push_str(&kept);
            }
            ProviderLink {
                name: p.name.clone(),
                display_name: p.display_name.clone(),
                href,
            }
        })
        .collect();
    let html = match &config.login_page {
        Some(page) => page(&links),
        None => login_page(&links),
    };
    let mut res = Response::new(B::from(html));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    super::pages::no_store(res.headers_mut());
    res
}

/// Seconds a session holding only pending logins outlives their lifetime.
const PENDING_LOGIN_GRACE: i64 = 60;

/// Stores a new transaction and redirects to the provider.
async fn start_login<B: Default + From<String>>(
    config: &LoginConfig,
    provider: &LoginProvider,
    session: &Session,
    options: AuthorizeOptions,
) -> Response<B> {
    let (url, tx) = match provider.client.authorize(&options).await {
        Ok(started) => started,
        Err(e) => return flow_error_page(config, &e),
    };
    let now = config.now();
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
    // A session that holds only pending logins lives as long as they do (and a minute more,
    // so that a late callback is told its login expired), not the idle timeout: login starts
    // without a cookie cost the store minutes each (DOS-03). The next request's session
    // layer brings back the idle timeout.
    match session.get_value(LOGIN_KEY).await {
        Ok(Some(_)) => {}
        Ok(None) => session.set_expiry(Some(Expiry::OnInactivity(time::Duration::seconds(
            config
                .transaction_lifetime
                .saturating_add(PENDING_LOGIN_GRACE),
        )))),
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    }
    // Written now: when the store is down, the browser gets the 503 page rather than a
    // redirect to a login whose transaction was never stored (tower-sessions would turn the
    // 303 into a bare 500 when its own save fails).
    if let Err(e) = session.save().await {
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

/// A login that failed after the token request: counted, then the error page.
fn login_failed<B: From<String>>(config: &LoginConfig, error: &FlowError) -> Response<B> {
    let outcome = if error.kind() == FlowErrorKind::Rejected {
        "refused"
    } else {
        "failed"
    };
    crate::metrics::event("oidc_logins_total", "outcome", outcome);
    flow_error_page(config, error)
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
    let now = config.now();
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
    // The provider the login was started at (RFC 9700 mix-up defence, CB-06): the code is
    // redeemed only there, and only when the response came back to that provider's callback.
    let Some(provider) = config.providers.iter().find(|p| {
        p.client.provider().issuer() == tx.issuer() && p.client.redirect_uri() == tx.redirect_uri()
    }) else {
        return unbound("This sign-in was started with a provider that is no longer configured.");
    };
    if provider.callback_path != req.uri.path() {
        return unbound("This sign-in response came back for another provider.");
    }
    let client = &provider.client;

    let tokens = match client.complete(&tx, response).await {
        Ok(tokens) => tokens,
        Err(e) => return login_failed(config, &e),
    };
    let mut claims = tokens.id_claims().clone();
    let wants_userinfo = match &config.userinfo {
        UserInfoPolicy::Always => true,
        UserInfoPolicy::Never => false,
        UserInfoPolicy::WhenMissing(names) => names.iter().any(|n| !claims.contains_key(n)),
    };
    if wants_userinfo {
        let has_endpoint = client
            .provider()
            .metadata()
            .await
            .is_ok_and(|m| m.userinfo_endpoint().is_some());
        if has_endpoint {
            match client
                .userinfo(tokens.access_token(), tokens.subject())
                .await
            {
                Ok(info) => {
                    for (name, value) in info {
                        claims.entry(name).or_insert(value);
                    }
                }
                Err(e) => return login_failed(config, &e),
            }
        }
    }

    let issuer = client.provider().issuer().to_owned();
    let local_user = match &config.hook {
        Some(hook) => {
            let info = LoginInfo {
                provider: provider.name.clone(),
                issuer: issuer.clone(),
                claims: claims.clone(),
            };
            match hook.on_login(info).await {
                Ok(local) => local,
                Err(refused) => {
                    crate::metrics::event("oidc_logins_total", "outcome", "refused");
                    tracing::info!(target: "oidc::rejection", %refused, "login hook refused the user");
                    return error_page(StatusCode::FORBIDDEN, refused.message(), None);
                }
            }
        }
        None => None,
    };
    let sid = tokens
        .id_claims()
        .get("sid")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let state = LoginState {
        provider: provider.name.clone(),
        issuer,
        tokens,
        claims,
        local_user,
        authenticated_at: now,
        last_seen: now,
        last_revalidated: now,
    };
    // A login already in this session (a second login in the same browser) ends with the old
    // id on every instance, even where it is still cached.
    let previous = match session.get::<LoginState>(LOGIN_KEY).await {
        Ok(previous) => previous.and(session.id()).map(|id| id.to_string()),
        Err(_) => session.id().map(|id| id.to_string()),
    };
    if let Some(old) = previous {
        config.logins.invalidate(&old);
        let ttl = std::time::Duration::from_secs(config.absolute_timeout.unsigned_abs());
        if let Err(e) = config.store.registry.insert(&ended_key(&old), ttl).await {
            tracing::error!(error = %e, "session registry failed");
            return store_unavailable();
        }
    }
    // A new session id at login (SES-01): a planted id is never authenticated.
    if let Err(e) = session.cycle_id().await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    if let Err(e) = session.insert(LOGIN_KEY, &state).await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    // Saved now for its id, which back-channel logout finds by `sid` and `sub`.
    let id = match session.save().await.map(|()| session.id()) {
        Ok(Some(id)) => id.to_string(),
        Ok(None) => {
            tracing::error!("the session store gave the session no id");
            return store_unavailable();
        }
        Err(e) => {
            tracing::error!(error = %e, "session store failed");
            return store_unavailable();
        }
    };
    let registry = &config.store.registry;
    let ttl = std::time::Duration::from_secs(config.absolute_timeout.unsigned_abs());
    let mut indexed = registry
        .add_member(&sub_set(&state.issuer, state.tokens.subject()), &id, ttl)
        .await;
    if let (Ok(()), Some(sid)) = (&indexed, &sid) {
        indexed = registry
            .add_member(&sid_set(&state.issuer, sid), &id, ttl)
            .await;
    }
    if let Err(e) = indexed {
        // Fail closed: a session that back-channel logout could not find must not exist.
        tracing::error!(error = %e, "session registry failed");
        let _ = session.flush().await;
        return store_unavailable();
    }
    // A back-channel logout of this provider session may have arrived while the login was
    // finishing (before the index above existed).
    if let Some(sid) = &sid {
        match registry.contains(&sid_ended_key(&state.issuer, sid)).await {
            Ok(false) => {}
            Ok(true) => {
                let _ = registry.insert(&ended_key(&id), ttl).await;
                let _ = session.flush().await;
                crate::metrics::event("oidc_logins_total", "outcome", "refused");
                tracing::info!(target: "oidc::rejection", "the provider session ended during the login");
                return error_page(
                    StatusCode::UNAUTHORIZED,
                    "You were signed out at the identity provider. Please sign in again.",
                    Some(&again),
                );
            }
            Err(e) => {
                tracing::error!(error = %e, "session registry failed");
                let _ = session.flush().await;
                return store_unavailable();
            }
        }
    }
    crate::metrics::event("oidc_logins_total", "outcome", "ok");
    tracing::info!(sub = state.tokens.subject(), provider = %provider.name, "login");
    see_other(tx.return_to())
}

/// The logged-in state of the request's session.
///
/// A session seen in the last 30 s that needs nothing now (no timeout, refresh, revalidation
/// or activity record due) is taken from the layer's cache without reading its record; it is
/// still checked against the registry's ended sessions on every request, so a logout on any
/// instance takes effect at once. Everything else goes through [`load_login`].
async fn current_login(
    config: &LoginConfig,
    session: &Session,
) -> Result<Option<Arc<LoggedIn>>, ()> {
    let key = session.id().map(|id| id.to_string());
    if let Some(key) = &key
        && let Some(hit) = config.logins.get(key)
        && !needs_work(config, &hit.state, config.now())
    {
        match config.store.registry.contains(&ended_key(key)).await {
            Ok(false) => return Ok(Some(hit)),
            Ok(true) => config.logins.invalidate(key),
            Err(e) => {
                tracing::error!(error = %e, "session registry failed");
                return Err(());
            }
        }
    }
    let state = load_login(config, session).await?;
    // The id again: loading may have ended the session.
    let key = session.id().map(|id| id.to_string()).or(key);
    Ok(match state {
        Some(state) => {
            let login = Arc::new(LoggedIn::new(state));
            if let Some(key) = key {
                config.logins.insert(key, login.clone());
            }
            Some(login)
        }
        None => {
            if let Some(key) = key {
                config.logins.invalidate(&key);
            }
            None
        }
    })
}

/// Whether a request must load the session: a timeout, a refresh, a revalidation or an
/// activity record is due.
fn needs_work(config: &LoginConfig, state: &LoginState, now: i64) -> bool {
    now.saturating_sub(state.authenticated_at) >= config.absolute_timeout
        || now.saturating_sub(state.last_seen) >= 60.min(config.idle_timeout)
        || now.saturating_sub(state.last_revalidated) >= config.revalidate_every
        || (state.tokens.refresh_token().is_some()
            && state
                .tokens
                .expires_at()
                .is_some_and(|exp| exp.saturating_sub(config.refresh_margin) <= now))
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
    let now = config.now();
    let end = |reason: &'static str| async move {
        tracing::info!(reason, "session ended");
        session.flush().await.map_err(|e| {
            tracing::error!(error = %e, "session store failed");
        })?;
        Ok::<_, ()>(None)
    };
    let id = session.id().map(|id| id.to_string()).unwrap_or_default();
    match config.store.registry.contains(&ended_key(&id)).await {
        Ok(false) => {}
        Ok(true) => return end("logged out").await,
        Err(e) => {
            tracing::error!(error = %e, "session registry failed");
            return Err(());
        }
    }
    let Some(provider) = provider_of(config, &state) else {
        return end("issued by a provider that is no longer configured").await;
    };
    if now.saturating_sub(state.authenticated_at) >= config.absolute_timeout {
        return end("absolute timeout").await;
    }
    if now.saturating_sub(state.last_seen) >= config.idle_timeout {
        return end("idle timeout").await;
    }
    let mut changed = false;
    let refresh_due = state.tokens.refresh_token().is_some()
        && state
            .tokens
            .expires_at()
            .is_some_and(|exp| exp.saturating_sub(config.refresh_margin) <= now);
    let revalidation_due = now.saturating_sub(state.last_revalidated) >= config.revalidate_every;
    if refresh_due || revalidation_due {
        match renew(config, provider, session, &id, &state).await {
            Ok(fresh) => {
                // Saved by `renew` (before another instance could use the refresh token).
                state = (*fresh).clone();
            }
            Err(RenewError::Flow(e)) if e.kind() == FlowErrorKind::Rejected => {
                crate::metrics::event("oidc_token_refreshes_total", "outcome", "refused");
                return end("the provider no longer accepts the grant").await;
            }
            Err(RenewError::Flow(e)) => {
                crate::metrics::event("oidc_token_refreshes_total", "outcome", "failed");
                tracing::warn!(error = %e, "session revalidation failed; keeping the session");
                state.last_revalidated = now;
                changed = true;
            }
            Err(RenewError::Store(e)) => {
                tracing::error!(error = %e, "session store failed during refresh");
                return Err(());
            }
            Err(RenewError::Busy) => {
                tracing::warn!(
                    "another instance is still refreshing the session; keeping the current tokens"
                );
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
        // Written now rather than after the response: the record was read a moment ago, and
        // the sooner it is written the smaller the window in which another instance's refresh
        // could be overwritten with the tokens read here.
        session.save().await.map_err(|e| {
            tracing::error!(error = %e, "session store failed");
        })?;
    }
    Ok(Some(Arc::new(state)))
}

/// The configured provider a stored login belongs to.
fn provider_of<'a>(config: &'a LoginConfig, state: &LoginState) -> Option<&'a LoginProvider> {
    let provider = if state.provider.is_empty() {
        config
            .providers
            .iter()
            .find(|p| p.client.provider().issuer() == state.issuer)
    } else {
        config.provider(&state.provider)
    };
    provider.filter(|p| p.client.provider().issuer() == state.issuer)
}

/// Why the tokens could not be renewed.
#[derive(Debug, Clone)]
enum RenewError {
    /// The provider refused ([`FlowErrorKind::Rejected`]: the session ends) or failed.
    Flow(FlowError),
    /// The session store or registry failed.
    Store(String),
    /// Another instance held the refresh lock for too long.
    Busy,
}

impl From<FlowError> for RenewError {
    fn from(e: FlowError) -> Self {
        Self::Flow(e)
    }
}

/// How long a request waits for another instance's refresh of the same session.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a refresh lock lives if its holder dies.
const REFRESH_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(30);

/// The login state of session `id` as stored now (possibly written by another instance).
async fn stored_state(config: &LoginConfig, id: &str) -> Result<Option<LoginState>, RenewError> {
    let Ok(id) = id.parse::<tower_sessions::session::Id>() else {
        return Ok(None);
    };
    let record = config
        .store
        .sessions
        .load(&id)
        .await
        .map_err(|e| RenewError::Store(e.to_string()))?;
    Ok(record
        .and_then(|mut r| r.data.remove(LOGIN_KEY))
        .and_then(|v| serde_json::from_value(v).ok()))
}

/// Takes over tokens another instance renewed: the session's record here must not write the
/// spent refresh token back.
async fn adopt(session: &Session, stored: LoginState) -> Result<Arc<LoginState>, RenewError> {
    crate::metrics::event("oidc_token_refreshes_total", "outcome", "adopted");
    session
        .insert(LOGIN_KEY, &stored)
        .await
        .map_err(|e| RenewError::Store(e.to_string()))?;
    Ok(Arc::new(stored))
}

/// Refreshes the tokens (or checks UserInfo without a refresh token), once per session and
/// grant even under concurrent requests, and across instances sharing the store.
async fn renew(
    config: &LoginConfig,
    provider: &LoginProvider,
    session: &Session,
    id: &str,
    state: &LoginState,
) -> Result<Arc<LoginState>, RenewError> {
    // Keyed by the session and the access token being replaced: requests that saw the same
    // tokens share one refresh; the next refresh (a new access token) gets a new key even when
    // the provider does not rotate refresh tokens.
    let key = format!("{id}:{}", state.tokens.access_token().secret());
    config
        .refreshes
        .try_get_with(key, async {
            if state.tokens.refresh_token().is_none() {
                let client = &provider.client;
                client
                    .userinfo(state.tokens.access_token(), state.tokens.subject())
                    .await?;
                let mut renewed = state.clone();
                renewed.last_revalidated = client.now();
                return save_renewed(session, renewed).await;
            }
            refresh_once(config, provider, session, id, state).await
        })
        .await
        .map_err(|e: Arc<RenewError>| Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone()))
}

/// The refresh grant under the session's lock in the registry: the instance that gets the
/// lock first refreshes and stores the new tokens before releasing it; the others wait and
/// take over what it stored. A refresh token is so never spent twice.
async fn refresh_once(
    config: &LoginConfig,
    provider: &LoginProvider,
    session: &Session,
    id: &str,
    state: &LoginState,
) -> Result<Arc<LoginState>, RenewError> {
    let registry = &config.store.registry;
    let lock = refresh_lock_key(id);
    let renewed_elsewhere = |stored: &LoginState| {
        stored.tokens.access_token().secret() != state.tokens.access_token().secret()
    };
    let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
    loop {
        let locked = registry
            .insert(&lock, REFRESH_LOCK_TTL)
            .await
            .map_err(|e| RenewError::Store(e.to_string()))?;
        if locked {
            let result = async {
                if let Some(stored) = stored_state(config, id).await?
                    && renewed_elsewhere(&stored)
                {
                    return adopt(session, stored).await;
                }
                match refresh(provider, state).await {
                    Ok(renewed) => {
                        crate::metrics::event("oidc_token_refreshes_total", "outcome", "ok");
                        save_renewed(session, renewed).await
                    }
                    Err(e) => {
                        // The grant may have been used by an instance whose lock expired.
                        if e.kind() == FlowErrorKind::Rejected
                            && let Some(stored) = stored_state(config, id).await?
                            && renewed_elsewhere(&stored)
                        {
                            return adopt(session, stored).await;
                        }
                        Err(e.into())
                    }
                }
            }
            .await;
            if let Err(e) = registry.remove(&lock).await {
                tracing::warn!(error = %e, "could not release the refresh lock; it expires by itself");
            }
            return result;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        if let Some(stored) = stored_state(config, id).await?
            && renewed_elsewhere(&stored)
        {
            return adopt(session, stored).await;
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RenewError::Busy);
        }
    }
}

/// The refresh grant and the claims of a new ID token.
async fn refresh(provider: &LoginProvider, state: &LoginState) -> Result<LoginState, FlowError> {
    let client = &provider.client;
    let mut renewed = state.clone();
    renewed.tokens = client.refresh(&state.tokens).await?;
    for (name, value) in renewed.tokens.id_claims() {
        if !matches!(value, Value::Null) {
            renewed.claims.insert(name.clone(), value.clone());
        }
    }
    renewed.last_revalidated = client.now();
    tracing::debug!(sub = renewed.tokens.subject(), "session renewed");
    Ok(renewed)
}

/// Stores renewed tokens at once: tower-sessions does not save a session whose response is a
/// server error, and another instance must see a rotated refresh token before it refreshes.
async fn save_renewed(
    session: &Session,
    renewed: LoginState,
) -> Result<Arc<LoginState>, RenewError> {
    session
        .insert(LOGIN_KEY, &renewed)
        .await
        .map_err(|e| RenewError::Store(e.to_string()))?;
    session
        .save()
        .await
        .map_err(|e| RenewError::Store(e.to_string()))?;
    Ok(Arc::new(renewed))
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
    if state.is_some()
        && let Some(id) = session.id()
    {
        // Ends the session on every instance, even one still holding its record.
        let ttl = std::time::Duration::from_secs(config.absolute_timeout.unsigned_abs());
        if let Err(e) = config
            .store
            .registry
            .insert(&ended_key(&id.to_string()), ttl)
            .await
        {
            tracing::error!(error = %e, "session registry failed");
            return store_unavailable();
        }
    }
    if let Some(id) = session.id() {
        config.logins.invalidate(&id.to_string());
    }
    if let Err(e) = session.flush().await {
        tracing::error!(error = %e, "session store failed");
        return store_unavailable();
    }
    let Some(state) = state else {
        return see_other(&config.post_logout_redirect_uri);
    };
    crate::metrics::event("oidc_logouts_total", "kind", "rp");
    tracing::info!(sub = state.tokens.subject(), "logout");
    let Some(provider) = provider_of(config, &state) else {
        return see_other(&config.post_logout_redirect_uri);
    };
    match provider
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
