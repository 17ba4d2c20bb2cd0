//! Pushed authorization requests (RFC 9126): the authorization request's parameters are sent
//! to the provider's `pushed_authorization_request_endpoint` (client authenticated as at the
//! token endpoint), and the browser is sent to the authorization endpoint with only
//! `client_id` and the `request_uri` the provider answered.
//!
//! When [`OidcClient::authorize`](super::OidcClient::authorize) pushes is set with
//! [`OidcClient::with_pushed_authorization`](super::OidcClient::with_pushed_authorization):
//!
//! | [`PushedAuthorization`] | pushes |
//! |---|---|
//! | `WhenRequired` (the default) | when the discovery document says `require_pushed_authorization_requests: true` |
//! | `WhenAvailable` | whenever the provider publishes the endpoint |
//! | `Always` | always; a provider without the endpoint is [`FlowError::MissingEndpoint`] |
//!
//! A provider can also require PAR of one client only (client metadata
//! `require_pushed_authorization_requests`), which discovery does not show: use `Always` for
//! such a client.
//!
//! What pushing changes: the parameters (`state`, `nonce`, the PKCE challenge, `redirect_uri`,
//! scopes and extras) never appear in the browser's URL or history, the provider
//! authenticates the client before the user sees anything, and the request cannot be altered
//! on the way. The transaction kept until the callback is the same; the callback is checked
//! exactly as without PAR.
//!
//! # What is checked in the answer
//!
//! 201 (or 200) with a JSON object whose `request_uri` is a string of 1 to 1024 visible ASCII
//! characters and whose `expires_in` is a positive integer of at most an hour (RFC 9126
//! §2.2: short-lived). A 400 or 401 with an OAuth `error` is
//! [`FlowError::PushedAuthorizationRefused`] with that code (`invalid_client`,
//! `invalid_request`…); any other answer is [`FlowError::InvalidResponse`]. Nothing is kept
//! of an `error_description`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use openidconnect::RequestTokenError;
use serde::Deserialize;
use serde_json::Value;

use super::client::{OcTokenClient, provider_http_with};
use crate::error::{FlowError, HttpError};
use crate::http::{HttpRequest, HttpResponse};
use crate::provider::Provider;

/// The longest `request_uri` accepted.
const MAX_REQUEST_URI: usize = 1024;
/// The longest `expires_in` accepted: an hour.
const MAX_EXPIRES_IN: u64 = 3600;

/// When [`OidcClient::authorize`](super::OidcClient::authorize) pushes the authorization
/// request (RFC 9126). See the [module docs](self).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushedAuthorization {
    /// When the provider's discovery document requires it
    /// (`require_pushed_authorization_requests`). The default.
    #[default]
    WhenRequired,
    /// Whenever the provider publishes a `pushed_authorization_request_endpoint`.
    WhenAvailable,
    /// Always; without the endpoint, authorization fails with
    /// [`FlowError::MissingEndpoint`].
    Always,
}

/// Pushes the authorization `params` (name, value; as they would be in the URL) to
/// `endpoint`, authenticating with `client`; the `request_uri` answered.
pub(super) async fn push(
    client: &OcTokenClient,
    provider: &Provider,
    endpoint: &str,
    params: Vec<(String, String)>,
) -> Result<String, FlowError> {
    // openidconnect has no RFC 9126 request. Its client credentials request carries the
    // client authentication every grant uses (Basic header, or id and secret in the body);
    // `to_par` sends it to the PAR endpoint with the authorization parameters instead of the
    // grant's. Its parse of the answer is not used: the raw answer is checked here.
    let captured: Arc<Mutex<Option<HttpResponse>>> = Arc::default();
    let send = par_http(provider, Arc::clone(&captured), endpoint.to_owned(), params);
    if let Err(RequestTokenError::Request(e)) = client
        .exchange_client_credentials()
        .request_async(&send)
        .await
    {
        return Err(FlowError::Http(e));
    }
    let response = captured
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .ok_or(FlowError::InvalidResponse(
            "the pushed authorization request endpoint did not answer",
        ))?;
    checked_request_uri(&response)
}

/// [`provider_http_with`] that sends the request with [`to_par`].
fn par_http(
    provider: &Provider,
    captured: Arc<Mutex<Option<HttpResponse>>>,
    endpoint: String,
    params: Vec<(String, String)>,
) -> impl Fn(HttpRequest) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send>> {
    let http = provider_http_with(provider, captured);
    move |request| http(to_par(request, &endpoint, &params))
}

/// The token request `request` turned into the pushed authorization request: sent to
/// `endpoint`, with the client authentication of its body (`client_id`, `client_secret`) and
/// the authorization `params` instead of the grant's parameters.
fn to_par(request: HttpRequest, endpoint: &str, params: &[(String, String)]) -> HttpRequest {
    let (mut parts, body) = request.into_parts();
    let auth: Vec<(String, String)> = url::form_urlencoded::parse(&body)
        .into_owned()
        .filter(|(name, _)| name == "client_id" || name == "client_secret")
        .collect();
    let has_client_id = auth.iter().any(|(name, _)| name == "client_id");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&auth)
        .extend_pairs(
            params
                .iter()
                .filter(|(name, _)| !(has_client_id && name == "client_id")),
        )
        .finish()
        .into_bytes();
    if let Ok(uri) = endpoint.parse() {
        parts.uri = uri;
    }
    HttpRequest::from_parts(parts, body)
}

/// The members of a PAR answer that are read.
#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    request_uri: Option<Value>,
    #[serde(default)]
    expires_in: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// The checks of the [module docs](self#what-is-checked-in-the-answer).
fn checked_request_uri(response: &HttpResponse) -> Result<String, FlowError> {
    let status = response.status().as_u16();
    let answer: Option<Answer> = serde_json::from_slice(response.body()).ok();
    if status == 400 || status == 401 {
        return Err(match answer.and_then(|a| a.error) {
            Some(Value::String(code)) if super::is_error_code(&code) => {
                FlowError::PushedAuthorizationRefused { error: code }
            }
            _ => FlowError::InvalidResponse(
                "the pushed authorization request endpoint refused without an OAuth error",
            ),
        });
    }
    if status != 201 && status != 200 {
        tracing::warn!(status, "the pushed authorization request endpoint failed");
        return Err(FlowError::InvalidResponse(
            "the pushed authorization request endpoint answered with an unexpected status",
        ));
    }
    let answer = answer.ok_or(FlowError::InvalidResponse(
        "the pushed authorization answer is not a JSON object of the expected shape",
    ))?;
    if answer.error.is_some() {
        return Err(FlowError::InvalidResponse(
            "the pushed authorization answer has an error",
        ));
    }
    let request_uri = match answer.request_uri {
        Some(Value::String(uri))
            if !uri.is_empty()
                && uri.len() <= MAX_REQUEST_URI
                && uri.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            uri
        }
        _ => {
            return Err(FlowError::InvalidResponse(
                "request_uri is missing, empty, too long or not visible ASCII",
            ));
        }
    };
    match answer.expires_in.as_ref().and_then(Value::as_u64) {
        Some(secs) if (1..=MAX_EXPIRES_IN).contains(&secs) => Ok(request_uri),
        _ => Err(FlowError::InvalidResponse(
            "expires_in is not a positive integer of at most an hour",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]

    use super::*;

    fn pairs(body: &[u8]) -> Vec<(String, String)> {
        url::form_urlencoded::parse(body).into_owned().collect()
    }

    fn params() -> Vec<(String, String)> {
        [
            ("response_type", "code"),
            ("client_id", "app"),
            ("state", "s"),
            ("scope", "openid email"),
        ]
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .to_vec()
    }

    #[test]
    fn grant_parameters_are_replaced_and_client_authentication_kept() {
        let request = http::Request::post("https://op.example/token")
            .header("authorization", "Basic abc")
            .body(b"grant_type=client_credentials&scope=x".to_vec())
            .unwrap();
        let par = to_par(request, "https://op.example/par", &params());
        assert_eq!(par.uri(), "https://op.example/par");
        assert_eq!(par.headers()["authorization"], "Basic abc");
        assert_eq!(pairs(par.body()), params());

        // client_secret_post: id and secret from the body, the id not twice.
        let request = http::Request::post("https://op.example/token")
            .body(b"grant_type=client_credentials&client_id=app&client_secret=s%2B".to_vec())
            .unwrap();
        let body = pairs(to_par(request, "https://op.example/par", &params()).body());
        assert_eq!(body[0], ("client_id".into(), "app".into()));
        assert_eq!(body[1], ("client_secret".into(), "s+".into()));
        assert_eq!(body.iter().filter(|(n, _)| n == "client_id").count(), 1);
        assert!(!body.iter().any(|(n, _)| n == "grant_type"));
    }

    fn answer(status: u16, body: &str) -> HttpResponse {
        let mut res = HttpResponse::new(body.as_bytes().to_vec());
        *res.status_mut() = http::StatusCode::from_u16(status).unwrap();
        res
    }

    #[test]
    fn answers_are_checked() {
        let ok = r#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#;
        assert_eq!(
            checked_request_uri(&answer(201, ok)).unwrap(),
            "urn:ietf:params:oauth:request_uri:abc"
        );
        assert!(checked_request_uri(&answer(200, ok)).is_ok());
        assert!(matches!(
            checked_request_uri(&answer(400, r#"{"error":"invalid_request","error_description":"x"}"#)),
            Err(FlowError::PushedAuthorizationRefused { error }) if error == "invalid_request"
        ));
        let long = format!(
            r#"{{"request_uri":"{}","expires_in":60}}"#,
            "a".repeat(1025)
        );
        for (status, body) in [
            (401, r#"{"error":"bad\"code"}"#),
            (401, "not json"),
            (500, ok),
            (302, ok),
            (201, r#"{"request_uri":"","expires_in":60}"#),
            (201, r#"{"request_uri":"has space","expires_in":60}"#),
            (201, r#"{"request_uri":7,"expires_in":60}"#),
            (201, long.as_str()),
            (201, r#"{"request_uri":"urn:x","expires_in":0}"#),
            (201, r#"{"request_uri":"urn:x","expires_in":86400}"#),
            (201, r#"{"request_uri":"urn:x"}"#),
            (
                201,
                r#"{"request_uri":"urn:x","expires_in":60,"error":"x"}"#,
            ),
            (
                201,
                r#"{"request_uri":"urn:x","request_uri":"urn:y","expires_in":60}"#,
            ),
        ] {
            assert!(
                matches!(
                    checked_request_uri(&answer(status, body)),
                    Err(FlowError::InvalidResponse(_))
                ),
                "{status} {body}"
            );
        }
    }
}
