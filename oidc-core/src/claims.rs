//! Verified claims: a standard set every token has, plus the application's own typed claims.
//!
//! [`Identity`] holds what every verified token yields (issuer, subject, audiences, times,
//! scopes, roles). [`Claims<C>`] adds the application's claim type `C`, deserialized from the
//! verified payload; by default `C` is [`AdditionalClaims`], the whole payload as a JSON object.
//!
//! # Scopes
//!
//! Read from `scope` (space separated, RFC 8693/9068) or, when absent, from `scp` (a string or
//! an array of strings, as Entra ID and Okta send).
//!
//! # Roles
//!
//! Collected, in this order and without duplicates, from `roles` and `groups` (arrays of
//! strings), Keycloak's `realm_access.roles` and `resource_access.<client>.roles` (for the
//! client id configured with
//! [`AccessTokenVerifier::with_client_id`](crate::AccessTokenVerifier::with_client_id)), and any
//! claim paths configured with
//! [`AccessTokenVerifier::add_roles_claim`](crate::AccessTokenVerifier::add_roles_claim).

use std::ops::Deref;
use std::sync::Arc;

use serde_json::{Map, Value};

/// The whole verified payload as a JSON object: the default application claim type.
pub type AdditionalClaims = Map<String, Value>;

/// The scopes granted to a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scopes(Vec<String>);

impl Scopes {
    /// Parses a space-separated `scope` value.
    pub fn from_space_separated(s: &str) -> Self {
        let mut out: Vec<String> = Vec::new();
        for scope in s.split(' ').filter(|s| !s.is_empty()) {
            if !out.iter().any(|o| o == scope) {
                out.push(scope.to_owned());
            }
        }
        Self(out)
    }

    fn from_claims(claims: &Map<String, Value>) -> Self {
        match (claims.get("scope"), claims.get("scp")) {
            (Some(Value::String(s)), _) => Self::from_space_separated(s),
            (_, Some(Value::String(s))) => Self::from_space_separated(s),
            (_, Some(Value::Array(items))) => {
                let mut out = Self::default();
                for s in items.iter().filter_map(Value::as_str) {
                    for scope in Self::from_space_separated(s).0 {
                        if !out.contains(&scope) {
                            out.0.push(scope);
                        }
                    }
                }
                out
            }
            _ => Self::default(),
        }
    }

    /// Whether `scope` was granted.
    pub fn contains(&self, scope: &str) -> bool {
        self.0.iter().any(|s| s == scope)
    }

    /// The granted scopes, in the order the token lists them.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// The number of granted scopes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no scope was granted.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where roles are read from, beyond the built-in claims.
#[derive(Debug, Clone, Default)]
pub(crate) struct RoleSources {
    pub(crate) client_id: Option<String>,
    /// Dot-separated claim paths, split into segments.
    pub(crate) paths: Vec<Vec<String>>,
}

fn push_strings(out: &mut Vec<String>, value: Option<&Value>) {
    let push = |out: &mut Vec<String>, s: &str| {
        if !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    match value {
        Some(Value::Array(items)) => {
            for s in items.iter().filter_map(Value::as_str) {
                push(out, s);
            }
        }
        Some(Value::String(s)) => push(out, s),
        _ => {}
    }
}

fn at_path<'a>(claims: &'a Map<String, Value>, path: &[impl AsRef<str>]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = claims.get(first.as_ref())?;
    for segment in rest {
        value = value.as_object()?.get(segment.as_ref())?;
    }
    Some(value)
}

fn roles_from(claims: &Map<String, Value>, sources: &RoleSources) -> Vec<String> {
    let mut roles = Vec::new();
    if let Some(Value::Array(_)) = claims.get("roles") {
        push_strings(&mut roles, claims.get("roles"));
    }
    if let Some(Value::Array(_)) = claims.get("groups") {
        push_strings(&mut roles, claims.get("groups"));
    }
    push_strings(&mut roles, at_path(claims, &["realm_access", "roles"]));
    if let Some(client) = &sources.client_id {
        push_strings(
            &mut roles,
            at_path(claims, &["resource_access", client.as_str(), "roles"]),
        );
    }
    for path in &sources.paths {
        push_strings(&mut roles, at_path(claims, path));
    }
    roles
}

/// What every verified token tells: who, for whom, until when, with which grants.
///
/// Cheap to clone (shared). Inserted into request extensions by the layers of `oidc-tower`.
#[derive(Debug, Clone)]
pub struct Identity {
    inner: Arc<IdentityInner>,
}

#[derive(Debug)]
struct IdentityInner {
    issuer: String,
    subject: String,
    audience: Vec<String>,
    expires_at: i64,
    issued_at: Option<i64>,
    not_before: Option<i64>,
    token_id: Option<String>,
    client_id: Option<String>,
    scopes: Scopes,
    roles: Vec<String>,
}

impl Identity {
    /// Reads the standard claims of an already verified payload. `iss`, `sub`, `aud` and `exp`
    /// must have been checked by the caller.
    pub(crate) fn from_verified(
        claims: &Map<String, Value>,
        audience: Vec<String>,
        expires_at: i64,
        sources: &RoleSources,
    ) -> Self {
        let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let int = |name: &str| claims.get(name).and_then(Value::as_i64);
        Self {
            inner: Arc::new(IdentityInner {
                issuer: string("iss").unwrap_or_default(),
                subject: string("sub").unwrap_or_default(),
                audience,
                expires_at,
                issued_at: int("iat"),
                not_before: int("nbf"),
                token_id: string("jti"),
                client_id: string("client_id").or_else(|| string("azp")),
                scopes: Scopes::from_claims(claims),
                roles: roles_from(claims, sources),
            }),
        }
    }

    /// Builds an identity from claims that were already verified (a validated ID token, or
    /// claims stored after a login). Reads `iss`, `sub`, `aud`, the times, `scope`/`scp` and
    /// the default role claims; nothing is checked here.
    pub fn from_verified_claims(claims: &Map<String, Value>) -> Self {
        let audience = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let expires_at = claims
            .get("exp")
            .and_then(Value::as_i64)
            .unwrap_or_default();
        Self::from_verified(claims, audience, expires_at, &RoleSources::default())
    }

    /// The issuer (`iss`), equal to the configured provider's issuer.
    pub fn issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The subject (`sub`): the user, or the client for `client_credentials` tokens.
    pub fn subject(&self) -> &str {
        &self.inner.subject
    }

    /// The audiences (`aud`), one of which is configured on the verifier.
    pub fn audience(&self) -> &[String] {
        &self.inner.audience
    }

    /// Expiry (`exp`), in seconds since the Unix epoch.
    pub fn expires_at(&self) -> i64 {
        self.inner.expires_at
    }

    /// Issue time (`iat`), in seconds since the Unix epoch.
    pub fn issued_at(&self) -> Option<i64> {
        self.inner.issued_at
    }

    /// Start of validity (`nbf`), in seconds since the Unix epoch.
    pub fn not_before(&self) -> Option<i64> {
        self.inner.not_before
    }

    /// The token identifier (`jti`).
    pub fn token_id(&self) -> Option<&str> {
        self.inner.token_id.as_deref()
    }

    /// The client the token was issued to (`client_id`, else `azp`).
    pub fn client_id(&self) -> Option<&str> {
        self.inner.client_id.as_deref()
    }

    /// The granted scopes. See the [module docs](crate::claims#scopes).
    pub fn scopes(&self) -> &Scopes {
        &self.inner.scopes
    }

    /// The roles. See the [module docs](crate::claims#roles).
    pub fn roles(&self) -> &[String] {
        &self.inner.roles
    }

    /// Whether `role` is among the roles.
    pub fn has_role(&self, role: &str) -> bool {
        self.inner.roles.iter().any(|r| r == role)
    }
}

/// A verified token's [`Identity`] plus the application's own claims `C`.
///
/// Dereferences to [`Identity`].
///
/// # Examples
///
/// ```
/// use serde::Deserialize;
///
/// #[derive(Debug, Clone, Deserialize)]
/// struct MyClaims {
///     tenant: String,
/// }
///
/// fn tenant_of(claims: &oidc_core::Claims<MyClaims>) -> (&str, &str) {
///     (claims.subject(), &claims.custom().tenant)
/// }
/// ```
///
/// Cloning is cheap whatever `C` is: the application's claims are shared, not copied (a layer,
/// the request extensions and a handler all see one value). A token answered from the token
/// cache gives the claims decoded when it was first verified, without decoding them again.
#[derive(Debug)]
pub struct Claims<C = AdditionalClaims> {
    identity: Identity,
    custom: Arc<C>,
}

impl<C> Clone for Claims<C> {
    fn clone(&self) -> Self {
        Self {
            identity: self.identity.clone(),
            custom: Arc::clone(&self.custom),
        }
    }
}

impl<C> Claims<C> {
    /// Pairs an identity with the application's claims (both already verified).
    pub fn new(identity: Identity, custom: C) -> Self {
        Self::shared(identity, Arc::new(custom))
    }

    /// [`Claims::new`] with claims already shared.
    pub(crate) fn shared(identity: Identity, custom: Arc<C>) -> Self {
        Self { identity, custom }
    }

    /// The standard part.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The application's claims.
    pub fn custom(&self) -> &C {
        &self.custom
    }

    /// Splits into the standard part and the application's claims (cloned if they are still
    /// shared).
    pub fn into_parts(self) -> (Identity, C)
    where
        C: Clone,
    {
        (self.identity, Arc::unwrap_or_clone(self.custom))
    }
}

impl<C> Deref for Claims<C> {
    type Target = Identity;

    fn deref(&self) -> &Identity {
        &self.identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn scopes_from_scope_scp_string_and_array() {
        let cases = [
            (json!({"scope": "a b  a c"}), vec!["a", "b", "c"]),
            (json!({"scp": "x y"}), vec!["x", "y"]),
            (json!({"scp": ["x", "y", 3]}), vec!["x", "y"]),
            (json!({"scope": "a", "scp": ["z"]}), vec!["a"]),
            (json!({"scope": 5}), vec![]),
            (json!({}), vec![]),
        ];
        for (claims, want) in cases {
            let got = Scopes::from_claims(&map(claims.clone()));
            assert_eq!(got.iter().collect::<Vec<_>>(), want, "{claims}");
        }
    }

    #[test]
    fn roles_from_all_sources_without_duplicates() {
        let claims = map(json!({
            "roles": ["admin", "x"],
            "groups": ["g1", "admin"],
            "realm_access": {"roles": ["realm-r"]},
            "resource_access": {"api": {"roles": ["client-r"]}, "other": {"roles": ["no"]}},
            "custom": {"nested": {"perms": ["p1"]}}
        }));
        let sources = RoleSources {
            client_id: Some("api".into()),
            paths: vec![vec!["custom".into(), "nested".into(), "perms".into()]],
        };
        assert_eq!(
            roles_from(&claims, &sources),
            ["admin", "x", "g1", "realm-r", "client-r", "p1"]
        );
        assert!(
            roles_from(&claims, &RoleSources::default())
                .iter()
                .all(|r| r != "client-r")
        );
    }
}
