//! The in-process OpenID Provider: shared state, public handle and HTTP
//! endpoints.
//!
//! Endpoints are plain axum handlers over [`ServerState`]; a new endpoint is
//! a new handler plus a new route in [`router`]. The authorization server's
//! handlers, state and knobs live in `authz.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::authz::{
    self, AUTHORIZE_PATH, AuthState, END_SESSION_PATH, LOGIN_PATH, TOKEN_PATH, USERINFO_PATH,
};
use crate::client::TokenEndpointAuth;
use crate::failure::{self, Failure};
use crate::keys::{SigningAlg, keyring};
use crate::token::TokenBuilder;

/// Path of the OpenID Connect discovery document.
pub(crate) const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the RFC 8414 OAuth 2.0 authorization server metadata document.
pub(crate) const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";
/// Path of the JWKS.
pub(crate) const JWKS_PATH: &str = "/jwks";
/// The default `Cache-Control` of the JWKS response.
pub(crate) const DEFAULT_JWKS_CACHE_CONTROL: &str = "public, max-age=300";

/// How long [`TestProvider::shutdown`] waits for open connections to finish
/// before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Mutable settings of a provider, behind one lock.
#[derive(Debug)]
struct Config {
    /// Rotation position of each algorithm's current key.
    current: HashMap<SigningAlg, usize>,
    /// Kids of the published committed keys, in publication order.
    published: Vec<String>,
    /// Extra raw JWK objects appended to the JWKS.
    raw_jwks: Vec<Value>,
    jwks_override: Option<Vec<u8>>,
    jwks_failure: Failure,
    discovery_failure: Failure,
    jwks_cache_control: Option<String>,
    /// Top-level discovery members set (`Some`) or removed (`None`).
    discovery_members: BTreeMap<String, Option<Value>>,
    oauth_metadata_only: bool,
}

impl Config {
    fn new() -> Self {
        let keyring = keyring();
        Config {
            current: SigningAlg::ALL.into_iter().map(|alg| (alg, 0)).collect(),
            published: SigningAlg::ALL
                .into_iter()
                .map(|alg| keyring.key(alg, 0).kid(alg))
                .collect(),
            raw_jwks: Vec::new(),
            jwks_override: None,
            jwks_failure: Failure::None,
            discovery_failure: Failure::None,
            jwks_cache_control: Some(DEFAULT_JWKS_CACHE_CONTROL.to_owned()),
            discovery_members: BTreeMap::new(),
            oauth_metadata_only: false,
        }
    }

    fn current(&self, alg: SigningAlg) -> usize {
        self.current.get(&alg).copied().unwrap_or(0)
    }
}

/// State shared by the handles, the token builders and the server.
#[derive(Debug)]
pub(crate) struct ProviderState {
    addr: SocketAddr,
    issuer: String,
    config: Mutex<Config>,
    jwks_fetches: AtomicUsize,
    discovery_fetches: AtomicUsize,
    /// The authorization server (clients, codes, sessions, grants, knobs).
    pub(crate) auth: Mutex<AuthState>,
}

impl ProviderState {
    fn config(&self) -> MutexGuard<'_, Config> {
        // A panic while holding the lock cannot leave `Config` inconsistent
        // (every update is a single assignment), so poisoning is ignored.
        self.config.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Rotation position of `alg`'s current key.
    pub(crate) fn current_index(&self, alg: SigningAlg) -> usize {
        self.config().current(alg)
    }

    fn discovery_document(&self) -> Value {
        let issuer = &self.issuer;
        let mut document = json!({
            "issuer": issuer,
            "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
            "end_session_endpoint": format!("{issuer}{END_SESSION_PATH}"),
            "jwks_uri": format!("{issuer}{JWKS_PATH}"),
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported":
                SigningAlg::ALL.map(SigningAlg::as_str),
            "scopes_supported": ["openid", "profile", "email", "api:read", "api:write"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
                "email", "email_verified", "name", "preferred_username",
            ],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": [
                TokenEndpointAuth::ClientSecretBasic.as_str(),
                TokenEndpointAuth::ClientSecretPost.as_str(),
                TokenEndpointAuth::None.as_str(),
            ],
            "prompt_values_supported": ["none", "login"],
            "authorization_response_iss_parameter_supported": true,
            "request_parameter_supported": false,
            "request_uri_parameter_supported": false,
            "backchannel_logout_supported": true,
            "backchannel_logout_session_supported": true,
        });
        if let Value::Object(members) = &mut document {
            for (name, value) in &self.config().discovery_members {
                match value {
                    Some(value) => members.insert(name.clone(), value.clone()),
                    None => members.remove(name),
                };
            }
        }
        document
    }

    fn public_jwks(&self) -> Value {
        let config = self.config();
        let by_kid = keyring().jwk_by_kid();
        let keys: Vec<Value> = config
            .published
            .iter()
            .filter_map(|kid| by_kid.get(kid).cloned())
            .chain(config.raw_jwks.iter().cloned())
            .collect();
        json!({ "keys": keys })
    }

    /// The JWKS response body: the override if set, else the JWKS.
    fn jwks_body(&self) -> Vec<u8> {
        if let Some(body) = &self.config().jwks_override {
            return body.clone();
        }
        to_json_bytes(&self.public_jwks())
    }
}

fn to_json_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` to memory cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// What the HTTP handlers see.
#[derive(Clone, Debug)]
pub(crate) struct ServerState {
    pub(crate) provider: Arc<ProviderState>,
    pub(crate) shutdown: watch::Receiver<bool>,
}

/// The parts of a provider that exist once, whatever the number of handles.
#[derive(Debug)]
struct Shared {
    state: Arc<ProviderState>,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // The last handle is gone: stop the server (graceful shutdown ends
        // idle connections and releases hanging requests).
        self.shutdown.send_replace(true);
    }
}

/// An in-process OpenID Provider serving discovery, a JWKS and an
/// authorization server (code flow with PKCE, token, UserInfo and logout
/// endpoints) over HTTP on `127.0.0.1`, and signing test tokens with
/// committed **public test keys**.
///
/// Start one per test with [`TestProvider::start`]; the handle is cheap to
/// clone (all clones control the same provider). The server runs on the tokio
/// runtime that called `start` and stops on [`TestProvider::shutdown`], when
/// the last handle is dropped, or when that runtime ends.
///
/// # Served endpoints
///
/// | path | content |
/// | --- | --- |
/// | `/.well-known/openid-configuration` | OpenID Connect discovery document |
/// | `/.well-known/oauth-authorization-server` | the same document (RFC 8414) |
/// | `/jwks` | the JWKS (`Cache-Control: public, max-age=300` by default) |
/// | `GET`/`POST /authorize` | authorization endpoint: code flow, PKCE S256 required, HTML login form |
/// | `POST /login` | the login form's target: starts the `op_session` and redirects with a code |
/// | `POST /token` | token endpoint: `authorization_code` and `refresh_token` grants |
/// | `GET`/`POST /userinfo` | UserInfo, with `Authorization: Bearer <access token>` |
/// | `GET`/`POST /logout` | end-session endpoint (RP-Initiated Logout) |
///
/// # Authorization server
///
/// Register clients with [`register_client`](TestProvider::register_client)
/// (none is registered at start). Any username logs in, with no password:
/// `sub` = the username, `email` = `<username>@example.test`, `name` and
/// `preferred_username` = the username.
///
/// * `/authorize` checks `client_id`, `redirect_uri` (exactly registered;
///   see [`ClientRegistration::allow_any_loopback_redirect`](crate::ClientRegistration::allow_any_loopback_redirect)),
///   `response_type=code`, a `scope` with `openid`, and an S256
///   `code_challenge` (plain or missing → `error=invalid_request`). Errors
///   are redirected (with `state` and `iss`) when the client and
///   `redirect_uri` are valid, else answered with a 400 HTML page. A valid
///   request shows the login form (username prefilled with `login_hint` or
///   `user-1`, submit button `id="sign-in"`, the request in hidden fields)
///   unless the browser has an `op_session` (single sign-on, skipped by
///   `prompt=login` or an exceeded `max_age`) or
///   [`set_auto_login`](TestProvider::set_auto_login) is on. `prompt=none`
///   without a session → `error=login_required`.
/// * After login: `303` to `redirect_uri?code=…&state=…&iss=<issuer>` and
///   `Set-Cookie: op_session=…; Path=/; HttpOnly; SameSite=Lax`. Codes are
///   single-use and live 60 s; they are bound to the client, `redirect_uri`,
///   PKCE challenge, nonce, scope, `auth_time` and `sid`.
/// * `/token` authenticates the client with its registered
///   [`TokenEndpointAuth`](crate::TokenEndpointAuth) method and answers
///   `{access_token, token_type: "Bearer", expires_in, id_token,
///   refresh_token, scope}`. The access token is an RFC 9068 JWT (`typ`
///   `at+jwt`, RS256, `aud` = the client's audience, default
///   `"api://default"`, `sub`, `client_id`, `scope`); the ID token (`typ`
///   `JWT`, the client's algorithm, default RS256) has `iss`, `sub`, `aud` =
///   client id, `exp`, `iat`, `auth_time`, `nonce` (when sent), `at_hash`,
///   `sid` and the profile and email claims. Errors follow RFC 6749 §5.2:
///   400 JSON `{"error": …}`, or 401 with `WWW-Authenticate: Basic` for
///   `invalid_client`. A second use of a code → `invalid_grant`, and the
///   tokens issued from it are revoked. Refresh tokens rotate on every use;
///   reusing an old one → `invalid_grant` and the whole grant is revoked
///   (like `oidc-provider`). Refresh responses carry a new ID token without
///   `nonce`.
/// * `/userinfo` accepts the access tokens this provider issued, unexpired
///   and unrevoked; otherwise 401 with `WWW-Authenticate: Bearer …,
///   error="invalid_token"` (no `error` when no token was sent).
/// * `/logout` takes `id_token_hint` (decoded, not verified), `client_id`,
///   `post_logout_redirect_uri` (must be registered for the client) and
///   `state`; it ends the `op_session` (clearing the cookie and revoking the
///   grants of that session) and answers `303` to
///   `post_logout_redirect_uri?state=…`, or a "you are logged out" page.
///   Before answering, it POSTs a back-channel logout token (`typ`
///   `logout+jwt`, `iss`, `aud` = client id, `iat`, `exp`, `jti`, `events`,
///   `sub` and the session's `sid`, as in its ID tokens) to the
///   [`backchannel_logout_uri`](crate::ClientRegistration::with_backchannel_logout_uri)
///   of every client issued tokens in the ended session, one after the
///   other (each bounded to 5 s; failures do not change the answer), and
///   records each delivery with the client's answer
///   ([`backchannel_deliveries`](TestProvider::backchannel_deliveries)).
///
/// Misbehaviour knobs, each named after the cases of the project's
/// security-case catalogue it serves:
/// [`mutate_id_token`](TestProvider::mutate_id_token),
/// [`sign_id_token_with`](TestProvider::sign_id_token_with),
/// [`mutate_token_response`](TestProvider::mutate_token_response),
/// [`fail_token`](TestProvider::fail_token),
/// [`mutate_userinfo`](TestProvider::mutate_userinfo),
/// [`set_callback_iss`](TestProvider::set_callback_iss),
/// [`set_callback_extra`](TestProvider::set_callback_extra),
/// [`set_authorization_error`](TestProvider::set_authorization_error),
/// [`ignore_pkce`](TestProvider::ignore_pkce),
/// [`set_nonce_override`](TestProvider::set_nonce_override),
/// [`set_logout_state`](TestProvider::set_logout_state) and
/// [`revoke_user`](TestProvider::revoke_user); back-channel logout on
/// demand, including hostile logout tokens:
/// [`logout_token`](TestProvider::logout_token),
/// [`send_backchannel_logout`](TestProvider::send_backchannel_logout),
/// [`deliver_logout_token`](TestProvider::deliver_logout_token) and
/// [`session_ids`](TestProvider::session_ids); and recordings:
/// [`authorization_requests`](TestProvider::authorization_requests),
/// [`token_requests`](TestProvider::token_requests),
/// [`userinfo_request_count`](TestProvider::userinfo_request_count),
/// [`end_session_requests`](TestProvider::end_session_requests),
/// [`backchannel_deliveries`](TestProvider::backchannel_deliveries).
///
/// # Keys and kids
///
/// Each [`SigningAlg`] has a *current* key: at start `rsa1` for the six RSA
/// algorithms, `ec1` for ES256 and `ed1` for EdDSA. Each (key, algorithm)
/// pair is a separate JWK whose `kid` is `<key>-<alg>` (for example
/// `rsa1-RS256`, `rsa1-PS256`, `ec1-ES256`, `ed1-EdDSA`) with `"use": "sig"`
/// and `"alg": "<alg>"`, so the initial JWKS holds 8 keys.
/// [`rotate_key`](TestProvider::rotate_key) moves one algorithm to its
/// family's next key (RSA: `rsa1` → `rsa2` → `rsa3` → `rsa1`; EC: `ec1` ↔
/// `ec2`; Ed25519: `ed1` ↔ `ed2`) and publishes it, keeping the old key.
///
/// **All these keys are public test keys, committed to a public repository:
/// never trust them outside tests.**
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use oidc_testing::{SigningAlg, TestProvider};
///
/// let provider = TestProvider::start().await;
/// let discovery: serde_json::Value =
///     reqwest::get(format!("{}/.well-known/openid-configuration", provider.issuer()))
///         .await?
///         .json()
///         .await?;
/// assert_eq!(discovery["issuer"], provider.issuer());
/// assert_eq!(discovery["jwks_uri"], provider.jwks_uri());
/// assert_eq!(provider.discovery_fetch_count(), 1);
///
/// let old = provider.kid(SigningAlg::RS256);
/// let new = provider.rotate_key(SigningAlg::RS256);
/// let kids: Vec<_> = provider.public_jwks()["keys"]
///     .as_array()
///     .unwrap()
///     .iter()
///     .map(|jwk| jwk["kid"].as_str().unwrap().to_owned())
///     .collect();
/// assert!(kids.contains(&old) && kids.contains(&new));
///
/// provider.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct TestProvider {
    shared: Arc<Shared>,
}

impl fmt::Debug for TestProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestProvider")
            .field("issuer", &self.state().issuer)
            .finish_non_exhaustive()
    }
}

impl TestProvider {
    /// Binds `127.0.0.1:0` (an ephemeral port) and spawns the provider's
    /// axum server on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime or when no loopback port
    /// can be bound; use [`TestProvider::try_start`] to get the I/O error
    /// instead.
    #[allow(
        clippy::panic,
        reason = "test support code: a test cannot go on without its provider"
    )]
    pub async fn start() -> TestProvider {
        match TestProvider::try_start().await {
            Ok(provider) => provider,
            Err(error) => panic!("oidc-testing: cannot start the test provider: {error}"),
        }
    }

    /// Like [`TestProvider::start`], but returns the error when binding the
    /// listener fails.
    ///
    /// # Panics
    ///
    /// Panics when called outside a tokio runtime.
    pub async fn try_start() -> io::Result<TestProvider> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(ProviderState {
            addr,
            issuer: format!("http://{addr}"),
            config: Mutex::new(Config::new()),
            jwks_fetches: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            auth: Mutex::new(AuthState::new()),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let app = router(ServerState {
            provider: Arc::clone(&state),
            shutdown: shutdown_rx.clone(),
        });
        let mut signal = shutdown_rx;
        let server = tokio::spawn(async move {
            let stopped = async move {
                // Ends on `true` or when the sender (the last handle) is gone.
                let _ = signal.wait_for(|stop| *stop).await;
            };
            // `serve` only returns errors from a failed accept loop, which
            // leaves nothing to do for a test server.
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stopped)
                .await;
        });
        Ok(TestProvider {
            shared: Arc::new(Shared {
                state,
                shutdown,
                server: Mutex::new(Some(server)),
            }),
        })
    }

    pub(crate) fn state(&self) -> &Arc<ProviderState> {
        &self.shared.state
    }

    /// The issuer identifier: `http://127.0.0.1:PORT`, without a trailing
    /// slash. It is the `iss` of the tokens and the default `issuer` of the
    /// discovery document.
    pub fn issuer(&self) -> String {
        self.state().issuer.clone()
    }

    /// The JWKS URL: [`issuer`](TestProvider::issuer) + `/jwks`.
    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.state().issuer)
    }

    /// The URL of the OpenID Connect discovery document:
    /// [`issuer`](TestProvider::issuer) + `/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}{OPENID_CONFIGURATION_PATH}", self.state().issuer)
    }

    /// The socket address the provider listens on.
    pub fn addr(&self) -> SocketAddr {
        self.state().addr
    }

    /// Starts building a token signed by this provider.
    ///
    /// Defaults: header `{"alg": "RS256", "typ": "at+jwt", "kid": <current
    /// RS256 kid>}`, claims `iss` = [`issuer`](TestProvider::issuer), `sub`
    /// `"user-1"`, `aud` `"api://default"`, `client_id` `"client-1"`, `iat`
    /// now, `exp` now + 300 s, a unique `jti` and `scope` `"openid
    /// api:read"`. See [`TokenBuilder`].
    pub fn token(&self) -> TokenBuilder {
        TokenBuilder::new(Arc::clone(self.state()))
    }

    /// Makes the next committed key of `alg`'s family the current signer for
    /// `alg` (RSA: `rsa1` → `rsa2` → `rsa3` → `rsa1`; EC and Ed25519 alternate
    /// between their two keys), publishes it if it is not published, and
    /// returns its kid. Previously published keys stay published; other
    /// algorithms keep their current key.
    ///
    /// Rotating more often than the family has keys comes back to a key
    /// used before, whose kid is then returned again.
    pub fn rotate_key(&self, alg: SigningAlg) -> String {
        let keyring = keyring();
        let mut config = self.state().config();
        let next = (config.current(alg) + 1) % keyring.count(alg).max(1);
        config.current.insert(alg, next);
        let kid = keyring.key(alg, next).kid(alg);
        if !config.published.contains(&kid) {
            config.published.push(kid.clone());
        }
        kid
    }

    /// Stops publishing the key with this kid: a committed key, or any raw
    /// JWK added with [`add_raw_jwk`](TestProvider::add_raw_jwk) whose `kid`
    /// member is this string. Tokens keep being signed with the current key
    /// even when it is no longer published.
    pub fn remove_key(&self, kid: &str) {
        let mut config = self.state().config();
        config.published.retain(|published| published != kid);
        config
            .raw_jwks
            .retain(|jwk| jwk.get("kid").and_then(Value::as_str) != Some(kid));
    }

    /// Publishes the key with this kid again (or for the first time: any
    /// committed key's kid works, such as `rsa3-PS512`), without making it
    /// current. Returns `false` when no committed key has this kid.
    pub fn publish_key(&self, kid: &str) -> bool {
        if keyring().find_kid(kid).is_none() {
            return false;
        }
        let mut config = self.state().config();
        if !config.published.iter().any(|published| published == kid) {
            config.published.push(kid.to_owned());
        }
        true
    }

    /// Appends an arbitrary JSON value to the JWKS `keys` array, as is (for
    /// unusable-key tests: `kty` `"AKP"`, an unknown `kty`, `use` `"enc"`,
    /// `kty` `"oct"`, an RSA key with a bad `n`, ...). Remove it with
    /// [`remove_key`](TestProvider::remove_key) (by its `kid`) or
    /// [`clear_raw_jwks`](TestProvider::clear_raw_jwks).
    pub fn add_raw_jwk(&self, jwk: Value) {
        self.state().config().raw_jwks.push(jwk);
    }

    /// Removes every JWK added with [`add_raw_jwk`](TestProvider::add_raw_jwk).
    pub fn clear_raw_jwks(&self) {
        self.state().config().raw_jwks.clear();
    }

    /// Replaces the whole JWKS response body with these raw bytes (`None`
    /// serves the normal JWKS again). The status stays 200 with
    /// `Content-Type: application/json` unless a [`Failure`] is set.
    pub fn set_jwks_override(&self, body: Option<Vec<u8>>) {
        self.state().config().jwks_override = body;
    }

    /// Sets how the JWKS endpoint misbehaves ([`Failure::None`] to restore).
    pub fn fail_jwks(&self, failure: Failure) {
        self.state().config().jwks_failure = failure;
    }

    /// Sets how both discovery endpoints misbehave ([`Failure::None`] to
    /// restore).
    pub fn fail_discovery(&self, failure: Failure) {
        self.state().config().discovery_failure = failure;
    }

    /// Sets the `Cache-Control` header of JWKS responses (default
    /// `"public, max-age=300"`); `None` sends no `Cache-Control`. The header
    /// is sent on every JWKS response, including injected failures (except
    /// [`Failure::Hang`]). An invalid header value sends no header.
    pub fn set_jwks_cache_control(&self, value: Option<&str>) {
        self.state().config().jwks_cache_control = value.map(str::to_owned);
    }

    /// Sets (`Some`) or removes (`None`) a top-level member of the discovery
    /// document, for example `"issuer"` to a wrong value or
    /// `"id_token_signing_alg_values_supported"`. Applies to both discovery
    /// paths; later calls for the same name replace earlier ones.
    pub fn set_discovery_member(&self, name: &str, value: Option<Value>) {
        self.state()
            .config()
            .discovery_members
            .insert(name.to_owned(), value);
    }

    /// The discovery document as currently served (with the edits of
    /// [`set_discovery_member`](TestProvider::set_discovery_member)).
    pub fn discovery_document(&self) -> Value {
        self.state().discovery_document()
    }

    /// How many requests reached the JWKS endpoint, whatever their outcome.
    pub fn jwks_fetch_count(&self) -> usize {
        self.state().jwks_fetches.load(Ordering::SeqCst)
    }

    /// How many requests reached either discovery path
    /// (`openid-configuration` or `oauth-authorization-server`), whatever
    /// their outcome (404s of
    /// [`serve_oauth_metadata_only`](TestProvider::serve_oauth_metadata_only)
    /// included).
    pub fn discovery_fetch_count(&self) -> usize {
        self.state().discovery_fetches.load(Ordering::SeqCst)
    }

    /// The kid of `alg`'s current signing key (even if it was removed from
    /// the JWKS).
    pub fn kid(&self, alg: SigningAlg) -> String {
        let index = self.state().current_index(alg);
        keyring().key(alg, index).kid(alg)
    }

    /// With `true`, the discovery document is served only at
    /// `/.well-known/oauth-authorization-server` and
    /// `/.well-known/openid-configuration` answers 404 (for RFC 8414
    /// fallback tests); `false` serves both again.
    pub fn serve_oauth_metadata_only(&self, yes: bool) {
        self.state().config().oauth_metadata_only = yes;
    }

    /// The SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`) of the
    /// current RS256 signing key, for example as the HMAC secret of
    /// [`TokenBuilder::sign_hs256`] in algorithm-confusion tests.
    pub fn rsa_public_key_pem(&self) -> Vec<u8> {
        let index = self.state().current_index(SigningAlg::RS256);
        keyring().key(SigningAlg::RS256, index).public_pem.to_vec()
    }

    /// The JWKS as currently published (`{"keys": [...]}`): the published
    /// committed keys in publication order, then the raw JWKs. Ignores
    /// [`set_jwks_override`](TestProvider::set_jwks_override) and failures.
    pub fn public_jwks(&self) -> Value {
        self.state().public_jwks()
    }

    /// The public JWK of the never-published foreign key of `alg`'s family
    /// (kid `<family>-foreign-<alg>`, such as `rsa-foreign-RS256`). Tokens
    /// from [`TokenBuilder::sign_with_foreign_key`] verify with it; use it
    /// for embedded-`jwk`-header attacks or a JWKS of a wrong issuer.
    pub fn foreign_public_jwk(&self, alg: SigningAlg) -> Value {
        keyring().foreign(alg.family()).public_jwk(alg)
    }

    /// Stops the server, for this handle and every clone, and waits (up to 5
    /// seconds, then aborts) for it to end. Pending [`Failure::Hang`] and
    /// [`Failure::Delay`] requests get a 503. Dropping the last handle also
    /// stops the server, without waiting.
    pub async fn shutdown(self) {
        self.shared.shutdown.send_replace(true);
        let server = self
            .shared
            .server
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(mut server) = server else {
            return; // an earlier `shutdown` (of a clone) already waited
        };
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
            .await
            .is_err()
        {
            server.abort();
        }
    }
}

fn router(state: ServerState) -> Router {
    Router::new()
        .route(OPENID_CONFIGURATION_PATH, get(openid_configuration))
        .route(OAUTH_METADATA_PATH, get(oauth_metadata))
        .route(JWKS_PATH, get(jwks))
        .route(
            AUTHORIZE_PATH,
            get(authz::authorize_get).post(authz::authorize_post),
        )
        .route(LOGIN_PATH, post(authz::login))
        .route(TOKEN_PATH, post(authz::token))
        .route(USERINFO_PATH, get(authz::userinfo).post(authz::userinfo))
        .route(
            END_SESSION_PATH,
            get(authz::end_session_get).post(authz::end_session_post),
        )
        .with_state(state)
}

async fn openid_configuration(State(server): State<ServerState>) -> Response {
    discovery(server, true).await
}

async fn oauth_metadata(State(server): State<ServerState>) -> Response {
    discovery(server, false).await
}

async fn discovery(server: ServerState, openid_path: bool) -> Response {
    let provider = server.provider;
    provider.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let (failure, oauth_only) = {
        let config = provider.config();
        (config.discovery_failure.clone(), config.oauth_metadata_only)
    };
    if openid_path && oauth_only {
        return StatusCode::NOT_FOUND.into_response();
    }
    failure::respond(
        failure,
        server.shutdown,
        move || to_json_bytes(&provider.discovery_document()),
        Vec::new(),
    )
    .await
}

async fn jwks(State(server): State<ServerState>) -> Response {
    let provider = server.provider;
    provider.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let (failure, cache_control) = {
        let config = provider.config();
        (
            config.jwks_failure.clone(),
            config.jwks_cache_control.clone(),
        )
    };
    let headers: Vec<(HeaderName, HeaderValue)> = cache_control
        .and_then(|value| HeaderValue::from_str(&value).ok())
        .map(|value| (header::CACHE_CONTROL, value))
        .into_iter()
        .collect();
    failure::respond(
        failure,
        server.shutdown,
        move || provider.jwks_body(),
        headers,
    )
    .await
}
