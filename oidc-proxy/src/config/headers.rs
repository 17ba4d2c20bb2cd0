//! `[headers]`: the identity headers sent upstream and the client headers stripped.

use serde::Deserialize;

use super::{ConfigError, err};
use crate::identity::HeaderPattern;

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

/// `path` split at its dots, refused when a segment is empty.
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
    /// Everything but `bearer_providers`, which needs the providers (set by the caller).
    pub(super) fn validate(&self) -> Result<HeaderSettings, ConfigError> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FileConfig;
    use crate::config::tests::{MINIMAL, settings};

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
}
