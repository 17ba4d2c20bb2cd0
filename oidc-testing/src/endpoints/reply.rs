//! Responses shared by several endpoints: redirects, JSON replies under a
//! [`Failure`] mode.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::failure::{self, Failure};
use crate::html;
use crate::state::ServerState;

/// The `realm` of the `WWW-Authenticate` challenges.
pub(crate) const REALM: &str = "oidc-testing";

pub(crate) fn to_json_bytes(value: &Value) -> Vec<u8> {
    // Serializing a `Value` to memory cannot fail.
    serde_json::to_vec(value).unwrap_or_default()
}

/// A `303 See Other` with `Cache-Control: no-store`, and optionally a cookie.
pub(crate) fn see_other(location: &str, cookie: Option<HeaderValue>) -> Response {
    let Ok(location) = HeaderValue::from_str(location) else {
        return html::error_page(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "the redirect URI cannot be used in a Location header",
        );
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    let headers = response.headers_mut();
    headers.insert(header::LOCATION, location);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if let Some(cookie) = cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    response
}

/// A JSON response of the token or UserInfo endpoint before it is sent (so
/// that [`Failure::Huge`] can pad it).
pub(crate) struct JsonReply {
    pub(crate) status: StatusCode,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) body: Value,
}

impl JsonReply {
    pub(crate) fn ok(body: Map<String, Value>) -> Self {
        JsonReply {
            status: StatusCode::OK,
            headers: Vec::new(),
            body: Value::Object(body),
        }
    }

    pub(crate) fn into_response(self, size: Option<usize>) -> Response {
        let mut bytes = serde_json::to_vec(&self.body).unwrap_or_default();
        if let Some(size) = size {
            bytes.resize(size, b' ');
        }
        let mut response = (self.status, Body::from(bytes)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        headers.extend(self.headers);
        response
    }
}

/// Serves a JSON endpoint under a [`Failure`] mode. `reply` is only called
/// when the endpoint answers (normally, after a delay, or padded).
pub(crate) async fn respond_with_failure(
    failure: Failure,
    server: &ServerState,
    reply: impl FnOnce() -> JsonReply,
) -> Response {
    match failure {
        Failure::None => reply().into_response(None),
        Failure::Huge(size) => reply().into_response(Some(size)),
        Failure::Delay(delay) => {
            let mut shutdown = server.shutdown.clone();
            let answered = tokio::select! {
                () = tokio::time::sleep(delay) => true,
                _ = shutdown.wait_for(|stop| *stop) => false,
            };
            if answered {
                reply().into_response(None)
            } else {
                // Shutting down: `Hang` answers at once with the usual 503.
                failure::respond(Failure::Hang, shutdown, Vec::new, Vec::new()).await
            }
        }
        other => failure::respond(other, server.shutdown.clone(), Vec::new, Vec::new()).await,
    }
}
