//! The end-session endpoint (`GET`/`POST /logout`, RP-Initiated Logout):
//! ends the provider session, triggers back-channel logout, and its knobs.
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::Value;
use url::Url;

use crate::backchannel;
use crate::html;
use crate::knobs::LogoutState;
use crate::params::{find_param, first_duplicate, parse_params};
use crate::provider::TestProvider;
use crate::state::{OpSession, ProviderState, Recipient, ServerState};
use crate::token::unverified_claims;

use super::cookie::{session_clear_cookie, session_cookie};
use super::reply::see_other;

/// Path of the end-session (RP-initiated logout) endpoint.
pub(crate) const END_SESSION_PATH: &str = "/logout";

pub(crate) async fn end_session_get(
    State(server): State<ServerState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_params(query.unwrap_or_default().as_bytes());
    end_session(&server.provider, &headers, params).await
}

pub(crate) async fn end_session_post(
    State(server): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    end_session(&server.provider, &headers, parse_params(&body)).await
}

/// A provider session ended by the end-session endpoint, and the clients to
/// notify of it.
type EndedSession = (OpSession, Vec<Recipient>);

async fn end_session(
    provider: &Arc<ProviderState>,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> Response {
    let (response, ended) = end_session_step(provider, headers, params);
    // Back-channel logout (OIDC BCL 1.0 §2.5) before answering the browser,
    // as `oidc-provider` does: when the answer arrives, every delivery is
    // recorded.
    if let Some((session, recipients)) = ended {
        backchannel::notify(provider, recipients, &session.sub, &session.sid).await;
    }
    response
}

fn end_session_step(
    provider: &ProviderState,
    headers: &HeaderMap,
    params: Vec<(String, String)>,
) -> (Response, Option<EndedSession>) {
    let mut auth = provider.auth();
    auth.end_session_requests.push(params.clone());
    let reject = |description: &str| {
        (
            html::error_page(StatusCode::BAD_REQUEST, "invalid_request", description),
            None,
        )
    };
    if let Some(name) = first_duplicate(&params) {
        return reject(&format!("the parameter {name} is repeated"));
    }
    let hint_audiences = match find_param(&params, "id_token_hint") {
        None => None,
        Some(hint) => match unverified_claims(hint) {
            Some(claims) => Some(match claims.get("aud") {
                Some(Value::String(aud)) => vec![aud.clone()],
                Some(Value::Array(auds)) => auds
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                _ => Vec::new(),
            }),
            None => return reject("id_token_hint is not a JWT"),
        },
    };
    let mut client_id = find_param(&params, "client_id").map(str::to_owned);
    if let (Some(id), Some(audiences)) = (&client_id, &hint_audiences)
        && !audiences.contains(id)
    {
        return reject("client_id is not an audience of id_token_hint");
    }
    if client_id.is_none() {
        client_id = hint_audiences.and_then(|audiences| audiences.into_iter().next());
    }
    let redirect = match find_param(&params, "post_logout_redirect_uri") {
        None => None,
        Some(uri) => {
            let Some(client_id) = &client_id else {
                return reject("post_logout_redirect_uri needs client_id or id_token_hint");
            };
            let Some(client) = auth.clients.get(client_id) else {
                return reject("the client is not registered");
            };
            if !client.accepts_post_logout_redirect_uri(uri) {
                return reject("post_logout_redirect_uri is not registered for the client");
            }
            Some(uri.to_owned())
        }
    };

    let mut ended = None;
    if let Some(id) = session_cookie(headers)
        && let Some(session) = auth.sessions.remove(&id)
    {
        for grant in &mut auth.grants {
            if grant.sid.as_deref() == Some(session.sid.as_str()) {
                grant.revoked = true;
            }
        }
        let recipients = auth.backchannel_recipients(&session.sid);
        ended = Some((session, recipients));
    }
    let state = match &auth.logout_state {
        LogoutState::Echo => find_param(&params, "state").map(str::to_owned),
        LogoutState::Omit => None,
        LogoutState::Value(value) => Some(value.clone()),
    };
    drop(auth);
    let mut response = match redirect {
        Some(uri) => {
            let location = match Url::parse(&uri) {
                Ok(mut url) => {
                    if let Some(state) = &state {
                        url.query_pairs_mut().append_pair("state", state);
                    }
                    url.to_string()
                }
                Err(_) => uri,
            };
            see_other(&location, None)
        }
        None => html::logged_out_page(),
    };
    response
        .headers_mut()
        .append(header::SET_COOKIE, session_clear_cookie());
    (response, ended)
}

impl TestProvider {
    /// The end-session endpoint: [`issuer`](TestProvider::issuer) +
    /// `/logout`.
    pub fn end_session_endpoint(&self) -> String {
        format!("{}{END_SESSION_PATH}", self.issuer())
    }

    /// Sets the `state` sent back to the `post_logout_redirect_uri` (LO-03):
    /// [`LogoutState::Echo`] (the default), omitted, or another value.
    pub fn set_logout_state(&self, state: LogoutState) {
        self.state().auth().logout_state = state;
    }

    /// The parameters (query or form) of every request to the end-session
    /// endpoint, in order, whatever its outcome.
    pub fn end_session_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state().auth().end_session_requests.clone()
    }
}
