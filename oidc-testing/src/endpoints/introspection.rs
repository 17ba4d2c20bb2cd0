//! The RFC 7662 token introspection endpoint (`POST /introspect`), its knobs
//! and its recordings.
//!
//! Answers are set per token by the test ([`TestProvider::set_introspection`]);
//! any other token is `{"active": false}`. The endpoint does not authenticate
//! the caller: it records what the caller sent (the `Authorization` header and
//! the form parameters) so that a test can assert how the client
//! authenticated.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::provider::TestProvider;
use crate::state::ServerState;

/// Path of the introspection endpoint.
pub(crate) const INTROSPECTION_PATH: &str = "/introspect";

/// One request received by the introspection endpoint.
#[derive(Debug, Clone, Default)]
pub struct IntrospectionRequest {
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The form parameters, in order.
    pub params: Vec<(String, String)>,
    /// The query string of the request URI, if any.
    pub query: Option<String>,
}

impl IntrospectionRequest {
    /// The first form parameter called `name`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The introspection endpoint's knobs and recordings.
#[derive(Debug, Default)]
pub(crate) struct IntrospectionState {
    /// The answer per token.
    responses: HashMap<String, Value>,
    /// A status to answer with instead (for failure tests).
    status: Option<u16>,
    /// Every request received.
    requests: Vec<IntrospectionRequest>,
}

pub(crate) async fn introspect(
    State(server): State<ServerState>,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> Response {
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let request = IntrospectionRequest {
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        params,
        query: uri.query().map(str::to_owned),
    };
    let mut state = server.provider.introspection();
    let token = request.param("token").map(str::to_owned);
    state.requests.push(request);
    if let Some(status) = state.status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return (status, "introspection failure").into_response();
    }
    let answer = token
        .and_then(|t| state.responses.get(&t).cloned())
        .unwrap_or_else(|| json!({ "active": false }));
    (
        [(header::CONTENT_TYPE, "application/json")],
        answer.to_string(),
    )
        .into_response()
}

impl TestProvider {
    /// The introspection endpoint: [`issuer`](TestProvider::issuer) + `/introspect`.
    pub fn introspection_endpoint(&self) -> String {
        format!("{}{INTROSPECTION_PATH}", self.issuer())
    }

    /// Sets the introspection answer for `token` (any JSON, valid or not);
    /// other tokens get `{"active": false}`.
    pub fn set_introspection(&self, token: &str, answer: Value) {
        self.state()
            .introspection()
            .responses
            .insert(token.to_owned(), answer);
    }

    /// Makes the introspection endpoint answer every request with `status`
    /// (`None` to restore).
    pub fn fail_introspection(&self, status: Option<u16>) {
        self.state().introspection().status = status;
    }

    /// Every request the introspection endpoint received, in order.
    pub fn introspection_requests(&self) -> Vec<IntrospectionRequest> {
        self.state().introspection().requests.clone()
    }

    /// How many requests the introspection endpoint received.
    pub fn introspection_count(&self) -> usize {
        self.state().introspection().requests.len()
    }
}
