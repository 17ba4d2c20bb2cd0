//! The connector: an API behind `BearerAuthLayer`, its verifier's issuer being the token
//! server. Nothing here knows about app-issued tokens: discovery, JWKS and checks are the
//! ones used for any OpenID Provider.

use axum::routing::get;
use axum::{Json, Router};
use oidc_axum::{AccessTokenVerifier, BearerAuthLayer, Claims, Provider};

async fn me(claims: Claims) -> Json<serde_json::Value> {
    Json(serde_json::json!({ "sub": claims.subject(), "iss": claims.issuer() }))
}

/// A verifier of the server's tokens for this connector's `audience`; `typ: at+jwt` is
/// required (the server mints RFC 9068 tokens).
///
/// # Errors
///
/// When `server_url` is not an acceptable issuer (`https`, or `http` on loopback).
pub fn verifier(
    server_url: &str,
    audience: &str,
) -> Result<AccessTokenVerifier, oidc_core::error::ConfigError> {
    let provider = Provider::builder(server_url).build()?;
    Ok(AccessTokenVerifier::new(provider, audience).require_at_jwt(true))
}

/// `GET /api/me`: the caller's `sub` and `iss`, for a token of the server.
pub fn app(verifier: AccessTokenVerifier) -> Router {
    Router::new()
        .route("/api/me", get(me))
        .layer(BearerAuthLayer::new(verifier))
}
