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
/// `X-Forwarded-Issuer`: the verified `iss` of the identity.
pub const X_FORWARDED_ISSUER: HeaderName = HeaderName::from_static("x-forwarded-issuer");
/// `X-Forwarded-Provider`: the name of the `[[provider]]` that authenticated the request.
pub const X_FORWARDED_PROVIDER: HeaderName = HeaderName::from_static("x-forwarded-provider");

/// The identity headers the proxy sets.
pub const IDENTITY_HEADERS: [HeaderName; 7] = [
    X_FORWARDED_USER,
    X_FORWARDED_EMAIL,
    X_FORWARDED_GROUPS,
    X_FORWARDED_PREFERRED_USERNAME,
    X_FORWARDED_ACCESS_TOKEN,
    X_FORWARDED_ISSUER,
    X_FORWARDED_PROVIDER,
];

/// The headers a client may never send to an upstream, on any route: an entry ending with
/// `*` is a prefix. Names are compared in lower case with `_` read as `-` (CGI-style servers,
/// PHP, WSGI, read `X_Remote_User` as `X-Remote-User`). `headers.strip` adds to this list.
///
/// | entries | why |
/// |---|---|
/// | `x-forwarded-user*`, `x-forwarded-email`, `x-forwarded-groups`, `x-forwarded-preferred-username`, `x-forwarded-access-token`, `x-forwarded-issuer`, `x-forwarded-provider` | this proxy's identity headers (also oauth2-proxy's and Traefik forward-auth's) |
/// | `x-auth-request-*` | oauth2-proxy's `auth_request` headers (`X-Auth-Request-User`, `-Email`, …) |
/// | `remote-*`, `x-remote-*` | Authelia (`Remote-User`, `Remote-Groups`, `Remote-Email`, `Remote-Name`), Apache and Shibboleth `REMOTE_USER`, the Kubernetes API server's `X-Remote-User`, `-Group`, `-Extra-*` |
/// | `x-webauth-*` | Grafana's `auth.proxy` (`X-WEBAUTH-USER`, `-EMAIL`, `-NAME`, `-ROLE`, `-GROUPS`) |
/// | `x-pomerium-*` | Pomerium (`X-Pomerium-Jwt-Assertion`, `X-Pomerium-Claim-*`) |
/// | `x-consumer-*`, `x-credential-*`, `x-authenticated-*`, `x-userinfo`, `x-id-token` | Kong's authentication plugins and lua-resty-openidc |
/// | `cf-access-*`, `x-goog-authenticated-user-*`, `x-goog-iap-jwt-assertion`, `x-amzn-oidc-*`, `x-ms-client-principal*`, `x-ms-token-*` | Cloudflare Access, Google IAP, AWS ALB, Azure App Service: an app moved from behind them may still trust them |
/// | `x-original-*`, `x-rewrite-url` | request rewriting: IIS, Symfony, Laminas read `X-Original-URL` / `X-Rewrite-URL` as the path, nginx `auth_request` sets `X-Original-URI`, `-Method` |
/// | `x-forwarded-prefix`, `x-forwarded-uri`, `x-forwarded-path`, `x-script-name` | where the app thinks it is mounted (Spring, Traefik, WSGI); the proxy serves a whole origin and sets none of them |
/// | `x-http-method-override`, `x-http-method`, `x-method-override` | would turn a `GET` that a `GET=` rule let through into another method at the upstream |
///
/// Not on the list: `X-Forwarded-For`, `-Proto`, `-Host` (replaced by the proxy, kept from a
/// trusted front proxy with `reverse_proxy = true`); `Authorization` (the client's business
/// unless `pass_authorization_header`); generic names such as `X-Auth-Token` or
/// `X-Access-Token`, which APIs take from their clients on purpose.
pub const STRIPPED_HEADERS: [&str; 32] = [
    "x-forwarded-user*",
    "x-forwarded-email",
    "x-forwarded-groups",
    "x-forwarded-preferred-username",
    "x-forwarded-access-token",
    "x-forwarded-issuer",
    "x-forwarded-provider",
    "x-auth-request-*",
    "remote-*",
    "x-remote-*",
    "x-webauth-*",
    "x-pomerium-*",
    "x-consumer-*",
    "x-credential-*",
    "x-authenticated-*",
    "x-userinfo",
    "x-id-token",
    "cf-access-*",
    "x-goog-authenticated-user-*",
    "x-goog-iap-jwt-assertion",
    "x-amzn-oidc-*",
    "x-ms-client-principal*",
    "x-ms-token-*",
    "x-original-*",
    "x-rewrite-url",
    "x-forwarded-prefix",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-script-name",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Headers that `headers.strip` may not name: the proxy reads them itself (a session cookie, a
/// bearer token, the body framing, the login's navigation detection).
const PROTECTED_HEADERS: [&str; 14] = [
    "host",
    "cookie",
    "authorization",
    "accept",
    "origin",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "upgrade",
    "sec-fetch-mode",
    "sec-fetch-dest",
    "sec-websocket-key",
    "sec-websocket-version",
];

/// One entry of the strip list: an exact header name, or a prefix (written with a trailing
/// `*`). Kept in lower case with `-`, the form names are compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderPattern {
    /// This name only.
    Exact(String),
    /// Every name that starts with this.
    Prefix(String),
}

/// A header name in the form patterns compare: lower case, `_` read as `-`.
fn normalized(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

impl HeaderPattern {
    /// Parses `X-My-User` or `X-My-*`.
    ///
    /// # Errors
    ///
    /// A message saying what is wrong: not a header name, a `*` elsewhere than at the end,
    /// an empty prefix, or a header the proxy needs itself.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (name, prefix) = match entry.strip_suffix('*') {
            Some(name) => (name, true),
            None => (entry, false),
        };
        if name.is_empty() {
            return Err(format!(
                "{entry:?}: a prefix needs at least one character before the *"
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!(
                "{entry:?} is not a header name (letters, digits, - and _ only, a * at the end for a prefix)"
            ));
        }
        let name = normalized(name);
        let pattern = if prefix {
            Self::Prefix(name)
        } else {
            Self::Exact(name)
        };
        if let Some(needed) = PROTECTED_HEADERS.iter().find(|h| pattern.matches(h)) {
            return Err(format!(
                "{entry:?} would remove {needed}, which the proxy reads itself"
            ));
        }
        Ok(pattern)
    }

    /// Whether the (already normalized) header name `name` is covered.
    fn matches(&self, name: &str) -> bool {
        match self {
            Self::Exact(exact) => name == exact,
            Self::Prefix(prefix) => name.starts_with(prefix.as_str()),
        }
    }
}

/// Whether `name` is on [`STRIPPED_HEADERS`] (or is `Authorization` when
/// `strip_authorization`), in any case and `_`/`-` spelling.
fn is_stripped(name: &str, strip_authorization: bool) -> bool {
    let name = normalized(name);
    STRIPPED_HEADERS
        .iter()
        .any(|entry| match entry.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *entry,
        })
        || (strip_authorization && name == AUTHORIZATION.as_str())
}

fn remove_where(headers: &mut HeaderMap, strip: impl Fn(&str) -> bool) {
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| strip(name.as_str()))
        .cloned()
        .collect();
    for name in names {
        headers.remove(&name);
    }
}

/// Removes every client copy of the headers of [`STRIPPED_HEADERS`] (and of `Authorization`
/// when `strip_authorization`), whatever their case or `_`/`-` spelling.
pub fn strip_identity_headers(headers: &mut HeaderMap, strip_authorization: bool) {
    remove_where(headers, |name| is_stripped(name, strip_authorization));
}

/// Removes what a client may not send: [`STRIPPED_HEADERS`] and the configured
/// `headers.strip` entries. Done for every request, on every route, before anything else.
pub fn strip_client_headers(headers: &mut HeaderMap, settings: &HeaderSettings) {
    remove_where(headers, |name| {
        is_stripped(name, false) || {
            let name = normalized(name);
            settings.strip.iter().any(|p| p.matches(&name))
        }
    });
}

/// Whether a `Set-Cookie` value (from an upstream) would set the proxy's own session cookie
/// `cookie_name` (the full name, with `__Host-` on https). Compared without case and with any
/// `__Host-`/`__Secure-` prefix taken off (browsers compare these prefixes without case), so
/// `oidc-proxy`, `__Host-oidc-proxy`, `__SECURE-OIDC-PROXY` all count. A cookie without a name
/// (`=oidc-proxy=x`, which browsers send back as `oidc-proxy=x`) counts by its value.
pub fn sets_own_cookie(set_cookie: &[u8], cookie_name: &str) -> bool {
    fn strip_prefixes(mut name: &[u8]) -> &[u8] {
        loop {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with(b"__host-") {
                name = name.get(7..).unwrap_or_default();
            } else if lower.starts_with(b"__secure-") {
                name = name.get(9..).unwrap_or_default();
            } else {
                return name;
            }
        }
    }
    let ours = strip_prefixes(cookie_name.as_bytes());
    let pair = set_cookie.split(|b| *b == b';').next().unwrap_or_default();
    let (name, value) = match pair.iter().position(|b| *b == b'=') {
        Some(at) => (
            pair.get(..at).unwrap_or_default(),
            pair.get(at + 1..).unwrap_or_default(),
        ),
        None => (&b""[..], pair),
    };
    let name = name.trim_ascii();
    let sent_as = if name.is_empty() {
        value
            .split(|b| *b == b'=')
            .next()
            .unwrap_or_default()
            .trim_ascii()
    } else {
        name
    };
    strip_prefixes(sent_as).eq_ignore_ascii_case(ours)
}

/// Why the user cannot be told to the upstream: the request is refused with 403.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnsendableUser {
    /// The user claim has a control character.
    ControlCharacter,
    /// `user_claim = "email"` and the provider did not say the e-mail is verified.
    UnverifiedEmail,
    /// `user_claim = "email"` and the identity has no e-mail.
    NoEmail,
}

impl std::fmt::Display for UnsendableUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ControlCharacter => "the user claim cannot be sent in a header",
            Self::UnverifiedEmail => "the user is an e-mail address that is not verified",
            Self::NoEmail => "the user is an e-mail address and the identity has none",
        })
    }
}

impl std::error::Error for UnsendableUser {}

/// Who the request is from, as the upstream will be told.
#[derive(Clone, PartialEq, Eq)]
pub struct Who {
    /// `X-Forwarded-User`, or why there is none (the request is then refused).
    pub user: Result<String, UnsendableUser>,
    /// `X-Forwarded-Email`: only a verified address (unless
    /// `headers.insecure_allow_unverified_email`).
    pub email: Option<String>,
    /// `X-Forwarded-Groups` (comma-separated on the wire).
    pub groups: Vec<String>,
    /// `X-Forwarded-Preferred-Username`.
    pub preferred_username: Option<String>,
    /// `X-Forwarded-Issuer`: the verified `iss`.
    pub issuer: String,
    /// `X-Forwarded-Provider`: the `[[provider]]` name.
    pub provider: Option<String>,
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
            .field("issuer", &self.issuer)
            .field("provider", &self.provider)
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

/// Whether the claims say the e-mail is verified: `email_verified` is the JSON boolean `true`
/// (OpenID Connect Core §5.1). A string `"true"`, a missing claim or anything else is not.
fn email_verified(claims: &AdditionalClaims) -> bool {
    matches!(claims.get("email_verified"), Some(Value::Bool(true)))
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
        let address = string_at(custom, &["email".to_owned()]);
        let verified = email_verified(custom) || settings.insecure_allow_unverified_email;
        let email = address.clone().filter(|_| verified);
        let user = if settings.user_claim == ["email"] {
            // Never sub instead: the upstream would take it for an address.
            match (&email, &address) {
                (Some(email), _) => Ok(email.clone()),
                (None, Some(_)) => Err(UnsendableUser::UnverifiedEmail),
                (None, None) => Err(UnsendableUser::NoEmail),
            }
        } else {
            Ok(string_at(custom, &settings.user_claim)
                .unwrap_or_else(|| claims.subject().to_owned()))
        };
        let user = user.and_then(|user| {
            if header_safe(&user, false) {
                Ok(user)
            } else {
                Err(UnsendableUser::ControlCharacter)
            }
        });
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
        let issuer = claims.issuer().to_owned();
        let provider = match session {
            Some(session) => Some(session.provider().to_owned()),
            None => settings
                .bearer_providers
                .iter()
                .find(|(iss, _)| *iss == issuer)
                .map(|(_, name)| name.clone()),
        };
        Some(Self {
            user,
            email: email.filter(|e| header_safe(e, false)),
            groups,
            preferred_username: preferred_username.filter(|p| header_safe(p, false)),
            issuer,
            provider,
            access_token,
        })
    }

    /// Sets the identity headers on `headers` (whose client copies were removed before).
    ///
    /// # Errors
    ///
    /// When the user cannot be told (see [`UnsendableUser`]): the request must not reach the
    /// upstream without its user.
    pub fn apply(
        &self,
        headers: &mut HeaderMap,
        settings: &HeaderSettings,
    ) -> Result<(), UnsendableUser> {
        let user = self.user.as_deref().map_err(|e| *e)?;
        let user = HeaderValue::from_str(user).map_err(|_| UnsendableUser::ControlCharacter)?;
        headers.insert(X_FORWARDED_USER, user);
        let mut set = |name: HeaderName, value: &str| {
            if let Ok(mut v) = HeaderValue::from_str(value) {
                if name == X_FORWARDED_ACCESS_TOKEN || name == AUTHORIZATION {
                    v.set_sensitive(true);
                }
                headers.insert(name, v);
            }
        };
        set(X_FORWARDED_ISSUER, &self.issuer);
        if let Some(provider) = &self.provider {
            set(X_FORWARDED_PROVIDER, provider);
        }
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
    ///
    /// # Errors
    ///
    /// When the user cannot be told (the same 403 as on a forwarded request).
    pub fn to_json(&self) -> Result<Value, UnsendableUser> {
        let user = self.user.as_deref().map_err(|e| *e)?;
        Ok(serde_json::json!({
            "user": user,
            "email": self.email,
            "groups": self.groups,
            "preferred_username": self.preferred_username,
            "issuer": self.issuer,
            "provider": self.provider,
        }))
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
            "X-Forwarded-Issuer",
            "x_forwarded_provider",
            "X-Auth-Request-User",
            "Remote-User",
            "X_Remote_User",
            "X-WEBAUTH-USER",
            "X-Original-URL",
            "X-Rewrite-Url",
            "X-Forwarded-Prefix",
            "X-HTTP-Method-Override",
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
    fn patterns_parse_and_refuse_what_the_proxy_needs() {
        assert_eq!(
            HeaderPattern::parse("X_My_User").unwrap(),
            HeaderPattern::Exact("x-my-user".into())
        );
        assert_eq!(
            HeaderPattern::parse(" X-Corp-* ").unwrap(),
            HeaderPattern::Prefix("x-corp-".into())
        );
        for bad in [
            "*",
            "",
            "x y",
            "x-*-y",
            "x:y",
            "cookie",
            "Co*",
            "Authorization",
            "sec-*",
        ] {
            assert!(HeaderPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn own_cookie_in_set_cookie_is_recognised() {
        for ours in [
            &b"oidc-proxy=evil; Path=/"[..],
            b" oidc-proxy =evil",
            b"__Host-oidc-proxy=evil; Secure; Path=/",
            b"__host-oidc-proxy=evil",
            b"__Secure-oidc-proxy=evil",
            b"__SECURE-__Host-OIDC-PROXY=evil",
            b"OIDC-Proxy=evil",
            b"=oidc-proxy=evil",
            b"oidc-proxy",
            b"oidc-proxy=",
        ] {
            for name in ["oidc-proxy", "__Host-oidc-proxy"] {
                assert!(
                    sets_own_cookie(ours, name),
                    "{} for {name}",
                    String::from_utf8_lossy(ours)
                );
            }
        }
        for theirs in [
            &b"theme=dark; Path=/"[..],
            b"oidc-proxy-x=1",
            b"xoidc-proxy=1",
            b"session=oidc-proxy",
            b"=theme=dark",
            b"",
        ] {
            assert!(
                !sets_own_cookie(theirs, "__Host-oidc-proxy"),
                "{}",
                String::from_utf8_lossy(theirs)
            );
        }
    }

    #[test]
    fn email_is_verified_only_by_boolean_true() {
        let claims = |v: Value| {
            let mut m = AdditionalClaims::new();
            m.insert("email_verified".into(), v);
            m
        };
        assert!(email_verified(&claims(Value::Bool(true))));
        for not in [
            Value::Bool(false),
            Value::from("true"),
            Value::from(1),
            Value::Null,
        ] {
            assert!(!email_verified(&claims(not.clone())), "{not}");
        }
        assert!(!email_verified(&AdditionalClaims::new()));
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
