//! `POST /auth/logout`: RP-initiated logout.

use http::request::Parts;
use http::{HeaderValue, Response, StatusCode, header};

use super::layer::LoginConfig;
use super::pages::{error_page, missing_session_layer, see_other, session_error_page};
use super::refresh::provider_of;
use super::session::session_of;
use super::start::login_link;

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
