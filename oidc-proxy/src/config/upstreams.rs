//! `[[upstream]]`: the apps behind the proxy.

use std::collections::BTreeSet;
use std::net::SocketAddr;

use serde::Deserialize;

use super::{ConfigError, RESERVED_PREFIX, err};
use crate::routes::check_prefix;

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

/// Checks every upstream, and that none has another's prefix, lies under the proxy's own
/// routes or points back at the proxy.
pub(super) fn validate_all(
    configs: &[UpstreamConfig],
    listen: SocketAddr,
) -> Result<Vec<UpstreamSettings>, ConfigError> {
    if configs.is_empty() {
        return err(
            "no upstream: add an [[upstream]] table with prefix and url \
             (or set AUTH_PROXY_UPSTREAMS=/=http://127.0.0.1:8080)",
        );
    }
    let mut upstreams = Vec::new();
    let mut prefixes = BTreeSet::new();
    for (i, u) in configs.iter().enumerate() {
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
    Ok(upstreams)
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

impl UpstreamConfig {
    /// Checks one upstream (the `index`th, for messages when it has no name or prefix).
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
