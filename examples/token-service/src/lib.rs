//! App-issued tokens: the [`server`] logs users in at the OpenID Provider (a CLI hands it the
//! authorization code, or the server runs the device flow and the CLI shows the user code)
//! and mints its own short-lived JWTs for them while the provider still accepts them; the
//! [`connector`] is another service that verifies those tokens with an
//! ordinary `BearerAuthLayer` whose issuer is the server. See the README.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use oidc_core::error::{FlowError, FlowErrorKind};
use oidc_core::issue::{MintError, RevalidationError};

pub mod connector;
pub mod server;

/// A JSON error answer: `{"error": code}` with `status`, never the cause's details.
fn error(status: StatusCode, code: &'static str) -> Response {
    let mut res = (status, Json(serde_json::json!({ "error": code }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        res.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(r#"Bearer error="invalid_token""#),
        );
    }
    res
}

/// The answer to a failed code exchange.
fn flow_error(e: &FlowError) -> Response {
    match e.kind() {
        FlowErrorKind::Unbound => error(StatusCode::BAD_REQUEST, "invalid_callback"),
        FlowErrorKind::Rejected => error(StatusCode::UNAUTHORIZED, "login_failed"),
        FlowErrorKind::Timeout => error(StatusCode::GATEWAY_TIMEOUT, "provider_timeout"),
        _ => error(StatusCode::BAD_GATEWAY, "provider_failure"),
    }
}

/// The answer to a refused mint: 401 (log in again) or 503 (the provider cannot be asked).
fn mint_error(e: &MintError) -> Response {
    match e.revalidation() {
        Some(RevalidationError::Unavailable { retry_after, .. }) => {
            let mut res = error(StatusCode::SERVICE_UNAVAILABLE, "provider_unavailable");
            let secs = retry_after.max(&Duration::from_secs(1)).as_secs();
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
        Some(_) => error(StatusCode::UNAUTHORIZED, "login_required"),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "mint_failed"),
    }
}

/// The bearer credential of `Authorization: Bearer <credential>`, if that is the header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}
