//! Which provider URLs are acceptable.

use url::{Host, Url};

use crate::error::ConfigError;

/// Parses `raw` and checks it may be used to reach the provider: absolute, `https` (or `http` on
/// a loopback host, or anywhere when `allow_http` is set), no user info and no fragment.
pub(crate) fn checked_url(raw: &str, allow_http: bool) -> Result<Url, ConfigError> {
    let url = Url::parse(raw).map_err(|e| ConfigError::InvalidIssuer(std::sync::Arc::new(e)))?;
    let invalid = |reason| ConfigError::InvalidUrl {
        url: raw.to_owned(),
        reason,
    };
    if url.fragment().is_some() {
        return Err(invalid("a fragment is not allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("user info is not allowed"));
    }
    match url.scheme() {
        "https" => {}
        "http" if allow_http || is_loopback(&url) => {}
        "http" => {
            return Err(ConfigError::InsecureUrl {
                url: raw.to_owned(),
            });
        }
        _ => return Err(invalid("the scheme must be https")),
    }
    if url.host().is_none() {
        return Err(invalid("a host is required"));
    }
    Ok(url)
}

/// Whether the URL's host is `localhost` or a loopback address.
pub(crate) fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_https_and_loopback_http() {
        for ok in [
            "https://id.example.com",
            "https://id.example.com/realms/a",
            "http://localhost:4000",
            "http://127.0.0.1:8080/x",
            "http://[::1]:9000",
        ] {
            assert!(checked_url(ok, false).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_insecure_or_odd_urls() {
        for (bad, allow) in [
            ("http://id.example.com", false),
            ("ftp://id.example.com", true),
            ("https://user:pw@id.example.com", false),
            ("https://id.example.com/#frag", false),
            ("not a url", false),
            ("http://localhost.evil.example", false),
        ] {
            assert!(checked_url(bad, allow).is_err(), "{bad}");
        }
        assert!(checked_url("http://id.example.com", true).is_ok());
    }
}
