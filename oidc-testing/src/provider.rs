//! The public handle of the in-process OpenID Provider.
//!
//! [`TestProvider`] is defined here with its documentation; its methods sit
//! with what they change: starting and stopping in `server.rs`, each
//! endpoint's knobs and recordings in `endpoints/`, back-channel logout in
//! `backchannel.rs`. The handle reaches the provider's state (`state.rs`)
//! through [`TestProvider::state`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::client::ClientRegistration;
use crate::state::ProviderState;
use crate::token::TokenBuilder;

/// The parts of a provider that exist once, whatever the number of handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Arc<ProviderState>,
    pub(crate) shutdown: watch::Sender<bool>,
    pub(crate) server: Mutex<Option<JoinHandle<()>>>,
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
/// Each [`SigningAlg`](crate::SigningAlg) has a *current* key: at start `rsa1` for the six RSA
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
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for TestProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestProvider")
            .field("issuer", &self.state().issuer)
            .finish_non_exhaustive()
    }
}

impl TestProvider {
    pub(crate) fn state(&self) -> &Arc<ProviderState> {
        &self.shared.state
    }

    /// The issuer identifier: `http://127.0.0.1:PORT`, without a trailing
    /// slash. It is the `iss` of the tokens and the default `issuer` of the
    /// discovery document.
    pub fn issuer(&self) -> String {
        self.state().issuer.clone()
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
}

impl TestProvider {
    /// Registers a client, replacing any client with the same id. No client
    /// is registered at start.
    pub fn register_client(&self, client: ClientRegistration) {
        self.state()
            .auth()
            .clients
            .insert(client.client_id.clone(), client);
    }
}
