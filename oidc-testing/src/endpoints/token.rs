//! The token endpoint (`POST /token`): client authentication, the
//! authorization code and refresh token grants, token minting, and the
//! knobs of the tokens and the token response.
use std::sync::Arc;

use aws_lc_rs::digest;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use crate::client::{ClientRegistration, TokenEndpointAuth};
use crate::crypto::{is_pkce_string, random_token, s256};
use crate::failure::Failure;
use crate::keys::SigningAlg;
use crate::knobs::{IdTokenSigning, RecordedTokenRequest, TokenExchangeAnswer};
use crate::params::{find_param, first_duplicate, form_decode, parse_params};
use crate::provider::TestProvider;
use crate::state::{
    AccessEntry, AuthState, Grant, IdTokenMutation, JsonMutation, ProviderState, RefreshEntry,
    ServerState,
};
use crate::token::{TokenBuilder, unix_now};

use super::reply::{JsonReply, REALM, respond_with_failure};

/// Path of the token endpoint.
pub(crate) const TOKEN_PATH: &str = "/token";

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

/// An OAuth error of the token endpoint (RFC 6749 §5.2).
#[derive(Debug)]
pub(super) struct TokenError {
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
    pub(super) fn into_reply(self) -> JsonReply {
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
pub(super) enum BasicAuth {
    Absent,
    Malformed,
    Present { id: String, secret: String },
}

pub(super) fn basic_auth(headers: &HeaderMap) -> BasicAuth {
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
/// The record of a request with form `params` and client credentials `basic` from `headers`,
/// as the token, device-authorization and revocation endpoints keep it.
pub(super) fn recorded(
    params: &[(String, String)],
    headers: &HeaderMap,
    basic: &BasicAuth,
) -> RecordedTokenRequest {
    let (basic_client_id, basic_client_secret) = match basic {
        BasicAuth::Present { id, secret } => (Some(id.clone()), Some(secret.clone())),
        _ => (None, None),
    };
    RecordedTokenRequest {
        params: params.to_vec(),
        basic_auth: uses_basic_scheme(headers),
        basic_client_id,
        basic_client_secret,
    }
}

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
    pub(super) fn authenticate(
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
        Some(super::device::DEVICE_CODE_GRANT) => {
            let grant = auth
                .poll_device(&client.client_id, params, now)
                .map_err(|(error, description)| token_error(error, description))?;
            let issue = auth.issue(client, grant, None);
            let refresh = RefreshEntry { grant, used: false };
            auth.refresh_tokens
                .insert(issue.refresh_token.clone(), refresh);
            Ok(issue)
        }
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
    if find_param(params, "grant_type") == Some("client_credentials") {
        return client_credentials_reply(provider, params, basic);
    }
    if find_param(params, "grant_type") == Some(TOKEN_EXCHANGE_GRANT) {
        return token_exchange_reply(provider, params, basic);
    }
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

/// The client credentials grant (RFC 6749 §4.4) for confidential clients: an access token
/// whose `sub` and `client_id` are the client's, for the RFC 8707 `resource` when one is sent
/// (else the client's access token audience), with the requested `scope`; no ID token, no
/// refresh token.
fn client_credentials_reply(
    provider: &Arc<ProviderState>,
    params: &[(String, String)],
    basic: &BasicAuth,
) -> JsonReply {
    let (client, lifetime, mutations) = {
        let auth = provider.auth();
        if let Some(name) = first_duplicate(params) {
            return token_error(
                "invalid_request",
                format!("the parameter {name} is repeated"),
            )
            .into_reply();
        }
        let client = match auth.authenticate(params, basic) {
            Ok(client) => client,
            Err(error) => return error.into_reply(),
        };
        (
            client,
            auth.access_token_lifetime,
            auth.token_response_mutations.clone(),
        )
    };
    if client.auth_method == TokenEndpointAuth::None {
        return token_error(
            "unauthorized_client",
            "public clients cannot use client_credentials",
        )
        .into_reply();
    }
    let scope = find_param(params, "scope").unwrap_or_default();
    let audience = find_param(params, "resource").unwrap_or(&client.access_token_audience);
    let access_token = TokenBuilder::new(Arc::clone(provider))
        .claim("sub", client.client_id.as_str())
        .audience(audience)
        .claim("client_id", client.client_id.as_str())
        .scope(scope)
        .expires_in(lifetime)
        .sign();
    let mut body = Map::new();
    body.insert("access_token".to_owned(), Value::from(access_token));
    body.insert("token_type".to_owned(), Value::from("Bearer"));
    body.insert("expires_in".to_owned(), Value::from(lifetime));
    if !scope.is_empty() {
        body.insert("scope".to_owned(), Value::from(scope));
    }
    for mutation in &mutations {
        mutation(&mut body);
    }
    JsonReply::ok(body)
}

/// The `grant_type` of token exchange (RFC 8693 §2.1).
const TOKEN_EXCHANGE_GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// RFC 8693 §3 token type URIs.
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";

/// Token exchange (RFC 8693) for confidential clients: the `subject_token` must be an access
/// token this provider issued (`subject_token_type` access token), not expired, of a grant
/// not revoked. The new access token keeps the subject's `sub`, names the exchanging client in
/// `client_id` and `act` (RFC 8693 §4.1), is for the `audience` and `resource` values sent
/// (else the client's access token audience), with the requested `scope` (else the grant's),
/// and lives at most as long as the subject token. It is an access token of the subject's
/// grant: revoking the user revokes it too. `requested_token_type` may be the access token or
/// JWT type (the latter answered with `token_type` `N_A`).
fn token_exchange_reply(
    provider: &Arc<ProviderState>,
    params: &[(String, String)],
    basic: &BasicAuth,
) -> JsonReply {
    let now = unix_now();
    let mut auth = provider.auth();
    // `audience` and `resource` may be repeated (RFC 8693 §2.1); nothing else.
    let single: Vec<(String, String)> = params
        .iter()
        .filter(|(name, _)| name != "audience" && name != "resource")
        .cloned()
        .collect();
    if let Some(name) = first_duplicate(&single) {
        return token_error(
            "invalid_request",
            format!("the parameter {name} is repeated"),
        )
        .into_reply();
    }
    let client = match auth.authenticate(params, basic) {
        Ok(client) => client,
        Err(error) => return error.into_reply(),
    };
    if client.auth_method == TokenEndpointAuth::None {
        return token_error(
            "unauthorized_client",
            "public clients cannot exchange tokens",
        )
        .into_reply();
    }
    if find_param(params, "subject_token_type") != Some(ACCESS_TOKEN_TYPE) {
        return token_error(
            "invalid_request",
            "subject_token_type must be the access token type",
        )
        .into_reply();
    }
    let Some(subject) = find_param(params, "subject_token") else {
        return token_error("invalid_request", "subject_token is missing").into_reply();
    };
    let Some(entry) = auth.access_tokens.get(subject).copied() else {
        return token_error("invalid_grant", "the subject token is unknown").into_reply();
    };
    if entry.exp <= now {
        return token_error("invalid_grant", "the subject token has expired").into_reply();
    }
    if !auth.grant_is_active(entry.grant) {
        return token_error("invalid_grant", "the subject token is revoked").into_reply();
    }
    let (issued_type, token_type) = match find_param(params, "requested_token_type") {
        None | Some(ACCESS_TOKEN_TYPE) => (ACCESS_TOKEN_TYPE, "Bearer"),
        Some(JWT_TOKEN_TYPE) => (JWT_TOKEN_TYPE, "N_A"),
        Some(_) => {
            return token_error("invalid_request", "requested_token_type is not supported")
                .into_reply();
        }
    };
    let answer = auth.token_exchange_answer.clone();
    if let TokenExchangeAnswer::Error(code) = &answer {
        let status = if code == "invalid_client" {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::BAD_REQUEST
        };
        return JsonReply {
            status,
            headers: Vec::new(),
            body: json!({ "error": code, "error_description": "refused by the test knob" }),
        };
    }
    let (sub, grant_scope) = auth
        .grants
        .get(entry.grant)
        .map(|g| (g.sub.clone(), g.scope.clone()))
        .unwrap_or_default();
    let audiences: Vec<&str> = params
        .iter()
        .filter(|(name, _)| name == "audience" || name == "resource")
        .map(|(_, value)| value.as_str())
        .collect();
    let audience = match audiences.as_slice() {
        [] => Value::from(client.access_token_audience.as_str()),
        [one] => Value::from(*one),
        many => Value::from(many.to_vec()),
    };
    let scope = find_param(params, "scope")
        .unwrap_or(&grant_scope)
        .to_owned();
    let lifetime = auth
        .access_token_lifetime
        .min(entry.exp.saturating_sub(now));
    let builder = TokenBuilder::new(Arc::clone(provider))
        .claim("sub", sub.as_str())
        .audience(audience)
        .claim("client_id", client.client_id.as_str())
        .claim("act", json!({ "sub": client.client_id }))
        .scope(&scope)
        .expires_in(lifetime);
    let exp = builder
        .claims_json()
        .get("exp")
        .and_then(Value::as_i64)
        .unwrap_or_default();
    let access_token = builder.sign();
    auth.access_tokens.insert(
        access_token.clone(),
        AccessEntry {
            grant: entry.grant,
            exp,
        },
    );
    let mutations = auth.token_response_mutations.clone();
    drop(auth);
    let mut body = Map::new();
    body.insert("access_token".to_owned(), Value::from(access_token));
    body.insert("issued_token_type".to_owned(), Value::from(issued_type));
    body.insert("token_type".to_owned(), Value::from(token_type));
    body.insert("expires_in".to_owned(), Value::from(lifetime));
    if !scope.is_empty() {
        body.insert("scope".to_owned(), Value::from(scope));
    }
    match answer {
        TokenExchangeAnswer::Normal | TokenExchangeAnswer::Error(_) => {}
        TokenExchangeAnswer::IssuedTokenType(value) => {
            body.insert("issued_token_type".to_owned(), Value::from(value));
        }
        TokenExchangeAnswer::TokenType(value) => {
            body.insert("token_type".to_owned(), Value::from(value));
        }
        TokenExchangeAnswer::HugeToken(bytes) => {
            body.insert("access_token".to_owned(), Value::from("A".repeat(bytes)));
        }
        TokenExchangeAnswer::EchoSubjectToken => {
            body.insert("access_token".to_owned(), Value::from(subject));
        }
        TokenExchangeAnswer::ExpiresIn(value) => {
            body.insert("expires_in".to_owned(), value);
        }
    }
    for mutation in &mutations {
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
        auth.token_requests
            .push(recorded(&params, &headers, &basic));
        auth.token_failure.clone()
    };
    let provider = Arc::clone(&server.provider);
    respond_with_failure(failure, &server, move || {
        token_reply(&provider, &params, &basic)
    })
    .await
}

impl TestProvider {
    /// The token endpoint: [`issuer`](TestProvider::issuer) + `/token`.
    pub fn token_endpoint(&self) -> String {
        format!("{}{TOKEN_PATH}", self.issuer())
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

    /// With `Some(nonce)`, the ID tokens of the authorization code grant
    /// carry this `nonce` instead of the request's (CB-07(b): the attacker's
    /// nonce; IDT-10). `None` restores. Refresh ID tokens carry no nonce.
    pub fn set_nonce_override(&self, nonce: Option<String>) {
        self.state().auth().nonce_override = nonce;
    }

    /// Sets how accepted token exchanges (RFC 8693) are answered from now on; see
    /// [`TokenExchangeAnswer`]. [`TokenExchangeAnswer::Normal`] restores.
    pub fn set_token_exchange_answer(&self, answer: TokenExchangeAnswer) {
        self.state().auth().token_exchange_answer = answer;
    }

    /// Issues an access token of `client_id` for `user` without a browser, as the code grant
    /// would (a new grant with the scope `"openid profile email"`, the provider's access token
    /// lifetime, the client's access token audience when it is registered, else its id). The
    /// token endpoint accepts it as a token exchange `subject_token`;
    /// [`revoke_user`](TestProvider::revoke_user) revokes it.
    pub fn issue_access_token(&self, client_id: &str, user: &str) -> String {
        let provider = self.state();
        let mut auth = provider.auth();
        let audience = auth
            .client(client_id)
            .map_or_else(|| client_id.to_owned(), |c| c.access_token_audience.clone());
        let grant = auth.grants.len();
        let scope = "openid profile email";
        auth.grants.push(Grant {
            client_id: client_id.to_owned(),
            sub: user.to_owned(),
            scope: scope.to_owned(),
            auth_time: unix_now(),
            sid: None,
            revoked: false,
        });
        let builder = TokenBuilder::new(Arc::clone(provider))
            .claim("sub", user)
            .audience(audience.as_str())
            .claim("client_id", client_id)
            .scope(scope)
            .expires_in(auth.access_token_lifetime);
        let exp = builder
            .claims_json()
            .get("exp")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        let token = builder.sign();
        auth.access_tokens
            .insert(token.clone(), AccessEntry { grant, exp });
        token
    }

    /// Every request to the token endpoint, in order, whatever its outcome
    /// (CB-01: the `code_verifier`; CB-02: `len() == 0` means no token
    /// request was made).
    pub fn token_requests(&self) -> Vec<RecordedTokenRequest> {
        self.state().auth().token_requests.clone()
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn at_hash_uses_the_left_half() {
        // OIDC Core example-like check: 16 bytes → 22 base64url chars.
        assert_eq!(at_hash("token", &digest::SHA256).len(), 22);
        assert_eq!(at_hash("token", &digest::SHA512).len(), 43);
    }
}
