//! The authorization endpoint (`GET`/`POST /authorize`) and the login
//! form's target (`POST /login`): request validation, provider sessions,
//! codes, and the knobs of the authorization response.
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use url::Url;

use crate::client::ClientRegistration;
use crate::crypto::{is_pkce_string, random_token};
use crate::html;
use crate::knobs::CallbackIss;
use crate::params::{find_param, first_duplicate, parse_params, single};
use crate::provider::TestProvider;
use crate::state::{AuthState, CodeEntry, ProviderState, ServerState};
use crate::token::unix_now;

use super::cookie::{session_cookie, session_set_cookie};
use super::reply::see_other;

/// Path of the authorization endpoint.
pub(crate) const AUTHORIZE_PATH: &str = "/authorize";
/// Path the login form posts to.
pub(crate) const LOGIN_PATH: &str = "/login";
/// The username prefilled in the login form.
const DEFAULT_USERNAME: &str = "user-1";
/// The scope of codes minted by [`TestProvider::issue_code`].
const ISSUE_CODE_SCOPE: &str = "openid profile email";

impl AuthState {
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

impl TestProvider {
    /// The authorization endpoint: [`issuer`](TestProvider::issuer) +
    /// `/authorize`.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}{AUTHORIZE_PATH}", self.issuer())
    }

    /// With `Some(user)`, `/authorize` logs `user` in at once (no form),
    /// creating or reusing an `op_session`, and redirects with a code; this
    /// also answers `prompt=none`. `None` (the default) shows the login form.
    pub fn set_auto_login(&self, user: Option<&str>) {
        self.state().auth().auto_login = user.map(str::to_owned);
    }

    /// Sets the lifetime of the authorization codes issued from now on
    /// (default 60 s); a negative value gives codes that are already expired
    /// (`invalid_grant`).
    pub fn set_code_lifetime(&self, secs: i64) {
        self.state().auth().code_lifetime = secs;
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

    /// With `true`, the provider ignores PKCE (CB-07(b), a downgrade): the
    /// authorization endpoint accepts requests without `code_challenge` (or
    /// with `plain`) and the token endpoint checks no `code_verifier`.
    pub fn ignore_pkce(&self, yes: bool) {
        self.state().auth().ignore_pkce = yes;
    }

    /// The query parameters of every request to the authorization endpoint,
    /// in order, decoded, duplicates kept (CB-01). Rejected requests are
    /// recorded too; the login form's `POST /login` is not. See
    /// [`find_param`](crate::find_param).
    pub fn authorization_requests(&self) -> Vec<Vec<(String, String)>> {
        self.state().auth().authorization_requests.clone()
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
