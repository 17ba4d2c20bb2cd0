//! Provider metadata: OpenID Connect Discovery 1.0, with RFC 8414 as fallback.
//!
//! The metadata is fetched from `{issuer}/.well-known/openid-configuration`. When that answers
//! 404, the RFC 8414 location (`/.well-known/oauth-authorization-server` inserted before the
//! issuer's path) is tried. The document's `issuer` must equal the configured issuer exactly,
//! byte for byte (OIDC Discovery §4.3): no trailing-slash or case normalisation.
//!
//! Discovery is never done while building a [`Provider`](crate::Provider): it happens on first
//! need and is retried with backoff; see [`Provider::metadata`](crate::Provider::metadata).

use std::sync::Arc;

use serde::Deserialize;

use crate::error::{DiscoveryError, HttpError};
use crate::http::{HttpClient, HttpRequest};
use crate::url_policy::checked_url;

/// The parts of a provider's metadata document that this library uses.
#[derive(Debug, Clone, Deserialize)]
pub struct ProviderMetadata {
    issuer: String,
    jwks_uri: String,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    userinfo_endpoint: Option<String>,
    #[serde(default)]
    end_session_endpoint: Option<String>,
    #[serde(default)]
    id_token_signing_alg_values_supported: Option<Vec<String>>,
    #[serde(default)]
    code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    authorization_response_iss_parameter_supported: bool,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    introspection_endpoint: Option<String>,
    #[serde(default)]
    introspection_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    pushed_authorization_request_endpoint: Option<String>,
    #[serde(default)]
    require_pushed_authorization_requests: bool,
}

/// The endpoints of a provider configured by hand (see
/// [`ProviderBuilder`](crate::ProviderBuilder)), each already checked by the URL policy.
#[derive(Debug, Clone, Default)]
pub(crate) struct ManualEndpoints {
    pub(crate) authorization: Option<String>,
    pub(crate) token: Option<String>,
    pub(crate) userinfo: Option<String>,
    pub(crate) end_session: Option<String>,
    pub(crate) revocation: Option<String>,
    pub(crate) introspection: Option<String>,
    pub(crate) device_authorization: Option<String>,
    /// Whether the provider sends the RFC 9207 `iss` authorization response parameter.
    pub(crate) iss_parameter: bool,
}

impl ProviderMetadata {
    /// Metadata for a provider configured by hand: an issuer, a JWKS location and the
    /// endpoints given; nothing else is published.
    pub(crate) fn manual(issuer: String, jwks_uri: String, endpoints: ManualEndpoints) -> Self {
        Self {
            issuer,
            jwks_uri,
            authorization_endpoint: endpoints.authorization,
            token_endpoint: endpoints.token,
            userinfo_endpoint: endpoints.userinfo,
            end_session_endpoint: endpoints.end_session,
            id_token_signing_alg_values_supported: None,
            code_challenge_methods_supported: None,
            authorization_response_iss_parameter_supported: endpoints.iss_parameter,
            token_endpoint_auth_methods_supported: None,
            introspection_endpoint: endpoints.introspection,
            introspection_endpoint_auth_methods_supported: None,
            device_authorization_endpoint: endpoints.device_authorization,
            revocation_endpoint: endpoints.revocation,
            pushed_authorization_request_endpoint: None,
            require_pushed_authorization_requests: false,
        }
    }

    /// The issuer identifier, equal to the configured one.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Where the provider publishes its signing keys.
    pub fn jwks_uri(&self) -> &str {
        &self.jwks_uri
    }

    /// The authorization endpoint, if published.
    pub fn authorization_endpoint(&self) -> Option<&str> {
        self.authorization_endpoint.as_deref()
    }

    /// The token endpoint, if published.
    pub fn token_endpoint(&self) -> Option<&str> {
        self.token_endpoint.as_deref()
    }

    /// The UserInfo endpoint, if published.
    pub fn userinfo_endpoint(&self) -> Option<&str> {
        self.userinfo_endpoint.as_deref()
    }

    /// The RP-initiated logout endpoint, if published.
    pub fn end_session_endpoint(&self) -> Option<&str> {
        self.end_session_endpoint.as_deref()
    }

    /// The JWS algorithms the provider signs ID tokens with, if published.
    pub fn id_token_signing_alg_values_supported(&self) -> Option<&[String]> {
        self.id_token_signing_alg_values_supported.as_deref()
    }

    /// The PKCE methods the provider supports, if published.
    pub fn code_challenge_methods_supported(&self) -> Option<&[String]> {
        self.code_challenge_methods_supported.as_deref()
    }

    /// The client authentication methods of the token endpoint, if published (absent means
    /// `client_secret_basic`, RFC 8414 §2).
    pub fn token_endpoint_auth_methods_supported(&self) -> Option<&[String]> {
        self.token_endpoint_auth_methods_supported.as_deref()
    }

    /// The RFC 7662 token introspection endpoint, if published (RFC 8414 §2).
    pub fn introspection_endpoint(&self) -> Option<&str> {
        self.introspection_endpoint.as_deref()
    }

    /// The client authentication methods of the introspection endpoint, if published.
    pub fn introspection_endpoint_auth_methods_supported(&self) -> Option<&[String]> {
        self.introspection_endpoint_auth_methods_supported
            .as_deref()
    }

    /// The RFC 8628 device authorization endpoint, if published (RFC 8628 §4).
    pub fn device_authorization_endpoint(&self) -> Option<&str> {
        self.device_authorization_endpoint.as_deref()
    }

    /// The RFC 7009 token revocation endpoint, if published (RFC 8414 §2).
    pub fn revocation_endpoint(&self) -> Option<&str> {
        self.revocation_endpoint.as_deref()
    }

    /// The RFC 9126 pushed authorization request endpoint, when published.
    pub fn pushed_authorization_request_endpoint(&self) -> Option<&str> {
        self.pushed_authorization_request_endpoint.as_deref()
    }

    /// Whether the provider accepts authorization requests only when pushed (RFC 9126 §5).
    pub fn require_pushed_authorization_requests(&self) -> bool {
        self.require_pushed_authorization_requests
    }

    /// Whether the provider sends the RFC 9207 `iss` authorization response parameter.
    pub fn authorization_response_iss_parameter_supported(&self) -> bool {
        self.authorization_response_iss_parameter_supported
    }
}

fn get(url: &str) -> Result<HttpRequest, DiscoveryError> {
    http::Request::get(url)
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| DiscoveryError::Http(HttpError::Other(Arc::new(e))))
}

/// The RFC 8414 §3.1 location: the well-known segment goes between host and path.
fn oauth_metadata_url(issuer: &url::Url) -> String {
    let path = issuer.path().trim_end_matches('/');
    let mut origin = issuer.clone();
    origin.set_path("");
    origin.set_query(None);
    format!(
        "{}/.well-known/oauth-authorization-server{path}",
        origin.as_str().trim_end_matches('/')
    )
}

/// Fetches and checks the metadata of `issuer`.
pub(crate) async fn fetch(
    http: &dyn HttpClient,
    issuer: &str,
    allow_http: bool,
) -> Result<ProviderMetadata, DiscoveryError> {
    let parsed = checked_url(issuer, allow_http).map_err(DiscoveryError::InvalidEndpoint)?;
    let oidc_url = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    let mut response = http
        .execute(get(&oidc_url)?)
        .await
        .map_err(DiscoveryError::Http)?;
    if response.status() == http::StatusCode::NOT_FOUND {
        tracing::debug!(issuer, "no openid-configuration, trying rfc 8414 metadata");
        response = http
            .execute(get(&oauth_metadata_url(&parsed))?)
            .await
            .map_err(DiscoveryError::Http)?;
    }
    if response.status() != http::StatusCode::OK {
        return Err(DiscoveryError::Status(response.status().as_u16()));
    }
    let metadata: ProviderMetadata = serde_json::from_slice(response.body())
        .map_err(|e| DiscoveryError::InvalidDocument(Arc::new(e)))?;
    if metadata.issuer != issuer {
        return Err(DiscoveryError::IssuerMismatch {
            found: metadata.issuer,
        });
    }
    checked_url(&metadata.jwks_uri, allow_http).map_err(DiscoveryError::InvalidEndpoint)?;
    Ok(metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8414_url_inserts_well_known_before_path() {
        let u = url::Url::parse("https://id.example.com/tenant/a/").unwrap();
        assert_eq!(
            oauth_metadata_url(&u),
            "https://id.example.com/.well-known/oauth-authorization-server/tenant/a"
        );
        let u = url::Url::parse("https://id.example.com").unwrap();
        assert_eq!(
            oauth_metadata_url(&u),
            "https://id.example.com/.well-known/oauth-authorization-server"
        );
    }
}
