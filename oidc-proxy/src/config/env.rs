//! `AUTH_PROXY_*` environment variables, laid over the file.

use super::providers::provider_name;
use super::{ConfigError, FileConfig, ProviderConfig, SecretString, UpstreamConfig, err};

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
    /// Lays the `AUTH_PROXY_*` variables of `env` over the file (see the crate docs for the
    /// list). Variables that name the provider (`AUTH_PROXY_ISSUER`, `AUTH_PROXY_CLIENT_ID`,
    /// …) apply to the first `[[provider]]`, creating it when the file has none.
    ///
    /// # Errors
    ///
    /// When a variable's value cannot be parsed.
    pub fn apply_env(&mut self, env: &impl Env) -> Result<(), ConfigError> {
        let get = |name: &str| env.var(name);
        // A variable's value parsed, the error naming the variable.
        let number = |name: &str| get(name).map(|v| parse_u64(name, &v)).transpose();
        let flag = |name: &str| get(name).map(|v| parse_bool(name, &v)).transpose();
        if let Some(v) = get("AUTH_PROXY_LISTEN") {
            self.listen = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_PUBLIC_URL") {
            self.public_url = Some(v);
        }
        if let Some(v) = number("AUTH_PROXY_UPSTREAM_TIMEOUT_SECS")? {
            self.upstream_timeout_secs = Some(v);
        }
        if let Some(v) = number("AUTH_PROXY_HEADER_READ_TIMEOUT_SECS")? {
            self.server.header_read_timeout_secs = Some(v);
        }
        if let Some(v) = number("AUTH_PROXY_BODY_READ_TIMEOUT_SECS")? {
            self.server.body_read_timeout_secs = Some(v);
        }
        if let Some(v) = number("AUTH_PROXY_WEBSOCKET_SESSION_CHECK_SECS")? {
            self.server.websocket_session_check_secs = Some(v);
        }
        if let Some(n) = number("AUTH_PROXY_MAX_CONNECTIONS")? {
            self.server.max_connections = Some(usize::try_from(n).unwrap_or(usize::MAX));
        }
        if let Some(v) = flag("AUTH_PROXY_REVERSE_PROXY")? {
            self.reverse_proxy = Some(v);
        }
        if let Some(v) = flag("AUTH_PROXY_PASS_HOST_HEADER")? {
            self.pass_host_header = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_POST_LOGOUT_REDIRECT_URI") {
            self.post_logout_redirect_uri = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_COOKIE_NAME") {
            self.cookie.name = Some(v);
        }
        if let Some(v) = number("AUTH_PROXY_COOKIE_IDLE_TIMEOUT_SECS")? {
            self.cookie.idle_timeout_secs = Some(v);
        }
        if let Some(v) = number("AUTH_PROXY_COOKIE_ABSOLUTE_TIMEOUT_SECS")? {
            self.cookie.absolute_timeout_secs = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_USER_CLAIM") {
            self.headers.user_claim = Some(v);
        }
        if let Some(v) = get("AUTH_PROXY_GROUPS_CLAIM") {
            self.headers.groups_claim = Some(v);
        }
        if let Some(v) = flag("AUTH_PROXY_PASS_ACCESS_TOKEN")? {
            self.headers.pass_access_token = Some(v);
        }
        if let Some(v) = flag("AUTH_PROXY_PASS_AUTHORIZATION_HEADER")? {
            self.headers.pass_authorization_header = Some(v);
        }
        if let Some(v) = flag("AUTH_PROXY_INSECURE_ALLOW_UNVERIFIED_EMAIL")? {
            self.headers.insecure_allow_unverified_email = Some(v);
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
            if let Some(v) = flag("AUTH_PROXY_REQUIRE_AT_JWT")? {
                provider.require_at_jwt = Some(v);
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::MINIMAL;

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
}
