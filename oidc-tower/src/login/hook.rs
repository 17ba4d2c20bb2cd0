//! The hook that runs after a successful login.

use std::future::Future;
use std::pin::Pin;

use oidc_core::AdditionalClaims;
use serde_json::Value;

/// A verified login, handed to the login hook before the session is created.
#[derive(Debug, Clone)]
pub struct LoginInfo {
    pub(crate) provider: String,
    pub(crate) issuer: String,
    pub(crate) claims: AdditionalClaims,
}

impl LoginInfo {
    /// The name of the provider the user signed in with (see
    /// [`LoginProvider`](super::LoginProvider); `"default"` with a single provider).
    pub fn provider(&self) -> &str {
        &self.provider
    }

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

    /// Whether the provider says the e-mail address is verified (`email_verified` is the JSON
    /// boolean `true`). Link an identity to an existing local account by e-mail only when this
    /// is true: see [Linking to local accounts](OnLogin#linking-to-local-accounts).
    pub fn email_verified(&self) -> bool {
        self.claims.get("email_verified").and_then(Value::as_bool) == Some(true)
    }

    /// The `email` claim when the provider says it is verified ([`LoginInfo::email_verified`]),
    /// else `None`: the address to look an existing local account up by, at the first login.
    pub fn verified_email(&self) -> Option<&str> {
        self.email().filter(|_| self.email_verified())
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
///
/// # Linking to local accounts
///
/// An app with its own accounts (a password login next to OpenID Connect, or users imported
/// before it) links each OIDC identity to one of them in the hook, and returns its id: handlers
/// read it back with [`LoginSession::local_user`](super::LoginSession::local_user) (in axum, the
/// `oidc_axum::User` extractor).
///
/// - **The identity is (`iss`, `sub`)**: [`LoginInfo::issuer`] with [`LoginInfo::subject`].
///   Once linked, look the account up by that pair only, never again by e-mail: addresses
///   change and are reassigned, and a `sub` is unique only at its issuer.
/// - **Link by e-mail only at the first login, and only with a verified address**:
///   [`LoginInfo::verified_email`] is the `email` claim when the provider asserts
///   `email_verified: true` (the JSON boolean; a string `"true"` does not count).
/// - **An unverified address links nothing.** The example below then creates a new local
///   account and does not record the address (nobody can be linked through it later), rather
///   than refusing the login with [`LoginRefused`]: a refusal only when an account with that
///   address exists would tell anyone who tries which addresses have accounts. Refuse every
///   login without a verified address instead when the app needs one.
/// - **Trust `email_verified` only from providers that check addresses themselves.** A
///   provider whose users or tenant administrators can set any address (a multi-tenant
///   directory, a social login without verification) can claim anyone's. With several
///   providers, link by e-mail only for the issuers you trust for it.
/// - Normalize addresses the way the local accounts are (the example lower-cases them).
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
///
/// use oidc_core::Provider;
/// use oidc_core::flow::OidcClient;
/// use oidc_tower::login::{LoginInfo, LoginLayer, LoginRefused};
///
/// /// The app's own accounts (a database in a real app).
/// #[derive(Default)]
/// struct Accounts {
///     /// Local account id by normalized, verified e-mail address.
///     by_email: HashMap<String, String>,
///     /// Local account id by OIDC identity: (issuer, subject).
///     by_identity: HashMap<(String, String), String>,
///     next_id: u64,
/// }
///
/// impl Accounts {
///     fn link(&mut self, login: &LoginInfo) -> String {
///         let identity = (login.issuer().to_owned(), login.subject().to_owned());
///         // A known identity: its account, whatever the e-mail says today.
///         if let Some(id) = self.by_identity.get(&identity) {
///             return id.clone();
///         }
///         // First login: the account with the same verified address, or a new one.
///         let email = login.verified_email().map(str::to_ascii_lowercase);
///         let existing = email.as_ref().and_then(|e| self.by_email.get(e)).cloned();
///         let id = existing.unwrap_or_else(|| {
///             self.next_id += 1;
///             let id = format!("user-{}", self.next_id);
///             if let Some(email) = email {
///                 self.by_email.insert(email, id.clone());
///             }
///             id
///         });
///         self.by_identity.insert(identity, id.clone());
///         id
///     }
/// }
///
/// # fn main() -> Result<(), oidc_core::error::ConfigError> {
/// let accounts = Arc::new(Mutex::new(Accounts::default()));
/// let provider = Provider::builder("https://id.example.com").build()?;
/// let client = OidcClient::new(provider, "web-app", "https://app.example.com/auth/callback")?;
/// let login = LoginLayer::new(client, "https://app.example.com")?.with_login_hook(
///     move |login: LoginInfo| {
///         // An in-memory table is read before the future (no lock across an await); with
///         // an async database, run the same steps inside the future, in one transaction.
///         let linked = match accounts.lock() {
///             Ok(mut accounts) => Ok(Some(accounts.link(&login))),
///             Err(_) => Err(LoginRefused::new("accounts are unavailable, try again later")),
///         };
///         async move { linked }
///     },
/// );
/// # let _ = login;
/// # Ok(())
/// # }
/// ```
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
