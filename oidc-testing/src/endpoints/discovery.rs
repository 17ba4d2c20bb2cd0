//! The discovery endpoints (`/.well-known/openid-configuration` and the RFC
//! 8414 `/.well-known/oauth-authorization-server`), the document they
//! serve, and their knobs.
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::client::TokenEndpointAuth;
use crate::failure::{self, Failure};
use crate::keys::SigningAlg;
use crate::provider::TestProvider;
use crate::state::{ProviderState, ServerState};

use super::authorize::AUTHORIZE_PATH;
use super::device::DEVICE_AUTHORIZATION_PATH;
use super::end_session::END_SESSION_PATH;
use super::introspection::INTROSPECTION_PATH;
use super::jwks::JWKS_PATH;
use super::reply::to_json_bytes;
use super::revocation::REVOCATION_PATH;
use super::token::TOKEN_PATH;
use super::userinfo::USERINFO_PATH;

/// Path of the OpenID Connect discovery document.
pub(crate) const OPENID_CONFIGURATION_PATH: &str = "/.well-known/openid-configuration";
/// Path of the RFC 8414 OAuth 2.0 authorization server metadata document.
pub(crate) const OAUTH_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub(crate) async fn openid_configuration(State(server): State<ServerState>) -> Response {
    discovery(server, true).await
}

pub(crate) async fn oauth_metadata(State(server): State<ServerState>) -> Response {
    discovery(server, false).await
}

async fn discovery(server: ServerState, openid_path: bool) -> Response {
    let provider = server.provider;
    provider.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let (failure, oauth_only) = {
        let config = provider.config();
        (config.discovery_failure.clone(), config.oauth_metadata_only)
    };
    if openid_path && oauth_only {
        return StatusCode::NOT_FOUND.into_response();
    }
    failure::respond(
        failure,
        server.shutdown,
        move || to_json_bytes(&document(&provider)),
        Vec::new(),
    )
    .await
}

fn document(provider: &ProviderState) -> Value {
    let issuer = &provider.issuer;
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
        "userinfo_endpoint": format!("{issuer}{USERINFO_PATH}"),
        "introspection_endpoint": format!("{issuer}{INTROSPECTION_PATH}"),
        "device_authorization_endpoint": format!("{issuer}{DEVICE_AUTHORIZATION_PATH}"),
        "revocation_endpoint": format!("{issuer}{REVOCATION_PATH}"),
        "end_session_endpoint": format!("{issuer}{END_SESSION_PATH}"),
        "jwks_uri": format!("{issuer}{JWKS_PATH}"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported":
            SigningAlg::ALL.map(SigningAlg::as_str),
        "scopes_supported": ["openid", "profile", "email", "api:read", "api:write"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "sid",
            "email", "email_verified", "name", "preferred_username",
        ],
        "grant_types_supported": [
            "authorization_code", "refresh_token", "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": [
            TokenEndpointAuth::ClientSecretBasic.as_str(),
            TokenEndpointAuth::ClientSecretPost.as_str(),
            TokenEndpointAuth::None.as_str(),
        ],
        "prompt_values_supported": ["none", "login"],
        "authorization_response_iss_parameter_supported": true,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    });
    if let Value::Object(members) = &mut document {
        for (name, value) in &provider.config().discovery_members {
            match value {
                Some(value) => members.insert(name.clone(), value.clone()),
                None => members.remove(name),
            };
        }
    }
    document
}

impl TestProvider {
    /// The URL of the OpenID Connect discovery document:
    /// [`issuer`](TestProvider::issuer) + `/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!("{}{OPENID_CONFIGURATION_PATH}", self.state().issuer)
    }

    /// Sets how both discovery endpoints misbehave ([`Failure::None`] to
    /// restore).
    pub fn fail_discovery(&self, failure: Failure) {
        self.state().config().discovery_failure = failure;
    }

    /// Sets (`Some`) or removes (`None`) a top-level member of the discovery
    /// document, for example `"issuer"` to a wrong value or
    /// `"id_token_signing_alg_values_supported"`. Applies to both discovery
    /// paths; later calls for the same name replace earlier ones.
    pub fn set_discovery_member(&self, name: &str, value: Option<Value>) {
        self.state()
            .config()
            .discovery_members
            .insert(name.to_owned(), value);
    }

    /// The discovery document as currently served (with the edits of
    /// [`set_discovery_member`](TestProvider::set_discovery_member)).
    pub fn discovery_document(&self) -> Value {
        document(self.state())
    }

    /// How many requests reached either discovery path
    /// (`openid-configuration` or `oauth-authorization-server`), whatever
    /// their outcome (404s of
    /// [`serve_oauth_metadata_only`](TestProvider::serve_oauth_metadata_only)
    /// included).
    pub fn discovery_fetch_count(&self) -> usize {
        self.state().discovery_fetches.load(Ordering::SeqCst)
    }

    /// With `true`, the discovery document is served only at
    /// `/.well-known/oauth-authorization-server` and
    /// `/.well-known/openid-configuration` answers 404 (for RFC 8414
    /// fallback tests); `false` serves both again.
    pub fn serve_oauth_metadata_only(&self, yes: bool) {
        self.state().config().oauth_metadata_only = yes;
    }
}
