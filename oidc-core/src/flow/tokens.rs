//! The tokens a login or refresh yields.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::secret::Secret;

/// The result of a code exchange or refresh: tokens (redacted in `Debug`) and the verified ID
/// token claims. Serializable, to be kept server-side (in the session), never in a cookie.
#[derive(Clone, Serialize, Deserialize)]
pub struct TokenSet {
    pub(crate) access_token: Secret,
    pub(crate) refresh_token: Option<Secret>,
    pub(crate) id_token: Secret,
    /// Seconds since the Unix epoch.
    pub(crate) expires_at: Option<i64>,
    pub(crate) scope: Option<String>,
    pub(crate) id_claims: Map<String, Value>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token.is_some())
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// The access token, for calling APIs on the user's behalf.
    pub fn access_token(&self) -> &Secret {
        &self.access_token
    }

    /// The refresh token, if the provider issued one.
    pub fn refresh_token(&self) -> Option<&Secret> {
        self.refresh_token.as_ref()
    }

    /// The raw ID token (for `id_token_hint` at logout).
    pub fn id_token(&self) -> &Secret {
        &self.id_token
    }

    /// When the access token expires, in seconds since the Unix epoch, if the provider said.
    pub fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }

    /// The granted scopes, space separated, if the provider said.
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// The verified claims of the ID token.
    pub fn id_claims(&self) -> &Map<String, Value> {
        &self.id_claims
    }

    /// The subject (`sub`) of the ID token.
    pub fn subject(&self) -> &str {
        self.id_claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}
