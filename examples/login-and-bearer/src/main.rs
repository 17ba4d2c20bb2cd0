//! Login and bearer on one router: `LoginLayer::accept_bearer`. Browser users log in (the
//! authorization code flow, a session cookie); API callers send `Authorization: Bearer`.
//! Both reach the same handler, `GET /api/me`.
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com OIDC_CLIENT_ID=my-app OIDC_CLIENT_SECRET=… \
//!   OIDC_AUDIENCE=https://api.example.com APP_URL=http://127.0.0.1:3000 \
//!   cargo run -p login-and-bearer
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/api/me
//! ```
//!
//! Register `APP_URL/auth/callback` as the client's redirect URI. `OIDC_CLIENT_SECRET` unset:
//! a public client (PKCE only). `OIDC_AUDIENCE` (the `aud` of bearer tokens) defaults to
//! `OIDC_CLIENT_ID`, `APP_URL` to `http://127.0.0.1:3000`, `LISTEN` to `127.0.0.1:3000`.

use oidc_axum::{AccessTokenVerifier, OidcClient, Provider};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = env("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let app_url = env("APP_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let app_url = app_url.trim_end_matches('/');
    let client_id = env("OIDC_CLIENT_ID")?;
    let audience = env("OIDC_AUDIENCE").unwrap_or_else(|_| client_id.clone());
    // One provider for both: discovery and keys are shared.
    let provider = Provider::builder(env("OIDC_ISSUER")?).build()?;
    let verifier = AccessTokenVerifier::new(provider.clone(), audience);
    let callback = format!("{app_url}/auth/callback");
    let mut client = OidcClient::new(provider, client_id, callback)?;
    if let Ok(secret) = env("OIDC_CLIENT_SECRET") {
        client = client.with_client_secret(secret);
    }
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("open {app_url}/api/me");
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        login_and_bearer::app(client, app_url, verifier)?,
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
