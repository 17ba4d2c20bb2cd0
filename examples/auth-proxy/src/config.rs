//! Configuration: a TOML file, then `AUTH_PROXY_*` environment variables, checked at start.
//!
//! [`FileConfig`] is the file as written (every field optional, unknown keys refused);
//! [`FileConfig::apply_env`] lays the environment over it; [`FileConfig::validate`] turns it
//! into [`Settings`], or a [`ConfigError`] that says which setting is wrong and why.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::Method;
use serde::Deserialize;

use crate::identity::HeaderPattern;
use crate::routes::{RouteRule, check_prefix};

/// The path prefix the proxy keeps for itself (login, callback, logout, userinfo).
pub const RESERVED_PREFIX: &str = "/oauth2";
/// Where a login starts (`GET`; `/oauth2/start/{provider}` with several providers).
pub const LOGIN_PATH: &str = "/oauth2/start";
/// The default callback path (the redirect URI is the public URL followed by it).
pub const CALLBACK_PATH: &str = "/oauth2/callback";
/// Logout (`POST`, same-origin).
pub const SIGN_OUT_PATH: &str = "/oauth2/sign_out";
/// Back-channel logout, called by the provider.
pub const BACKCHANNEL_LOGOUT_PATH: &str = "/oauth2/backchannel-logout";
/// The signed-in user as JSON.
pub const USERINFO_PATH: &str = "/oauth2/userinfo";

/// A configuration that cannot be used, with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl ConfigError {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

fn err<T>(message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError::new(message))
}

/// A secret read from the configuration; never printed.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

/// The configuration file as written. Every field is optional; see the crate docs for the
/// defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// The proxy's public URL (scheme, host and port, no path).
    pub public_url: Option<String>,
    /// Seconds to wait for an upstream's response headers.
    pub upstream_timeout_secs: Option<u64>,
    /// Whether the proxy runs behind another trusted reverse proxy (keeps its
    /// `X-Forwarded-*`).
    pub reverse_proxy: Option<bool>,
    /// Whether the client's `Host` header is passed to the upstream.
    pub pass_host_header: Option<bool>,
    /// Where a signed-out user is sent by the provider.
    pub post_logout_redirect_uri: Option<String>,
    /// Limits on clients (`[server]`).
    #[serde(default)]
    pub server: ServerConfig,
    /// Session cookie settings.
    #[serde(default)]
    pub cookie: CookieConfig,
    /// Identity headers.
    #[serde(default)]
    pub headers: HeadersConfig,
    /// Built-in endpoints.
    #[serde(default)]
    pub endpoints: EndpointsConfig,
    /// Per-route authentication.
    #[serde(default)]
    pub routes: RoutesConfig,
    /// The OpenID Providers users sign in with (`[[provider]]`).
    #[serde(default, rename = "provider")]
    pub providers: Vec<ProviderConfig>,
    /// The apps behind the proxy (`[[upstream]]`).
    #[serde(default, rename = "upstream")]
    pub upstreams: Vec<UpstreamConfig>,
}

/// `[server]`: limits on slow or idle clients.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Seconds a connection may take to send a request head (default 10).
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a request body may take to arrive after its head (default 30; then 408).
    pub body_read_timeout_secs: Option<u64>,
    /// Connections served at once (default 4096).
    pub max_connections: Option<usize>,
    /// Seconds between the checks of a websocket tunnel's session (default 30): a tunnel
    /// opened with a session closes once the session is gone.
    pub websocket_session_check_secs: Option<u64>,
}

/// `[cookie]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CookieConfig {
    /// The session cookie's name (`__Host-` is put in front on `https`).
    pub name: Option<String>,
    /// Seconds of inactivity after which a session ends.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds after login after which a session ends.
    pub absolute_timeout_secs: Option<u64>,
}

/// `[headers]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadersConfig {
    /// The claim sent as `X-Forwarded-User` (dot-separated path; `sub` when missing).
    pub user_claim: Option<String>,
    /// The claim sent as `X-Forwarded-Groups` (dot-separated path); unset: the identity's
    /// roles and groups.
    pub groups_claim: Option<String>,
    /// Send `X-Forwarded-Access-Token`.
    pub pass_access_token: Option<bool>,
    /// Send `Authorization: Bearer <access token>`.
    pub pass_authorization_header: Option<bool>,
    /// Send e-mail addresses the provider did not mark `email_verified: true`.
    pub insecure_allow_unverified_email: Option<bool>,
    /// More client headers to remove, besides
    /// [`STRIPPED_HEADERS`](crate::identity::STRIPPED_HEADERS) (`X-My-User`, `X-Corp-*`).
    pub strip: Option<Vec<String>>,
}

/// `[endpoints]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointsConfig {
    /// Liveness path (`""` turns it off).
    pub ping: Option<String>,
    /// Readiness path (`""` turns it off).
    pub ready: Option<String>,
    /// Prometheus metrics path (`""` turns it off).
    pub metrics: Option<String>,
}

/// `[routes]`: each entry is `PATH` or `METHOD=PATH`; a `PATH` ending with `/` is a prefix,
/// any other names that path only.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutesConfig {
    /// Forwarded without authentication.
    pub skip_auth: Option<Vec<String>>,
    /// Answered 401 instead of redirecting to the login.
    pub api: Option<Vec<String>>,
    /// Accept `Authorization: Bearer` tokens as well as sessions.
    pub bearer: Option<Vec<String>>,
}

/// One `[[provider]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// Name (URL segment of `/oauth2/start/{name}`).
    pub name: Option<String>,
    /// Name shown on the login page.
    pub display_name: Option<String>,
    /// Issuer URL (discovery finds the rest).
    pub issuer: Option<String>,
    /// Client id registered at the provider.
    pub client_id: Option<String>,
    /// Client secret (unset: a public client with PKCE).
    pub client_secret: Option<SecretString>,
    /// File holding the client secret.
    pub client_secret_file: Option<PathBuf>,
    /// Scopes requested at login.
    pub scopes: Option<Vec<String>>,
    /// Callback path under the public URL.
    pub redirect_path: Option<String>,
    /// The `aud` accepted in bearer tokens (default: the client id).
    pub audience: Option<String>,
    /// Whether this provider's access tokens are accepted on bearer routes.
    pub accept_bearer: Option<bool>,
    /// Accept only bearer tokens with the RFC 9068 header `typ: at+jwt` (default: true when
    /// the audience is a client id, false for an audience of its own).
    pub require_at_jwt: Option<bool>,
    /// Allow `http` provider URLs on non-loopback hosts.
    pub insecure_allow_http: Option<bool>,
}

/// One `[[upstream]]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name in metrics and logs (default: the prefix).
    pub name: Option<String>,
    /// Path prefix served by this upstream (longest match wins).
    pub prefix: Option<String>,
    /// `http://host:port[/base]`.
    pub url: Option<String>,
    /// Remove the prefix before forwarding.
    pub strip_prefix: Option<bool>,
}

/// Where configuration values come from besides the file: a lookup of environment variables.
pub trait Env {
    /// The value of `name`, `None` when unset or empty.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessEnv;

impl Env for ProcessEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.is_empty())
    }
}

impl<const N: usize> Env for [(&str, &str); N] {
    fn var(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
            .filter(|v| !v.is_empty())
    }
}

fn parse_bool(name: &str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => err(format!("{name}: expected true or false, got {value:?}")),
    }
}

fn parse_u64(name: &str, value: &str) -> Result<u64, ConfigError> {
    value
        .trim()
        .parse()
        .map_err(|_| ConfigError::new(format!("{name}: expected a whole number, got {value:?}")))
}

fn list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `AUTH_PROXY_PROVIDER_<NAME>_CLIENT_SECRET` for the provider `name`.
pub fn provider_secret_var(name: &str) -> String {
    let upper: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("AUTH_PROXY_PROVIDER_{upper}_CLIENT_SECRET")
}

impl FileConfig {
    /// Reads and parses the TOML file at `path`.
    ///
    /// # Errors
    ///
    /// When the file cannot be read or is not valid TOML for this schema (the message names
    /// the file, and the line and key at fault).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigError::new(format!(
                "cannot read the config file {}: {e}",
                path.display()
            ))
        })?;
        Self::from_toml(&text)
            .map_err(|e| ConfigError::new(format!("in the config file {}: {e}", path.display())))
    }

    /// Parses TOML text.
    ///
    /// # Errors
    ///
    /// When the text is not valid TOML for this schema.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::new(e.to_string().trim_end().to_owned()))
    }

    /// Lays the `AUTH_PROXY_*` variables of `env` over the file (see the crate docs for the
    /// list). Variables that name the provider (`AUTH_PROXY_ISSUER`, `AUTH_PROXY_CLIENT_ID`,
    /// …) apply to the first `[[provider]]`, creating it when the file has none.
    ///
    /// # Errors
    ///
    /// When a variable's value cannot be parsed.
    pub fn apply_env(&mut self, env: &impl Env) -> Result<(), ConfigError> {
        let get = |name: &str| env.var(name);
        if let Some(v) = get("AUTH_PROXY_LISTEN") {
            self.listen = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_UPSTREAM_TIMEOUT_SECS") {
            self.upstream_timeout_secs = Some(parse_u64("AUTH_PROXY_UPSTREAM_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_HEADER_READ_TIMEOUT_SECS") {
            self.server.header_read_timeout_secs =
                Some(parse_u64("AUTH_PROXY_HEADER_READ_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_BODY_READ_TIMEOUT_SECS") {
            self.server.body_read_timeout_secs =
                Some(parse_u64("AUTH_PROXY_BODY_READ_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_WEBSOCKET_SESSION_CHECK_SECS") {
            self.server.websocket_session_check_secs =
                Some(parse_u64("AUTH_PROXY_WEBSOCKET_SESSION_CHECK_SECS", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_MAX_CONNECTIONS") {
            let n = parse_u64("AUTH_PROXY_MAX_CONNECTIONS", &v)?;
            self.server.max_connections = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(v) = get("AUTH_PROXY_REVERSE_PROXY") {
            self.reverse_proxy = Some(parse_bool("AUTH_PROXY_REVERSE_PROXY", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_PASS_HOST_HEADER") {
            self.pass_host_header = Some(parse_bool("AUTH_PROXY_PASS_HOST_HEADER", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_POST_LOGOUT_REDIRECT_URI") {
            self.post_logout_redirect_uri = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_COOKIE_NAME") {
            self.cookie.name = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_COOKIE_IDLE_TIMEOUT_SECS") {
            self.cookie.idle_timeout_secs =
                Some(parse_u64("AUTH_PROXY_COOKIE_IDLE_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_COOKIE_ABSOLUTE_TIMEOUT_SECS") {
            self.cookie.absolute_timeout_secs =
                Some(parse_u64("AUTH_PROXY_COOKIE_ABSOLUTE_TIMEOUT_SECS", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_USER_CLAIM") {
            self.headers.user_claim = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_GROUPS_CLAIM") {
            self.headers.groups_claim = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_PASS_ACCESS_TOKEN") {
            self.headers.pass_access_token = Some(parse_bool("AUTH_PROXY_PASS_ACCESS_TOKEN", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_PASS_AUTHORIZATION_HEADER") {
            self.headers.pass_authorization_header =
                Some(parse_bool("AUTH_PROXY_PASS_AUTHORIZATION_HEADER", &v)?);
        }
        if let Some(v) = get("AUTH_PROXY_INSECURE_ALLOW_UNVERIFIED_EMAIL") {
            self.headers.insecure_allow_unverified_email = Some(parse_bool(
                "AUTH_PROXY_INSECURE_ALLOW_UNVERIFIED_EMAIL",
                &v,
            )?);
        }
        if let Some(v) = get("AUTH_PROXY_STRIP_HEADERS") {
            self.headers.strip = Some(list(&v));
        }
        if let Some(v) = get("AUTH_PROXY_SKIP_AUTH_ROUTES") {
            self.routes.skip_auth = Some(list(&v));
        }
        if let Some(v) = get("AUTH_PROXY_API_ROUTES") {
            self.routes.api = Some(list(&v));
        }
        if let Some(v) = get("AUTH_PROXY_BEARER_ROUTES") {
            self.routes.bearer = Some(list(&v));
        }
        if let Some(v) = get("AUTH_PROXY_UPSTREAMS") {
            let mut upstreams = Vec::new();
            for entry in list(&v) {
                let Some((prefix, url)) = entry.split_once('=') else {
                    return err(format!(
                        "AUTH_PROXY_UPSTREAMS: expected PREFIX=URL entries separated by commas, got {entry:?}"
                    ));
                };
                upstreams.push(UpstreamConfig {
                    prefix: Some(prefix.trim().to_owned()),
                    url: Some(url.trim().to_owned()),
                    ..UpstreamConfig::default()
                });
            }
            self.upstreams = upstreams;
        }
        let first = [
            "AUTH_PROXY_ISSUER",
            "AUTH_PROXY_CLIENT_ID",
            "AUTH_PROXY_CLIENT_SECRET",
            "AUTH_PROXY_SCOPES",
            "AUTH_PROXY_AUDIENCE",
            "AUTH_PROXY_REQUIRE_AT_JWT",
        ];
        if self.providers.is_empty() && first.iter().any(|name| get(name).is_some()) {
            self.providers.push(ProviderConfig::default());
        }
        if let Some(provider) = self.providers.first_mut() {
            if let Some(v) = get("AUTH_PROXY_ISSUER") {
                provider.issuer = Some(v);
            }
            if let Some(v) = get("AUTH_PROXY_CLIENT_ID") {
                provider.client_id = Some(v);
            }
            if let Some(v) = get("AUTH_PROXY_CLIENT_SECRET") {
                provider.client_secret = Some(SecretString::new(v));
                provider.client_secret_file = None;
            }
            if let Some(v) = get("AUTH_PROXY_SCOPES") {
                provider.scopes = Some(v.split_whitespace().map(str::to_owned).collect());
            }
            if let Some(v) = get("AUTH_PROXY_AUDIENCE") {
                provider.audience = Some(v);
            }
            if let Some(v) = get("AUTH_PROXY_REQUIRE_AT_JWT") {
                provider.require_at_jwt = Some(parse_bool("AUTH_PROXY_REQUIRE_AT_JWT", &v)?);
            }
        }
        for (i, provider) in self.providers.iter_mut().enumerate() {
            let name = provider_name(provider, i);
            if let Some(v) = get(&provider_secret_var(&name)) {
                provider.client_secret = Some(SecretString::new(v));
                provider.client_secret_file = None;
            }
        }
        Ok(())
    }

    /// Checks everything and resolves the defaults.
    ///
    /// # Errors
    ///
    /// The first problem found, naming the setting.
    pub fn validate(&self) -> Result<Settings, ConfigError> {
        let listen_text = self.listen.as_deref().unwrap_or("127.0.0.1:4180");
        let listen: SocketAddr = listen_text.parse().map_err(|_| {
            ConfigError::new(format!(
                "listen: {listen_text:?} is not a socket address (like 127.0.0.1:4180)"
            ))
        })?;
        self.validate_for(listen)
    }

    /// Like [`validate`](Self::validate), for a proxy that listens on `listen` (the address
    /// actually bound, when `listen` asked for port 0).
    ///
    /// # Errors
    ///
    /// The first problem found, naming the setting.
    pub fn validate_for(&self, listen: SocketAddr) -> Result<Settings, ConfigError> {
        let public_url = match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None if listen.ip().is_loopback() => format!("http://{listen}"),
            None => {
                return err(format!(
                    "public_url is required when listening on a non-loopback address ({listen}): \
                     the URL browsers use to reach the proxy, like https://app.example.com"
                ));
            }
        };
        let parsed = url::Url::parse(&public_url).map_err(|e| {
            ConfigError::new(format!(
                "public_url: {public_url:?} is not an absolute URL ({e})"
            ))
        })?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            return err(format!(
                "public_url: {public_url:?} must be an http or https URL"
            ));
        }
        if parsed.path() != "/"
            || parsed.query().is_some()
            || parsed.fragment().is_some()
            || !parsed.username().is_empty()
            || parsed.password().is_some()
        {
            return err(format!(
                "public_url: {public_url:?} must be scheme://host[:port] only: the proxy serves \
                 the whole origin (no path, query, fragment or user info)"
            ));
        }
        let origin = parsed.origin().ascii_serialization();
        let secure = parsed.scheme() == "https";

        let upstream_timeout = positive_secs(
            "upstream_timeout_secs",
            self.upstream_timeout_secs.unwrap_or(60),
        )?;

        let defaults = server_limits::Limits::default();
        let limits = server_limits::Limits::new(
            match self.server.header_read_timeout_secs {
                Some(secs) => positive_secs("server.header_read_timeout_secs", secs)?,
                None => defaults.header_read_timeout,
            },
            match self.server.body_read_timeout_secs {
                Some(secs) => positive_secs("server.body_read_timeout_secs", secs)?,
                None => defaults.body_read_timeout,
            },
            match self.server.max_connections {
                Some(0) => return err("server.max_connections: must be at least 1"),
                Some(n) => n,
                None => defaults.max_connections,
            },
        );

        let websocket_session_check = positive_secs(
            "server.websocket_session_check_secs",
            self.server.websocket_session_check_secs.unwrap_or(30),
        )?;

        let cookie = self.cookie.validate(secure)?;
        let mut headers = self.headers.validate()?;
        let endpoints = self.endpoints.validate()?;

        if self.providers.is_empty() {
            return err(
                "no provider: add a [[provider]] table with issuer and client_id \
                 (or set AUTH_PROXY_ISSUER and AUTH_PROXY_CLIENT_ID)",
            );
        }
        let several = self.providers.len() > 1;
        let mut providers = Vec::new();
        let mut names = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let settings = p.validate(i, several, &origin)?;
            if !names.insert(settings.name.clone()) {
                return err(format!(
                    "provider {:?}: two providers have this name; give each its own `name`",
                    settings.name
                ));
            }
            providers.push(settings);
        }
        require_at_jwt(&self.providers, &mut providers)?;
        headers.bearer_providers = providers
            .iter()
            .filter(|p| p.accept_bearer)
            .map(|p| (p.issuer.clone(), p.name.clone()))
            .collect();
        let mut callbacks = BTreeSet::new();
        for p in &providers {
            if !callbacks.insert((p.issuer.clone(), p.redirect_path.clone())) {
                return err(format!(
                    "provider {:?}: another provider with the same issuer uses the redirect_path \
                     {:?}; give each its own",
                    p.name, p.redirect_path
                ));
            }
            let taken = crate::routes::prefix_matches(LOGIN_PATH, p.redirect_path.as_bytes())
                || [SIGN_OUT_PATH, BACKCHANNEL_LOGOUT_PATH, USERINFO_PATH]
                    .contains(&p.redirect_path.as_str());
            if taken {
                return err(format!(
                    "provider {:?}: redirect_path {:?} is one of the proxy's own routes",
                    p.name, p.redirect_path
                ));
            }
            for endpoint in endpoints.paths() {
                if p.redirect_path == endpoint {
                    return err(format!(
                        "provider {:?}: redirect_path {:?} collides with a built-in endpoint",
                        p.name, p.redirect_path
                    ));
                }
            }
        }

        if self.upstreams.is_empty() {
            return err(
                "no upstream: add an [[upstream]] table with prefix and url \
                 (or set AUTH_PROXY_UPSTREAMS=/=http://127.0.0.1:8080)",
            );
        }
        let mut upstreams = Vec::new();
        let mut prefixes = BTreeSet::new();
        for (i, u) in self.upstreams.iter().enumerate() {
            let settings = u.validate(i)?;
            if !prefixes.insert(settings.prefix.clone()) {
                return err(format!(
                    "upstream {:?}: two upstreams have the prefix {:?}",
                    settings.name, settings.prefix
                ));
            }
            if crate::routes::prefix_matches(RESERVED_PREFIX, settings.prefix.as_bytes()) {
                return err(format!(
                    "upstream {:?}: the prefix {:?} lies under {RESERVED_PREFIX}/, which the proxy keeps \
                     for itself",
                    settings.name, settings.prefix
                ));
            }
            if points_at(&settings.authority, listen) {
                return err(format!(
                    "upstream {:?}: {} is the proxy's own address: requests would loop",
                    settings.name, settings.authority
                ));
            }
            upstreams.push(settings);
        }

        let routes = RouteSettings {
            skip_auth: rules("routes.skip_auth", self.routes.skip_auth.as_deref())?,
            api: rules("routes.api", self.routes.api.as_deref())?,
            bearer: rules("routes.bearer", self.routes.bearer.as_deref())?,
        };
        if !routes.bearer.is_empty() && !providers.iter().any(|p| p.accept_bearer) {
            return err(
                "routes.bearer is set but no provider has accept_bearer = true: no bearer token \
                 could ever be accepted",
            );
        }

        let post_logout_redirect_uri = match &self.post_logout_redirect_uri {
            Some(uri) => {
                let u = url::Url::parse(uri).map_err(|_| {
                    ConfigError::new(format!(
                        "post_logout_redirect_uri: {uri:?} is not an absolute URL"
                    ))
                })?;
                if !matches!(u.scheme(), "http" | "https") {
                    return err(format!(
                        "post_logout_redirect_uri: {uri:?} must be an http or https URL"
                    ));
                }
                uri.clone()
            }
            None => format!("{public_url}/"),
        };

        Ok(Settings {
            listen,
            public_url,
            secure,
            upstream_timeout,
            limits,
            websocket_session_check,
            reverse_proxy: self.reverse_proxy.unwrap_or(false),
            pass_host_header: self.pass_host_header.unwrap_or(true),
            post_logout_redirect_uri,
            cookie,
            headers,
            endpoints,
            routes,
            providers,
            upstreams,
        })
    }
}

/// Resolves `require_at_jwt` of each provider. An ID token has `aud` = the client id and may
/// have `typ: JWT`: when a provider's bearer audience is a client id at that issuer (the
/// default audience is its own), only `typ: at+jwt` tells an access token from an ID token,
/// so the check is on and may not be turned off. With an audience of its own (an API
/// identifier that no client has), it is off unless set: Keycloak, Entra ID and Auth0 send
/// `typ: JWT`, and the verifier still refuses tokens with `nonce`, `at_hash` or `c_hash`.
fn require_at_jwt(
    configs: &[ProviderConfig],
    providers: &mut [ProviderSettings],
) -> Result<(), ConfigError> {
    let client_ids: BTreeSet<(String, String)> = providers
        .iter()
        .map(|p| (p.issuer.clone(), p.client_id.clone()))
        .collect();
    for (config, p) in configs.iter().zip(providers.iter_mut()) {
        let audience_is_a_client = client_ids.contains(&(p.issuer.clone(), p.audience.clone()));
        p.require_at_jwt = match (config.require_at_jwt, audience_is_a_client) {
            (Some(false), true) if p.accept_bearer => {
                return err(format!(
                    "provider {:?}: require_at_jwt = false needs an audience of its own: the \
                     audience {:?} is a client id, and an ID token issued to that client \
                     would pass as an access token; set `audience` to the `aud` your provider \
                     puts in access tokens for this API",
                    p.name, p.audience
                ));
            }
            (Some(set), _) => set,
            (None, is_client) => is_client,
        };
    }
    Ok(())
}

/// Whether `authority` names the proxy's own listening address.
fn points_at(authority: &http::uri::Authority, listen: SocketAddr) -> bool {
    if authority.port_u16().unwrap_or(80) != listen.port() {
        return false;
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => {
            ip == listen.ip()
                || (ip.is_loopback() && (listen.ip().is_loopback() || listen.ip().is_unspecified()))
        }
        Err(_) => {
            host.eq_ignore_ascii_case("localhost")
                && (listen.ip().is_loopback() || listen.ip().is_unspecified())
        }
    }
}

fn positive_secs(name: &str, secs: u64) -> Result<Duration, ConfigError> {
    if secs == 0 {
        return err(format!("{name}: must be at least 1 second"));
    }
    Ok(Duration::from_secs(secs))
}

fn rules(name: &str, entries: Option<&[String]>) -> Result<Vec<RouteRule>, ConfigError> {
    entries
        .unwrap_or_default()
        .iter()
        .map(|entry| RouteRule::parse(entry).map_err(|e| ConfigError::new(format!("{name}: {e}"))))
        .collect()
}

fn provider_name(p: &ProviderConfig, index: usize) -> String {
    match &p.name {
        Some(name) => name.clone(),
        None if index == 0 => "default".to_owned(),
        None => format!("provider{}", index + 1),
    }
}

fn valid_segment(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl CookieConfig {
    fn validate(&self, secure: bool) -> Result<CookieSettings, ConfigError> {
        let base = self.name.as_deref().unwrap_or("oidc-proxy");
        if base.is_empty()
            || base.len() > 64
            || !base
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return err(format!(
                "cookie.name: {base:?} must be 1 to 64 letters, digits, '-', '_' or '.'"
            ));
        }
        if base.starts_with("__") {
            return err(format!(
                "cookie.name: {base:?}: leave out the __Host- prefix, the proxy adds it on https"
            ));
        }
        let name = if secure {
            format!("__Host-{base}")
        } else {
            base.to_owned()
        };
        let idle = positive_secs(
            "cookie.idle_timeout_secs",
            self.idle_timeout_secs.unwrap_or(30 * 60),
        )?;
        let absolute = positive_secs(
            "cookie.absolute_timeout_secs",
            self.absolute_timeout_secs.unwrap_or(12 * 3600),
        )?;
        if absolute < idle {
            return err("cookie.absolute_timeout_secs must not be shorter than idle_timeout_secs");
        }
        Ok(CookieSettings {
            name,
            idle_timeout: idle,
            absolute_timeout: absolute,
        })
    }
}

fn claim_path(name: &str, path: &str) -> Result<Vec<String>, ConfigError> {
    let segments: Vec<String> = path.split('.').map(str::to_owned).collect();
    if segments.iter().any(String::is_empty) {
        return err(format!(
            "{name}: {path:?} is not a claim path (dot-separated names, like `email` or `realm_access.roles`)"
        ));
    }
    Ok(segments)
}

impl HeadersConfig {
    fn validate(&self) -> Result<HeaderSettings, ConfigError> {
        let user_claim = claim_path(
            "headers.user_claim",
            self.user_claim.as_deref().unwrap_or("sub"),
        )?;
        let groups_claim = self
            .groups_claim
            .as_deref()
            .map(|p| claim_path("headers.groups_claim", p))
            .transpose()?;
        let strip = self
            .strip
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|entry| {
                HeaderPattern::parse(entry)
                    .map_err(|e| ConfigError::new(format!("headers.strip: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(HeaderSettings {
            user_claim,
            groups_claim,
            pass_access_token: self.pass_access_token.unwrap_or(false),
            pass_authorization_header: self.pass_authorization_header.unwrap_or(false),
            insecure_allow_unverified_email: self.insecure_allow_unverified_email.unwrap_or(false),
            strip,
            bearer_providers: Vec::new(),
        })
    }
}

impl EndpointsConfig {
    fn validate(&self) -> Result<EndpointSettings, ConfigError> {
        let one = |name: &str, value: &Option<String>, default: &str| {
            let path = value.as_deref().unwrap_or(default);
            if path.is_empty() {
                return Ok(None);
            }
            check_prefix(path)
                .map_err(|e| ConfigError::new(format!("endpoints.{name}: {e}")))
                .and_then(|()| {
                    if crate::routes::prefix_matches(RESERVED_PREFIX, path.as_bytes()) {
                        err(format!(
                            "endpoints.{name}: {path:?} lies under {RESERVED_PREFIX}/, which the proxy keeps for its login routes"
                        ))
                    } else if path.contains(['{', '}', '*']) {
                        err(format!("endpoints.{name}: {path:?} must be a plain path"))
                    } else {
                        Ok(Some(path.to_owned()))
                    }
                })
        };
        let settings = EndpointSettings {
            ping: one("ping", &self.ping, "/ping")?,
            ready: one("ready", &self.ready, "/ready")?,
            metrics: one("metrics", &self.metrics, "/metrics")?,
        };
        let paths: Vec<&str> = settings.paths().collect();
        let unique: BTreeSet<&str> = paths.iter().copied().collect();
        if unique.len() != paths.len() {
            return err("endpoints: ping, ready and metrics need different paths");
        }
        Ok(settings)
    }
}

impl ProviderConfig {
    fn validate(
        &self,
        index: usize,
        several: bool,
        origin: &str,
    ) -> Result<ProviderSettings, ConfigError> {
        let name = provider_name(self, index);
        let at = |what: &str| format!("provider {name:?}: {what}");
        if !valid_segment(&name) {
            return err(at(
                "name must be 1 to 64 letters, digits, '-', '_' or '.' (it appears in /oauth2/start/{name})",
            ));
        }
        let Some(issuer) = self.issuer.clone().filter(|s| !s.is_empty()) else {
            return err(at("issuer is required (or AUTH_PROXY_ISSUER)"));
        };
        let Some(client_id) = self.client_id.clone().filter(|s| !s.is_empty()) else {
            return err(at("client_id is required (or AUTH_PROXY_CLIENT_ID)"));
        };
        let client_secret = match (&self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return err(at("set client_secret or client_secret_file, not both"));
            }
            (Some(secret), None) if secret.expose().is_empty() => {
                return err(at("client_secret is empty"));
            }
            (Some(secret), None) => Some(secret.clone()),
            (None, Some(file)) => {
                let text = std::fs::read_to_string(file).map_err(|e| {
                    ConfigError::new(at(&format!(
                        "cannot read client_secret_file {}: {e}",
                        file.display()
                    )))
                })?;
                let secret = text.trim_end_matches(['\r', '\n']).to_owned();
                if secret.is_empty() {
                    return err(at(&format!(
                        "client_secret_file {} is empty",
                        file.display()
                    )));
                }
                Some(SecretString::new(secret))
            }
            (None, None) => None,
        };
        let scopes = self
            .scopes
            .clone()
            .unwrap_or_else(|| ["openid", "profile", "email"].map(str::to_owned).to_vec());
        if !scopes.iter().any(|s| s == "openid") {
            return err(at("scopes must include openid"));
        }
        if let Some(bad) = scopes
            .iter()
            .find(|s| s.is_empty() || s.bytes().any(|b| b <= b' ' || b == b'"' || b == b'\\'))
        {
            return err(at(&format!("scope {bad:?} is not a valid scope token")));
        }
        let redirect_path = match &self.redirect_path {
            Some(path) => path.clone(),
            None if several => format!("{CALLBACK_PATH}/{name}"),
            None => CALLBACK_PATH.to_owned(),
        };
        check_prefix(&redirect_path)
            .map_err(|e| ConfigError::new(at(&format!("redirect_path: {e}"))))?;
        let audience = self.audience.clone().unwrap_or_else(|| client_id.clone());
        Ok(ProviderSettings {
            display_name: self.display_name.clone().unwrap_or_else(|| {
                url::Url::parse(&issuer)
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_else(|| name.clone())
            }),
            redirect_uri: format!("{origin}{redirect_path}"),
            name,
            issuer,
            client_id,
            client_secret,
            scopes,
            redirect_path,
            audience,
            accept_bearer: self.accept_bearer.unwrap_or(true),
            // Resolved once every provider is known (see `require_at_jwt`).
            require_at_jwt: true,
            insecure_allow_http: self.insecure_allow_http.unwrap_or(false),
        })
    }
}

impl UpstreamConfig {
    fn validate(&self, index: usize) -> Result<UpstreamSettings, ConfigError> {
        let label = self
            .name
            .clone()
            .or_else(|| self.prefix.clone())
            .unwrap_or_else(|| format!("#{}", index + 1));
        let at = |what: &str| format!("upstream {label:?}: {what}");
        let prefix = self.prefix.clone().unwrap_or_else(|| "/".to_owned());
        check_prefix(&prefix).map_err(|e| ConfigError::new(at(&format!("prefix: {e}"))))?;
        let Some(url_text) = self.url.clone() else {
            return err(at("url is required (like http://127.0.0.1:8080)"));
        };
        let url = url::Url::parse(&url_text)
            .map_err(|e| ConfigError::new(at(&format!("url {url_text:?}: {e}"))))?;
        if url.scheme() != "http" {
            return err(at(&format!(
                "url {url_text:?}: only http upstreams are supported (the proxy and its upstreams \
                 share a host or a private network)"
            )));
        }
        let Some(host) = url.host_str() else {
            return err(at(&format!("url {url_text:?} has no host")));
        };
        if url.query().is_some()
            || url.fragment().is_some()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return err(at(&format!(
                "url {url_text:?} must be http://host[:port][/path] (no query, fragment or user info)"
            )));
        }
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = authority
            .parse::<http::uri::Authority>()
            .map_err(|_| ConfigError::new(at(&format!("url {url_text:?}: bad host"))))?;
        let base_path = url.path().trim_end_matches('/').to_owned();
        if base_path.contains(['%', '\\']) {
            return err(at(&format!("url {url_text:?}: the path must be plain")));
        }
        let name = self.name.clone().unwrap_or_else(|| prefix.clone());
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return err(at("name must be 1 to 128 printable characters"));
        }
        Ok(UpstreamSettings {
            name,
            prefix,
            authority,
            base_path,
            strip_prefix: self.strip_prefix.unwrap_or(false),
        })
    }
}

/// A checked configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// `scheme://host[:port]`, no trailing slash.
    pub public_url: String,
    /// Whether `public_url` is `https`.
    pub secure: bool,
    /// How long to wait for an upstream's response headers.
    pub upstream_timeout: Duration,
    /// Header-read timeout, body-read deadline and connection cap (`[server]`).
    pub limits: server_limits::Limits,
    /// How often a websocket tunnel checks that its session still exists.
    pub websocket_session_check: Duration,
    /// Keep the `X-Forwarded-*` headers of a trusted front proxy.
    pub reverse_proxy: bool,
    /// Pass the client's `Host` header to the upstream.
    pub pass_host_header: bool,
    /// Where the provider sends the browser after logout.
    pub post_logout_redirect_uri: String,
    /// Session cookie.
    pub cookie: CookieSettings,
    /// Identity headers.
    pub headers: HeaderSettings,
    /// Built-in endpoints.
    pub endpoints: EndpointSettings,
    /// Per-route authentication.
    pub routes: RouteSettings,
    /// At least one.
    pub providers: Vec<ProviderSettings>,
    /// At least one.
    pub upstreams: Vec<UpstreamSettings>,
}

/// Session cookie settings.
#[derive(Debug, Clone)]
pub struct CookieSettings {
    /// The full cookie name (with `__Host-` on https).
    pub name: String,
    /// Idle timeout.
    pub idle_timeout: Duration,
    /// Absolute timeout.
    pub absolute_timeout: Duration,
}

/// Identity header settings.
#[derive(Debug, Clone)]
pub struct HeaderSettings {
    /// Claim path of `X-Forwarded-User`.
    pub user_claim: Vec<String>,
    /// Claim path of `X-Forwarded-Groups` (`None`: the identity's roles and groups).
    pub groups_claim: Option<Vec<String>>,
    /// Send `X-Forwarded-Access-Token`.
    pub pass_access_token: bool,
    /// Send `Authorization: Bearer`.
    pub pass_authorization_header: bool,
    /// Send e-mail addresses that are not verified.
    pub insecure_allow_unverified_email: bool,
    /// Client headers removed besides [`STRIPPED_HEADERS`](crate::identity::STRIPPED_HEADERS).
    pub strip: Vec<HeaderPattern>,
    /// `(issuer, name)` of the providers whose bearer tokens are accepted, for
    /// `X-Forwarded-Provider` (issuers are unique among them).
    pub bearer_providers: Vec<(String, String)>,
}

/// Built-in endpoint paths (`None`: off).
#[derive(Debug, Clone)]
pub struct EndpointSettings {
    /// Liveness.
    pub ping: Option<String>,
    /// Readiness.
    pub ready: Option<String>,
    /// Prometheus metrics.
    pub metrics: Option<String>,
}

impl EndpointSettings {
    /// The paths that are on.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        [&self.ping, &self.ready, &self.metrics]
            .into_iter()
            .filter_map(|p| p.as_deref())
    }
}

/// Per-route authentication.
#[derive(Debug, Clone, Default)]
pub struct RouteSettings {
    /// Forwarded without authentication.
    pub skip_auth: Vec<RouteRule>,
    /// 401 instead of a redirect.
    pub api: Vec<RouteRule>,
    /// Bearer tokens accepted.
    pub bearer: Vec<RouteRule>,
}

/// A checked provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Issuer.
    pub issuer: String,
    /// Client id.
    pub client_id: String,
    /// Client secret (`None`: public client).
    pub client_secret: Option<SecretString>,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Callback path.
    pub redirect_path: String,
    /// `public_url` + `redirect_path`.
    pub redirect_uri: String,
    /// Bearer audience.
    pub audience: String,
    /// Accept this provider's bearer tokens on bearer routes.
    pub accept_bearer: bool,
    /// Accept only bearer tokens with `typ: at+jwt`.
    pub require_at_jwt: bool,
    /// Allow `http` provider URLs anywhere.
    pub insecure_allow_http: bool,
}

/// A checked upstream.
#[derive(Debug, Clone)]
pub struct UpstreamSettings {
    /// Name in metrics and logs.
    pub name: String,
    /// Path prefix.
    pub prefix: String,
    /// `host[:port]`.
    pub authority: http::uri::Authority,
    /// Path of the upstream URL, without a trailing slash.
    pub base_path: String,
    /// Remove the prefix before forwarding.
    pub strip_prefix: bool,
}

/// Whether `method` is one the route rules may name.
pub(crate) fn known_method(method: &str) -> Option<Method> {
    let m = Method::from_bytes(method.as_bytes()).ok()?;
    [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ]
    .contains(&m)
    .then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [[provider]]
        issuer = "https://id.example.com"
        client_id = "proxy"

        [[upstream]]
        url = "http://127.0.0.1:8080"
    "#;

    fn settings(toml: &str) -> Result<Settings, ConfigError> {
        FileConfig::from_toml(toml)?.validate()
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let s = settings(MINIMAL).unwrap();
        assert_eq!(s.listen.to_string(), "127.0.0.1:4180");
        assert_eq!(s.public_url, "http://127.0.0.1:4180");
        assert_eq!(s.cookie.name, "oidc-proxy");
        assert_eq!(s.providers[0].name, "default");
        assert_eq!(
            s.providers[0].redirect_uri,
            "http://127.0.0.1:4180/oauth2/callback"
        );
        assert_eq!(s.providers[0].audience, "proxy");
        assert_eq!(s.upstreams[0].prefix, "/");
        assert_eq!(s.endpoints.metrics.as_deref(), Some("/metrics"));
        assert!(!s.headers.pass_access_token);
    }

    #[test]
    fn https_cookie_gets_host_prefix() {
        let s = settings(&format!(
            "public_url = \"https://app.example.com\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(s.cookie.name, "__Host-oidc-proxy");
        assert!(s.secure);
    }

    #[test]
    fn errors_are_clear() {
        let cases: &[(&str, &str)] = &[
            ("listen = \"nope\"", "listen"),
            ("public_url = \"https://a.example/app\"", "public_url"),
            ("unknown_key = 1", "unknown field"),
            ("[cookie]\nname = \"__Host-x\"", "cookie.name"),
            ("[routes]\nskip_auth = [\"public\"]", "routes.skip_auth"),
            ("[routes]\napi = [\"/a/../b\"]", "routes.api"),
            ("[routes]\nskip_auth = [\"BREW=/x\"]", "routes.skip_auth"),
            (
                "[endpoints]\nmetrics = \"/oauth2/metrics\"",
                "endpoints.metrics",
            ),
            ("upstream_timeout_secs = 0", "upstream_timeout_secs"),
            ("[headers]\nstrip = [\"Cookie\"]", "headers.strip"),
            ("[headers]\nstrip = [\"*\"]", "headers.strip"),
            ("[headers]\nstrip = [\"X Y\"]", "headers.strip"),
            (
                "[[provider]]\nname = \"x\"\nissuer = \"https://x\"\nclient_id = \"c\"\nredirect_path = \"/oauth2/start/x\"",
                "own routes",
            ),
        ];
        for (extra, want) in cases {
            let e = settings(&format!("{extra}\n{MINIMAL}")).unwrap_err();
            assert!(e.to_string().contains(want), "{extra}: {e}");
        }
        let e = settings("[[upstream]]\nurl = \"http://127.0.0.1:1\"").unwrap_err();
        assert!(e.to_string().contains("no provider"), "{e}");
        let e = settings("[[provider]]\nissuer = \"https://i\"\nclient_id = \"c\"").unwrap_err();
        assert!(e.to_string().contains("no upstream"), "{e}");
        let e = settings(
            "[[provider]]\nissuer = \"https://i\"\nclient_id = \"c\"\n[[upstream]]\nurl = \"https://x\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("only http upstreams"), "{e}");
        let e = settings(
            "[[provider]]\nissuer = \"https://i\"\nclient_id = \"c\"\n[[upstream]]\nprefix = \"/oauth2/x\"\nurl = \"http://x\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("keeps"), "{e}");
        let e = settings(
            "[[provider]]\nissuer = \"https://i\"\nclient_id = \"c\"\n[[upstream]]\nurl = \"http://localhost:4180/app\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("loop"), "{e}");
        let e = settings(
            "listen = \"0.0.0.0:4180\"\n[[provider]]\nissuer = \"https://i\"\nclient_id = \"c\"\n[[upstream]]\nurl = \"http://x\"",
        )
        .unwrap_err();
        assert!(e.to_string().contains("public_url is required"), "{e}");
    }

    #[test]
    fn environment_overrides_the_file() {
        let mut file = FileConfig::from_toml(MINIMAL).unwrap();
        file.apply_env(&[
            ("AUTH_PROXY_LISTEN", "127.0.0.1:9999"),
            ("AUTH_PROXY_CLIENT_SECRET", "from-env"),
            (
                "AUTH_PROXY_UPSTREAMS",
                "/=http://127.0.0.1:1, /api/=http://127.0.0.1:2/v1",
            ),
            ("AUTH_PROXY_API_ROUTES", "/api/,GET=/health"),
            ("AUTH_PROXY_PASS_ACCESS_TOKEN", "true"),
            ("AUTH_PROXY_COOKIE_NAME", "sess"),
        ])
        .unwrap();
        let s = file.validate().unwrap();
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(
            s.providers[0].client_secret.as_ref().unwrap().expose(),
            "from-env"
        );
        assert_eq!(s.upstreams.len(), 2);
        assert_eq!(s.upstreams[1].base_path, "/v1");
        assert_eq!(s.routes.api.len(), 2);
        assert!(s.headers.pass_access_token);
        assert_eq!(s.cookie.name, "sess");

        let mut bad = FileConfig::from_toml(MINIMAL).unwrap();
        let e = bad
            .apply_env(&[("AUTH_PROXY_PASS_ACCESS_TOKEN", "maybe")])
            .unwrap_err();
        assert!(
            e.to_string().contains("AUTH_PROXY_PASS_ACCESS_TOKEN"),
            "{e}"
        );
    }

    #[test]
    fn provider_from_environment_only() {
        let mut file = FileConfig::default();
        file.apply_env(&[
            ("AUTH_PROXY_ISSUER", "https://id.example.com"),
            ("AUTH_PROXY_CLIENT_ID", "proxy"),
            ("AUTH_PROXY_PROVIDER_DEFAULT_CLIENT_SECRET", "s"),
            ("AUTH_PROXY_UPSTREAMS", "/=http://127.0.0.1:1"),
        ])
        .unwrap();
        let s = file.validate().unwrap();
        assert_eq!(s.providers[0].client_secret.as_ref().unwrap().expose(), "s");
    }

    #[test]
    fn several_providers_get_their_own_callbacks() {
        let s = settings(
            r#"
            [[provider]]
            name = "staff"
            issuer = "https://a.example.com"
            client_id = "p"
            [[provider]]
            name = "partners"
            issuer = "https://b.example.com"
            client_id = "p"
            [[upstream]]
            url = "http://127.0.0.1:1"
            "#,
        )
        .unwrap();
        assert_eq!(s.providers[0].redirect_path, "/oauth2/callback/staff");
        assert_eq!(s.providers[1].redirect_path, "/oauth2/callback/partners");
    }

    #[test]
    fn id_tokens_cannot_pass_as_bearer_tokens_by_default() {
        let provider = |extra: &str| {
            format!(
                "[[provider]]\nissuer = \"https://id.example.com\"\nclient_id = \"proxy\"\n{extra}\n\
                 [[upstream]]\nurl = \"http://127.0.0.1:8080\""
            )
        };
        // The audience defaults to the client id: at+jwt is required, and cannot be turned off.
        let s = settings(MINIMAL).unwrap();
        assert!(s.providers[0].require_at_jwt);
        let e = settings(&provider("require_at_jwt = false")).unwrap_err();
        assert!(e.to_string().contains("require_at_jwt = false"), "{e}");
        // Set explicitly to the client id: the same.
        let s = settings(&provider("audience = \"proxy\"")).unwrap();
        assert!(s.providers[0].require_at_jwt);
        // Another provider's client id at the same issuer counts as a client id too.
        let two = r#"
            [[provider]]
            name = "a"
            issuer = "https://id.example.com"
            client_id = "proxy"
            audience = "other-client"
            [[provider]]
            name = "b"
            issuer = "https://id.example.com"
            client_id = "other-client"
            accept_bearer = false
            [[upstream]]
            url = "http://127.0.0.1:8080"
        "#;
        assert!(settings(two).unwrap().providers[0].require_at_jwt);
        // An audience of its own: off unless asked for.
        let own = provider("audience = \"api://orders\"");
        assert!(!settings(&own).unwrap().providers[0].require_at_jwt);
        let strict = provider("audience = \"api://orders\"\nrequire_at_jwt = true");
        assert!(settings(&strict).unwrap().providers[0].require_at_jwt);
        // Not accepting bearer tokens at all: nothing to refuse.
        let off = provider("accept_bearer = false\nrequire_at_jwt = false");
        assert!(settings(&off).is_ok());
        // From the environment.
        let mut file = FileConfig::from_toml(&own).unwrap();
        file.apply_env(&[("AUTH_PROXY_REQUIRE_AT_JWT", "true")])
            .unwrap();
        assert!(file.validate().unwrap().providers[0].require_at_jwt);
    }

    #[test]
    fn header_settings_from_file_and_environment() {
        let s = settings(&format!(
            "[headers]\nstrip = [\"X-My-User\", \"X_Corp_*\"]\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(
            s.headers.strip,
            [
                HeaderPattern::Exact("x-my-user".into()),
                HeaderPattern::Prefix("x-corp-".into())
            ]
        );
        assert!(!s.headers.insecure_allow_unverified_email);
        assert_eq!(
            s.headers.bearer_providers,
            [("https://id.example.com".to_owned(), "default".to_owned())]
        );
        let mut file = FileConfig::from_toml(MINIMAL).unwrap();
        file.apply_env(&[
            ("AUTH_PROXY_STRIP_HEADERS", "X-A, X-B-*"),
            ("AUTH_PROXY_INSECURE_ALLOW_UNVERIFIED_EMAIL", "true"),
        ])
        .unwrap();
        let s = file.validate().unwrap();
        assert_eq!(s.headers.strip.len(), 2);
        assert!(s.headers.insecure_allow_unverified_email);
    }

    #[test]
    fn secrets_are_not_printed() {
        let file = FileConfig::from_toml(&format!(
            "{MINIMAL}\n[[provider]]\nname = \"b\"\nissuer = \"https://b\"\nclient_id = \"c\"\nclient_secret = \"hunter2\""
        ))
        .unwrap();
        assert!(!format!("{file:?}").contains("hunter2"));
        let s = file.validate().unwrap();
        assert!(!format!("{s:?}").contains("hunter2"));
    }
}
