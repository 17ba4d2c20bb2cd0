//! The login of each request ([`Sessions::current`]): the cache of recent logins, idle and
//! absolute timeouts, token refresh (once per session across instances) and revalidation.

use std::sync::Arc;

use oidc_core::error::{FlowError, FlowErrorKind};
use serde_json::Value;
use tower_sessions::Session;

use super::providers::LoginProvider;
use super::session::{LOGIN_KEY, LoggedIn, LoginState};
use super::sessions::{SessionError, Sessions, ended_key, refresh_lock_key};

impl Sessions {
    /// The logged-in state of the request's session, for a layer with `providers`.
    ///
    /// A session seen in the last 30 s that needs nothing now (no timeout, refresh,
    /// revalidation or activity record due) is taken from the cache of recent logins without
    /// reading its record; it is still checked against the registry's ended sessions on every
    /// request, so a logout on any instance takes effect at once. Everything else is loaded.
    pub(crate) async fn current(
        &self,
        providers: &[LoginProvider],
        session: &Session,
        now: i64,
    ) -> Result<Option<Arc<LoggedIn>>, SessionError> {
        let id = session.id();
        if let Some(id) = &id
            && let Some(hit) = self.logins.get(id)
            && !self.needs_work(&hit.state, now)
        {
            if !self.store.registry.is_ended(&hit.ended_key).await? {
                return Ok(Some(hit));
            }
            self.logins.invalidate(id);
        }
        // Boxed: loading may refresh at the provider, a large future this one need not hold.
        let state = Box::pin(self.load(providers, session, now)).await?;
        // The id again: loading may have ended the session.
        let id = session.id().or(id);
        let Some(state) = state else {
            if let Some(id) = id {
                self.logins.invalidate(&id);
            }
            return Ok(None);
        };
        // A loaded login has a stored record, so an id; never a login without an ended key.
        let id = id.ok_or(SessionError::NoId)?;
        let login = Arc::new(LoggedIn::new(state, ended_key(&id.to_string())));
        self.logins.insert(id, login.clone());
        Ok(Some(login))
    }

    /// Whether a request must load the session: a timeout, a refresh, a revalidation or an
    /// activity record is due.
    fn needs_work(&self, state: &LoginState, now: i64) -> bool {
        let t = &self.timeouts;
        now.saturating_sub(state.authenticated_at) >= t.absolute
            || now.saturating_sub(state.last_seen) >= 60.min(t.idle)
            || now.saturating_sub(state.last_revalidated) >= t.revalidate_every
            || self.refresh_due(state, now)
    }

    /// Whether the access token is to be refreshed now (it has a refresh token and expires
    /// within the refresh margin).
    fn refresh_due(&self, state: &LoginState, now: i64) -> bool {
        state.tokens.refresh_token().is_some()
            && state
                .tokens
                .expires_at()
                .is_some_and(|exp| exp.saturating_sub(self.timeouts.refresh_margin) <= now)
    }

    /// Loads the logged-in state, enforcing timeouts, refreshing and revalidating.
    ///
    /// `Ok(None)`: not logged in (or the session just ended).
    async fn load(
        &self,
        providers: &[LoginProvider],
        session: &Session,
        now: i64,
    ) -> Result<Option<Arc<LoginState>>, SessionError> {
        let Some(mut state) = session.get::<LoginState>(LOGIN_KEY).await? else {
            return Ok(None);
        };
        let end = async |reason: &'static str| {
            tracing::info!(reason, "session ended");
            session.flush().await?;
            Ok::<_, SessionError>(None)
        };
        let id = session.id().map(|id| id.to_string()).unwrap_or_default();
        // Asked of the registry itself (not a local view): ended marks written by versions
        // before `SessionRegistry::end` existed are plain keys.
        if self.store.registry.contains(&ended_key(&id)).await? {
            return end("logged out").await;
        }
        let Some(provider) = provider_of(providers, &state) else {
            return end("issued by a provider that is no longer configured").await;
        };
        if provider.client.client_id() != state.client_id {
            // Another app's login (the store already refuses those): not ours to use or end.
            tracing::info!(target: "oidc::rejection", "a login of another client was presented; treated as no session");
            return Ok(None);
        }
        let t = &self.timeouts;
        if now.saturating_sub(state.authenticated_at) >= t.absolute {
            return end("absolute timeout").await;
        }
        if now.saturating_sub(state.last_seen) >= t.idle {
            return end("idle timeout").await;
        }
        let mut changed = false;
        let revalidation_due = now.saturating_sub(state.last_revalidated) >= t.revalidate_every;
        if self.refresh_due(&state, now) || revalidation_due {
            match self.renew(provider, session, &id, &state).await {
                Ok(fresh) => {
                    // Saved by `renew` (before another instance could use the refresh token).
                    state = (*fresh).clone();
                }
                Err(SessionError::Provider(e)) if e.kind() == FlowErrorKind::Rejected => {
                    crate::metrics::event("oidc_token_refreshes_total", "outcome", "refused");
                    return end("the provider no longer accepts the grant").await;
                }
                Err(SessionError::Provider(e)) => {
                    crate::metrics::event("oidc_token_refreshes_total", "outcome", "failed");
                    tracing::warn!(error = %e, "session revalidation failed; keeping the session");
                    state.last_revalidated = now;
                    changed = true;
                }
                Err(SessionError::Busy) => {
                    tracing::warn!(
                        "another instance is still refreshing the session; keeping the current tokens"
                    );
                }
                Err(e) => return Err(e),
            }
        }
        if now.saturating_sub(state.last_seen) >= 60 {
            state.last_seen = now;
            changed = true;
        }
        if changed {
            session.insert(LOGIN_KEY, &state).await?;
            // Written now rather than after the response: the record was read a moment ago,
            // and the sooner it is written the smaller the window in which another instance's
            // refresh could be overwritten with the tokens read here.
            session.save().await?;
        }
        Ok(Some(Arc::new(state)))
    }
}

/// The configured provider a stored login belongs to.
pub(super) fn provider_of<'a>(
    providers: &'a [LoginProvider],
    state: &LoginState,
) -> Option<&'a LoginProvider> {
    let provider = if state.provider.is_empty() {
        providers
            .iter()
            .find(|p| p.client.provider().issuer() == state.issuer)
    } else {
        providers.iter().find(|p| p.name == state.provider)
    };
    provider.filter(|p| p.client.provider().issuer() == state.issuer)
}

/// How long a request waits for another instance's refresh of the same session.
const REFRESH_WAIT: std::time::Duration = std::time::Duration::from_secs(15);
/// How long a refresh lock lives if its holder dies.
const REFRESH_LOCK_TTL: std::time::Duration = std::time::Duration::from_secs(30);

impl Sessions {
    /// The login state of session `id` as stored now (possibly written by another instance).
    async fn stored_state(&self, id: &str) -> Result<Option<LoginState>, SessionError> {
        let Ok(id) = id.parse::<tower_sessions::session::Id>() else {
            return Ok(None);
        };
        let record = self.store.sessions.load(&id).await?;
        Ok(record
            .and_then(|mut r| r.data.remove(LOGIN_KEY))
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Refreshes the tokens (or checks UserInfo without a refresh token), once per session
    /// and grant even under concurrent requests, and across instances sharing the store.
    async fn renew(
        &self,
        provider: &LoginProvider,
        session: &Session,
        id: &str,
        state: &LoginState,
    ) -> Result<Arc<LoginState>, SessionError> {
        // Keyed by the session and the access token being replaced: requests that saw the
        // same tokens share one refresh; the next refresh (a new access token) gets a new key
        // even when the provider does not rotate refresh tokens.
        let key = format!("{id}:{}", state.tokens.access_token().secret());
        self.refreshes
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
                self.refresh_once(provider, session, id, state).await
            })
            .await
            .map_err(|e: Arc<SessionError>| {
                Arc::try_unwrap(e).unwrap_or_else(|shared| (*shared).clone())
            })
    }

    /// The refresh grant under the session's lock in the registry: the instance that gets the
    /// lock first refreshes and stores the new tokens before releasing it; the others wait
    /// and take over what it stored. A refresh token is so never spent twice.
    async fn refresh_once(
        &self,
        provider: &LoginProvider,
        session: &Session,
        id: &str,
        state: &LoginState,
    ) -> Result<Arc<LoginState>, SessionError> {
        let registry = &self.store.registry;
        let lock = refresh_lock_key(id);
        let renewed_elsewhere = |stored: &LoginState| {
            stored.tokens.access_token().secret() != state.tokens.access_token().secret()
        };
        let deadline = tokio::time::Instant::now() + REFRESH_WAIT;
        loop {
            if registry.insert(&lock, REFRESH_LOCK_TTL).await? {
                let result = async {
                    if let Some(stored) = self.stored_state(id).await?
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
                                && let Some(stored) = self.stored_state(id).await?
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
            if let Some(stored) = self.stored_state(id).await?
                && renewed_elsewhere(&stored)
            {
                return adopt(session, stored).await;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SessionError::Busy);
            }
        }
    }
}

/// Takes over tokens another instance renewed: the session's record here must not write the
/// spent refresh token back.
async fn adopt(session: &Session, stored: LoginState) -> Result<Arc<LoginState>, SessionError> {
    crate::metrics::event("oidc_token_refreshes_total", "outcome", "adopted");
    session.insert(LOGIN_KEY, &stored).await?;
    Ok(Arc::new(stored))
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
) -> Result<Arc<LoginState>, SessionError> {
    session.insert(LOGIN_KEY, &renewed).await?;
    session.save().await?;
    Ok(Arc::new(renewed))
}
