//! The RFC 7009 token revocation endpoint (`POST /revoke`), its knobs and its
//! recordings.
//!
//! The client authenticates as at the token endpoint. A refresh token revokes
//! its whole grant (later refreshes get `invalid_grant`, its access tokens a
//! 401 at UserInfo); an access token stops working at UserInfo; an unknown
//! token is answered 200, as RFC 7009 §2.2 asks. A token issued to another
//! client is refused with `unauthorized_client` and not revoked.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::knobs::RecordedTokenRequest;
use crate::params::{find_param, first_duplicate, parse_params};
use crate::provider::TestProvider;
use crate::state::ServerState;

use super::reply::JsonReply;
use super::token::{basic_auth, recorded};

/// Path of the revocation endpoint.
pub(crate) const REVOCATION_PATH: &str = "/revoke";

/// The revocation endpoint's knobs and recordings.
#[derive(Debug, Default)]
pub(crate) struct RevocationState {
    /// Answer every request with this status and a non-JSON body.
    status: Option<u16>,
    /// Answer every request with this OAuth error (400).
    error: Option<String>,
    /// Refuse access tokens with `unsupported_token_type`, as providers with JWT access
    /// tokens do.
    access_tokens_unsupported: bool,
    requests: Vec<RecordedTokenRequest>,
    /// Tokens actually revoked, in order.
    revoked: Vec<String>,
}

fn error_reply(status: StatusCode, error: &str) -> Response {
    JsonReply {
        status,
        headers: Vec::new(),
        body: json!({ "error": error }),
    }
    .into_response(None)
}

pub(crate) async fn revoke(
    State(server): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_params(&body);
    let basic = basic_auth(&headers);
    let provider = Arc::clone(&server.provider);
    let mut auth = provider.auth();
    auth.revocation
        .requests
        .push(recorded(&params, &headers, &basic));
    if let Some(status) = auth.revocation.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "revocation failure").into_response();
    }
    if let Some(error) = auth.revocation.error.clone() {
        return error_reply(StatusCode::BAD_REQUEST, &error);
    }
    if first_duplicate(&params).is_some() {
        return error_reply(StatusCode::BAD_REQUEST, "invalid_request");
    }
    let client = match auth.authenticate(&params, &basic) {
        Ok(client) => client,
        Err(error) => return error.into_reply().into_response(None),
    };
    let Some(token) = find_param(&params, "token").map(str::to_owned) else {
        return error_reply(StatusCode::BAD_REQUEST, "invalid_request");
    };
    let grant = match auth.refresh_tokens.get(&token) {
        Some(entry) => Some((entry.grant, true)),
        None => auth
            .access_tokens
            .get(&token)
            .map(|entry| (entry.grant, false)),
    };
    let is_access = grant.is_some_and(|(_, is_refresh)| !is_refresh);
    if is_access && auth.revocation.access_tokens_unsupported {
        return error_reply(StatusCode::BAD_REQUEST, "unsupported_token_type");
    }
    if let Some((grant, is_refresh)) = grant {
        let owner = auth.grants.get(grant).map(|g| g.client_id.clone());
        if owner.as_deref() != Some(client.client_id.as_str()) {
            return error_reply(StatusCode::BAD_REQUEST, "unauthorized_client");
        }
        if is_refresh {
            auth.revoke_grant(grant);
        } else {
            auth.access_tokens.remove(&token);
        }
        auth.revocation.revoked.push(token);
    }
    StatusCode::OK.into_response()
}

impl TestProvider {
    /// The revocation endpoint: [`issuer`](TestProvider::issuer) + `/revoke`
    /// (also in discovery as `revocation_endpoint`).
    pub fn revocation_endpoint(&self) -> String {
        format!("{}{REVOCATION_PATH}", self.issuer())
    }

    /// Makes the revocation endpoint answer every request with `status` and a
    /// non-JSON body (`None` restores).
    pub fn fail_revocation(&self, status: Option<u16>) {
        self.state().auth().revocation.status = status;
    }

    /// Makes the revocation endpoint answer every request with the OAuth
    /// error `error` (400), for example `unsupported_token_type` (`None`
    /// restores).
    pub fn refuse_revocation(&self, error: Option<&str>) {
        self.state().auth().revocation.error = error.map(str::to_owned);
    }

    /// With `true`, access tokens are refused with `unsupported_token_type`
    /// (as by providers whose access tokens are JWTs); refresh tokens are
    /// still revoked.
    pub fn set_revocation_access_tokens_unsupported(&self, yes: bool) {
        self.state().auth().revocation.access_tokens_unsupported = yes;
    }

    /// Every request to the revocation endpoint, in order, whatever its
    /// outcome.
    pub fn revocation_requests(&self) -> Vec<RecordedTokenRequest> {
        self.state().auth().revocation.requests.clone()
    }

    /// The tokens the revocation endpoint revoked, in order.
    pub fn revoked_tokens(&self) -> Vec<String> {
        self.state().auth().revocation.revoked.clone()
    }
}
