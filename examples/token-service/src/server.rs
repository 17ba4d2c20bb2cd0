//! The token server: logs users in through a CLI, then mints its own tokens for them at
//! `POST /token`, revalidating each user with the provider every interval. Two ways to log in,
//! both with the server's own confidential client:
//!
//! - **code flow with PKCE**: the server makes the authorization request, the CLI receives the
//!   code on its loopback redirect URI and hands it back, the server exchanges it;
//! - **device flow** (RFC 8628), for a CLI without a browser: the server asks the provider for
//!   a device code and keeps it, the CLI only shows the user code, and the server polls the
//!   provider until the user approved.
//!
//! | route | what |
//! |---|---|
//! | `POST /cli/login` | starts a login: `{"login_id", "authorize_url"}` (open the URL in a browser) |
//! | `POST /cli/complete` | `{"login_id", "callback_query"}` (the query the CLI's redirect URI received): exchanges the code, answers `{"session"}` |
//! | `POST /cli/device` | starts a device login: `{"login_id", "user_code", "verification_uri", "verification_uri_complete"?, "expires_in", "interval"}` (show the code and the URI) |
//! | `POST /cli/device/complete` | `{"login_id"}`: waits until the user approved at the provider (at most until the code expires), answers `{"session"}`; 403 `access_denied` when the user refused, 410 `expired_token` when the code expired, 404 `unknown_login` for an unknown or used login id |
//! | `POST /token` | `Authorization: Bearer <session>`: a minted token, `{"access_token", "token_type", "expires_in"}` |
//! | `POST /cli/logout` | `Authorization: Bearer <session>`: forgets the login |
//! | `GET /.well-known/openid-configuration`, `GET /.well-known/jwks.json` | what the connectors verify with |
//!
//! A login id is single use: the first `complete` takes it, whatever its outcome (a CLI whose
//! connection dropped during the wait starts again). The device code never leaves the server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_core::error::{FlowError, FlowErrorKind};
use oidc_core::flow::{
    AuthorizationResponse, AuthorizeOptions, DeviceAuthorization, DeviceFlow, OidcClient, TokenSet,
    Transaction,
};
use oidc_core::issue::{MintRequest, Revalidator, TokenIssuer};
use oidc_tower::issue::IssuerDocuments;
use serde::Deserialize;

use crate::{bearer, error, flow_error, mint_error};

/// How many logins of each kind may be under way; past it the oldest are dropped.
const MAX_PENDING_LOGINS: u64 = 10_000;
/// How long a device login is kept after its code expired, so that a late `complete` gets a
/// clear 410 (and sends nothing to the provider) rather than a 404.
const DEVICE_GRACE: Duration = Duration::from_secs(30);

struct Server {
    client: OidcClient,
    device: DeviceFlow,
    issuer: TokenIssuer,
    revalidator: Revalidator,
    /// Logins under way, single use, 10 minutes at most.
    logins: moka::sync::Cache<String, Arc<Transaction>>,
    /// Device logins under way, single use, until their code expires (plus the grace).
    device_logins: moka::sync::Cache<String, DeviceLogin>,
}

/// A device login under way: the provider's authorization (with the device code) and how long
/// it is kept.
#[derive(Clone)]
struct DeviceLogin {
    authorization: Arc<DeviceAuthorization>,
    keep_for: Duration,
}

/// Each device login expires with its code: [`DeviceLogin::keep_for`].
struct UntilCodeExpires;

impl moka::Expiry<String, DeviceLogin> for UntilCodeExpires {
    fn expire_after_create(&self, _: &String, login: &DeviceLogin, _: Instant) -> Option<Duration> {
        Some(login.keep_for)
    }
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
    match s.client.complete(&tx, response).await {
        Ok(tokens) => s.register(tokens),
        Err(e) => flow_error(&e),
    }
}

impl Server {
    /// A login done, by either flow: the user's tokens are kept by the revalidator under a
    /// new session credential, which is the answer.
    fn register(&self, tokens: TokenSet) -> Response {
        let Some(session) = random() else {
            return error(StatusCode::INTERNAL_SERVER_ERROR, "random");
        };
        if self
            .revalidator
            .register(session_key(&session), tokens)
            .is_err()
        {
            // No refresh token: the login could not be revalidated, so it gets no tokens.
            return error(StatusCode::BAD_GATEWAY, "no_refresh_token");
        }
        no_store(Json(serde_json::json!({ "session": session })))
    }
}

async fn device_login(State(s): State<Arc<Server>>) -> Response {
    let authorization = match s.device.start().await {
        Ok(authorization) => authorization,
        // The provider refused the server's own client, or answered something unacceptable:
        // not the user's fault, nothing to log in again for.
        Err(e) if e.kind() == FlowErrorKind::Timeout => {
            return error(StatusCode::GATEWAY_TIMEOUT, "provider_timeout");
        }
        Err(_) => return error(StatusCode::BAD_GATEWAY, "provider_failure"),
    };
    let Some(login_id) = random() else {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "random");
    };
    let expires_in =
        u64::try_from(authorization.expires_at().saturating_sub(s.client.now())).unwrap_or(0);
    let mut body = serde_json::json!({
        "login_id": login_id,
        "user_code": authorization.user_code(),
        "verification_uri": authorization.verification_uri(),
        "expires_in": expires_in,
        "interval": authorization.interval().as_secs(),
    });
    if let (Some(uri), Some(fields)) = (
        authorization.verification_uri_complete(),
        body.as_object_mut(),
    ) {
        fields.insert("verification_uri_complete".to_owned(), uri.into());
    }
    let login = DeviceLogin {
        authorization: Arc::new(authorization),
        keep_for: Duration::from_secs(expires_in).saturating_add(DEVICE_GRACE),
    };
    s.device_logins.insert(login_id, login);
    no_store(Json(body))
}

#[derive(Deserialize)]
struct DeviceComplete {
    login_id: String,
}

async fn device_complete(
    State(s): State<Arc<Server>>,
    Json(body): Json<DeviceComplete>,
) -> Response {
    // Taken before the wait: a second `complete` with this id, during the wait or after it,
    // finds nothing.
    let Some(login) = s.device_logins.remove(&body.login_id) else {
        return error(StatusCode::NOT_FOUND, "unknown_login");
    };
    // Bounded by the code's expiry (no poll is sent after it).
    match s.device.wait(&login.authorization).await {
        Ok(tokens) => s.register(tokens),
        Err(FlowError::AuthorizationDenied { .. }) => error(StatusCode::FORBIDDEN, "access_denied"),
        Err(FlowError::DeviceCodeExpired) => error(StatusCode::GONE, "expired_token"),
        Err(e) => flow_error(&e),
    }
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
/// URI is the CLI's loopback one; the device flow uses the provider's published
/// `device_authorization_endpoint`); `revalidator` must use the same client.
pub fn app(client: OidcClient, issuer: TokenIssuer, revalidator: Revalidator) -> Router {
    let docs = IssuerDocuments::new(issuer.clone());
    let (discovery, jwks) = (
        docs.discovery_path().to_owned(),
        docs.jwks_path().to_owned(),
    );
    let server = Server {
        device: DeviceFlow::new(client.clone()),
        client,
        issuer,
        revalidator,
        logins: moka::sync::Cache::builder()
            .max_capacity(MAX_PENDING_LOGINS)
            .time_to_live(Duration::from_secs(600))
            .build(),
        device_logins: moka::sync::Cache::builder()
            .max_capacity(MAX_PENDING_LOGINS)
            .expire_after(UntilCodeExpires)
            .build(),
    };
    Router::new()
        .route("/cli/login", post(login))
        .route("/cli/complete", post(complete))
        .route("/cli/device", post(device_login))
        .route("/cli/device/complete", post(device_complete))
        .route("/cli/logout", post(logout))
        .route("/token", post(token))
        .with_state(Arc::new(server))
        .route_service(&discovery, docs.clone())
        .route_service(&jwks, docs)
}
