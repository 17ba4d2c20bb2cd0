//! One login attempt: what the callback must match, kept server-side.

use serde::{Deserialize, Serialize};

use super::secret::Secret;

/// What a login request may ask of the provider beyond the defaults.
///
/// # Examples
///
/// ```
/// use oidc_core::flow::AuthorizeOptions;
///
/// let options = AuthorizeOptions::new()
///     .with_return_to("/reports?year=2026")
///     .with_login_hint("ada@example.com")
///     .with_prompt("login")
///     .with_max_age(std::time::Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct AuthorizeOptions {
    pub(crate) return_to: Option<String>,
    pub(crate) login_hint: Option<String>,
    pub(crate) prompt: Vec<String>,
    pub(crate) max_age: Option<u64>,
    pub(crate) acr_values: Vec<String>,
    pub(crate) extra: Vec<(String, String)>,
}

impl AuthorizeOptions {
    /// No options: scopes from the client, no hints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where to send the browser after login. Only same-origin relative paths are kept (see
    /// [`sanitize_return_to`]); anything else becomes `/`.
    pub fn with_return_to(mut self, path: impl AsRef<str>) -> Self {
        self.return_to = Some(sanitize_return_to(path.as_ref()));
        self
    }

    /// `login_hint`, for example an e-mail address.
    pub fn with_login_hint(mut self, hint: impl Into<String>) -> Self {
        self.login_hint = Some(hint.into());
        self
    }

    /// Adds a `prompt` value (`login`, `consent`, `select_account`, `none`).
    pub fn with_prompt(mut self, prompt: impl Into<String>) -> Self {
        self.prompt.push(prompt.into());
        self
    }

    /// `max_age`: the login must be at most this old; the ID token's `auth_time` is checked.
    pub fn with_max_age(mut self, max_age: std::time::Duration) -> Self {
        self.max_age = Some(max_age.as_secs());
        self
    }

    /// Adds an `acr_values` entry.
    pub fn add_acr_value(mut self, acr: impl Into<String>) -> Self {
        self.acr_values.push(acr.into());
        self
    }

    /// Adds an extra authorization request parameter. Parameters the flow sets itself
    /// (`state`, `nonce`, `code_challenge`, `redirect_uri`, …) cannot be overridden.
    ///
    /// A `response_type` other than `code`, a `response_mode` other than `query` or any
    /// `grant_type` asks for a grant this library refuses: then
    /// [`OidcClient::authorize`](crate::flow::OidcClient::authorize) fails with
    /// [`FlowError::UnsupportedGrant`](crate::error::FlowError::UnsupportedGrant) (see
    /// [refused grants](crate::flow::grants#refused-grants)).
    pub fn add_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.push((name.into(), value.into()));
        self
    }
}

/// The parameters the flow owns; extra parameters may not set them.
pub(crate) const RESERVED_PARAMS: [&str; 11] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "scope",
    "state",
    "nonce",
    "code_challenge",
    "code_challenge_method",
    "max_age",
    "prompt",
    "login_hint",
];

/// A login in progress: created with the authorization request, consumed by its callback.
///
/// It holds the PKCE verifier, so it is stored server-side (in the session) and never sent
/// to the browser. `Debug` redacts the secrets.
#[derive(Clone, Serialize, Deserialize)]
pub struct Transaction {
    pub(crate) state: Secret,
    pub(crate) nonce: Secret,
    pub(crate) pkce_verifier: Secret,
    pub(crate) issuer: String,
    pub(crate) redirect_uri: String,
    pub(crate) return_to: String,
    pub(crate) max_age: Option<u64>,
    /// Seconds since the Unix epoch.
    pub(crate) created_at: i64,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("issuer", &self.issuer)
            .field("return_to", &self.return_to)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl Transaction {
    /// The `state` sent to the provider.
    pub fn state(&self) -> &str {
        self.state.secret()
    }

    /// Whether `state` is this transaction's state (compared in constant time).
    pub fn matches_state(&self, state: &str) -> bool {
        super::secret::ct_eq(self.state.secret().as_bytes(), state.as_bytes())
    }

    /// The issuer the login was started at (RFC 9700 mix-up defence).
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The redirect URI the login was started with.
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// Where to send the browser after login: a same-origin relative path.
    pub fn return_to(&self) -> &str {
        &self.return_to
    }

    /// When the transaction was created, in seconds since the Unix epoch.
    pub fn created_at(&self) -> i64 {
        self.created_at
    }
}

/// Keeps only same-origin relative paths; anything else becomes `/`.
///
/// The path must start with a single `/` (not `//` or `/\`), contain no control characters,
/// backslashes or whitespace, and must not decode (percent-decoding, repeatedly) into
/// something that starts with `//` or `/\`. Query and fragment are kept (RED-01).
///
/// ```
/// use oidc_core::flow::sanitize_return_to;
///
/// assert_eq!(sanitize_return_to("/app?x=1#y"), "/app?x=1#y");
/// assert_eq!(sanitize_return_to("//evil.example"), "/");
/// assert_eq!(sanitize_return_to("https://evil.example/"), "/");
/// assert_eq!(sanitize_return_to("/%2F%2Fevil.example"), "/");
/// ```
pub fn sanitize_return_to(raw: &str) -> String {
    if is_safe_path(raw) {
        raw.to_owned()
    } else {
        "/".to_owned()
    }
}

fn is_safe_path(raw: &str) -> bool {
    if raw.len() > 2048 || !raw.starts_with('/') {
        return false;
    }
    if raw
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return false;
    }
    // Decode repeatedly (bounded) and check each form: no `//`, `/\` start, no controls. A
    // path that still changes after the last round is refused rather than trusted.
    let mut current = raw.to_owned();
    let mut settled = false;
    for _ in 0..4 {
        if current.starts_with("//") || current.starts_with("/\\") {
            return false;
        }
        if current
            .chars()
            .any(|c| c.is_control() || c == '\\' || (c.is_whitespace() && c != ' '))
        {
            return false;
        }
        let decoded = percent_decode(&current);
        if decoded == current {
            settled = true;
            break;
        }
        current = decoded;
    }
    settled && !(current.starts_with("//") || current.starts_with("/\\"))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes.get(i).copied().unwrap_or_default();
        if b == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                bytes.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn red_01_return_to_table() {
        for ok in ["/", "/app", "/app?x=1#y", "/a/b/c?q=%20x", "/%E2%9C%93"] {
            assert_eq!(sanitize_return_to(ok), ok, "{ok}");
        }
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil",
            "/%2F%2Fevil.example",
            "%2F%2Fevil",
            "/%2f/evil.example",
            "/\t/evil.example",
            "/\n/evil.example",
            "https:evil.example",
            "javascript:alert(1)",
            "data:text/html,x",
            "http://trusted@evil",
            "",
            "app",
            "/%5Cevil.example",
            "/%252F%252Fevil.example",
            "/a\r\nSet-Cookie: x=1",
        ] {
            assert_eq!(sanitize_return_to(bad), "/", "{bad:?}");
        }
    }
}
