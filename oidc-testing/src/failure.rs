//! Failure injection for the provider's HTTP endpoints.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

/// How an endpoint of the [`TestProvider`](crate::TestProvider) misbehaves.
///
/// Set per endpoint with
/// [`TestProvider::fail_jwks`](crate::TestProvider::fail_jwks),
/// [`TestProvider::fail_discovery`](crate::TestProvider::fail_discovery),
/// [`TestProvider::fail_token`](crate::TestProvider::fail_token) and
/// [`TestProvider::fail_userinfo`](crate::TestProvider::fail_userinfo); the
/// discovery failure applies to both well-known discovery paths. Every
/// request is counted in the fetch counters (or recorded) whatever the
/// failure.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use oidc_testing::{Failure, TestProvider};
///
/// let provider = TestProvider::start().await;
/// provider.fail_jwks(Failure::Status(503));
/// let response = reqwest::get(provider.jwks_uri()).await?;
/// assert_eq!(response.status().as_u16(), 503);
///
/// provider.fail_jwks(Failure::None);
/// let response = reqwest::get(provider.jwks_uri()).await?;
/// assert_eq!(response.status().as_u16(), 200);
/// # Ok(())
/// # }
/// ```
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Failure {
    /// No failure: the endpoint answers normally (the default).
    #[default]
    None,
    /// Answers with this HTTP status and a short `text/plain` body.
    ///
    /// Codes below 200 (informational) or above 999 cannot be the status of
    /// a final response and are served as 500.
    Status(u16),
    /// Never answers: the request stays pending (without blocking any other
    /// request or endpoint) until the provider shuts down, when it gets a
    /// 503. Use it to test client timeouts.
    Hang,
    /// Waits this long, then answers normally (with the state at answer
    /// time).
    Delay(Duration),
    /// Answers `200 OK` with `Content-Type: application/json` and a body
    /// that is not JSON.
    Garbage,
    /// Answers `200 OK` with a body of exactly this many bytes: the normal
    /// JSON document followed by spaces (still valid JSON), or the normal
    /// document cut to this length when it is longer (then invalid JSON).
    /// Use it to test response size limits.
    Huge(usize),
    /// Answers `302 Found` with this `Location` (an invalid header value is
    /// served as 500).
    Redirect(String),
}

/// The body of [`Failure::Garbage`].
pub(crate) const GARBAGE_BODY: &[u8] = b"<html><body>this is not JSON {\"keys\": [</body></html>\n";

/// Serves one request to an endpoint whose failure mode is `failure`.
///
/// `body` builds the normal JSON body; it is only called when the answer is
/// (based on) the normal document. `headers` are added to every response
/// except the one that ends a [`Failure::Hang`].
pub(crate) async fn respond(
    failure: Failure,
    mut shutdown: watch::Receiver<bool>,
    body: impl FnOnce() -> Vec<u8>,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    let mut response = match failure {
        Failure::None => json_response(body()),
        Failure::Status(code) => {
            let status = (200..=999)
                .contains(&code)
                .then(|| StatusCode::from_u16(code).ok())
                .flatten()
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let text = format!("oidc-testing: injected failure, status {code}\n");
            (
                status,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                text,
            )
                .into_response()
        }
        Failure::Hang => {
            // Returns when the provider shuts down (or its last handle is
            // dropped, which closes the channel).
            let _ = shutdown.wait_for(|stop| *stop).await;
            return shutting_down();
        }
        Failure::Delay(delay) => {
            tokio::select! {
                () = tokio::time::sleep(delay) => json_response(body()),
                _ = shutdown.wait_for(|stop| *stop) => return shutting_down(),
            }
        }
        Failure::Garbage => json_response(GARBAGE_BODY.to_vec()),
        Failure::Huge(size) => {
            let mut bytes = body();
            bytes.resize(size, b' ');
            json_response(bytes)
        }
        Failure::Redirect(location) => match HeaderValue::from_str(&location) {
            Ok(location) => (StatusCode::FOUND, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    };
    response.headers_mut().extend(headers);
    response
}

fn json_response(body: Vec<u8>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        Body::from(body),
    )
        .into_response()
}

fn shutting_down() -> Response {
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "oidc-testing: provider shutting down\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    async fn run(failure: Failure) -> (StatusCode, Vec<u8>, Response) {
        let (_tx, rx) = watch::channel(false);
        let response = respond(
            failure,
            rx,
            || b"{\"keys\":[]}".to_vec(),
            vec![(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        )
        .await;
        let status = response.status();
        let (parts, body) = response.into_parts();
        let bytes = to_bytes(body, usize::MAX).await.unwrap().to_vec();
        (status, bytes, Response::from_parts(parts, Body::empty()))
    }

    #[tokio::test]
    async fn none_serves_the_body_with_headers() {
        let (status, body, response) = run(Failure::None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"{\"keys\":[]}");
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[tokio::test]
    async fn status_codes() {
        assert_eq!(
            run(Failure::Status(503)).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(run(Failure::Status(404)).await.0, StatusCode::NOT_FOUND);
        assert_eq!(
            run(Failure::Status(100)).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
        assert_eq!(
            run(Failure::Status(1000)).await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[tokio::test]
    async fn garbage_is_not_json() {
        let (status, body, _) = run(Failure::Garbage).await;
        assert_eq!(status, StatusCode::OK);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_err());
    }

    #[tokio::test]
    async fn huge_pads_or_truncates_to_the_exact_size() {
        let (status, body, _) = run(Failure::Huge(100_000)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body.len(), 100_000);
        assert!(serde_json::from_slice::<serde_json::Value>(&body).is_ok());

        let (_, body, _) = run(Failure::Huge(4)).await;
        assert_eq!(body, b"{\"ke");
    }

    #[tokio::test]
    async fn redirect_sets_location() {
        let (status, _, response) = run(Failure::Redirect("http://127.0.0.1:1/x".to_owned())).await;
        assert_eq!(status, StatusCode::FOUND);
        assert_eq!(response.headers()[header::LOCATION], "http://127.0.0.1:1/x");
        let (status, _, _) = run(Failure::Redirect("bad\nvalue".to_owned())).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test(start_paused = true)]
    async fn delay_then_answers_and_hang_ends_on_shutdown() {
        let (status, body, _) = run(Failure::Delay(Duration::from_secs(30))).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, b"{\"keys\":[]}");

        let (tx, rx) = watch::channel(false);
        let hang = tokio::spawn(respond(Failure::Hang, rx, Vec::new, Vec::new()));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert!(!hang.is_finished());
        tx.send_replace(true);
        assert_eq!(
            hang.await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }
}
