//! `POST /auth/logout`: RP-initiated logout, and the revocation of the session's tokens at
//! the provider (RFC 7009) that follows it.
//!
//! # Revocation at logout
//!
//! When the provider offers revocation (a `revocation_endpoint`, discovered or set by hand),
//! the refresh token of the ended session is revoked, then its access token
//! ([`TokenRevoker::revoke_tokens`]), so that a copy of either taken from the session store
//! or a log stops working at once rather than when it expires. Decisions:
//!
//! - The local logout comes first and never waits: the session is ended (everywhere) before
//!   revocation starts, in a task of its own, and the answer does not wait for that task. A
//!   provider that is slow, down or refusing changes nothing for the user.
//! - The task is bounded: [`LoginLayer::with_revocation_timeout`] (default 5 s) for both
//!   requests together, and at most [`MAX_REVOCATIONS`] at once per layer; beyond that a
//!   logout is not revoked (logged), rather than queueing work without bound.
//! - A failure is logged at `warn` with the issuer and the error kind, never a token.
//! - Not after a back-channel logout: there the provider itself ended the session (and
//!   normally the grant); calling it back for each session would add load for nothing.
//! - [`LoginLayer::revoke_on_logout(false)`](LoginLayer::revoke_on_logout) turns it off.

use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

#[cfg(doc)]
use super::LoginLayer;
use super::layer::LoginConfig;
use super::pages::{error_page, missing_session_layer, see_other, session_error_page};
use super::providers::LoginProvider;
use super::refresh::provider_of;
use super::session::LoginState;
use super::session::session_of;
use super::start::login_link;
use oidc_core::flow::TokenRevoker;
use tokio::sync::Semaphore;

/// How many revocations a layer runs at once; a logout beyond that is not revoked.
pub(crate) const MAX_REVOCATIONS: usize = 64;

/// Revocation at logout: whether, how long, and how many at once (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct RevokeOnLogout {
    pub(crate) enabled: bool,
    pub(crate) timeout: Duration,
    permits: Arc<Semaphore>,
}

impl Default for RevokeOnLogout {
    fn default() -> Self {
        Self {
            enabled: true,
            timeout: Duration::from_secs(5),
            permits: Arc::new(Semaphore::new(MAX_REVOCATIONS)),
        }
    }
}

impl RevokeOnLogout {
    /// Starts revoking the tokens of `state`, ended already, at `provider` in a task of its
    /// own; returns at once.
    fn start(&self, provider: &LoginProvider, state: &LoginState) {
        if !self.enabled {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!("no tokio runtime: tokens not revoked at logout");
            return;
        };
        let Ok(permit) = Arc::clone(&self.permits).try_acquire_owned() else {
            tracing::warn!(
                issuer = %state.issuer,
                "too many revocations in progress: tokens not revoked at logout"
            );
            return;
        };
        let revoker = TokenRevoker::new(provider.client.clone());
        let tokens = state.tokens.clone();
        let issuer = state.issuer.clone();
        let timeout = self.timeout;
        runtime.spawn(async move {
            let _permit = permit;
            let revoke = async {
                match revoker.endpoint().await? {
                    Some(_) => revoker.revoke_tokens(&tokens).await.map(|()| true),
                    None => Ok(false),
                }
            };
            match tokio::time::timeout(timeout, revoke).await {
                Ok(Ok(true)) => {
                    tracing::debug!(%issuer, "tokens revoked at logout");
                }
                Ok(Ok(false)) => {
                    tracing::debug!(%issuer, "the provider offers no revocation");
                }
                Ok(Err(e)) => {
                    tracing::warn!(%issuer, error = %e, "token revocation at logout failed");
                }
                Err(_) => {
                    tracing::warn!(%issuer, ?timeout, "token revocation at logout timed out");
                }
            }
        });
    }
}

/// `POST /auth/logout`: same-origin only (LO-02).
pub(super) async fn logout<B: Default + From<String>>(
    config: &LoginConfig,
    req: &Parts,
) -> Response<B> {
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
    let state = match config.sessions.end(&session).await {
        Ok(state) => state,
        Err(e) => return session_error_page(&e, &login_link(config)),
    };
    let Some(state) = state else {
        return see_other(&config.post_logout_redirect_uri);
    };
    crate::metrics::event("oidc_logouts_total", "kind", "rp");
    tracing::info!(sub = state.tokens.subject(), "logout");
    let Some(provider) = provider_of(&config.providers, &state) else {
        return see_other(&config.post_logout_redirect_uri);
    };
    config.revocation.start(provider, &state);
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
