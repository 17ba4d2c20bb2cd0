//! Login-only: browser login with `LoginLayer` (authorization code flow with PKCE,
//! server-side sessions, logout). `GET /` requires a login and shows the user
//! (`oidc_axum::User`); its button logs out (`POST /auth/logout`, then the provider's logout).
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com OIDC_CLIENT_ID=my-app OIDC_CLIENT_SECRET=… \
//!   APP_URL=http://127.0.0.1:3000 cargo run -p login-only
//! ```
//!
//! Register `APP_URL/auth/callback` as the client's redirect URI and `APP_URL/` as its
//! post-logout redirect URI. `OIDC_CLIENT_SECRET` unset: a public client (PKCE only).
//! `APP_URL` defaults to `http://127.0.0.1:3000`, `LISTEN` (the address) to `127.0.0.1:3000`.

use oidc_axum::{OidcClient, Provider};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = env("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let app_url = env("APP_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let app_url = app_url.trim_end_matches('/');
    let provider = Provider::builder(env("OIDC_ISSUER")?).build()?;
    let callback = format!("{app_url}/auth/callback");
    let mut client = OidcClient::new(provider, env("OIDC_CLIENT_ID")?, callback)?;
    if let Ok(secret) = env("OIDC_CLIENT_SECRET") {
        client = client.with_client_secret(secret);
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("open {app_url}/");
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        login_only::app(client, app_url)?,
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
