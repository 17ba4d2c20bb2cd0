//! What the login layer keeps in the server-side session.

use oidc_core::flow::{Secret, TokenSet};
use std::sync::Arc;

use oidc_core::{AdditionalClaims, Claims, Identity};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Session key of the pending login transactions.
pub(crate) const TX_KEY: &str = "oidc.tx";
/// Session key of the logged-in state.
pub(crate) const LOGIN_KEY: &str = "oidc.login";

/// The logged-in state, stored server-side.
#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct LoginState {
    /// The name of the provider (empty in sessions stored before providers had names: the
    /// provider is then found by issuer).
    #[serde(default)]
    pub(crate) provider: String,
    /// The client id the login was made for (empty in sessions stored before it was
    /// recorded: such a session is no session, see `store::namespace`).
    #[serde(default)]
    pub(crate) client_id: String,
    pub(crate) issuer: String,
    pub(crate) tokens: TokenSet,
    /// ID token claims merged with UserInfo claims (ID token wins for `iss`, `sub`, `aud`).
    pub(crate) claims: AdditionalClaims,
    pub(crate) local_user: Option<String>,
    /// Seconds since the Unix epoch.
    pub(crate) authenticated_at: i64,
    pub(crate) last_seen: i64,
    pub(crate) last_revalidated: i64,
}

impl LoginState {
    /// The identity handlers see: the merged claims, with the granted scopes.
    pub(crate) fn identity(&self) -> Identity {
        let mut claims = self.claims.clone();
        if let Some(scope) = self.tokens.scope() {
            claims.insert("scope".to_owned(), Value::String(scope.to_owned()));
        }
        Identity::from_verified_claims(&claims)
    }
}

/// A logged-in state with what handlers get, built once and kept in the layer's cache of
/// recent logins (see `refresh::current_login`).
pub(crate) struct LoggedIn {
    pub(crate) state: Arc<LoginState>,
    pub(crate) identity: Identity,
    pub(crate) claims: Claims<AdditionalClaims>,
    /// The registry key of the session's ended mark, asked on every request.
    pub(crate) ended_key: String,
}

impl LoggedIn {
    pub(crate) fn new(state: Arc<LoginState>, ended_key: String) -> Self {
        let identity = state.identity();
        let claims = Claims::new(identity.clone(), state.claims.clone());
        Self {
            state,
            identity,
            claims,
            ended_key,
        }
    }
}

/// The logged-in user of a browser session, in the request extensions of every request the
/// login layer lets through with a session.
///
/// Gives the claims (ID token and UserInfo), the app's own user id from the login hook, and a
/// fresh access token for calling APIs on the user's behalf.
#[derive(Clone)]
pub struct LoginSession {
    pub(crate) state: Arc<LoginState>,
}

impl std::fmt::Debug for LoginSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginSession")
            .field("provider", &self.state.provider)
            .field("issuer", &self.state.issuer)
            .field("subject", &self.subject())
            .field("local_user", &self.state.local_user)
            .finish_non_exhaustive()
    }
}

impl LoginSession {
    /// The issuer that authenticated the user.
    pub fn issuer(&self) -> &str {
        &self.state.issuer
    }

    /// The name of the provider that authenticated the user (see
    /// [`LoginProvider`](super::LoginProvider); `"default"` with a single provider).
    pub fn provider(&self) -> &str {
        &self.state.provider
    }

    /// The user's subject at that issuer.
    pub fn subject(&self) -> &str {
        self.state.tokens.subject()
    }

    /// The ID token claims merged with the UserInfo claims.
    pub fn claims(&self) -> &AdditionalClaims {
        &self.state.claims
    }

    /// The `email` claim, when known.
    pub fn email(&self) -> Option<&str> {
        self.state.claims.get("email").and_then(Value::as_str)
    }

    /// The app's own user id, as returned by the login hook.
    pub fn local_user(&self) -> Option<&str> {
        self.state.local_user.as_deref()
    }

    /// A fresh access token: refreshed by the layer before it expires.
    pub fn access_token(&self) -> &Secret {
        self.state.tokens.access_token()
    }

    /// When the user authenticated, in seconds since the Unix epoch.
    pub fn authenticated_at(&self) -> i64 {
        self.state.authenticated_at
    }
}

/// The session handle the layer's session manager put in the request.
pub(crate) fn session_of(parts: &http::request::Parts) -> Option<tower_sessions::Session> {
    parts.extensions.get::<tower_sessions::Session>().cloned()
}
