//! The token server: logs users in through a CLI at the OpenID Provider and mints its own
//! short-lived ES256 tokens for them at `POST /token` (see the README for the CLI's side).
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com OIDC_CLIENT_ID=token-service OIDC_CLIENT_SECRET=… \
//!   cargo run -p token-service --bin token-server
//! ```
//!
//! Register `CLI_REDIRECT_URI` (default `http://127.0.0.1:8976/callback`) as the client's
//! redirect URI, with the `refresh_token` grant and the `offline_access` scope (and the
//! `urn:ietf:params:oauth:grant-type:device_code` grant for the device login). `APP_URL` (the
//! `iss` of the minted tokens; default `http://<LISTEN>`), `LISTEN` (default `127.0.0.1:3000`),
//! `TOKEN_AUDIENCE` (default `http://127.0.0.1:3001`, the connector), `TOKEN_KEY_FILE` (default
//! `token-key.pem`, generated at first start, mode 0600), `REVALIDATE_SECS` (default 300).
//!
//! ```text
//! curl -s -X POST localhost:3000/cli/login     # {"login_id", "authorize_url"}: open the URL
//! curl -s -X POST localhost:3000/cli/complete -H 'content-type: application/json' \
//!   -d '{"login_id": "…", "callback_query": "code=…&state=…&iss=…"}'   # {"session"}
//! curl -s -X POST localhost:3000/cli/device    # {"login_id", "user_code", "verification_uri", …}
//! curl -s -X POST localhost:3000/cli/device/complete -H 'content-type: application/json' \
//!   -d '{"login_id": "…"}'   # waits until the code is approved: {"session"}
//! curl -s -X POST localhost:3000/token -H "authorization: Bearer $SESSION"  # {"access_token"}
//! ```

use std::time::Duration;

use oidc_core::Algorithm;
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_core::issue::{Revalidator, SigningKey, TokenIssuer};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = env("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let app_url = env("APP_URL").unwrap_or_else(|_| format!("http://{listen}"));
    let redirect =
        env("CLI_REDIRECT_URI").unwrap_or_else(|_| "http://127.0.0.1:8976/callback".to_owned());
    let provider = Provider::builder(env("OIDC_ISSUER")?).build()?;
    let client = OidcClient::new(provider, env("OIDC_CLIENT_ID")?, redirect)?
        .with_client_secret(env("OIDC_CLIENT_SECRET")?)
        .with_scopes(["openid", "profile", "offline_access"]);

    let key_file = env("TOKEN_KEY_FILE").unwrap_or_else(|_| "token-key.pem".to_owned());
    let key = SigningKey::load_or_generate(&key_file, Algorithm::ES256)?;
    let audience = env("TOKEN_AUDIENCE").unwrap_or_else(|_| "http://127.0.0.1:3001".to_owned());
    let issuer = TokenIssuer::builder(app_url.trim_end_matches('/'), key)
        .with_default_audience(audience)
        .build()?;
    let every = env("REVALIDATE_SECS").map_or(Ok(300), |s| s.parse())?;
    let revalidator = Revalidator::builder(client.clone())
        .with_interval(Duration::from_secs(every))
        .build()?;

    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!(
        "token server on {app_url}, signing with kid {}",
        issuer.signing_kid()
    );
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        token_service::server::app(client, issuer, revalidator),
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
