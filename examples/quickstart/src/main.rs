//! Quickstart: an axum app with browser login (`LoginLayer`) and a bearer-protected API
//! (`BearerAuthLayer`).
//!
//! Run with:
//!
//! ```text
//! cargo run -p quickstart
//! ```
//!
//! With no `OIDC_ISSUER`, an embedded OpenID Provider (`oidc-testing`) starts on a loopback
//! port: open the printed URL, press "Log in", sign in on its form, and see `/me`. The
//! quickstart also prints ready bearer tokens and the curl commands that use them. Against a
//! real provider:
//!
//! ```text
//! OIDC_ISSUER=https://id.example.com OIDC_CLIENT_ID=my-app OIDC_CLIENT_SECRET=… \
//!   OIDC_AUDIENCE=https://api.example.com cargo run -p quickstart
//! ```
//!
//! # Environment (a public contract: extended, never broken)
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `BIND` | `127.0.0.1:3000` | address to listen on |
//! | `APP_URL` | `http://` + `BIND` | the app's public URL; the callback is `APP_URL/auth/callback` |
//! | `OIDC_ISSUER` | embedded provider | the provider's issuer; discovery finds the rest. The embedded test provider (public keys, anyone signs in) starts only when it is unset and the app is on loopback (`BIND` a loopback address, `APP_URL` `http` on a loopback host); an empty value, a non-loopback `BIND` or an `https`/non-loopback `APP_URL` without it stops the start with a message |
//! | `OIDC_AUDIENCE` | `OIDC_CLIENT_ID` | the `aud` the API accepts in bearer tokens |
//! | `OIDC_CLIENT_ID` | `quickstart` with the embedded provider | this app's client id (also: roles from Keycloak `resource_access.<id>`) |
//! | `OIDC_CLIENT_SECRET` | — | this app's client secret; unset: a public client (PKCE only) |
//! | `OIDC_SCOPES` | `openid profile email` | scopes requested at login (space separated) |
//! | `OIDC_STRICT_AT_JWT` | `false` | `true` requires RFC 9068 `typ: at+jwt` on bearer tokens |
//! | `OIDC_UNKNOWN_KID_COOLDOWN_SECS` | `30` | minimum time between JWKS refetches forced by unknown `kid`s |
//! | `OIDC_REFRESH_MARGIN_SECS` | `60` | refresh a login's access token this long before it expires |
//! | `SESSION_STORE` | `memory` | where login sessions live: `memory` (this process only), or `redis://…`, `postgres://…` (also `postgresql://…`) to share them between instances (a login on one is valid on all); the PostgreSQL tables are created at startup |
//! | `HEADER_READ_TIMEOUT_SECS` | `10` | a connection that has not sent a whole request head in this time is closed |
//! | `BODY_READ_TIMEOUT_SECS` | `30` | a request body not received in full this long after its head is answered 408 |
//! | `MAX_CONNECTIONS` | `4096` | connections served at once; more wait to be accepted |
//! | `SESSION_NAMESPACE` | `OIDC_CLIENT_ID` | this app's namespace in the session store: instances with the same one share sessions; apps sharing a Redis or PostgreSQL server with different ones never accept each other's sessions (a session also records the client id it was made for) |
//!
//! # Routes
//!
//! - `GET /`: public HTML page with log-in and log-out buttons.
//! - `GET /me`: login required (a browser is sent to log in; other clients get 401); JSON
//!   with `sub`, `email` (when known), `iss` and `claims`.
//! - `GET /auth/login?return_to=…`, `GET /auth/callback`, `POST /auth/logout`: the login flow.
//! - `POST /auth/backchannel-logout`: OIDC Back-Channel Logout (register it at the provider as
//!   the client's `backchannel_logout_uri`; the embedded provider does so).
//! - `GET /metrics`: Prometheus text of the library's metrics (requests by outcome, latency,
//!   in flight, JWKS fetches, logins, refreshes, logouts).
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
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use oidc_axum::{Claims, User};
use oidc_core::flow::OidcClient;
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_tower::login::LoginLayer;
use oidc_tower::login::store::{PostgresStore, RedisStore};
use oidc_tower::{BearerAuthLayer, RequireLayer};
use serde_json::json;
use tracing_subscriber::EnvFilter;

/// The audience of tokens minted by the embedded provider.
const EMBEDDED_AUDIENCE: &str = "api://default";
/// The client id registered at the embedded provider.
const EMBEDDED_CLIENT: &str = "quickstart";

#[derive(Clone)]
struct AppState {
    provider: Provider,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn home(user: Option<User>) -> Html<String> {
    let body = match user {
        Some(user) => format!(
            "<p>Signed in as <strong id=\"user\">{}</strong>.</p>\
             <p><a href=\"/me\">Your claims (/me)</a></p>\
             <form method=\"post\" action=\"/auth/logout\"><button id=\"logout\" type=\"submit\">Log out</button></form>",
            escape(user.email().unwrap_or(user.subject()))
        ),
        None => "<p>You are not signed in.</p>\
                 <p><a id=\"login\" href=\"/auth/login?return_to=/me\">Log in</a></p>"
            .to_owned(),
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>oidc quickstart</title></head>\
         <body><h1>oidc quickstart</h1>{body}\
         <p>The API: <code>GET /api/me</code> with a bearer token.</p></body></html>"
    ))
}

async fn me(user: User) -> Json<serde_json::Value> {
    Json(json!({
        "sub": user.subject(),
        "email": user.email(),
        "iss": user.issuer(),
        "claims": user.claims(),
    }))
}

async fn api_me(claims: Claims) -> Json<serde_json::Value> {
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
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "provider keys unavailable\n",
        ),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Where login sessions live (`SESSION_STORE`).
enum SessionStoreUrl {
    Memory,
    Redis(String),
    Postgres(String),
}

impl SessionStoreUrl {
    /// Reads `SESSION_STORE`. The error never repeats the value (it may hold a password).
    fn parse(value: Option<String>) -> Result<Self, String> {
        let Some(value) = value else {
            return Ok(Self::Memory);
        };
        if value == "memory" {
            Ok(Self::Memory)
        } else if value.starts_with("redis://") {
            Ok(Self::Redis(value))
        } else if value.starts_with("postgres://") || value.starts_with("postgresql://") {
            Ok(Self::Postgres(value))
        } else {
            Err(
                "SESSION_STORE must be `memory`, a `redis://…` URL or a `postgres://…` \
                 (`postgresql://…`) URL"
                    .to_owned(),
            )
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(_) => "redis",
            Self::Postgres(_) => "postgres",
        }
    }

    /// Connects to the store (creating the PostgreSQL tables) and gives it to `login`.
    ///
    /// A store operation fails after about 3 s while the store is down (the login layer then
    /// answers 503); Redis is reconnected in the background.
    async fn apply(self, login: LoginLayer) -> Result<LoginLayer, String> {
        const TIMEOUT: Duration = Duration::from_secs(3);
        match self {
            Self::Memory => Ok(login),
            Self::Redis(url) => {
                use oidc_tower::login::store::fred::prelude::{
                    Builder, ClientLike as _, Config, ReconnectPolicy,
                };
                let config = Config::from_url(&url)
                    .map_err(|e| format!("SESSION_STORE is not a valid Redis URL: {e}"))?;
                let pool = Builder::from_config(config)
                    .with_performance_config(|p| p.default_command_timeout = TIMEOUT)
                    .with_connection_config(|c| {
                        c.connection_timeout = TIMEOUT;
                        c.internal_command_timeout = TIMEOUT;
                    })
                    .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
                    .build_pool(4)
                    .map_err(|e| format!("SESSION_STORE: cannot set up Redis: {e}"))?;
                pool.init()
                    .await
                    .map_err(|e| format!("SESSION_STORE: cannot connect to Redis: {e}"))?;
                Ok(login.with_shared_store(RedisStore::new(pool)))
            }
            Self::Postgres(url) => {
                use oidc_tower::login::store::sqlx::postgres::PgPoolOptions;
                let pool = PgPoolOptions::new()
                    .max_connections(10)
                    .acquire_timeout(TIMEOUT)
                    .connect(&url)
                    .await
                    .map_err(|e| format!("SESSION_STORE: cannot connect to PostgreSQL: {e}"))?;
                let store = PostgresStore::new(pool);
                store.migrate().await.map_err(|e| {
                    format!("SESSION_STORE: cannot create the session tables in PostgreSQL: {e}")
                })?;
                Ok(login.with_shared_store(store))
            }
        }
    }
}

/// The provider to use: `Some(issuer)` from `OIDC_ISSUER`, or `None` for the embedded test
/// provider.
///
/// The embedded provider signs with public test keys and logs anyone in: it starts only when
/// `OIDC_ISSUER` is truly unset (an empty value is a mistake, not a request for it) and the
/// app is reachable on loopback only (`BIND` a loopback address, `APP_URL` `http` on a
/// loopback host). Anything else is a start-up error that says what to set.
fn choose_issuer(
    issuer: Option<std::ffi::OsString>,
    bind: SocketAddr,
    app_url: &str,
) -> Result<Option<String>, String> {
    const WHY: &str = "the embedded test provider signs with public keys and lets anyone sign in, \
                       so it runs only for an app on loopback; set OIDC_ISSUER to your provider's issuer";
    if let Some(issuer) = issuer {
        let issuer = issuer
            .into_string()
            .map_err(|_| "OIDC_ISSUER is not valid UTF-8".to_owned())?;
        if issuer.trim().is_empty() {
            return Err(
                "OIDC_ISSUER is set but empty: set it to your provider's issuer URL, or unset it \
                 to run on the embedded test provider (loopback only)"
                    .to_owned(),
            );
        }
        return Ok(Some(issuer));
    }
    if !bind.ip().is_loopback() {
        return Err(format!(
            "OIDC_ISSUER is not set and BIND {bind} is not a loopback address: {WHY}"
        ));
    }
    let loopback_http = url::Url::parse(app_url).is_ok_and(|url| {
        url.scheme() == "http"
            && match url.host() {
                Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            }
    });
    if !loopback_http {
        return Err(format!(
            "OIDC_ISSUER is not set and APP_URL {app_url:?} is not an http URL on a loopback host: {WHY}"
        ));
    }
    Ok(None)
}

fn app(verifier: AccessTokenVerifier, login: LoginLayer, metrics: PrometheusHandle) -> Router {
    let state = AppState {
        provider: verifier.provider().clone(),
    };
    let bearer = BearerAuthLayer::new(verifier).with_realm("quickstart");
    let api = Router::new()
        .route("/api/me", get(api_me))
        .route(
            "/api/admin",
            get(admin).route_layer(RequireLayer::scopes(["api:write"]).with_realm("quickstart")),
        )
        .layer(bearer);
    Router::new()
        .route("/", get(home))
        .route("/me", get(me))
        .merge(api)
        .route("/readyz", get(readyz))
        .with_state(state)
        .layer(login.require_login(false))
        // Liveness and metrics answer even when the session layer or the provider cannot.
        .route("/healthz", get(healthz))
        .route(
            "/metrics",
            get(move || {
                let text = metrics.render();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        text,
                    )
                }
            }),
        )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| {
            EnvFilter::new("quickstart=debug,oidc=info,oidc_core=info,oidc_tower=info")
        }))
        .init();

    let metrics = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("metrics recorder: {e}"))?;

    let bind: SocketAddr = env("BIND")
        .unwrap_or_else(|| "127.0.0.1:3000".to_owned())
        .parse()
        .map_err(|e| format!("BIND is not a socket address: {e}"))?;
    // Checked before anything listens: the embedded provider only for an app on loopback.
    let issuer = choose_issuer(
        std::env::var_os("OIDC_ISSUER"),
        bind,
        &env("APP_URL").unwrap_or_else(|| format!("http://{bind}")),
    )?;
    let listener = tokio::net::TcpListener::bind(bind).await?;
    let local = listener.local_addr()?;
    let app_url = env("APP_URL")
        .unwrap_or_else(|| format!("http://{local}"))
        .trim_end_matches('/')
        .to_owned();
    let strict = env("OIDC_STRICT_AT_JWT").is_some_and(|v| v == "true" || v == "1");
    let cooldown = env("OIDC_UNKNOWN_KID_COOLDOWN_SECS")
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|e| format!("OIDC_UNKNOWN_KID_COOLDOWN_SECS is not a number: {e}"))?
        .unwrap_or(30);
    let refresh_margin = env("OIDC_REFRESH_MARGIN_SECS")
        .map(|v| v.parse::<u64>())
        .transpose()
        .map_err(|e| format!("OIDC_REFRESH_MARGIN_SECS is not a number: {e}"))?
        .unwrap_or(60);
    let session_store = SessionStoreUrl::parse(env("SESSION_STORE"))?;
    let defaults = server_limits::Limits::default();
    let secs = |name: &str, default: Duration| -> Result<Duration, String> {
        match env(name) {
            None => Ok(default),
            Some(v) => match v.parse::<u64>() {
                Ok(n) if n > 0 => Ok(Duration::from_secs(n)),
                _ => Err(format!("{name} must be a whole number of seconds above 0")),
            },
        }
    };
    let max_connections = match env("MAX_CONNECTIONS") {
        None => defaults.max_connections,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or("MAX_CONNECTIONS must be a whole number above 0")?,
    };
    let limits = server_limits::Limits::new(
        secs("HEADER_READ_TIMEOUT_SECS", defaults.header_read_timeout)?,
        secs("BODY_READ_TIMEOUT_SECS", defaults.body_read_timeout)?,
        max_connections,
    );
    let scopes: Option<Vec<String>> =
        env("OIDC_SCOPES").map(|s| s.split_whitespace().map(str::to_owned).collect());
    let secret = env("OIDC_CLIENT_SECRET");

    let (issuer, client_id, audience, embedded) = match issuer {
        Some(issuer) => {
            let client_id = env("OIDC_CLIENT_ID");
            let audience = env("OIDC_AUDIENCE").or_else(|| client_id.clone()).ok_or(
                "OIDC_ISSUER is set but neither OIDC_AUDIENCE nor OIDC_CLIENT_ID is: \
                 set the audience your provider puts in access tokens",
            )?;
            let client_id = client_id.ok_or(
                "OIDC_ISSUER is set but OIDC_CLIENT_ID is not: register this app at your \
                 provider and set its client id",
            )?;
            (issuer, client_id, audience, None)
        }
        None => {
            let op = oidc_testing::TestProvider::start().await;
            let client_id = env("OIDC_CLIENT_ID").unwrap_or_else(|| EMBEDDED_CLIENT.to_owned());
            let audience = env("OIDC_AUDIENCE")
                .or_else(|| env("OIDC_CLIENT_ID"))
                .unwrap_or_else(|| EMBEDDED_AUDIENCE.to_owned());
            let registration = match &secret {
                Some(secret) => oidc_testing::ClientRegistration::confidential(
                    &client_id,
                    secret,
                    &format!("{app_url}/auth/callback"),
                ),
                None => oidc_testing::ClientRegistration::public(
                    &client_id,
                    &format!("{app_url}/auth/callback"),
                ),
            }
            .add_post_logout_redirect_uri(&format!("{app_url}/"))
            .with_backchannel_logout_uri(&format!("{app_url}/auth/backchannel-logout"))
            .with_access_token_audience(&audience);
            op.register_client(registration);
            (op.issuer(), client_id, audience, Some(op))
        }
    };

    let provider = Provider::builder(issuer.clone())
        .with_unknown_kid_cooldown(Duration::from_secs(cooldown))
        .build()?;
    let mut verifier =
        AccessTokenVerifier::new(provider.clone(), audience.clone()).require_at_jwt(strict);
    verifier = verifier.with_client_id(client_id.clone());
    let mut client = OidcClient::new(
        provider,
        client_id.clone(),
        format!("{app_url}/auth/callback"),
    )?;
    if let Some(secret) = &secret {
        client = client.with_client_secret(secret.clone());
    }
    if let Some(scopes) = scopes {
        client = client.with_scopes(scopes);
    }
    let store_kind = session_store.kind();
    let mut login =
        LoginLayer::new(client, &app_url)?.with_refresh_margin(Duration::from_secs(refresh_margin));
    if let Some(namespace) = env("SESSION_NAMESPACE") {
        login = login.with_store_namespace(namespace);
    }
    let login = session_store.apply(login).await?;

    tracing::info!(%local, %app_url, %issuer, %client_id, %audience, session_store = store_kind, "quickstart listening");
    if let Some(op) = &embedded {
        let reader = op
            .token()
            .audience(audience.as_str())
            .scope("api:read")
            .expires_in(3600)
            .sign();
        let writer = op
            .token()
            .audience(audience.as_str())
            .scope("api:read api:write")
            .expires_in(3600)
            .sign();
        println!(
            "Embedded OpenID Provider at {} (set OIDC_ISSUER to use your own).",
            op.issuer()
        );
        println!();
        println!("Log in with a browser: open {app_url}/ and press \"Log in\".");
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

    server_limits::serve(listener, app(verifier, login, metrics), limits, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    drop(embedded);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::choose_issuer;

    #[test]
    fn the_embedded_provider_runs_only_unset_and_on_loopback() {
        let local = "127.0.0.1:3000".parse().unwrap();
        let app = "http://127.0.0.1:3000";
        assert_eq!(choose_issuer(None, local, app), Ok(None));
        assert_eq!(
            choose_issuer(None, local, "http://localhost:3000"),
            Ok(None)
        );
        assert_eq!(
            choose_issuer(None, "[::1]:3000".parse().unwrap(), "http://[::1]:3000"),
            Ok(None)
        );
        assert_eq!(
            choose_issuer(
                Some("https://id.example.com".into()),
                "0.0.0.0:3000".parse().unwrap(),
                "https://app.example.com"
            ),
            Ok(Some("https://id.example.com".to_owned()))
        );
        let empty = choose_issuer(Some("".into()), local, app).unwrap_err();
        assert!(empty.contains("OIDC_ISSUER is set but empty"), "{empty}");
        assert!(choose_issuer(Some("  ".into()), local, app).is_err());
        let wide = choose_issuer(
            None,
            "0.0.0.0:3000".parse().unwrap(),
            "http://127.0.0.1:3000",
        )
        .unwrap_err();
        assert!(
            wide.contains("BIND 0.0.0.0:3000 is not a loopback address"),
            "{wide}"
        );
        for url in [
            "https://127.0.0.1:3000",
            "http://app.example.com",
            "http://10.0.0.1:3000",
            "http://localhost.example.com",
            "nonsense",
        ] {
            let e = choose_issuer(None, local, url).unwrap_err();
            assert!(e.contains("APP_URL"), "{url}: {e}");
        }
    }
}
