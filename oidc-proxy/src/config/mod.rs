//! Configuration: a TOML file, then `AUTH_PROXY_*` environment variables, checked at start.
//!
//! [`FileConfig`] is the file as written (every field optional, unknown keys refused);
//! [`FileConfig::apply_env`] lays the environment over it; [`FileConfig::validate`] turns it
//! into [`Settings`], or a [`ConfigError`] that says which setting is wrong and why.
//!
//! One file per concern, each with its table as written and as checked: `server.rs`
//! (`[server]` limits), `cookie.rs` (`[cookie]`), `headers.rs` (`[headers]`: identity headers
//! and the strip list), `endpoints.rs` (`[endpoints]`), `routes.rs` (`[routes]` rules),
//! `providers.rs` (`[[provider]]`), `upstreams.rs` (`[[upstream]]`) and `env.rs` (the
//! `AUTH_PROXY_*` variables). This file holds the top level and the checks across tables.

use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

mod cookie;
mod endpoints;
mod env;
mod headers;
mod providers;
mod routes;
mod server;
mod upstreams;

pub use cookie::{CookieConfig, CookieSettings};
pub use endpoints::{EndpointSettings, EndpointsConfig};
pub use env::{Env, ProcessEnv, provider_secret_var};
pub use headers::{HeaderSettings, HeadersConfig};
pub use providers::{ProviderConfig, ProviderSettings};
pub use routes::{RouteSettings, RoutesConfig};
pub use server::ServerConfig;
pub use upstreams::{UpstreamConfig, UpstreamSettings};

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
        let (limits, websocket_session_check) = self.server.validate()?;
        let cookie = self.cookie.validate(secure)?;
        let mut headers = self.headers.validate()?;
        let endpoints = self.endpoints.validate()?;
        let providers = providers::validate_all(&self.providers, &origin, &endpoints)?;
        headers.bearer_providers = providers
            .iter()
            .filter(|p| p.accept_bearer)
            .map(|p| (p.issuer.clone(), p.name.clone()))
            .collect();
        let upstreams = upstreams::validate_all(&self.upstreams, listen)?;
        let routes = self.routes.validate()?;
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

/// `secs` as a duration, refused when zero.
fn positive_secs(name: &str, secs: u64) -> Result<Duration, ConfigError> {
    if secs == 0 {
        return err(format!("{name}: must be at least 1 second"));
    }
    Ok(Duration::from_secs(secs))
}

/// 1 to 64 letters, digits, `-`, `_` or `.`: a provider name (a URL segment).
fn valid_segment(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) const MINIMAL: &str = r#"
        [[provider]]
        issuer = "https://id.example.com"
        client_id = "proxy"

        [[upstream]]
        url = "http://127.0.0.1:8080"
    "#;

    pub(super) fn settings(toml: &str) -> Result<Settings, ConfigError> {
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
