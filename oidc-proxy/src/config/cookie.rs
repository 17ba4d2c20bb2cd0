//! `[cookie]`: the session cookie.

use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, err, positive_secs};

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

impl CookieConfig {
    /// The cookie's full name (`__Host-` in front when `secure`) and timeouts.
    pub(super) fn validate(&self, secure: bool) -> Result<CookieSettings, ConfigError> {
        let base = self.name.as_deref().unwrap_or("oidc-proxy");
        // The login layer's rule, so that the two cannot drift apart.
        if let Err(e) = oidc_tower::login::LoginLayer::check_cookie_name(base) {
            return err(format!("cookie.name: {e}"));
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

#[cfg(test)]
mod tests {
    use crate::config::tests::{MINIMAL, settings};

    #[test]
    fn https_cookie_gets_host_prefix() {
        let s = settings(&format!(
            "public_url = \"https://app.example.com\"\n{MINIMAL}"
        ))
        .unwrap();
        assert_eq!(s.cookie.name, "__Host-oidc-proxy");
        assert!(s.secure);
    }
}
