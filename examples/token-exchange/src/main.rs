//! Runs the token exchange example; see the README for the environment.

use std::error::Error;

use token_exchange::{Settings, app};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "token_exchange=debug,oidc_core=debug,oidc_tower=debug".into()),
        )
        .init();
    let settings = Settings {
        issuer: env("OIDC_ISSUER")?,
        audience: env("OIDC_AUDIENCE")?,
        client_id: env("OIDC_CLIENT_ID")?,
        client_secret: env("OIDC_CLIENT_SECRET")?,
        orders_url: env("ORDERS_URL")?,
        orders_audience: std::env::var("ORDERS_AUDIENCE").ok(),
        orders_resource: std::env::var("ORDERS_RESOURCE").ok(),
        scopes: std::env::var("ORDERS_SCOPES")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default(),
        forward: std::env::var("FORWARD_USER_TOKEN").is_ok_and(|v| v == "1"),
    };
    let listen = std::env::var("LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("listening on http://{listen}/my-orders");
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        app(&settings)?,
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
