//! The verified user of a request, and the headers that carry it to the upstream.

use http::header::AUTHORIZATION;
use http::{Extensions, HeaderMap, HeaderName, HeaderValue};
use oidc_core::{AdditionalClaims, Claims};
use oidc_tower::login::LoginSession;
use serde_json::Value;

use crate::config::HeaderSettings;

/// `X-Forwarded-User`.
pub const X_FORWARDED_USER: HeaderName = HeaderName::from_static("x-forwarded-user");
/// `X-Forwarded-Email`.
pub const X_FORWARDED_EMAIL: HeaderName = HeaderName::from_static("x-forwarded-email");
/// `X-Forwarded-Groups`.
pub const X_FORWARDED_GROUPS: HeaderName = HeaderName::from_static("x-forwarded-groups");
/// `X-Forwarded-Preferred-Username`.
pub const X_FORWARDED_PREFERRED_USERNAME: HeaderName =
    HeaderName::from_static("x-forwarded-preferred-username");
/// `X-Forwarded-Access-Token`.
pub const X_FORWARDED_ACCESS_TOKEN: HeaderName =
    HeaderName::from_static("x-forwarded-access-token");

/// The identity headers the proxy owns: a client's copies never reach an upstream.
pub const IDENTITY_HEADERS: [HeaderName; 5] = [
    X_FORWARDED_USER,
    X_FORWARDED_EMAIL,
    X_FORWARDED_GROUPS,
    X_FORWARDED_PREFERRED_USERNAME,
    X_FORWARDED_ACCESS_TOKEN,
];

/// Whether `name` is an identity header, also spelled with underscores
/// (`X_Forwarded_User`), which CGI-style servers (PHP, WSGI, …) read as the same variable.
fn is_identity_header(name: &HeaderName, strip_authorization: bool) -> bool {
    let normalized = name.as_str().replace('_', "-");
    IDENTITY_HEADERS.iter().any(|h| h.as_str() == normalized)
        || (strip_authorization && normalized == AUTHORIZATION.as_str())
}

/// Removes every client copy of the identity headers (and of `Authorization` when
/// `strip_authorization`), whatever their case or `_`/`-` spelling.
pub fn strip_identity_headers(headers: &mut HeaderMap, strip_authorization: bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| is_identity_header(name, strip_authorization))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// The user claim cannot be sent in a header (it has a control character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnsendableUser;

impl std::fmt::Display for UnsendableUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the user claim cannot be sent in a header")
    }
}

impl std::error::Error for UnsendableUser {}

/// Who the request is from, as the upstream will be told.
#[derive(Clone, PartialEq, Eq)]
pub struct Who {
    /// `X-Forwarded-User`.
    pub user: String,
    /// `X-Forwarded-Email`.
    pub email: Option<String>,
    /// `X-Forwarded-Groups` (comma-separated on the wire).
    pub groups: Vec<String>,
    /// `X-Forwarded-Preferred-Username`.
    pub preferred_username: Option<String>,
    /// The session's (fresh) access token, or the verified bearer token.
    pub access_token: Option<String>,
}

impl std::fmt::Debug for Who {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Who")
            .field("user", &self.user)
            .field("email", &self.email)
            .field("groups", &self.groups)
            .field("preferred_username", &self.preferred_username)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

fn at_path<'a>(claims: &'a AdditionalClaims, path: &[String]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first)?;
    for segment in rest {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

fn string_at(claims: &AdditionalClaims, path: &[String]) -> Option<String> {
    at_path(claims, path)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// A value that can go into a header (no control characters) and, for groups, into a
/// comma-separated list.
fn header_safe(value: &str, in_list: bool) -> bool {
    HeaderValue::from_str(value).is_ok() && !(in_list && (value.contains(',') || value.is_empty()))
}

impl Who {
    /// The identity the login layer put into the request, if any: a [`LoginSession`] (browser
    /// session) or the claims of a verified bearer token (whose token is the request's
    /// `Authorization` header).
    pub fn from_request(
        extensions: &Extensions,
        headers: &HeaderMap,
        settings: &HeaderSettings,
    ) -> Option<Self> {
        let claims = extensions.get::<Claims<AdditionalClaims>>()?;
        let custom = claims.custom();
        let session = extensions.get::<LoginSession>();
        let access_token = match session {
            Some(session) => Some(session.access_token().secret().to_owned()),
            None => bearer_of(headers),
        };
        let user =
            string_at(custom, &settings.user_claim).unwrap_or_else(|| claims.subject().to_owned());
        let email = string_at(custom, &["email".to_owned()]);
        let preferred_username = string_at(custom, &["preferred_username".to_owned()]);
        let mut groups: Vec<String> = match &settings.groups_claim {
            Some(path) => match at_path(custom, path) {
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(str::to_owned)
                    .collect(),
                Some(Value::String(s)) => vec![s.clone()],
                _ => Vec::new(),
            },
            None => claims.roles().to_vec(),
        };
        let before = groups.len();
        groups.retain(|g| header_safe(g, true));
        if groups.len() != before {
            tracing::warn!(
                dropped = before - groups.len(),
                "groups that are empty, contain a comma or a control character are not forwarded"
            );
        }
        Some(Self {
            user,
            email: email.filter(|e| header_safe(e, false)),
            groups,
            preferred_username: preferred_username.filter(|p| header_safe(p, false)),
            access_token,
        })
    }

    /// Sets the identity headers on `headers` (whose client copies were removed before).
    ///
    /// # Errors
    ///
    /// When the user cannot be put into a header (a control character in the claim): the
    /// request must not reach the upstream without its user.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        settings: &HeaderSettings,
    ) -> Result<(), UnsendableUser> {
        let user = HeaderValue::from_str(&self.user).map_err(|_| UnsendableUser)?;
        headers.insert(X_FORWARDED_USER, user);
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                if name == X_FORWARDED_ACCESS_TOKEN || name == AUTHORIZATION {
                    v.set_sensitive(true);
                }
                headers.insert(name, v);
            }
        };
        if let Some(email) = &self.email {
            set(X_FORWARDED_EMAIL, email);
        }
        if !self.groups.is_empty() {
            set(X_FORWARDED_GROUPS, &self.groups.join(","));
        }
        if let Some(name) = &self.preferred_username {
            set(X_FORWARDED_PREFERRED_USERNAME, name);
        }
        if let Some(token) = &self.access_token {
            if settings.pass_access_token {
                set(X_FORWARDED_ACCESS_TOKEN, token);
            }
            if settings.pass_authorization_header {
                set(AUTHORIZATION, &format!("Bearer {token}"));
            }
        }
        Ok(())
    }

    /// The JSON of `/oauth2/userinfo`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "user": self.user,
            "email": self.email,
            "groups": self.groups,
            "preferred_username": self.preferred_username,
        })
    }
}

/// The token of an `Authorization: Bearer` header (already verified by the login layer when
/// the request reached the service with bearer claims).
fn bearer_of(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_matches(' ').to_owned())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_every_spelling() {
        let mut headers = HeaderMap::new();
        for name in [
            "X-Forwarded-User",
            "x-forwarded-email",
            "X_Forwarded_Groups",
            "x-FORWARDED-preferred-username",
            "X-Forwarded-Access-Token",
            "authorization",
            "x-forwarded-for",
            "x-other",
        ] {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_static("spoofed"),
            );
        }
        headers.append("x-forwarded-user", HeaderValue::from_static("twice"));
        let mut without_auth = headers.clone();
        strip_identity_headers(&mut without_auth, false);
        let mut left: Vec<&str> = without_auth.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["authorization", "x-forwarded-for", "x-other"]);
        strip_identity_headers(&mut headers, true);
        let mut left: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-forwarded-for", "x-other"]);
    }

    #[test]
    fn bearer_token_is_read() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer  abc "));
        assert_eq!(bearer_of(&h).as_deref(), Some("abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_of(&h), None);
    }

    #[test]
    fn unsafe_values_are_left_out() {
        assert!(header_safe("Zoë", false));
        assert!(!header_safe("a\nb", false));
        assert!(!header_safe("a,b", true));
        assert!(header_safe("a,b", false));
    }
}
