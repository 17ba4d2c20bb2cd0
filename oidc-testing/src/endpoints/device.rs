//! The device authorization endpoint (`POST /device/authorize`, RFC 8628 §3.1),
//! the device code grant of the token endpoint (§3.4–3.5), and their knobs.
//!
//! The user side is driven by the test: [`TestProvider::approve_device`],
//! [`TestProvider::deny_device`] and [`TestProvider::expire_device`] act on a
//! user code as the user (or time) would at the verification URI. Until then
//! polls answer `authorization_pending`; [`TestProvider::device_slow_down`]
//! makes the next polls answer `slow_down`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use crate::crypto::random_token;
use crate::knobs::RecordedTokenRequest;
use crate::params::{find_param, first_duplicate, parse_params};
use crate::provider::TestProvider;
use crate::state::{AuthState, Grant, JsonMutation, ServerState};
use crate::token::unix_now;

use super::reply::JsonReply;
use super::token::{basic_auth, recorded};

/// Path of the device authorization endpoint.
pub(crate) const DEVICE_AUTHORIZATION_PATH: &str = "/device/authorize";
/// Path of the verification URI shown to the user (not served: the test
/// approves with [`TestProvider::approve_device`]).
pub(crate) const VERIFICATION_PATH: &str = "/device";
/// The `grant_type` of the device code grant.
pub(crate) const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

const DEFAULT_EXPIRES_IN: i64 = 600;
const DEFAULT_INTERVAL: u64 = 5;

/// Where a device code stands.
#[derive(Clone, Debug, PartialEq, Eq)]
enum DeviceStatus {
    Pending,
    Approved(String),
    Denied,
    Expired,
    /// Tokens were issued for it; it cannot be used again.
    Used,
}

#[derive(Clone, Debug)]
struct DeviceEntry {
    client_id: String,
    user_code: String,
    scope: String,
    expires_at: i64,
    status: DeviceStatus,
}

/// The device endpoint's knobs, recordings and issued codes.
#[derive(Default)]
pub(crate) struct DeviceState {
    /// By device code.
    entries: HashMap<String, DeviceEntry>,
    expires_in: Option<i64>,
    interval: Option<u64>,
    /// Polls still to answer `slow_down`.
    slow_downs: usize,
    mutations: Vec<JsonMutation>,
    requests: Vec<RecordedTokenRequest>,
    polls: usize,
}

impl std::fmt::Debug for DeviceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceState")
            .field("entries", &self.entries.len())
            .field("polls", &self.polls)
            .finish_non_exhaustive()
    }
}

impl DeviceState {
    fn by_user_code(&mut self, user_code: &str) -> Option<&mut DeviceEntry> {
        self.entries
            .values_mut()
            .find(|entry| entry.user_code == user_code)
    }
}

/// A user code: 8 letters without vowels, `XXXX-XXXX` (RFC 8628 §6.1).
fn user_code() -> String {
    const LETTERS: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let bytes = random_token().into_bytes();
    let mut code = String::new();
    for (i, b) in bytes.iter().take(8).enumerate() {
        if i == 4 {
            code.push('-');
        }
        let index = usize::from(*b) % LETTERS.len();
        code.push(char::from(LETTERS.get(index).copied().unwrap_or(b'X')));
    }
    code
}

pub(crate) async fn device_authorization(
    State(server): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_params(&body);
    let basic = basic_auth(&headers);
    let provider = Arc::clone(&server.provider);
    let issuer = provider.issuer().to_owned();
    let mut auth = provider.auth();
    auth.devices
        .requests
        .push(recorded(&params, &headers, &basic));
    if let Some(name) = first_duplicate(&params) {
        return error_reply("invalid_request", &format!("{name} is repeated"));
    }
    let client = match auth.authenticate(&params, &basic) {
        Ok(client) => client,
        Err(error) => return error.into_reply().into_response(None),
    };
    let device_code = random_token();
    let user_code = user_code();
    let expires_in = auth.devices.expires_in.unwrap_or(DEFAULT_EXPIRES_IN);
    let interval = auth.devices.interval.unwrap_or(DEFAULT_INTERVAL);
    auth.devices.entries.insert(
        device_code.clone(),
        DeviceEntry {
            client_id: client.client_id.clone(),
            user_code: user_code.clone(),
            scope: find_param(&params, "scope").unwrap_or("openid").to_owned(),
            expires_at: unix_now().saturating_add(expires_in),
            status: DeviceStatus::Pending,
        },
    );
    let mutations = auth.devices.mutations.clone();
    drop(auth);
    let verification_uri = format!("{issuer}{VERIFICATION_PATH}");
    let mut body = Map::new();
    body.insert("device_code".to_owned(), Value::from(device_code));
    body.insert("user_code".to_owned(), Value::from(user_code.as_str()));
    body.insert(
        "verification_uri_complete".to_owned(),
        Value::from(format!("{verification_uri}?user_code={user_code}")),
    );
    body.insert("verification_uri".to_owned(), Value::from(verification_uri));
    body.insert("expires_in".to_owned(), Value::from(expires_in));
    body.insert("interval".to_owned(), Value::from(interval));
    for mutation in &mutations {
        mutation(&mut body);
    }
    JsonReply::ok(body).into_response(None)
}

fn error_reply(error: &str, description: &str) -> Response {
    JsonReply {
        status: StatusCode::BAD_REQUEST,
        headers: Vec::new(),
        body: json!({ "error": error, "error_description": description }),
    }
    .into_response(None)
}

impl AuthState {
    /// One poll of the device code grant by `client_id`: the grant created
    /// for an approved code, or the OAuth error to answer.
    pub(super) fn poll_device(
        &mut self,
        client_id: &str,
        params: &[(String, String)],
        now: i64,
    ) -> Result<usize, (&'static str, &'static str)> {
        self.devices.polls += 1;
        let code =
            find_param(params, "device_code").ok_or(("invalid_request", "no device_code"))?;
        let entry = self
            .devices
            .entries
            .get(code)
            .cloned()
            .ok_or(("invalid_grant", "unknown device code"))?;
        if entry.client_id != client_id {
            return Err((
                "invalid_grant",
                "the device code was issued to another client",
            ));
        }
        if now > entry.expires_at || entry.status == DeviceStatus::Expired {
            return Err(("expired_token", "the device code has expired"));
        }
        if self.devices.slow_downs > 0 {
            self.devices.slow_downs -= 1;
            return Err(("slow_down", "polling too fast"));
        }
        let sub = match entry.status {
            DeviceStatus::Pending => {
                return Err(("authorization_pending", "the user has not approved yet"));
            }
            DeviceStatus::Denied => return Err(("access_denied", "the user refused")),
            DeviceStatus::Used | DeviceStatus::Expired => {
                return Err(("invalid_grant", "the device code was already used"));
            }
            DeviceStatus::Approved(sub) => sub,
        };
        if let Some(stored) = self.devices.entries.get_mut(code) {
            stored.status = DeviceStatus::Used;
        }
        let grant = self.grants.len();
        self.grants.push(Grant {
            client_id: entry.client_id,
            sub,
            scope: entry.scope,
            auth_time: now,
            sid: None,
            revoked: false,
        });
        Ok(grant)
    }
}

impl TestProvider {
    /// The device authorization endpoint: [`issuer`](TestProvider::issuer) +
    /// `/device/authorize` (also in discovery as
    /// `device_authorization_endpoint`).
    pub fn device_authorization_endpoint(&self) -> String {
        format!("{}{DEVICE_AUTHORIZATION_PATH}", self.issuer())
    }

    /// The user approves the login of `user_code` as `sub`: the next poll
    /// gets tokens (an ID token without `nonce` or `sid`, a refresh token).
    /// Returns whether the code was found.
    pub fn approve_device(&self, user_code: &str, sub: &str) -> bool {
        self.set_device_status(user_code, DeviceStatus::Approved(sub.to_owned()))
    }

    /// The user refuses the login of `user_code`: polls get `access_denied`.
    pub fn deny_device(&self, user_code: &str) -> bool {
        self.set_device_status(user_code, DeviceStatus::Denied)
    }

    /// The code `user_code` expires now: polls get `expired_token`.
    pub fn expire_device(&self, user_code: &str) -> bool {
        self.set_device_status(user_code, DeviceStatus::Expired)
    }

    fn set_device_status(&self, user_code: &str, status: DeviceStatus) -> bool {
        let mut auth = self.state().auth();
        match auth.devices.by_user_code(user_code) {
            Some(entry) => {
                entry.status = status;
                true
            }
            None => false,
        }
    }

    /// Sets the `expires_in` of the device codes issued from now on (default
    /// 600 s; zero or less: already expired).
    pub fn set_device_expires_in(&self, secs: i64) {
        self.state().auth().devices.expires_in = Some(secs);
    }

    /// Sets the `interval` of the device codes issued from now on (default
    /// 5 s).
    pub fn set_device_interval(&self, secs: u64) {
        self.state().auth().devices.interval = Some(secs);
    }

    /// The next `polls` polls of any device code answer `slow_down` (RFC 8628
    /// §3.5), before the code's own state is looked at.
    pub fn device_slow_down(&self, polls: usize) {
        self.state().auth().devices.slow_downs = polls;
    }

    /// Adds a mutation of the JSON body of every device authorization answer
    /// from now on (a hostile `user_code` or `verification_uri`, a missing
    /// member).
    pub fn mutate_device_authorization(
        &self,
        f: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static,
    ) {
        self.state().auth().devices.mutations.push(Arc::new(f));
    }

    /// Every request to the device authorization endpoint, in order.
    pub fn device_authorization_requests(&self) -> Vec<RecordedTokenRequest> {
        self.state().auth().devices.requests.clone()
    }

    /// How many device code grant polls reached the token endpoint.
    pub fn device_poll_count(&self) -> usize {
        self.state().auth().devices.polls
    }
}
