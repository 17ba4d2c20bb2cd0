//! Bearer-only: an axum API behind `BearerAuthLayer` (RFC 6750). Every route needs a valid
//! access token of `OIDC_ISSUER` for `OIDC_AUDIENCE`; `POST /api/notes` also needs the scope
//! `notes:write` (403 `insufficient_scope` otherwise). Handlers read the claims through the
//! `oidc-axum` extractors `Claims` and `RequireScopes`.
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com OIDC_AUDIENCE=https://api.example.com \
//!   cargo run -p bearer-only
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/api/me
//! ```
//!
//! `LISTEN` sets the address (default `127.0.0.1:3000`).

use oidc_axum::{AccessTokenVerifier, Provider};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    // No I/O yet: discovery and keys are fetched on the first token.
    let provider = Provider::builder(env("OIDC_ISSUER")?).build()?;
    let verifier = AccessTokenVerifier::new(provider, env("OIDC_AUDIENCE")?);
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}");
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        bearer_only::app(verifier),
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
