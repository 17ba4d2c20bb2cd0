//! The router of the `login-only` example: one page that requires a login and shows the
//! user, with a logout button. See `src/main.rs` for how it is run.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use oidc_axum::oidc_core::error::ConfigError;
use oidc_axum::{LoginLayer, OidcClient, User};

/// `GET /`: the logged-in user, and a form that logs out (`POST /auth/logout`).
async fn home(user: User) -> Html<String> {
    let email = user.email().unwrap_or("no email");
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>login-only</title></head>\
         <body><p>Signed in as <strong id=\"user\">{}</strong> ({}).</p>\
         <form method=\"post\" action=\"/auth/logout\"><button type=\"submit\">Log out</button></form>\
         </body></html>",
        escape(user.subject()),
        escape(email),
    ))
}

/// Text for HTML (the claims come from the provider, but stay data).
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The app at `app_url` (an origin such as `https://app.example.com`), signing users in
/// with `client`, whose redirect URI is `app_url` + `/auth/callback`.
///
/// `LoginLayer` serves `/auth/login`, `/auth/callback`, `POST /auth/logout` and
/// `POST /auth/backchannel-logout`, keeps the sessions (in memory here), and requires a login
/// on every other route: a browser is sent to the provider, other clients get 401.
///
/// # Errors
///
/// [`ConfigError`] when `app_url` is not an absolute `http(s)` URL or the client's redirect
/// URI is not under it.
pub fn app(client: OidcClient, app_url: &str) -> Result<Router, ConfigError> {
    let login = LoginLayer::new(client, app_url)?;
    Ok(Router::new().route("/", get(home)).layer(login))
}
