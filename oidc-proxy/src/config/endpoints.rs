//! `[endpoints]`: the built-in liveness, readiness and metrics paths.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::{ConfigError, RESERVED_PREFIX, err};
use crate::routes::check_prefix;

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

impl EndpointsConfig {
    /// The paths that are on, each a plain path outside the proxy's own routes and unique.
    pub(super) fn validate(&self) -> Result<EndpointSettings, ConfigError> {
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
