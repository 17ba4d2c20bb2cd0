//! The token server: logs users in through a CLI (code flow with PKCE: the server makes the
//! authorization request, the CLI receives the code on its loopback redirect URI and hands it
//! back, the server exchanges it with its own confidential client), then mints its own
//! tokens for them at `POST /token`, revalidating each user with the provider every interval.
//!
//! | route | what |
//! |---|---|
//! | `POST /cli/login` | starts a login: `{"login_id", "authorize_url"}` (open the URL in a browser) |
//! | `POST /cli/complete` | `{"login_id", "callback_query"}` (the query the CLI's redirect URI received): exchanges the code, answers `{"session"}` |
//! | `POST /token` | `Authorization: Bearer <session>`: a minted token, `{"access_token", "token_type", "expires_in"}` |
//! | `POST /cli/logout` | `Authorization: Bearer <session>`: forgets the login |
//! | `GET /.well-known/openid-configuration`, `GET /.well-known/jwks.json` | what the connectors verify with |

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_core::flow::{AuthorizationResponse, AuthorizeOptions, OidcClient, Transaction};
use oidc_core::issue::{MintRequest, Revalidator, TokenIssuer};
use oidc_tower::issue::IssuerDocuments;
use serde::Deserialize;

use crate::{bearer, error, flow_error, mint_error};

struct Server {
    client: OidcClient,
    issuer: TokenIssuer,
    revalidator: Revalidator,
    /// Logins under way, single use, 10 minutes at most.
    logins: moka::sync::Cache<String, Arc<Transaction>>,
}

/// A random credential: 256 bits, base64url (`None` if the system's generator fails).
fn random() -> Option<String> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).ok()?;
    Some(URL_SAFE_NO_PAD.encode(bytes))
}

/// The key a session is kept under: its SHA-256, so that the credential itself is not kept.
fn session_key(session: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, session.as_bytes()))
}

async fn login(State(s): State<Arc<Server>>) -> Response {
    // `prompt=consent`: some providers (oidc-provider) grant `offline_access`, hence a
    // refresh token, only then; without one the login could not be revalidated.
    let options = AuthorizeOptions::new().with_prompt("consent");
    let (url, tx) = match s.client.authorize(&options).await {
        Ok(started) => started,
        Err(e) => return flow_error(&e),
    };
    let Some(login_id) = random() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "random");
    };
    s.logins.insert(login_id.clone(), Arc::new(tx));
    no_store(Json(
        serde_json::json!({ "login_id": login_id, "authorize_url": url }),
    ))
}

#[derive(Deserialize)]
struct Complete {
    login_id: String,
    callback_query: String,
}

async fn complete(State(s): State<Arc<Server>>, Json(body): Json<Complete>) -> Response {
    let Some(tx) = s.logins.remove(&body.login_id) else {
        return error(StatusCode::BAD_REQUEST, "unknown_login");
    };
    let Ok(response) = AuthorizationResponse::from_query(&body.callback_query) else {
        return error(StatusCode::BAD_REQUEST, "invalid_callback");
    };
    let tokens = match s.client.complete(&tx, response).await {
        Ok(tokens) => tokens,
        Err(e) => return flow_error(&e),
    };
    let Some(session) = random() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "random");
    };
    if s.revalidator
        .register(session_key(&session), tokens)
        .is_err()
    {
        // No refresh token: the login could not be revalidated, so it gets no tokens.
        return error(StatusCode::BAD_GATEWAY, "no_refresh_token");
    }
    no_store(Json(serde_json::json!({ "session": session })))
}

async fn token(State(s): State<Arc<Server>>, headers: HeaderMap) -> Response {
    let Some(session) = bearer(&headers) else {
        return error(StatusCode::UNAUTHORIZED, "login_required");
    };
    match s
        .revalidator
        .mint(&session_key(session), &s.issuer, &MintRequest::new())
        .await
    {
        Ok(minted) => no_store(Json(serde_json::json!({
            "access_token": minted.token().secret(),
            "token_type": "Bearer",
            "expires_in": minted.expires_in().as_secs(),
        }))),
        Err(e) => mint_error(&e),
    }
}

async fn logout(State(s): State<Arc<Server>>, headers: HeaderMap) -> StatusCode {
    if let Some(session) = bearer(&headers) {
        s.revalidator.remove(&session_key(session));
    }
    StatusCode::NO_CONTENT
}

fn no_store(body: impl IntoResponse) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The server's router. `client` is the server's own client at the provider (its redirect
/// URI is the CLI's loopback one); `revalidator` must use the same client.
pub fn app(client: OidcClient, issuer: TokenIssuer, revalidator: Revalidator) -> Router {
    let docs = IssuerDocuments::new(issuer.clone());
    let (discovery, jwks) = (
        docs.discovery_path().to_owned(),
        docs.jwks_path().to_owned(),
    );
    let server = Server {
        client,
        issuer,
        revalidator,
        logins: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_live(Duration::from_secs(600))
            .build(),
    };
    Router::new()
        .route("/cli/login", post(login))
        .route("/cli/complete", post(complete))
        .route("/cli/logout", post(logout))
        .route("/token", post(token))
        .with_state(Arc::new(server))
        .route_service(&discovery, docs.clone())
        .route_service(&jwks, docs)
}
