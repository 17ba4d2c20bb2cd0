//! `POST /auth/backchannel-logout`: OpenID Connect Back-Channel Logout 1.0, the provider
//! telling the app that a user's provider session ended.
//!
//! - Only `POST` (**405** otherwise) with an `application/x-www-form-urlencoded` body of at
//!   most 64 KiB (**413** beyond) holding exactly one `logout_token` (**400** otherwise). No
//!   session cookie and no CSRF token are needed or looked at: the provider calls it
//!   server-to-server, and the signed token is the credential.
//! - The token is validated by [`OidcClient::verify_logout_token`](oidc_core::flow::OidcClient::verify_logout_token)
//!   of the provider whose issuer it names (exactly; with several providers the unverified
//!   `iss` only picks which provider's keys and rules apply): signature, `iss`, `aud`, `iat`,
//!   `exp`, `jti`, `events`, `sid` or `sub`, no `nonce`, `typ`. Any failure: **400**
//!   `invalid_request`, nothing changed.
//! - Each `jti` is accepted once (until the token expires): a replay is **400**.
//! - `sid` ends the sessions logged in with that provider session; `sub` alone ends every
//!   session of that user at that issuer. The index from `sid`/`sub` to sessions lives in the
//!   [`SessionRegistry`](super::SessionRegistry), and each ended session is marked there, so
//!   that a logout received by one instance ends the session on all of them, even one that
//!   holds the session's record in a request in flight. An unknown `sid` is a no-op.
//! - Success: **200** with `Cache-Control: no-store` and an empty body. When the store or the
//!   registry fails: **503** with `Retry-After` (and the `jti` is released, so that a
//!   redelivery is accepted); when the provider's keys cannot be fetched: **503** as well.

use std::time::Duration;

use base64::Engine;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::BodyExt;
use oidc_core::error::FlowErrorKind;
use serde_json::json;

use super::layer::LoginConfig;
use super::pages::no_store;
use super::providers::LoginProvider;
use super::sessions::EndBy;

/// The largest request body accepted (BCL-08, DOS-01).
const MAX_BODY: usize = 64 * 1024;

/// How long after its `exp` a used `jti` is still remembered (covers clock skew).
const JTI_GRACE: Duration = Duration::from_secs(5 * 60);

/// The endpoint. Never redirects; never reads the session.
pub(crate) async fn backchannel_logout<ReqBody, B>(
    config: &LoginConfig,
    req: Request<ReqBody>,
) -> Response<B>
where
    ReqBody: http_body::Body,
    ReqBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: Default + From<String>,
{
    if req.method() != Method::POST {
        let mut res = empty(StatusCode::METHOD_NOT_ALLOWED);
        res.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return res;
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return invalid("the body must be application/x-www-form-urlencoded");
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY as u64) {
        return empty(StatusCode::PAYLOAD_TOO_LARGE);
    }
    let body = match http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return empty(StatusCode::PAYLOAD_TOO_LARGE);
        }
        Err(_) => return invalid("the body could not be read"),
    };
    let mut tokens = url::form_urlencoded::parse(&body)
        .filter(|(name, _)| name == "logout_token")
        .map(|(_, value)| value);
    let token = match (tokens.next(), tokens.next()) {
        (Some(token), None) if !token.is_empty() => token.into_owned(),
        (None, _) => return invalid("logout_token is missing"),
        _ => return invalid("logout_token must be given once"),
    };

    let Some(provider) = provider_for(config, &token) else {
        tracing::info!(target: "oidc::rejection", "logout token of an unknown issuer refused");
        return invalid("the logout token is not valid");
    };
    let logout = match provider.client.verify_logout_token(&token).await {
        Ok(logout) => logout,
        Err(e) if e.kind() == FlowErrorKind::Rejected => {
            tracing::info!(target: "oidc::rejection", error = %e, "logout token refused");
            return invalid("the logout token is not valid");
        }
        Err(e) => {
            tracing::error!(target: "oidc::rejection", error = %e, "logout token could not be checked");
            return unavailable();
        }
    };

    let sessions = &config.sessions;
    let issuer = logout.issuer();
    let remember = Duration::from_secs(
        logout
            .expires_at()
            .saturating_sub(config.now())
            .max(0)
            .unsigned_abs(),
    ) + JTI_GRACE;
    match sessions
        .use_logout_token(issuer, logout.jti(), remember)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::info!(target: "oidc::rejection", "logout token replayed");
            return invalid("the logout token was already used");
        }
        Err(e) => {
            tracing::error!(error = %e, "session registry failed");
            return unavailable();
        }
    }
    let by = match (logout.session_id(), logout.subject()) {
        (Some(sid), _) => EndBy::ProviderSession(sid),
        (None, Some(sub)) => EndBy::User(sub),
        // verify_logout_token requires one of them.
        (None, None) => return invalid("the logout token names no session"),
    };
    match sessions.end_by(issuer, by).await {
        Ok(ended) => {
            crate::metrics::event("oidc_logouts_total", "kind", "backchannel");
            tracing::info!(
                provider = %provider.name(),
                sessions = ended,
                by_sid = logout.session_id().is_some(),
                "back-channel logout"
            );
            empty(StatusCode::OK)
        }
        Err(e) => {
            tracing::error!(error = %e, "back-channel logout failed; the provider may redeliver");
            sessions.release_logout_token(issuer, logout.jti()).await;
            unavailable()
        }
    }
}

/// The provider whose issuer the token names. With one provider, that one (its verification
/// checks `iss`); with several, the unverified `iss` (and, when providers share an issuer, the
/// unverified `aud`) picks one by exact match, and nothing else of the unverified token is
/// used: the chosen provider's verification checks everything again.
fn provider_for<'a>(config: &'a LoginConfig, token: &str) -> Option<&'a LoginProvider> {
    if config.providers.len() == 1 {
        return Some(config.first());
    }
    let payload = token.split('.').nth(1)?;
    if payload.len() > 16 * 1024 {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    #[derive(serde::Deserialize)]
    struct Unverified {
        iss: String,
        aud: Option<Audience>,
    }
    let Unverified { iss, aud } = serde_json::from_slice(&bytes).ok()?;
    let mut candidates = config
        .providers
        .iter()
        .filter(|p| p.client.provider().issuer() == iss)
        .peekable();
    let first = candidates.next()?;
    if candidates.peek().is_none() {
        return Some(first);
    }
    let named = |p: &&LoginProvider| match &aud {
        Some(Audience::One(a)) => a == p.client.client_id(),
        Some(Audience::Many(list)) => list.iter().any(|a| a == p.client.client_id()),
        None => false,
    };
    std::iter::once(first).chain(candidates).find(named)
}

fn empty<B: Default>(status: StatusCode) -> Response<B> {
    let mut res = Response::new(B::default());
    *res.status_mut() = status;
    no_store(res.headers_mut());
    res
}

/// 400 `invalid_request` with a JSON body (BCL §2.8).
fn invalid<B: From<String>>(description: &str) -> Response<B> {
    let body = json!({ "error": "invalid_request", "error_description": description });
    let mut res = Response::new(B::from(body.to_string()));
    *res.status_mut() = StatusCode::BAD_REQUEST;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    no_store(res.headers_mut());
    res
}

fn unavailable<B: Default>() -> Response<B> {
    let mut res = empty(StatusCode::SERVICE_UNAVAILABLE);
    res.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    res
}
