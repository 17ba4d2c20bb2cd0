//! The login of each request: the cache of recent logins, idle and absolute timeouts, token
//! refresh (once per session across instances) and revalidation.

use std::sync::Arc;

use oidc_core::error::{FlowError, FlowErrorKind};
use serde_json::Value;
use tower_sessions::Session;

use super::layer::LoginConfig;
use super::providers::LoginProvider;
use super::session::{LOGIN_KEY, LoggedIn, LoginState, ended_key, refresh_lock_key};

/// The logged-in state of the request's session.
///
/// A session seen in the last 30 s that needs nothing now (no timeout, refresh, revalidation
/// or activity record due) is taken from the layer's cache without reading its record; it is
/// still checked against the registry's ended sessions on every request, so a logout on any
/// instance takes effect at once. Everything else goes through [`load_login`].
pub(super) async fn current_login(
    config: &LoginConfig,
    session: &Session,
) -> Result<Option<Arc<LoggedIn>>, ()> {
    let key = session.id().map(|id| id.to_string());
    if let Some(key) = &key
        && let Some(hit) = config.logins.get(key)
        && !needs_work(config, &hit.state, config.now())
    {
        match config.store.registry.is_ended(&ended_key(key)).await {
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
    if provider.client.client_id() != state.client_id {
        // Another app's login (the store already refuses those): not ours to use or end.
        tracing::info!(target: "oidc::rejection", "a login of another client was presented; treated as no session");
        return Ok(None);
    }
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
pub(super) fn provider_of<'a>(
    config: &'a LoginConfig,
    state: &LoginState,
) -> Option<&'a LoginProvider> {
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
