//! `[routes]`: which paths skip authentication, answer 401, or accept bearer tokens.

use serde::Deserialize;

use super::ConfigError;
use crate::routes::RouteRule;

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

impl RoutesConfig {
    /// Every rule parsed, the first bad one named.
    pub(super) fn validate(&self) -> Result<RouteSettings, ConfigError> {
        Ok(RouteSettings {
            skip_auth: rules("routes.skip_auth", self.skip_auth.as_deref())?,
            api: rules("routes.api", self.api.as_deref())?,
            bearer: rules("routes.bearer", self.bearer.as_deref())?,
        })
    }
}

/// The rules of the list `name`.
fn rules(name: &str, entries: Option<&[String]>) -> Result<Vec<RouteRule>, ConfigError> {
    entries
        .unwrap_or_default()
        .iter()
        .map(|entry| RouteRule::parse(entry).map_err(|e| ConfigError::new(format!("{name}: {e}"))))
        .collect()
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
