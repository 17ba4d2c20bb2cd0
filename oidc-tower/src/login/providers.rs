//! Several providers behind one login layer, and the page that lists them.

use oidc_core::flow::OidcClient;

/// One provider users may sign in with: a name (the URL segment of
/// `/auth/login/{name}`), a display name for the login page, and the client registered there
/// (issuer or manual endpoints, credentials and scopes are the client's).
#[derive(Debug, Clone)]
pub struct LoginProvider {
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) client: OidcClient,
    /// The path of the client's redirect URI, below the app's path prefix.
    pub(crate) callback_path: String,
}

impl LoginProvider {
    /// A provider named `name` (letters, digits, `-`, `_` and `.`; it appears in
    /// `/auth/login/{name}`), shown as `display_name`, signing in with `client`.
    pub fn new(
        name: impl Into<String>,
        display_name: impl Into<String>,
        client: OidcClient,
    ) -> Self {
        Self {
            name: name.into(),
            display_name: display_name.into(),
            client,
            callback_path: String::new(),
        }
    }

    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name shown to users.
    pub fn display_name(&self) -> &str {
        &self.display_name
    }

    /// The client registered at the provider.
    pub fn client(&self) -> &OidcClient {
        &self.client
    }
}

/// A link of the login page: one provider and the URL that starts its login.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProviderLink {
    /// The provider's name.
    pub name: String,
    /// The name shown to users.
    pub display_name: String,
    /// The path that starts the login at this provider, with the request's `return_to`
    /// and `login_hint` (already URL-encoded; escape it for HTML).
    pub href: String,
}

/// Whether `name` is 1 to 64 ASCII letters, digits, `-`, `_` or `.`: a provider name (a
/// plain path segment) or a cookie name.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}
