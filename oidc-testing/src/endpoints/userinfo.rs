//! The UserInfo endpoint (`GET`/`POST /userinfo`) and its knobs.
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::failure::Failure;
use crate::provider::TestProvider;
use crate::state::{ProviderState, ServerState};
use crate::token::unix_now;

use super::reply::{JsonReply, REALM, respond_with_failure};

/// Path of the UserInfo endpoint.
pub(crate) const USERINFO_PATH: &str = "/userinfo";

fn bearer_challenge(error: Option<&str>) -> JsonReply {
    let challenge = match error {
        Some(error) => format!("Bearer realm=\"{REALM}\", error=\"{error}\""),
        None => format!("Bearer realm=\"{REALM}\""),
    };
    JsonReply {
        status: StatusCode::UNAUTHORIZED,
        headers: HeaderValue::from_str(&challenge)
            .ok()
            .map(|value| (header::WWW_AUTHENTICATE, value))
            .into_iter()
            .collect(),
        body: match error {
            Some(error) => json!({ "error": error }),
            None => json!({}),
        },
    }
}

fn userinfo_reply(provider: &ProviderState, headers: &HeaderMap) -> JsonReply {
    let Some(authorization) = headers.get(header::AUTHORIZATION) else {
        return bearer_challenge(None);
    };
    let token = authorization
        .to_str()
        .ok()
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim().to_owned());
    let Some(token) = token else {
        return bearer_challenge(Some("invalid_token"));
    };
    let (sub, mutations) = {
        let auth = provider.auth();
        let valid = auth
            .access_tokens
            .get(&token)
            .filter(|entry| entry.exp > unix_now() && auth.grant_is_active(entry.grant))
            .and_then(|entry| auth.grants.get(entry.grant));
        match valid {
            Some(grant) => (grant.sub.clone(), auth.userinfo_mutations.clone()),
            None => return bearer_challenge(Some("invalid_token")),
        }
    };
    let mut claims = Map::new();
    claims.insert("sub".to_owned(), Value::from(sub.as_str()));
    claims.insert(
        "email".to_owned(),
        Value::from(format!("{sub}@example.test")),
    );
    claims.insert("email_verified".to_owned(), Value::from(true));
    claims.insert("name".to_owned(), Value::from(sub.as_str()));
    claims.insert("preferred_username".to_owned(), Value::from(sub.as_str()));
    for mutation in &mutations {
        mutation(&mut claims);
    }
    JsonReply::ok(claims)
}

pub(crate) async fn userinfo(State(server): State<ServerState>, headers: HeaderMap) -> Response {
    let failure = {
        let mut auth = server.provider.auth();
        auth.userinfo_requests += 1;
        auth.userinfo_failure.clone()
    };
    let provider = Arc::clone(&server.provider);
    respond_with_failure(failure, &server, move || {
        userinfo_reply(&provider, &headers)
    })
    .await
}

impl TestProvider {
    /// The UserInfo endpoint: [`issuer`](TestProvider::issuer) +
    /// `/userinfo`.
    pub fn userinfo_endpoint(&self) -> String {
        format!("{}{USERINFO_PATH}", self.issuer())
    }

    /// Sets how the UserInfo endpoint misbehaves (DOS-04), like
    /// [`fail_token`](TestProvider::fail_token). Requests are counted in
    /// every case.
    pub fn fail_userinfo(&self, failure: Failure) {
        self.state().auth().userinfo_failure = failure;
    }

    /// Adds a mutation applied to every successful UserInfo response from
    /// now on (IDT-16: another `sub`); removed by
    /// [`clear_mutations`](TestProvider::clear_mutations).
    pub fn mutate_userinfo(&self, f: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static) {
        self.state().auth().userinfo_mutations.push(Arc::new(f));
    }

    /// How many requests reached the UserInfo endpoint, whatever their
    /// outcome.
    pub fn userinfo_request_count(&self) -> usize {
        self.state().auth().userinfo_requests
    }
}
