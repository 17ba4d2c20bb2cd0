//! The router of the `bearer-only` example: every route needs a valid bearer token, and
//! `POST /api/notes` also the scope `notes:write`. See `src/main.rs` for how it is run.

use axum::routing::{get, post};
use axum::{Json, Router};
use oidc_axum::{AccessTokenVerifier, BearerAuthLayer, Claims, RequireScopes, scope_set};
use serde_json::{Value, json};

scope_set!(pub NotesWrite = ["notes:write"]);

/// `GET /api/me`: any valid token.
async fn me(claims: Claims) -> Json<Value> {
    let scopes: Vec<&str> = claims.scopes().iter().collect();
    Json(json!({ "sub": claims.subject(), "scopes": scopes }))
}

/// `POST /api/notes`: a valid token with the scope `notes:write` (403 otherwise).
async fn add_note(claims: RequireScopes<NotesWrite>) -> Json<Value> {
    Json(json!({ "sub": claims.subject(), "created": true }))
}

/// The API: `GET /api/me` and `POST /api/notes`, behind the bearer layer.
pub fn app(verifier: AccessTokenVerifier) -> Router {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/notes", post(add_note))
        .layer(BearerAuthLayer::new(verifier))
}
