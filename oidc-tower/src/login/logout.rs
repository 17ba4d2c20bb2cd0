//! `POST /auth/logout`: RP-initiated logout.

use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use super::layer::LoginConfig;
use super::pages::{error_page, missing_session_layer, see_other, store_unavailable};
use super::refresh::provider_of;
use super::session::{LOGIN_KEY, LoginState, ended_key, session_of};

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
    let state: Option<LoginState> = session.get(LOGIN_KEY).await.ok().flatten();
    if state.is_some()
        && let Some(id) = session.id()
    {
        // Ends the session on every instance, even one still holding its record.
        let ttl = std::time::Duration::from_secs(config.absolute_timeout.unsigned_abs());
        if let Err(e) = config
            .store
            .registry
            .end(&ended_key(&id.to_string()), ttl)
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
