//! The hook that runs after a successful login.

use std::future::Future;
use std::pin::Pin;

use oidc_core::AdditionalClaims;
use serde_json::Value;

/// A verified login, handed to the login hook before the session is created.
#[derive(Debug, Clone)]
pub struct LoginInfo {
    pub(crate) issuer: String,
    pub(crate) claims: AdditionalClaims,
}

impl LoginInfo {
    /// The issuer that authenticated the user.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The user's subject at that issuer: with the issuer, the stable key of the identity.
    pub fn subject(&self) -> &str {
        self.claims
            .get("sub")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The `email` claim, when known.
    pub fn email(&self) -> Option<&str> {
        self.claims.get("email").and_then(Value::as_str)
    }

    /// Whether the provider says the e-mail address is verified (`email_verified`). Link an
    /// identity to an existing local account by e-mail only when this is true.
    pub fn email_verified(&self) -> bool {
        self.claims.get("email_verified").and_then(Value::as_bool) == Some(true)
    }

    /// The ID token claims merged with the UserInfo claims.
    pub fn claims(&self) -> &AdditionalClaims {
        &self.claims
    }
}

/// The login hook refused the user: the browser gets 403 with this message (escaped) and no
/// session is created.
#[derive(Debug, Clone)]
pub struct LoginRefused {
    message: String,
}

impl LoginRefused {
    /// A refusal with a message for the user.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// The message for the user.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for LoginRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "login refused: {}", self.message)
    }
}

impl std::error::Error for LoginRefused {}

/// The future a login hook returns.
pub type HookFuture = Pin<Box<dyn Future<Output = Result<Option<String>, LoginRefused>> + Send>>;

/// Runs after a successful login with the verified claims: map the identity to the app's own
/// user (return its id, kept in the session), create one on first login, or refuse the login.
///
/// Implemented for `Fn(LoginInfo) -> impl Future<Output = Result<Option<String>, LoginRefused>>`.
pub trait OnLogin: Send + Sync + 'static {
    /// Decides about `login`. `Ok(Some(id))` stores the app's user id in the session.
    fn on_login(&self, login: LoginInfo) -> HookFuture;
}

impl<F, Fut> OnLogin for F
where
    F: Fn(LoginInfo) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<String>, LoginRefused>> + Send + 'static,
{
    fn on_login(&self, login: LoginInfo) -> HookFuture {
        Box::pin(self(login))
    }
}
