//! The authorization server: registered clients, the authorization code flow
//! with PKCE, the token endpoint (authorization code and refresh token
//! grants), UserInfo and RP-initiated logout, plus the knobs that make them
//! misbehave.
//!
//! Everything lives in one [`AuthState`] behind a mutex. Handlers do their
//! bookkeeping under the lock and sign tokens, and run the tests' mutation
//! closures, outside it (so a closure may call back into the provider).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest;
use axum::body::{Body, Bytes};
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};
use url::Url;

use crate::backchannel::{self, BackchannelDelivery, Recipient};
use crate::client::{ClientRegistration, TokenEndpointAuth};
use crate::failure::{self, Failure};
use crate::html;
use crate::keys::SigningAlg;
use crate::knobs::{CallbackIss, IdTokenSigning, LogoutState, RecordedTokenRequest, find_param};
use crate::provider::{ProviderState, ServerState, TestProvider};
use crate::token::{TokenBuilder, unix_now};

/// Path of the authorization endpoint.
pub(crate) const AUTHORIZE_PATH: &str = "/authorize";
/// Path the login form posts to.
pub(crate) const LOGIN_PATH: &str = "/login";
/// Path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/token";
/// Path of the UserInfo endpoint.
pub(crate) const USERINFO_PATH: &str = "/userinfo";
/// Path of the end-session (RP-initiated logout) endpoint.
pub(crate) const END_SESSION_PATH: &str = "/logout";
/// Name of the provider's browser-session cookie.
pub(crate) const SESSION_COOKIE: &str = "op_session";

const DEFAULT_ACCESS_TOKEN_LIFETIME: i64 = 300;
const DEFAULT_ID_TOKEN_LIFETIME: i64 = 300;
const DEFAULT_CODE_LIFETIME: i64 = 60;
/// The username prefilled in the login form.
const DEFAULT_USERNAME: &str = "user-1";
/// The scope of codes minted by [`TestProvider::issue_code`].
const ISSUE_CODE_SCOPE: &str = "openid profile email";
/// The `realm` of the `WWW-Authenticate` challenges.
const REALM: &str = "oidc-testing";

type IdTokenMutation =
    Arc<dyn Fn(&mut Map<String, Value>, &mut Map<String, Value>) + Send + Sync + 'static>;
type JsonMutation = Arc<dyn Fn(&mut Map<String, Value>) + Send + Sync + 'static>;

/// An issued authorization code.
#[derive(Clone, Debug)]
struct CodeEntry {
    client_id: String,
    redirect_uri: String,
    code_challenge: Option<String>,
    nonce: Option<String>,
    scope: String,
    sub: String,
    auth_time: i64,
    sid: Option<String>,
    expires_at: i64,
    used: bool,
    /// The grant created when the code was redeemed.
    grant: Option<usize>,
}

/// What a redeemed code (and its refresh tokens) stand for.
#[derive(Clone, Debug)]
struct Grant {
    client_id: String,
    sub: String,
    scope: String,
    auth_time: i64,
    sid: Option<String>,
    revoked: bool,
}

#[derive(Clone, Copy, Debug)]
struct RefreshEntry {
    grant: usize,
    used: bool,
}

#[derive(Clone, Copy, Debug)]
struct AccessEntry {
    grant: usize,
    exp: i64,
}

/// A browser session at the provider (the `op_session` cookie).
#[derive(Clone, Debug)]
struct OpSession {
    sub: String,
    auth_time: i64,
    sid: String,
}

/// The authorization server's registrations, knobs, recordings and issued
/// artifacts.
pub(crate) struct AuthState {
    clients: HashMap<String, ClientRegistration>,
    auto_login: Option<String>,
    access_token_lifetime: i64,
    id_token_lifetime: i64,
    code_lifetime: i64,
    id_token_mutations: Vec<IdTokenMutation>,
    token_response_mutations: Vec<JsonMutation>,
    userinfo_mutations: Vec<JsonMutation>,
    id_token_signing: IdTokenSigning,
    token_failure: Failure,
    userinfo_failure: Failure,
    callback_iss: CallbackIss,
    callback_extra: Vec<(String, String)>,
    authorization_error: Option<(String, Option<String>)>,
    logout_state: LogoutState,
    ignore_pkce: bool,
    nonce_override: Option<String>,
    authorization_requests: Vec<Vec<(String, String)>>,
    token_requests: Vec<RecordedTokenRequest>,
    userinfo_requests: usize,
    end_session_requests: Vec<Vec<(String, String)>>,
    pub(crate) backchannel_deliveries: Vec<BackchannelDelivery>,
    codes: HashMap<String, CodeEntry>,
    sessions: HashMap<String, OpSession>,
    grants: Vec<Grant>,
    refresh_tokens: HashMap<String, RefreshEntry>,
    access_tokens: HashMap<String, AccessEntry>,
}

impl fmt::Debug for AuthState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthState")
            .field("clients", &self.clients.keys().collect::<Vec<_>>())
            .field("auto_login", &self.auto_login)
            .field("id_token_signing", &self.id_token_signing)
            .field("codes", &self.codes.len())
            .field("sessions", &self.sessions.len())
            .field("grants", &self.grants.len())
            .finish_non_exhaustive()
    }
}

impl AuthState {
    pub(crate) fn new() -> Self {
        AuthState {
            clients: HashMap::new(),
            auto_login: None,
            access_token_lifetime: DEFAULT_ACCESS_TOKEN_LIFETIME,
            id_token_lifetime: DEFAULT_ID_TOKEN_LIFETIME,
            code_lifetime: DEFAULT_CODE_LIFETIME,
            id_token_mutations: Vec::new(),
            token_response_mutations: Vec::new(),
            userinfo_mutations: Vec::new(),
            id_token_signing: IdTokenSigning::Normal,
            token_failure: Failure::None,
            userinfo_failure: Failure::None,
            callback_iss: CallbackIss::Correct,
            callback_extra: Vec::new(),
            authorization_error: None,
            logout_state: LogoutState::Echo,
            ignore_pkce: false,
            nonce_override: None,
            authorization_requests: Vec::new(),
            token_requests: Vec::new(),
            userinfo_requests: 0,
            end_session_requests: Vec::new(),
            backchannel_deliveries: Vec::new(),
            codes: HashMap::new(),
            sessions: HashMap::new(),
            grants: Vec::new(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
        }
    }

    /// The registered client `client_id`.
    pub(crate) fn client(&self, client_id: &str) -> Option<&ClientRegistration> {
        self.clients.get(client_id)
    }

    /// The `sid`s of the current provider sessions of `sub`.
    pub(crate) fn session_ids(&self, sub: &str) -> Vec<String> {
        self.sessions
            .values()
            .filter(|session| session.sub == sub)
            .map(|session| session.sid.clone())
            .collect()
    }

    /// The clients to notify when the provider session `sid` ends: those
    /// with a `backchannel_logout_uri` that were issued tokens in that
    /// session, in the order of their first grant.
    fn backchannel_recipients(&self, sid: &str) -> Vec<Recipient> {
        let mut recipients: Vec<Recipient> = Vec::new();
        for grant in &self.grants {
            if grant.sid.as_deref() != Some(sid)
                || recipients.iter().any(|r| r.client_id == grant.client_id)
            {
                continue;
            }
            let Some(client) = self.clients.get(&grant.client_id) else {
                continue;
            };
            if let Some(uri) = &client.backchannel_logout_uri {
                recipients.push(Recipient {
                    client_id: client.client_id.clone(),
                    uri: uri.clone(),
                    alg: client.id_token_alg,
                });
            }
        }
        recipients
    }

    fn new_session(&mut self, sub: &str, now: i64) -> (String, OpSession) {
        let id = random_token();
        let session = OpSession {
            sub: sub.to_owned(),
            auth_time: now,
            sid: random_token(),
        };
        self.sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// Stores a new code and returns it.
    fn store_code(&mut self, mut entry: CodeEntry, now: i64) -> String {
        entry.expires_at = now.saturating_add(self.code_lifetime);
        let code = random_token();
        self.codes.insert(code.clone(), entry);
        code
    }

    fn revoke_grant(&mut self, grant: usize) {
        if let Some(grant) = self.grants.get_mut(grant) {
            grant.revoked = true;
        }
    }

    fn grant_is_active(&self, grant: usize) -> bool {
        self.grants.get(grant).is_some_and(|grant| !grant.revoked)
    }

    /// The `Location` of a redirect to the client: `redirect_uri` plus
    /// `params`, plus `iss` per [`CallbackIss`], plus the extra parameters.
    fn callback_location(
        &self,
        issuer: &str,
        redirect_uri: &str,
        params: &[(&str, &str)],
    ) -> Option<String> {
        let mut url = Url::parse(redirect_uri).ok()?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in params {
                query.append_pair(name, value);
            }
            match &self.callback_iss {
                CallbackIss::Correct => {
                    query.append_pair("iss", issuer);
                }
                CallbackIss::Omit => {}
                CallbackIss::Value(value) => {
                    query.append_pair("iss", value);
                }
            }
            for (name, value) in &self.callback_extra {
                query.append_pair(name, value);
            }
        }
        Some(url.into())
    }

    /// An error response to the client (RFC 6749 §4.1.2.1).
    fn error_redirect(
        &self,
        issuer: &str,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> Response {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(state) = state {
            params.push(("state", state));
        }
        match self.callback_location(issuer, redirect_uri, &params) {
            Some(location) => see_other(&location, None),
            None => html::error_page(StatusCode::BAD_REQUEST, error, description),
        }
    }
}

impl ProviderState {
    /// The authorization server state. A panic while holding the lock
    /// leaves it consistent enough for a test server, so poisoning is
    /// ignored.
    pub(crate) fn auth(&self) -> std::sync::MutexGuard<'_, AuthState> {
        self.auth
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// ---------------------------------------------------------------------------
// Small helpers

/// 256 random bits, base64url: codes, tokens, session ids and sids.
fn random_token() -> String {
    let mut bytes = [0_u8; 32];
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        // Never expected; stay unique rather than fail.
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_nanos())
            .unwrap_or(0);
        let seed = format!(
            "{nanos}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        bytes.copy_from_slice(digest::digest(&digest::SHA256, seed.as_bytes()).as_ref());
    }
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `BASE64URL(SHA-256(input))`, the S256 PKCE transformation.
fn s256(input: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, input.as_bytes()))
}

/// The `at_hash` of `access_token` for an ID token signed with a JOSE
/// algorithm whose hash is `hash`: the left half of the hash, base64url.
fn at_hash(access_token: &str, hash: &'static digest::Algorithm) -> String {
    let digest = digest::digest(hash, access_token.as_bytes());
    let bytes = digest.as_ref();
    URL_SAFE_NO_PAD.encode(bytes.get(..bytes.len() / 2).unwrap_or_default())
}

/// The hash of a signing algorithm for `at_hash` (OIDC Core §3.1.3.6; SHA-512
/// for EdDSA with Ed25519, per the Core errata).
fn alg_hash(alg: SigningAlg) -> &'static digest::Algorithm {
    match alg {
        SigningAlg::RS384 | SigningAlg::PS384 => &digest::SHA384,
        SigningAlg::RS512 | SigningAlg::PS512 | SigningAlg::EdDSA => &digest::SHA512,
        _ => &digest::SHA256,
    }
}

/// PKCE `code_challenge` / `code_verifier` syntax: 43 to 128 unreserved
/// characters (RFC 7636 §4.1–4.2).
fn is_pkce_string(value: &str) -> bool {
    (43..=128).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Decodes `application/x-www-form-urlencoded` bytes, keeping order and
/// duplicates.
fn parse_params(bytes: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(bytes).into_owned().collect()
}

/// The name of the first parameter that occurs more than once.
fn first_duplicate(params: &[(String, String)]) -> Option<&str> {
    params.iter().enumerate().find_map(|(index, (name, _))| {
        params
            .iter()
            .skip(index + 1)
            .any(|(other, _)| other == name)
            .then_some(name.as_str())
    })
}

/// The value of a parameter that must occur at most once: `Err` when it
/// occurs more often.
fn single<'a>(params: &'a [(String, String)], name: &str) -> Result<Option<&'a str>, ()> {
    let mut values = params.iter().filter(|(key, _)| key == name);
    let first = values.next().map(|(_, value)| value.as_str());
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// Percent-decodes one `application/x-www-form-urlencoded` component
/// (`+` is a space).
fn form_decode(component: &str) -> String {
    let mut out = Vec::with_capacity(component.len());
    let mut bytes = component.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'+' => out.push(b' '),
            b'%' => {
                let mut lookahead = bytes.clone();
                let high = lookahead.next().and_then(|b| (b as char).to_digit(16));
                let low = lookahead.next().and_then(|b| (b as char).to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => {
                        out.push(u8::try_from(high * 16 + low).unwrap_or(b'?'));
                        bytes = lookahead;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `op_session` cookie of the request, if any.
fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}

fn session_set_cookie(id: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Lax"
    ))
    .ok()
}

fn session_clear_cookie() -> HeaderValue {
    HeaderValue::from_static("op_session=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0")
}

/// A `303 See Other` with `Cache-Control: no-store`, and optionally a cookie.
fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the redirect URI cannot be used in a Location header",
        );
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// The decoded payload of a compact JWT, without any verification.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}

/// A JSON response of the token or UserInfo endpoint before it is sent (so
/// that [`Failure::Huge`] can pad it).
struct JsonReply {
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Value,
}

impl JsonReply {
    fn ok(body: Map<String, Value>) -> Self {
        JsonReply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Value::Object(body),
        }
    }

    fn into_response(self, size: Option<usize>) -> Response {
        let mut bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        if let Some(size) = size {
            bytes.resize(size, b' ');
        }
        let mut response = (self.status, Body::from(bytes)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.extend(self.headers);
        response
    }
}

/// Serves a JSON endpoint under a [`Failure`] mode. `reply` is only called
/// when the endpoint answers (normally, after a delay, or padded).
async fn respond_with_failure(
    failure: Failure,
    server: &ServerState,
    reply: impl FnOnce() -> JsonReply,
) -> Response {
    match failure {
        Failure::None => reply().into_response(None),
        Failure::Huge(size) => reply().into_response(Some(size)),
        Failure::Delay(delay) => {
            let mut shutdown = server.shutdown.clone();
            let answered = tokio::select! {
                () = tokio::time::sleep(delay) => true,
                _ = shutdown.wait_for(|stop| *stop) => false,
            };
            if answered {
                reply().into_response(None)
            } else {
                // Shutting down: `Hang` answers at once with the usual 503.
                failure::respond(Failure::Hang, shutdown, Vec::new, Vec::new()).await
            }
        }
        other => failure::respond(other, server.shutdown.clone(), Vec::new, Vec::new()).await,
    }
}

// ---------------------------------------------------------------------------
// Authorization endpoint and login form

/// A validated authorization request.
#[derive(Debug)]
struct AuthzRequest {
    client: ClientRegistration,
    redirect_uri: String,
    state: Option<String>,
    nonce: Option<String>,
    scope: String,
    code_challenge: Option<String>,
    prompt: Vec<String>,
    max_age: Option<i64>,
    login_hint: Option<String>,
}

impl AuthzRequest {
    fn prompt(&self, value: &str) -> bool {
        self.prompt.iter().any(|prompt| prompt == value)
    }
}

/// Why an authorization request is rejected.
enum AuthzError {
    /// No trustworthy redirect URI: a 400 page.
    Page(&'static str, String),
    /// An error response to the (validated) redirect URI.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        error: &'static str,
        description: String,
    },
}

fn validate_authorization(
    auth: &AuthState,
    params: &[(String, String)],
) -> Result<AuthzRequest, AuthzError> {
    let page = |description: &str| AuthzError::Page("invalid_request", description.to_owned());
    let client_id = single(params, "client_id")
        .map_err(|()| page("client_id is repeated"))?
        .ok_or_else(|| page("client_id is missing"))?;
    let client = auth
        .clients
        .get(client_id)
        .ok_or_else(|| {
            AuthzError::Page(
                "invalid_client",
                format!("the client {client_id:?} is not registered"),
            )
        })?
        .clone();
    let redirect_uri = single(params, "redirect_uri")
        .map_err(|()| page("redirect_uri is repeated"))?
        .ok_or_else(|| page("redirect_uri is missing"))?;
    if !client.accepts_redirect_uri(redirect_uri) || Url::parse(redirect_uri).is_err() {
        return Err(page(&format!(
            "redirect_uri {redirect_uri:?} is not registered for the client {client_id:?}"
        )));
    }
    let state = params
        .iter()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.clone());
    let fail = |error: &'static str, description: &str| AuthzError::Redirect {
        redirect_uri: redirect_uri.to_owned(),
        state: state.clone(),
        error,
        description: description.to_owned(),
    };
    if let Some(name) = first_duplicate(params) {
        return Err(fail(
            "invalid_request",
            &format!("the parameter {name} is repeated"),
        ));
    }
    let get = |name: &str| find_param(params, name);
    if get("request").is_some() {
        return Err(fail(
            "request_not_supported",
            "request objects are not supported",
        ));
    }
    if get("request_uri").is_some() {
        return Err(fail(
            "request_uri_not_supported",
            "request_uri is not supported",
        ));
    }
    match get("response_type") {
        None => return Err(fail("invalid_request", "response_type is missing")),
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ));
        }
    }
    if get("response_mode").is_some_and(|mode| mode != "query") {
        return Err(fail(
            "invalid_request",
            "only response_mode=query is supported",
        ));
    }
    let scope = get("scope").unwrap_or_default();
    if !scope.split(' ').any(|scope| scope == "openid") {
        return Err(fail("invalid_scope", "the scope must contain openid"));
    }
    let code_challenge = get("code_challenge");
    let method = get("code_challenge_method");
    if !auth.ignore_pkce {
        let Some(challenge) = code_challenge else {
            return Err(fail(
                "invalid_request",
                "PKCE is required: code_challenge is missing",
            ));
        };
        match method {
            Some("S256") => {}
            None | Some("plain") => {
                return Err(fail(
                    "invalid_request",
                    "code_challenge_method must be S256 (plain is not allowed)",
                ));
            }
            Some(_) => {
                return Err(fail(
                    "invalid_request",
                    "unsupported code_challenge_method: only S256 is supported",
                ));
            }
        }
        if !is_pkce_string(challenge) {
            return Err(fail("invalid_request", "code_challenge is malformed"));
        }
    }
    let prompt: Vec<String> = get("prompt")
        .unwrap_or_default()
        .split(' ')
        .filter(|value| !value.is_empty())
        .map(str::to_owned)
        .collect();
    if prompt.iter().any(|value| value == "none") && prompt.len() > 1 {
        return Err(fail(
            "invalid_request",
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match get("max_age") {
        None => None,
        Some(value) => match value.parse::<i64>() {
            Ok(max_age) if max_age >= 0 => Some(max_age),
            _ => return Err(fail("invalid_request", "max_age is not a number")),
        },
    };
    Ok(AuthzRequest {
        client,
        redirect_uri: redirect_uri.to_owned(),
        state,
        nonce: get("nonce").map(str::to_owned),
        scope: scope.to_owned(),
        // With ignore_pkce a challenge is kept but never checked.
        code_challenge: code_challenge.map(str::to_owned),
        prompt,
        max_age,
        login_hint: get("login_hint").map(str::to_owned),
    })
}

/// Handles a validated-or-not authorization request: from `GET /authorize`
/// (`login` is `None`) or from the login form (`login` is the username).
fn authorization_step(
    provider: &ProviderState,
    headers: &HeaderMap,
    params: &[(String, String)],
    login: Option<&str>,
) -> Response {
    let issuer = provider.issuer();
    let now = unix_now();
    let mut auth = provider.auth();
    let request = match validate_authorization(&auth, params) {
        Ok(request) => request,
        Err(AuthzError::Page(error, description)) => {
            return html::error_page(StatusCode::BAD_REQUEST, error, &description);
        }
        Err(AuthzError::Redirect {
            redirect_uri,
            state,
            error,
            description,
        }) => {
            return auth.error_redirect(
                issuer,
                &redirect_uri,
                state.as_deref(),
                error,
                &description,
            );
        }
    };
    if let Some((error, description)) = &auth.authorization_error {
        return auth.error_redirect(
            issuer,
            &request.redirect_uri,
            request.state.as_deref(),
            error,
            description.as_deref().unwrap_or_default(),
        );
    }

    let existing = session_cookie(headers)
        .and_then(|id| auth.sessions.get(&id).map(|session| (id, session.clone())))
        .filter(|(_, session)| {
            request
                .max_age
                .is_none_or(|max_age| now.saturating_sub(session.auth_time) <= max_age)
        });
    let (session, cookie) = if let Some(username) = login {
        if username.is_empty() {
            drop(auth);
            return login_form(issuer, &request, params, Some("Enter a username."));
        }
        if let Some((old, _)) = &existing {
            auth.sessions.remove(old);
        }
        let (id, session) = auth.new_session(username, now);
        (session, Some(id))
    } else if let Some(user) = auth.auto_login.clone() {
        match existing {
            Some((_, session)) if session.sub == user && !request.prompt("login") => {
                (session, None)
            }
            _ => {
                let (id, session) = auth.new_session(&user, now);
                (session, Some(id))
            }
        }
    } else if let Some((_, session)) = existing.filter(|_| !request.prompt("login")) {
        (session, None)
    } else if request.prompt("none") {
        return auth.error_redirect(
            issuer,
            &request.redirect_uri,
            request.state.as_deref(),
            "login_required",
            "the user is not logged in at the provider",
        );
    } else {
        drop(auth);
        return login_form(issuer, &request, params, None);
    };

    let code = auth.store_code(
        CodeEntry {
            client_id: request.client.client_id.clone(),
            redirect_uri: request.redirect_uri.clone(),
            code_challenge: request.code_challenge.clone(),
            nonce: request.nonce.clone(),
            scope: request.scope.clone(),
            sub: session.sub.clone(),
            auth_time: session.auth_time,
            sid: Some(session.sid.clone()),
            expires_at: 0,
            used: false,
            grant: None,
        },
        now,
    );
    let mut callback = vec![("code", code.as_str())];
    if let Some(state) = &request.state {
        callback.push(("state", state));
    }
    match auth.callback_location(issuer, &request.redirect_uri, &callback) {
        Some(location) => see_other(&location, cookie.as_deref().and_then(session_set_cookie)),
        None => html::error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the redirect URI is not a valid URL",
        ),
    }
}

fn login_form(
    issuer: &str,
    request: &AuthzRequest,
    params: &[(String, String)],
    message: Option<&str>,
) -> Response {
    let hidden: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| name != "username")
        .cloned()
        .collect();
    html::login_form(
        issuer,
        &request.client.client_id,
        &hidden,
        request.login_hint.as_deref().unwrap_or(DEFAULT_USERNAME),
        message,
    )
}

pub(crate) async fn authorize_get(
    State(server): State<ServerState>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let params = parse_params(query.unwrap_or_default().as_bytes());
    authorize(&server, &headers, params)
}

pub(crate) async fn authorize_post(
    State(server): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    authorize(&server, &headers, parse_params(&body))
}

fn authorize(server: &ServerState, headers: &HeaderMap, params: Vec<(String, String)>) -> Response {
    server
        .provider
        .auth()
        .authorization_requests
        .push(params.clone());
    authorization_step(&server.provider, headers, &params, None)
}

pub(crate) async fn login(
    State(server): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut params = parse_params(&body);
    let username = params
        .iter()
        .find(|(name, _)| name == "username")
        .map(|(_, value)| value.trim().to_owned())
        .unwrap_or_default();
    params.retain(|(name, _)| name != "username");
    authorization_step(&server.provider, &headers, &params, Some(&username))
}

// ---------------------------------------------------------------------------
// Token endpoint

/// An OAuth error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug)]
struct TokenError {
    error: &'static str,
    description: String,
}

fn token_error(error: &'static str, description: impl Into<String>) -> TokenError {
    TokenError {
        error,
        description: description.into(),
    }
}

impl TokenError {
    fn into_reply(self) -> JsonReply {
        let mut headers = Vec::new();
        let status = if self.error == "invalid_client" {
            if let Ok(challenge) = HeaderValue::from_str(&format!("Basic realm=\"{REALM}\"")) {
                headers.push((header::WWW_AUTHENTICATE, challenge));
            }
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        JsonReply {
            status,
            headers,
            body: json!({ "error": self.error, "error_description": self.description }),
        }
    }
}

/// The `Authorization: Basic` credentials of a request.
enum BasicAuth {
    Absent,
    Malformed,
    Present { id: String, secret: String },
}

fn basic_auth(headers: &HeaderMap) -> BasicAuth {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return BasicAuth::Absent;
    };
    let Some((scheme, credentials)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else {
        return BasicAuth::Malformed;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return BasicAuth::Malformed;
    }
    let decoded = STANDARD
        .decode(credentials.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok());
    match decoded.as_deref().and_then(|text| text.split_once(':')) {
        Some((id, secret)) => BasicAuth::Present {
            id: form_decode(id),
            secret: form_decode(secret),
        },
        None => BasicAuth::Malformed,
    }
}

/// Whether the request has an `Authorization` header with the Basic scheme.
fn uses_basic_scheme(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(' ').next())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic"))
}

/// What to mint after a successful grant.
struct Issue {
    client: ClientRegistration,
    grant: usize,
    sub: String,
    scope: String,
    auth_time: i64,
    sid: Option<String>,
    nonce: Option<String>,
    refresh_token: String,
    access_lifetime: i64,
    id_lifetime: i64,
    signing: IdTokenSigning,
    id_mutations: Vec<IdTokenMutation>,
    response_mutations: Vec<JsonMutation>,
}

impl AuthState {
    fn authenticate(
        &self,
        params: &[(String, String)],
        basic: &BasicAuth,
    ) -> Result<ClientRegistration, TokenError> {
        let form_id = find_param(params, "client_id");
        let form_secret = find_param(params, "client_secret");
        let (client_id, basic_secret) = match basic {
            BasicAuth::Malformed => {
                return Err(token_error(
                    "invalid_client",
                    "malformed Authorization header",
                ));
            }
            BasicAuth::Present { id, secret } => {
                if form_secret.is_some() {
                    return Err(token_error(
                        "invalid_request",
                        "more than one client authentication method",
                    ));
                }
                if form_id.is_some_and(|form_id| form_id != id) {
                    return Err(token_error(
                        "invalid_client",
                        "client_id differs from the Basic credentials",
                    ));
                }
                (id.as_str(), Some(secret.as_str()))
            }
            BasicAuth::Absent => match form_id {
                Some(id) => (id, None),
                None => {
                    return Err(token_error("invalid_client", "no client authentication"));
                }
            },
        };
        let client = self
            .clients
            .get(client_id)
            .ok_or_else(|| token_error("invalid_client", "unknown client"))?;
        let expected = client.secret.as_deref().unwrap_or_default();
        let authenticated = match client.auth_method {
            TokenEndpointAuth::ClientSecretBasic => basic_secret == Some(expected),
            TokenEndpointAuth::ClientSecretPost => {
                basic_secret.is_none() && form_secret == Some(expected)
            }
            TokenEndpointAuth::None => basic_secret.is_none() && form_secret.is_none(),
        };
        if !authenticated {
            return Err(token_error(
                "invalid_client",
                format!(
                    "client authentication failed (registered method: {})",
                    client.auth_method.as_str()
                ),
            ));
        }
        Ok(client.clone())
    }

    fn issue(&self, client: ClientRegistration, grant: usize, nonce: Option<String>) -> Issue {
        let (sub, scope, auth_time, sid) = self
            .grants
            .get(grant)
            .map(|g| (g.sub.clone(), g.scope.clone(), g.auth_time, g.sid.clone()))
            .unwrap_or_default();
        Issue {
            client,
            grant,
            sub,
            scope,
            auth_time,
            sid,
            nonce,
            refresh_token: random_token(),
            access_lifetime: self.access_token_lifetime,
            id_lifetime: self.id_token_lifetime,
            signing: self.id_token_signing.clone(),
            id_mutations: self.id_token_mutations.clone(),
            response_mutations: self.token_response_mutations.clone(),
        }
    }

    fn redeem_code(
        &mut self,
        client: ClientRegistration,
        params: &[(String, String)],
        now: i64,
    ) -> Result<Issue, TokenError> {
        let code = find_param(params, "code")
            .ok_or_else(|| token_error("invalid_request", "code is missing"))?;
        let entry = self
            .codes
            .get(code)
            .cloned()
            .ok_or_else(|| token_error("invalid_grant", "unknown authorization code"))?;
        if entry.client_id != client.client_id {
            return Err(token_error(
                "invalid_grant",
                "the code was issued to another client",
            ));
        }
        if entry.used {
            if let Some(grant) = entry.grant {
                self.revoke_grant(grant);
            }
            return Err(token_error(
                "invalid_grant",
                "the code was already used; the tokens issued for it are revoked",
            ));
        }
        if now > entry.expires_at {
            return Err(token_error("invalid_grant", "the code has expired"));
        }
        if find_param(params, "redirect_uri") != Some(entry.redirect_uri.as_str()) {
            return Err(token_error(
                "invalid_grant",
                "redirect_uri differs from the authorization request",
            ));
        }
        if !self.ignore_pkce {
            match (&entry.code_challenge, find_param(params, "code_verifier")) {
                (Some(challenge), Some(verifier)) => {
                    if !is_pkce_string(verifier) || s256(verifier) != *challenge {
                        return Err(token_error("invalid_grant", "PKCE verification failed"));
                    }
                }
                (Some(_), None) => {
                    return Err(token_error("invalid_grant", "code_verifier is missing"));
                }
                (None, Some(_)) => {
                    return Err(token_error(
                        "invalid_grant",
                        "code_verifier sent for a code without code_challenge",
                    ));
                }
                (None, None) => {}
            }
        }
        let grant = self.grants.len();
        self.grants.push(Grant {
            client_id: entry.client_id.clone(),
            sub: entry.sub.clone(),
            scope: entry.scope.clone(),
            auth_time: entry.auth_time,
            sid: entry.sid.clone(),
            revoked: false,
        });
        if let Some(stored) = self.codes.get_mut(code) {
            stored.used = true;
            stored.grant = Some(grant);
        }
        let nonce = self.nonce_override.clone().or(entry.nonce);
        let issue = self.issue(client, grant, nonce);
        self.refresh_tokens.insert(
            issue.refresh_token.clone(),
            RefreshEntry { grant, used: false },
        );
        Ok(issue)
    }

    fn redeem_refresh_token(
        &mut self,
        client: ClientRegistration,
        params: &[(String, String)],
    ) -> Result<Issue, TokenError> {
        let token = find_param(params, "refresh_token")
            .ok_or_else(|| token_error("invalid_request", "refresh_token is missing"))?;
        let entry = *self
            .refresh_tokens
            .get(token)
            .ok_or_else(|| token_error("invalid_grant", "unknown refresh token"))?;
        let grant = self
            .grants
            .get(entry.grant)
            .cloned()
            .ok_or_else(|| token_error("invalid_grant", "unknown refresh token"))?;
        if grant.client_id != client.client_id {
            return Err(token_error(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        if entry.used {
            self.revoke_grant(entry.grant);
            return Err(token_error(
                "invalid_grant",
                "the refresh token was already used; the grant is revoked",
            ));
        }
        if grant.revoked {
            return Err(token_error("invalid_grant", "the grant is revoked"));
        }
        if let Some(scope) = find_param(params, "scope") {
            let granted: Vec<&str> = grant.scope.split(' ').collect();
            if !scope.split(' ').all(|scope| granted.contains(&scope)) {
                return Err(token_error(
                    "invalid_scope",
                    "the scope exceeds the original grant",
                ));
            }
            if let Some(stored) = self.grants.get_mut(entry.grant) {
                stored.scope = scope.to_owned();
            }
        }
        if let Some(stored) = self.refresh_tokens.get_mut(token) {
            stored.used = true;
        }
        let issue = self.issue(client, entry.grant, None);
        self.refresh_tokens.insert(
            issue.refresh_token.clone(),
            RefreshEntry {
                grant: entry.grant,
                used: false,
            },
        );
        Ok(issue)
    }
}

/// Validates a token request and records the grant, under the lock.
fn plan_token(
    auth: &mut AuthState,
    params: &[(String, String)],
    basic: &BasicAuth,
    now: i64,
) -> Result<Issue, TokenError> {
    if let Some(name) = first_duplicate(params) {
        return Err(token_error(
            "invalid_request",
            format!("the parameter {name} is repeated"),
        ));
    }
    let client = auth.authenticate(params, basic)?;
    match find_param(params, "grant_type") {
        Some("authorization_code") => auth.redeem_code(client, params, now),
        Some("refresh_token") => auth.redeem_refresh_token(client, params),
        None => Err(token_error("invalid_request", "grant_type is missing")),
        Some(other) => Err(token_error(
            "unsupported_grant_type",
            format!("unsupported grant_type {other:?}"),
        )),
    }
}

fn mint_access_token(provider: &Arc<ProviderState>, issue: &Issue) -> (String, i64) {
    let builder = TokenBuilder::new(Arc::clone(provider))
        .claim("sub", issue.sub.as_str())
        .audience(issue.client.access_token_audience.as_str())
        .claim("client_id", issue.client.client_id.as_str())
        .scope(&issue.scope)
        .expires_in(issue.access_lifetime);
    let exp = builder
        .claims_json()
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    (builder.sign(), exp)
}

fn mint_id_token(provider: &Arc<ProviderState>, issue: &Issue, access_token: &str) -> String {
    let alg = issue.client.id_token_alg;
    let mut builder = TokenBuilder::new(Arc::clone(provider)).alg(alg);
    let now = unix_now();
    let hash = match issue.signing {
        IdTokenSigning::Hs256(_) => &digest::SHA256,
        _ => alg_hash(alg),
    };
    {
        let (header, claims) = builder.parts_mut();
        header.insert("typ".to_owned(), Value::from("JWT"));
        let email = format!("{}@example.test", issue.sub);
        let mut fresh = json!({
            "iss": provider.issuer(),
            "sub": issue.sub,
            "aud": issue.client.client_id,
            "exp": now.saturating_add(issue.id_lifetime),
            "iat": now,
            "auth_time": issue.auth_time,
            "at_hash": at_hash(access_token, hash),
            "email": email,
            "email_verified": true,
            "name": issue.sub,
            "preferred_username": issue.sub,
        });
        if let Value::Object(fresh) = &mut fresh {
            if let Some(nonce) = &issue.nonce {
                fresh.insert("nonce".to_owned(), Value::from(nonce.as_str()));
            }
            if let Some(sid) = &issue.sid {
                fresh.insert("sid".to_owned(), Value::from(sid.as_str()));
            }
            *claims = std::mem::take(fresh);
        }
        for mutation in &issue.id_mutations {
            mutation(claims, header);
        }
    }
    match &issue.signing {
        IdTokenSigning::Normal => builder.sign(),
        IdTokenSigning::ForeignKey => builder.sign_with_foreign_key(),
        IdTokenSigning::TamperedSignature => builder.sign_tampered_signature(),
        IdTokenSigning::None(name) => builder.sign_none(name, ""),
        IdTokenSigning::NoneWithSignature(name) => {
            let signed = builder.sign();
            let signature = signed.rsplit('.').next().unwrap_or_default();
            builder.sign_none(name, signature)
        }
        IdTokenSigning::Hs256(secret) => builder.sign_hs256(secret),
    }
}

fn token_reply(
    provider: &Arc<ProviderState>,
    params: &[(String, String)],
    basic: &BasicAuth,
) -> JsonReply {
    let now = unix_now();
    let issue = match plan_token(&mut provider.auth(), params, basic, now) {
        Ok(issue) => issue,
        Err(error) => return error.into_reply(),
    };
    let (access_token, exp) = mint_access_token(provider, &issue);
    let id_token = mint_id_token(provider, &issue, &access_token);
    provider.auth().access_tokens.insert(
        access_token.clone(),
        AccessEntry {
            grant: issue.grant,
            exp,
        },
    );
    let mut body = Map::new();
    body.insert("access_token".to_owned(), Value::from(access_token));
    body.insert("token_type".to_owned(), Value::from("Bearer"));
    body.insert("expires_in".to_owned(), Value::from(issue.access_lifetime));
    body.insert("id_token".to_owned(), Value::from(id_token));
    body.insert(
        "refresh_token".to_owned(),
        Value::from(issue.refresh_token.as_str()),
    );
    body.insert("scope".to_owned(), Value::from(issue.scope.as_str()));
    for mutation in &issue.response_mutations {
        mutation(&mut body);
    }
    JsonReply::ok(body)
}

pub(crate) async fn token(
    State(server): State<ServerState>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = parse_params(&body);
    let basic = basic_auth(&headers);
    let failure = {
        let mut auth = server.provider.auth();
        let (basic_client_id, basic_client_secret) = match &basic {
            BasicAuth::Present { id, secret } => (Some(id.clone()), Some(secret.clone())),
            _ => (None, None),
        };
        auth.token_requests.push(RecordedTokenRequest {
            params: params.clone(),
            basic_auth: uses_basic_scheme(&headers),
            basic_client_id,
            basic_client_secret,
        });
        auth.token_failure.clone()
    };
    let provider = Arc::clone(&server.provider);
    respond_with_failure(failure, &server, move || {
        token_reply(&provider, &params, &basic)
    })
    .await
}

// ---------------------------------------------------------------------------
// UserInfo endpoint

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

// ---------------------------------------------------------------------------
// End-session endpoint (RP-initiated logout)

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

// ---------------------------------------------------------------------------
// Public API: registration, knobs and recordings

impl TestProvider {
    /// The authorization endpoint: [`issuer`](TestProvider::issuer) +
    /// `/authorize`.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.issuer())
    }

    /// The token endpoint: [`issuer`](TestProvider::issuer) + `/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}{TOKEN_PATH}", self.issuer())
    }

    /// The UserInfo endpoint: [`issuer`](TestProvider::issuer) +
    /// `/userinfo`.
    pub fn userinfo_endpoint(&self) -> String {
        format!("{}{USERINFO_PATH}", self.issuer())
    }

    /// The end-session endpoint: [`issuer`](TestProvider::issuer) +
    /// `/logout`.
    pub fn end_session_endpoint(&self) -> String {
        format!("{}{END_SESSION_PATH}", self.issuer())
    }

    /// Registers a client, replacing any client with the same id. No client
    /// is registered at start.
    pub fn register_client(&self, client: ClientRegistration) {
        self.state()
            .auth()
            .clients
            .insert(client.client_id.clone(), client);
    }

    /// With `Some(user)`, `/authorize` logs `user` in at once (no form),
    /// creating or reusing an `op_session`, and redirects with a code; this
    /// also answers `prompt=none`. `None` (the default) shows the login form.
    pub fn set_auto_login(&self, user: Option<&str>) {
        self.state().auth().auto_login = user.map(str::to_owned);
    }

    /// Sets the lifetime of the access tokens issued from now on (`exp` and
    /// `expires_in`; default 300 s). Zero or negative values give tokens
    /// that are already expired, which UserInfo then rejects.
    pub fn set_access_token_lifetime(&self, secs: i64) {
        self.state().auth().access_token_lifetime = secs;
    }

    /// Sets the lifetime (`exp` − `iat`) of the ID tokens issued from now on
    /// (default 300 s); negative values give expired ID tokens.
    pub fn set_id_token_lifetime(&self, secs: i64) {
        self.state().auth().id_token_lifetime = secs;
    }

    /// Sets the lifetime of the authorization codes issued from now on
    /// (default 60 s); a negative value gives codes that are already expired
    /// (`invalid_grant`).
    pub fn set_code_lifetime(&self, secs: i64) {
        self.state().auth().code_lifetime = secs;
    }

    /// Revokes every grant of the user `sub` issued so far: their refresh
    /// tokens then get `invalid_grant` and their access tokens a 401 at
    /// UserInfo (for session revalidation tests, SES-05). Later logins of the
    /// same user get new, working grants; the user's provider sessions stay.
    pub fn revoke_user(&self, sub: &str) {
        for grant in &mut self.state().auth().grants {
            if grant.sub == sub {
                grant.revoked = true;
            }
        }
    }

    /// Adds a mutation applied to the claims and the header (in that
    /// argument order) of every ID token issued from now on, by both grants,
    /// until [`clear_mutations`](TestProvider::clear_mutations). Mutations
    /// run in the order they were added, after the provider set every claim
    /// (including `at_hash` and `nonce`) and before signing. IDT-01 (extra
    /// claims, `aud` as an array), IDT-05 (header `alg`), IDT-06 to IDT-09
    /// (`iss`, `aud`/`azp`, `exp`/`iat`/`nbf`, `sub`), IDT-10 (remove
    /// `nonce`), IDT-12 (`typ`, `events`), IDT-14 (change claims after the
    /// first login), IDT-15 (wrong `at_hash`), KEY-01 (no `kid`).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use oidc_testing::TestProvider;
    ///
    /// let provider = TestProvider::start().await;
    /// provider.mutate_id_token(|claims, header| {
    ///     claims.insert("iss".into(), "https://evil.example".into());
    ///     header.insert("typ".into(), "at+jwt".into());
    /// });
    /// # }
    /// ```
    pub fn mutate_id_token(
        &self,
        f: impl Fn(&mut Map<String, Value>, &mut Map<String, Value>) + Send + Sync + 'static,
    ) {
        self.state().auth().id_token_mutations.push(Arc::new(f));
    }

    /// Removes every mutation added with
    /// [`mutate_id_token`](TestProvider::mutate_id_token),
    /// [`mutate_token_response`](TestProvider::mutate_token_response) and
    /// [`mutate_userinfo`](TestProvider::mutate_userinfo).
    pub fn clear_mutations(&self) {
        let mut auth = self.state().auth();
        auth.id_token_mutations.clear();
        auth.token_response_mutations.clear();
        auth.userinfo_mutations.clear();
    }

    /// Sets how ID tokens are signed from now on (IDT-02 to IDT-05); see
    /// [`IdTokenSigning`]. [`IdTokenSigning::Normal`] restores.
    pub fn sign_id_token_with(&self, how: IdTokenSigning) {
        self.state().auth().id_token_signing = how;
    }

    /// Adds a mutation applied to the JSON body of every successful token
    /// response from now on (both grants), after the ID token was signed;
    /// removed by [`clear_mutations`](TestProvider::clear_mutations).
    /// CB-10 (add `"error"`, remove `access_token` or `token_type`, set
    /// `token_type` `"mac"`), IDT-15 (remove `id_token`), IDT-14 (replace the
    /// refresh response's `id_token`). Error responses are not mutated.
    pub fn mutate_token_response(
        &self,
        f: impl Fn(&mut Map<String, Value>) + Send + Sync + 'static,
    ) {
        self.state()
            .auth()
            .token_response_mutations
            .push(Arc::new(f));
    }

    /// Sets how the token endpoint misbehaves (CB-10, DOS-04);
    /// [`Failure::None`] restores. The request is recorded in every case.
    /// [`Failure::Status`], [`Failure::Hang`], [`Failure::Garbage`] and
    /// [`Failure::Redirect`] answer without processing the request (the code
    /// is not consumed); [`Failure::Delay`] processes it after the delay;
    /// [`Failure::Huge`] processes it and pads (or cuts) the JSON answer to
    /// the size.
    pub fn fail_token(&self, failure: Failure) {
        self.state().auth().token_failure = failure;
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

    /// Sets the `iss` parameter of the authorization responses (RFC 9207,
    /// CB-05): [`CallbackIss::Correct`] (the default), omitted, or another
    /// value.
    pub fn set_callback_iss(&self, iss: CallbackIss) {
        self.state().auth().callback_iss = iss;
    }

    /// Appends these parameters, in order, to every authorization response
    /// (success or error) after `code`, `state` and `iss`: extra or
    /// duplicate parameters such as a second `state` (CB-02). An empty list
    /// restores.
    pub fn set_callback_extra(&self, params: Vec<(String, String)>) {
        self.state().auth().callback_extra = params;
    }

    /// With `Some(error)`, every valid authorization request is answered with
    /// this error (and `error_description`, the request's `state` and `iss`)
    /// instead of a login (CB-04: `access_denied` with a
    /// `<script>` description). `None` restores.
    pub fn set_authorization_error(&self, error: Option<&str>, description: Option<&str>) {
        self.state().auth().authorization_error =
            error.map(|error| (error.to_owned(), description.map(str::to_owned)));
    }

    /// Sets the `state` sent back to the `post_logout_redirect_uri` (LO-03):
    /// [`LogoutState::Echo`] (the default), omitted, or another value.
    pub fn set_logout_state(&self, state: LogoutState) {
        self.state().auth().logout_state = state;
    }

    /// With `true`, the provider ignores PKCE (CB-07(b), a downgrade): the
    /// authorization endpoint accepts requests without `code_challenge` (or
    /// with `plain`) and the token endpoint checks no `code_verifier`.
    pub fn ignore_pkce(&self, yes: bool) {
        self.state().auth().ignore_pkce = yes;
    }

    /// With `Some(nonce)`, the ID tokens of the authorization code grant
    /// carry this `nonce` instead of the request's (CB-07(b): the attacker's
    /// nonce; IDT-10). `None` restores. Refresh ID tokens carry no nonce.
    pub fn set_nonce_override(&self, nonce: Option<String>) {
        self.state().auth().nonce_override = nonce;
    }

    /// The query parameters of every request to the authorization endpoint,
    /// in order, decoded, duplicates kept (CB-01). Rejected requests are
    /// recorded too; the login form's `POST /login` is not. See
    /// [`find_param`](crate::find_param).
    pub fn authorization_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state().auth().authorization_requests.clone()
    }

    /// Every request to the token endpoint, in order, whatever its outcome
    /// (CB-01: the `code_verifier`; CB-02: `len() == 0` means no token
    /// request was made).
    pub fn token_requests(&self) -> Vec<RecordedTokenRequest> {
        self.state().auth().token_requests.clone()
    }

    /// How many requests reached the UserInfo endpoint, whatever their
    /// outcome.
    pub fn userinfo_request_count(&self) -> usize {
        self.state().auth().userinfo_requests
    }

    /// The parameters (query or form) of every request to the end-session
    /// endpoint, in order, whatever its outcome.
    pub fn end_session_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state().auth().end_session_requests.clone()
    }

    /// Issues an authorization code for `user` without a browser, as if
    /// `client_id` had sent an authorization request with this
    /// `redirect_uri`, `nonce`, `code_challenge` (S256; `""` binds no
    /// challenge) and the scope `"openid profile email"`. For tests that
    /// build callbacks by hand (CB-07 code injection). The client need not be
    /// registered, but the token endpoint only redeems codes for registered
    /// clients.
    pub fn issue_code(
        &self,
        client_id: &str,
        redirect_uri: &str,
        user: &str,
        nonce: Option<&str>,
        code_challenge: &str,
    ) -> String {
        let now = unix_now();
        let entry = CodeEntry {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            code_challenge: (!code_challenge.is_empty()).then(|| code_challenge.to_owned()),
            nonce: nonce.map(str::to_owned),
            scope: ISSUE_CODE_SCOPE.to_owned(),
            sub: user.to_owned(),
            auth_time: now,
            sid: Some(random_token()),
            expires_at: 0,
            used: false,
            grant: None,
        };
        self.state().auth().store_code(entry, now)
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn pkce_s256_matches_rfc7636_appendix_b() {
        assert_eq!(
            s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_string(
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
        ));
        assert!(!is_pkce_string("short"));
        assert!(!is_pkce_string(&"a".repeat(129)));
        assert!(!is_pkce_string(&format!("{}+", "a".repeat(43))));
    }

    #[test]
    fn form_decoding_of_basic_credentials() {
        assert_eq!(form_decode("a%3Ab+c%25"), "a:b c%");
        assert_eq!(form_decode("100%"), "100%");
        assert_eq!(form_decode("%zz"), "%zz");
    }

    #[test]
    fn duplicates_and_single() {
        let params = parse_params(b"a=1&b=2&a=3");
        assert_eq!(first_duplicate(&params), Some("a"));
        assert!(single(&params, "a").is_err());
        assert_eq!(single(&params, "b"), Ok(Some("2")));
        assert_eq!(single(&params, "c"), Ok(None));
    }

    #[test]
    fn session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; op_session=xyz; b=2"),
        );
        assert_eq!(session_cookie(&headers).as_deref(), Some("xyz"));
    }

    #[test]
    fn at_hash_uses_the_left_half() {
        // OIDC Core example-like check: 16 bytes → 22 base64url chars.
        assert_eq!(at_hash("token", &digest::SHA256).len(), 22);
        assert_eq!(at_hash("token", &digest::SHA512).len(), 43);
    }
}
