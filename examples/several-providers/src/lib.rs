//! The router of the `several-providers` example: users choose between two OpenID Providers
//! on the login page, and `GET /` says which one they signed in with. See `src/main.rs` for
//! how it is run.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use oidc_axum::oidc_core::error::ConfigError;
use oidc_axum::{LoginLayer, LoginProvider, OidcClient, User};

/// The redirect URI of the provider named `name` (`corp` or `google`): each provider has its
/// own callback, `app_url` + `/auth/callback/{name}`.
pub fn callback_url(app_url: &str, name: &str) -> String {
    format!("{}/auth/callback/{name}", app_url.trim_end_matches('/'))
}

/// `GET /`: who is signed in, and with which provider (its display name).
async fn home(State(providers): State<Arc<[LoginProvider]>>, user: User) -> String {
    let provider = providers
        .iter()
        .find(|p| p.name() == user.provider())
        .map_or(user.provider(), LoginProvider::display_name);
    format!("Signed in with {provider} as {}.\n", user.subject())
}

/// The app at `app_url` (an origin), with two providers: `corp` ("Corporate account") and
/// `google` ("Google"), whose clients' redirect URIs are [`callback_url`]s.
///
/// `GET /auth/login` lists them, `GET /auth/login/corp` and `GET /auth/login/google` start
/// a login there; a browser without a login is sent to the list. Each login transaction
/// remembers its provider, and a callback is only accepted from that one.
///
/// # Errors
///
/// [`ConfigError`] when `app_url` is not an absolute `http(s)` URL or a redirect URI is not
/// under it.
pub fn app(app_url: &str, corp: OidcClient, google: OidcClient) -> Result<Router, ConfigError> {
    let login = LoginLayer::with_providers(
        app_url,
        [
            LoginProvider::new("corp", "Corporate account", corp),
            LoginProvider::new("google", "Google", google),
        ],
    )?;
    let providers: Arc<[LoginProvider]> = login.providers().into();
    Ok(Router::new()
        .route("/", get(home))
        .with_state(providers)
        .layer(login))
}
