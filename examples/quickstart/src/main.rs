//! Quickstart: an axum API protected by `oidc-tower`'s bearer layer.
//!
//! Run with:
//!
//! ```text
//! cargo run -p quickstart
//! ```
//!
//! With no `OIDC_ISSUER`, an embedded OpenID Provider (`oidc-testing`) starts on a loopback
//! port, and the quickstart prints ready bearer tokens and the curl commands that use them.
//! Against a real provider:
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com OIDC_AUDIENCE=https://api.example.com cargo run -p quickstart
//! ```
//!
//! # Environment (a public contract: extended, never broken)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BIND` | `127.0.0.1:3000` | address to listen on |
//! | `APP_URL` | `http://` + `BIND` | the app's public URL (printed, used by later flows) |
//! | `OIDC_ISSUER` | embedded provider | the provider's issuer; discovery finds the rest |
//! | `OIDC_AUDIENCE` | `OIDC_CLIENT_ID` | the `aud` this API accepts |
//! | `OIDC_CLIENT_ID` | — | this app's client id (roles from Keycloak `resource_access.<id>`) |
//! | `OIDC_CLIENT_SECRET` | — | this app's client secret (used by the login flow of a later release) |
//! | `OIDC_STRICT_AT_JWT` | `false` | `true` requires RFC 9068 `typ: at+jwt` |
//!
//! # Routes
//!
//! - `GET /`: public; says who you are when a valid token is sent.
//! - `GET /api/me`: bearer-protected; JSON with `sub`, `scopes`, `roles`, `client_id`, `iss`,
//!   `exp`.
//! - `GET /api/admin`: requires the scope `api:write` (403 `insufficient_scope` otherwise).
//! - `GET /healthz`: liveness, always 200.
//! - `GET /readyz`: 200 once the provider's keys are loaded, else 503.
//!
//! ```text
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/api/me
//! ```

use std::net::SocketAddr;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use axum::Router;
use oidc_axum::{Authenticated, Claims};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_tower::{BearerAuthLayer, RequireLayer};
use serde_json::json;
use tracing_subscriber::EnvFilter;

/// The audience of tokens minted by the embedded provider.
const EMBEDDED_AUDIENCE: &str = "api://default";

#[derive(Clone)]
struct AppState {
    provider: Provider,
}

async fn home(user: Option<Authenticated>) -> String {
    match user {
        Some(user) => format!("Hello, {}! Try GET /api/me.\n", user.subject()),
        None => "Hello! This page is public; GET /api/me needs a bearer token.\n".to_owned(),
    }
}

async fn me(claims: Claims) -> Json<serde_json::Value> {
    Json(json!({
        "sub": claims.subject(),
        "iss": claims.issuer(),
        "client_id": claims.client_id(),
        "scopes": claims.scopes().iter().collect::<Vec<_>>(),
        "roles": claims.roles(),
        "exp": claims.expires_at(),
    }))
}

async fn admin(claims: Claims) -> Json<serde_json::Value> {
    Json(json!({ "sub": claims.subject(), "admin": true }))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.provider.readiness().is_ready() {
        return (StatusCode::OK, "ready\n");
    }
    match state.provider.warm_up().await {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "provider keys unavailable\n"),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn app(verifier: AccessTokenVerifier) -> Router {
    let state = AppState {
        provider: verifier.provider().clone(),
    };
    let bearer = BearerAuthLayer::new(verifier).with_realm("quickstart");
    let api = Router::new()
        .route("/api/me", get(me))
        .route(
            "/api/admin",
            get(admin).route_layer(RequireLayer::scopes(["api:write"]).with_realm("quickstart")),
        )
        .layer(bearer.clone());
    let public = Router::new()
        .route("/", get(home))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(bearer.allow_anonymous(true));
    api.merge(public).with_state(state)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("quickstart=debug,oidc=info,oidc_core=info,oidc_tower=info")),
        )
        .init();

    let bind: SocketAddr = env("BIND")
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
        .parse()
        .map_err(|e| format!("BIND is not a socket address: {e}"))?;
    let app_url = env("APP_URL").unwrap_or_else(|| format!("http://{bind}"));
    let client_id = env("OIDC_CLIENT_ID");
    let strict = env("OIDC_STRICT_AT_JWT").is_some_and(|v| v == "true" || v == "1");

    let (issuer, audience, embedded) = match env("OIDC_ISSUER") {
        Some(issuer) => {
            let audience = env("OIDC_AUDIENCE").or_else(|| client_id.clone()).ok_or(
                "OIDC_ISSUER is set but neither OIDC_AUDIENCE nor OIDC_CLIENT_ID is: \
                 set the audience your provider puts in access tokens",
            )?;
            (issuer, audience, None)
        }
        None => {
            let provider = oidc_testing::TestProvider::start().await;
            let audience = env("OIDC_AUDIENCE")
                .or_else(|| client_id.clone())
                .unwrap_or_else(|| EMBEDDED_AUDIENCE.to_owned());
            (provider.issuer(), audience, Some(provider))
        }
    };

    let provider = Provider::builder(issuer.clone()).build()?;
    let mut verifier = AccessTokenVerifier::new(provider, audience.clone()).require_at_jwt(strict);
    if let Some(id) = &client_id {
        verifier = verifier.with_client_id(id.clone());
    }

    let listener = tokio::net::TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, %app_url, %issuer, %audience, "quickstart listening");

    if let Some(op) = &embedded {
        let reader = op.token().audience(audience.as_str()).scope("api:read").expires_in(3600).sign();
        let writer = op
            .token()
            .audience(audience.as_str())
            .scope("api:read api:write")
            .expires_in(3600)
            .sign();
        println!("Embedded OpenID Provider at {} (set OIDC_ISSUER to use your own).", op.issuer());
        println!();
        println!("A bearer token with scope api:read (valid 1 hour):");
        println!("  export TOKEN={reader}");
        println!("  curl -H \"Authorization: Bearer $TOKEN\" {app_url}/api/me");
        println!();
        println!("A bearer token with scopes api:read api:write, for /api/admin:");
        println!("  export ADMIN_TOKEN={writer}");
        println!("  curl -H \"Authorization: Bearer $ADMIN_TOKEN\" {app_url}/api/admin");
        println!();
    }
    println!("Listening on http://{local}");

    axum::serve(listener, app(verifier))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    drop(embedded);
    Ok(())
}
