//! Runs the gRPC service and the plain hyper service; see the README for the environment.

use grpc_service::serve::{MAX_CONNECTIONS, serve_grpc, serve_hyper};
use grpc_service::{grpc_app, hyper_app};
use oidc_core::{AccessTokenVerifier, Provider};

fn env(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = Provider::builder(env("OIDC_ISSUER")?).build()?;
    let verifier = AccessTokenVerifier::new(provider, env("OIDC_AUDIENCE")?);
    let grpc_listen = env("GRPC_LISTEN").unwrap_or_else(|_| "127.0.0.1:50051".to_owned());
    let http_listen = env("HTTP_LISTEN").unwrap_or_else(|_| "127.0.0.1:3000".to_owned());
    let grpc = tokio::net::TcpListener::bind(&grpc_listen).await?;
    let http = tokio::net::TcpListener::bind(&http_listen).await?;
    println!("gRPC orders.Orders on http://{grpc_listen}, hyper hello on http://{http_listen}");
    let hyper = tokio::spawn(serve_hyper(
        http,
        hyper_app(verifier.clone()),
        MAX_CONNECTIONS,
    ));
    serve_grpc(grpc, grpc_app(verifier), MAX_CONNECTIONS).await?;
    hyper.await??;
    Ok(())
}
