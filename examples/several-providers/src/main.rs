//! Several providers: browser login with a choice of two OpenID Providers
//! (`LoginLayer::with_providers`). `/auth/login` lists them (the layer's default page);
//! `GET /` says who signed in, with which one.
//!
//! ```text
//! CORP_ISSUER=https://id.corp.example CORP_CLIENT_ID=my-app CORP_CLIENT_SECRET=… \
//! GOOGLE_CLIENT_ID=….apps.googleusercontent.com GOOGLE_CLIENT_SECRET=… \
//!   APP_URL=http://127.0.0.1:3000 cargo run -p several-providers
//! ```
//!
//! Register `APP_URL/auth/callback/corp` and `APP_URL/auth/callback/google` as the redirect
//! URIs of the two clients. `GOOGLE_ISSUER` defaults to `https://accounts.google.com`; a
//! `…_CLIENT_SECRET` unset makes that client public (PKCE only). `APP_URL` defaults to
//! `http://127.0.0.1:3000`, `LISTEN` (the address) to `127.0.0.1:3000`.

use oidc_axum::{OidcClient, Provider};
use several_providers::{app, callback_url};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

/// The client of provider `name`, from `{PREFIX}_ISSUER` (or `default_issuer`),
/// `{PREFIX}_CLIENT_ID` and `{PREFIX}_CLIENT_SECRET`.
fn client(
    prefix: &str,
    name: &str,
    default_issuer: Option<&str>,
    app_url: &str,
) -> Result<OidcClient, Box<dyn std::error::Error>> {
    let issuer = env(&format!("{prefix}_ISSUER"))
        .or_else(|unset| default_issuer.map(str::to_owned).ok_or(unset))?;
    let provider = Provider::builder(issuer).build()?;
    let id = env(&format!("{prefix}_CLIENT_ID"))?;
    let client = OidcClient::new(provider, id, callback_url(app_url, name))?;
    Ok(match env(&format!("{prefix}_CLIENT_SECRET")) {
        Ok(secret) => client.with_client_secret(secret),
        Err(_) => client,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = env("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let app_url = env("APP_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let corp = client("CORP", "corp", None, &app_url)?;
    let google = client(
        "GOOGLE",
        "google",
        Some("https://accounts.google.com"),
        &app_url,
    )?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("open {app_url}/");
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        app(&app_url, corp, google)?,
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
