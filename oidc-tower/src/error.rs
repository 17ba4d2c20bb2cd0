//! Why a request was refused.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderValue, StatusCode};
use oidc_core::error::VerifyError;

/// Marks a request that an authentication layer let through without credentials
/// ([`BearerAuthLayer::allow_anonymous`](crate::BearerAuthLayer::allow_anonymous), or a
/// [`LoginLayer`](crate::login::LoginLayer) that does not require login).
///
/// Found in the request extensions instead of an [`Identity`](oidc_core::Identity). Layers
/// and extractors further in that need an identity answer with [`Anonymous::error_for`]:
/// **401** with this realm's challenge, or, behind a login layer, **303** to the login for a
/// browser navigation; rather than the **500** they give when no authentication layer ran.
#[derive(Debug, Clone)]
pub struct Anonymous {
    realm: Challenge,
    login_path: Option<Arc<str>>,
}

impl Anonymous {
    pub(crate) fn new(realm: impl Into<Challenge>) -> Self {
        Self {
            realm: realm.into(),
            login_path: None,
        }
    }

    pub(crate) fn with_login(realm: impl Into<Challenge>, login_path: Arc<str>) -> Self {
        Self {
            realm: realm.into(),
            login_path: Some(login_path),
        }
    }

    /// The realm of the layer that let the request through.
    pub fn realm(&self) -> &str {
        self.realm.realm()
    }

    /// The error for a route that needs an identity: no credentials (401).
    pub fn error(&self) -> AuthError {
        AuthError::new(AuthErrorKind::MissingToken, self.realm.clone())
    }

    /// The error for a route that needs an identity, for this request: behind a login layer
    /// a browser navigation is sent to the login ([`AuthErrorKind::LoginRequired`], 303 with
    /// `return_to` set to this request's path); anything else gets [`Anonymous::error`].
    pub fn error_for(&self, parts: &http::request::Parts) -> AuthError {
        match &self.login_path {
            Some(login)
                if crate::login::default_policy(parts)
                    == crate::login::Unauthenticated::Redirect =>
            {
                let return_to = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
                let encoded: String =
                    url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect();
                let mut error = AuthError::new(AuthErrorKind::LoginRequired, self.realm.clone());
                error.location = Some(format!("{login}?return_to={encoded}"));
                error
            }
            _ => self.error(),
        }
    }
}

/// The realm of the authentication layer that verified the request's identity: found in the
/// request extensions next to the [`Identity`](oidc_core::Identity) (inserted by
/// [`BearerAuthLayer`](crate::BearerAuthLayer)), so that a 403 decided further in (by
/// [`RequireLayer`](crate::RequireLayer) or an extractor) names the same realm as the layer's
/// own 401s.
///
/// It also carries the layer's RFC 9728 metadata URL
/// ([`BearerAuthLayer::with_resource_metadata`](crate::BearerAuthLayer::with_resource_metadata)),
/// so that those answers name it too.
#[derive(Debug, Clone)]
pub struct Realm(Challenge);

impl Realm {
    pub(crate) fn new(realm: impl Into<Challenge>) -> Self {
        Self(realm.into())
    }

    /// The realm, as set with
    /// [`BearerAuthLayer::with_realm`](crate::BearerAuthLayer::with_realm).
    pub fn as_str(&self) -> &str {
        self.0.realm()
    }

    /// The protected-resource metadata URL named in challenges (RFC 9728 §5.1), when the
    /// layer has one.
    pub fn resource_metadata(&self) -> Option<&str> {
        self.0.resource_metadata()
    }
}

/// What every challenge of one layer names: its realm and, when set, the URL of its RFC 9728
/// protected-resource metadata. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Challenge {
    realm: Arc<str>,
    resource_metadata: Option<Arc<str>>,
}

impl Challenge {
    /// The realm.
    pub(crate) fn realm(&self) -> &str {
        &self.realm
    }

    /// The same challenge with another realm.
    pub(crate) fn with_realm(mut self, realm: Arc<str>) -> Self {
        self.realm = realm;
        self
    }

    /// The metadata URL, when set.
    pub(crate) fn resource_metadata(&self) -> Option<&str> {
        self.resource_metadata.as_deref()
    }

    /// Names `url` as the `resource_metadata` attribute of every challenge.
    pub(crate) fn with_resource_metadata(mut self, url: Arc<str>) -> Self {
        self.resource_metadata = Some(url);
        self
    }

    /// `realm="…"`, and `, resource_metadata="…"` when set: the attributes every challenge of
    /// the layer starts with.
    fn attributes(&self) -> String {
        let mut out = format!("realm={}", quote(&self.realm));
        if let Some(url) = &self.resource_metadata {
            out.push_str(", resource_metadata=");
            out.push_str(&quote(url));
        }
        out
    }
}

impl From<Arc<str>> for Challenge {
    fn from(realm: Arc<str>) -> Self {
        Self {
            realm,
            resource_metadata: None,
        }
    }
}

/// The challenge named when no layer said which: realm `"api"`, the layers' default.
pub(crate) fn default_realm() -> Challenge {
    Challenge::from(Arc::<str>::from("api"))
}

/// The category of an [`AuthError`], for matching. It will grow: match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// No bearer credentials (RFC 6750 §3.1: a challenge without `error`). **401**.
    MissingToken,
    /// The request is malformed: several `Authorization` headers, a bearer credential of bad
    /// syntax, or a token in the URL query. **400** `invalid_request`.
    InvalidRequest,
    /// The token failed verification. **401** `invalid_token`.
    InvalidToken,
    /// The token is valid but lacks a required scope or role. **403** `insufficient_scope`.
    InsufficientScope,
    /// No keys could be obtained, so the token could not be checked. **503** with
    /// `Retry-After`.
    Unavailable,
    /// A requirement layer found no verified identity: the authentication layer is missing
    /// in front of it. **500**.
    MissingLayer,
    /// A browser navigation needs a login: **303** to [`AuthError::location`].
    LoginRequired,
}

/// Why a request was refused: a category, the challenge parameters and the underlying cause.
///
/// Handed to the rejection (see [`OnRejection`](crate::OnRejection)) and attached to the
/// default rejection response's extensions. It never holds the token.
#[derive(Debug, Clone)]
pub struct AuthError {
    kind: AuthErrorKind,
    realm: Challenge,
    description: Option<&'static str>,
    scopes: Arc<[String]>,
    source: Option<VerifyError>,
    location: Option<String>,
}

impl AuthError {
    pub(crate) fn new(kind: AuthErrorKind, realm: impl Into<Challenge>) -> Self {
        Self {
            kind,
            realm: realm.into(),
            description: None,
            scopes: Arc::from(Vec::new()),
            source: None,
            location: None,
        }
    }

    /// The 403 `insufficient_scope` refusal (RFC 6750 §3.1) of a request whose verified
    /// identity lacks what the route requires: one builder for
    /// [`RequireLayer`](crate::RequireLayer) and the extractors of `oidc-axum`.
    ///
    /// The challenge names the realm of the layer that authenticated the request (its
    /// [`Realm`] in `extensions`; `"api"` without one), `scopes` as the `scope` attribute (left
    /// out when empty) and `description` as `error_description`.
    ///
    /// # Examples
    ///
    /// ```
    /// use oidc_tower::AuthError;
    ///
    /// let error = AuthError::insufficient_scope(
    ///     &http::Extensions::new(),
    ///     ["orders:write"],
    ///     "a required scope is missing",
    /// );
    /// assert_eq!(error.status(), http::StatusCode::FORBIDDEN);
    /// assert_eq!(
    ///     error.www_authenticate().unwrap(),
    ///     r#"Bearer realm="api", error="insufficient_scope", scope="orders:write", error_description="a required scope is missing""#,
    /// );
    /// ```
    pub fn insufficient_scope<I, T>(
        extensions: &http::Extensions,
        scopes: I,
        description: &'static str,
    ) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        let scopes: Vec<String> = scopes.into_iter().map(Into::into).collect();
        Self::insufficient_scope_in(Self::realm_of(extensions), Arc::from(scopes), description)
    }

    /// [`AuthError::insufficient_scope`] with the realm given.
    pub(crate) fn insufficient_scope_in(
        realm: Challenge,
        scopes: Arc<[String]>,
        description: &'static str,
    ) -> Self {
        Self::new(AuthErrorKind::InsufficientScope, realm)
            .with_scopes(scopes)
            .with_description(description)
    }

    /// The realm of the layer that authenticated the request, or the default one.
    pub(crate) fn realm_of(extensions: &http::Extensions) -> Challenge {
        extensions
            .get::<Realm>()
            .map_or_else(default_realm, |r| r.0.clone())
    }

    pub(crate) fn with_description(mut self, description: &'static str) -> Self {
        self.description = Some(description);
        self
    }

    pub(crate) fn with_scopes(mut self, scopes: Arc<[String]>) -> Self {
        self.scopes = scopes;
        self
    }

    pub(crate) fn from_verify(error: VerifyError, realm: Challenge) -> Self {
        let kind = if error.is_unavailable() {
            AuthErrorKind::Unavailable
        } else {
            AuthErrorKind::InvalidToken
        };
        Self {
            source: Some(error),
            ..Self::new(kind, realm)
        }
    }

    /// The category.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The verification failure, when the token was checked.
    pub fn verify_error(&self) -> Option<&VerifyError> {
        self.source.as_ref()
    }

    /// The scopes the route requires, for `insufficient_scope`.
    pub fn required_scopes(&self) -> &[String] {
        &self.scopes
    }

    /// Where to send the browser, for [`AuthErrorKind::LoginRequired`].
    pub fn location(&self) -> Option<&str> {
        self.location.as_deref()
    }

    /// The status code RFC 6750 gives this error.
    pub fn status(&self) -> StatusCode {
        match self.kind {
            AuthErrorKind::MissingToken | AuthErrorKind::InvalidToken => StatusCode::UNAUTHORIZED,
            AuthErrorKind::InvalidRequest => StatusCode::BAD_REQUEST,
            AuthErrorKind::InsufficientScope => StatusCode::FORBIDDEN,
            AuthErrorKind::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AuthErrorKind::MissingLayer => StatusCode::INTERNAL_SERVER_ERROR,
            AuthErrorKind::LoginRequired => StatusCode::SEE_OTHER,
        }
    }

    /// How long the client should wait before retrying (for [`AuthErrorKind::Unavailable`]).
    /// Defaults to 5 s when the provider's backoff does not say.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.kind {
            AuthErrorKind::Unavailable => Some(
                self.source
                    .as_ref()
                    .and_then(VerifyError::retry_after)
                    .map_or(Duration::from_secs(5), |d| {
                        // Whole seconds, rounded up, at least one.
                        Duration::from_secs(d.as_secs() + u64::from(d.subsec_nanos() > 0))
                            .max(Duration::from_secs(1))
                    }),
            ),
            _ => None,
        }
    }

    /// The `WWW-Authenticate` challenge for this error (RFC 6750 §3), or `None` where no
    /// challenge applies (500).
    ///
    /// Every challenge starts with the layer's `realm` and, when the layer has one, its RFC
    /// 9728 `resource_metadata` URL.
    pub fn www_authenticate(&self) -> Option<HeaderValue> {
        let realm = self.realm.attributes();
        let value = match self.kind {
            AuthErrorKind::MissingToken | AuthErrorKind::Unavailable => {
                format!("Bearer {realm}")
            }
            AuthErrorKind::InvalidRequest => format!(
                "Bearer {realm}, error=\"invalid_request\", error_description={}",
                quote(self.description.unwrap_or("the request is malformed"))
            ),
            AuthErrorKind::InvalidToken => format!(
                "Bearer {realm}, error=\"invalid_token\", error_description={}",
                quote(self.description.unwrap_or("the access token is invalid"))
            ),
            AuthErrorKind::InsufficientScope => {
                let mut v = format!("Bearer {realm}, error=\"insufficient_scope\"");
                if !self.scopes.is_empty() {
                    v.push_str(", scope=");
                    v.push_str(&quote(&self.scopes.join(" ")));
                }
                if let Some(d) = self.description {
                    v.push_str(", error_description=");
                    v.push_str(&quote(d));
                }
                v
            }
            AuthErrorKind::MissingLayer | AuthErrorKind::LoginRequired => return None,
        };
        HeaderValue::from_str(&value).ok()
    }
}

/// A quoted-string (RFC 9110 §5.6.4) of `s`, with characters outside visible ASCII dropped.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars().filter(|c| *c == ' ' || c.is_ascii_graphic()) {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.kind {
            AuthErrorKind::MissingToken => f.write_str("no bearer token"),
            AuthErrorKind::InvalidRequest => f.write_str("malformed authorization request"),
            AuthErrorKind::InvalidToken => f.write_str("invalid bearer token"),
            AuthErrorKind::InsufficientScope => f.write_str("insufficient scope"),
            AuthErrorKind::Unavailable => f.write_str("verification keys unavailable"),
            AuthErrorKind::LoginRequired => f.write_str("login required"),
            AuthErrorKind::MissingLayer => {
                f.write_str("no verified identity: add an authentication layer (BearerAuthLayer) in front of this one")
            }
        }
    }
}

impl std::error::Error for AuthError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_escapes_and_drops_controls() {
        assert_eq!(quote(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(quote("x\r\ny"), "\"xy\"");
    }

    #[test]
    fn challenges_per_kind() {
        let realm: Arc<str> = Arc::from("api");
        let h = |e: AuthError| e.www_authenticate().unwrap().to_str().unwrap().to_owned();
        assert_eq!(
            h(AuthError::new(AuthErrorKind::MissingToken, realm.clone())),
            "Bearer realm=\"api\""
        );
        assert!(
            h(AuthError::new(AuthErrorKind::InvalidToken, realm.clone()))
                .contains("error=\"invalid_token\"")
        );
        assert_eq!(
            h(
                AuthError::new(AuthErrorKind::InsufficientScope, realm.clone())
                    .with_scopes(Arc::from(vec!["a".to_owned(), "b".to_owned()]))
            ),
            "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"a b\""
        );
        assert!(
            AuthError::new(AuthErrorKind::MissingLayer, realm)
                .www_authenticate()
                .is_none()
        );
    }
}
