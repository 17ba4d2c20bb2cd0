//! The router of the `login-and-bearer` example: one handler reached by browser users with a
//! login session and by API callers with a bearer token. See `src/main.rs` for how it is run.

use axum::routing::get;
use axum::{Json, Router};
use oidc_axum::oidc_core::error::ConfigError;
use oidc_axum::{
    AccessTokenVerifier, Authenticated, BearerAuthLayer, LoginLayer, OidcClient, User,
};
use serde_json::{Value, json};

/// `GET /api/me`: who is calling, and how (`session` or `bearer`). `Authenticated` is the
/// verified identity either way; `User` is there only for a login session.
async fn me(who: Authenticated, user: Option<User>) -> Json<Value> {
    let via = if user.is_some() { "session" } else { "bearer" };
    Json(json!({ "sub": who.subject(), "iss": who.issuer(), "via": via }))
}

/// The app at `app_url` (an origin): browser login with `client` (redirect URI `app_url` +
/// `/auth/callback`), and bearer tokens checked by `verifier` on the same routes.
///
/// A request with an `Authorization` header is judged by the token alone (realm `api`, 401
/// `invalid_token` for a bad one, never the session instead); without one, a browser
/// navigation without a login is sent to the provider and any other request gets the 401
/// challenge `Bearer realm="api"`.
///
/// # Errors
///
/// [`ConfigError`] when `app_url` is not an absolute `http(s)` URL or the client's redirect
/// URI is not under it.
pub fn app(
    client: OidcClient,
    app_url: &str,
    verifier: AccessTokenVerifier,
) -> Result<Router, ConfigError> {
    let login = LoginLayer::new(client, app_url)?
        .accept_bearer(BearerAuthLayer::new(verifier).with_realm("api"));
    Ok(Router::new().route("/api/me", get(me)).layer(login))
}
