//! The connector: `GET /api/me` behind `BearerAuthLayer`, accepting the token server's
//! tokens for its audience.
//!
//! ```text
//! TOKEN_SERVER=http://127.0.0.1:3000 cargo run -p token-service --bin connector
//! curl -s localhost:3001/api/me -H "authorization: Bearer $ACCESS_TOKEN"
//! ```
//!
//! `TOKEN_AUDIENCE` defaults to `http://127.0.0.1:3001`, `LISTEN` to `127.0.0.1:3001`.

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("set {name}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let listen = env("LISTEN").unwrap_or_else(|_| "127.0.0.1:3001".to_owned());
    let audience = env("TOKEN_AUDIENCE").unwrap_or_else(|_| "http://127.0.0.1:3001".to_owned());
    let verifier = token_service::connector::verifier(&env("TOKEN_SERVER")?, &audience)?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("connector on http://{listen}, audience {audience}");
    // Header-read timeout, body-read deadline, connection cap (see server-limits).
    server_limits::serve(
        listener,
        token_service::connector::app(verifier),
        server_limits::Limits::default(),
        std::future::pending(),
    )
    .await?;
    Ok(())
}
