//! `OutboundAuthLayer`: the service token on every outbound call, the caller's
//! `Authorization` replaced, one retry on a 401, token failures as errors.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use http::{Request, Response, StatusCode, header};
use oidc_core::Provider;
use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
use oidc_testing::{ClientRegistration, TestProvider, find_param};
use oidc_tower::outbound::{OutboundAuthLayer, OutboundError};
use tower::{Layer, Service, ServiceExt, service_fn};

const SECRET: &str = "svc-secret-value";

/// What the upstream saw: each call's `Authorization` values and body.
type Seen = Arc<Mutex<Vec<(Vec<String>, String)>>>;

async fn setup() -> (TestProvider, OutboundAuthLayer) {
    setup_with_secret(SECRET).await
}

/// The provider knows `svc` with [`SECRET`]; the layer's client sends `secret`.
async fn setup_with_secret(secret: &str) -> (TestProvider, OutboundAuthLayer) {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        "svc",
        SECRET,
        "http://127.0.0.1/unused",
    ));
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let layer = OutboundAuthLayer::new(
        ServiceClient::new(provider, "svc", secret),
        ServiceTokenRequest::new().with_resource("https://api.example.test"),
    );
    (op, layer)
}

/// An upstream that records each request and answers with `status(call_number, token)`.
fn upstream(
    seen: Seen,
    status: impl Fn(usize, &str) -> StatusCode + Clone + Send + 'static,
) -> impl Service<Request<String>, Response = Response<String>, Error = Infallible, Future = impl Send>
+ Clone
+ Send
+ 'static {
    service_fn(move |req: Request<String>| {
        let (seen, status) = (Arc::clone(&seen), status.clone());
        async move {
            let auth: Vec<String> = req
                .headers()
                .get_all(header::AUTHORIZATION)
                .iter()
                .map(|v| v.to_str().unwrap().to_owned())
                .collect();
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((auth.clone(), req.body().clone()));
                seen.len()
            };
            let token = auth.first().map(String::as_str).unwrap_or_default();
            let mut res = Response::new(String::new());
            *res.status_mut() = status(n, token);
            Ok::<_, Infallible>(res)
        }
    })
}

fn grant_requests(op: &TestProvider) -> usize {
    op.token_requests()
        .iter()
        .filter(|r| find_param(&r.params, "grant_type") == Some("client_credentials"))
        .count()
}

fn post(body: &str) -> Request<String> {
    Request::post("http://api.example.test/orders")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .header(header::AUTHORIZATION, "Bearer caller-token")
        .body(body.to_owned())
        .unwrap()
}

#[tokio::test]
async fn caller_authorization_is_replaced_by_the_service_token() {
    let (op, layer) = setup().await;
    let seen = Seen::default();
    let service = layer.layer(upstream(Arc::clone(&seen), |_, _| StatusCode::OK));
    let res = service.oneshot(post("{}")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    let [(auth, body)] = seen.as_slice() else {
        panic!("one upstream call expected: {seen:?}")
    };
    let [value] = auth.as_slice() else {
        panic!("exactly one Authorization header expected: {auth:?}")
    };
    let token = value.strip_prefix("Bearer ").unwrap();
    assert!(token.split('.').count() == 3, "a provider-issued JWT");
    assert!(!value.contains("caller-token") && !value.starts_with("Basic"));
    assert_eq!(body, "{}");
    assert_eq!(grant_requests(&op), 1);
}

#[tokio::test]
async fn authorization_header_is_marked_sensitive() {
    let (_op, layer) = setup().await;
    let service = layer.layer(service_fn(|req: Request<String>| async move {
        let sensitive = req.headers()[header::AUTHORIZATION].is_sensitive();
        Ok::<_, Infallible>(Response::new(sensitive.to_string()))
    }));
    let res = service.oneshot(Request::new(String::new())).await.unwrap();
    assert_eq!(res.body(), "true");
}

#[tokio::test]
async fn cached_token_serves_many_calls_with_one_token_request() {
    let (op, layer) = setup().await;
    let seen = Seen::default();
    let mut service = layer.layer(upstream(Arc::clone(&seen), |_, _| StatusCode::OK));
    for _ in 0..10 {
        let res = service.ready().await.unwrap().call(post("")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_eq!(grant_requests(&op), 1);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 10);
    assert!(seen.iter().all(|(auth, _)| auth == &seen[0].0));
}

#[tokio::test]
async fn unauthorized_is_retried_once_with_a_fresh_token_and_the_same_body() {
    let (op, layer) = setup().await;
    let seen = Seen::default();
    // The first token is refused (revoked at the API); any other is accepted.
    let first = Arc::new(Mutex::new(None::<String>));
    let refused = Arc::clone(&first);
    let service = layer.layer(upstream(Arc::clone(&seen), move |_, token| {
        let mut refused = refused.lock().unwrap();
        let refused = refused.get_or_insert_with(|| token.to_owned());
        if refused == token {
            StatusCode::UNAUTHORIZED
        } else {
            StatusCode::OK
        }
    }));
    let res = service.oneshot(post("payload")).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2, "exactly one retry");
    assert_ne!(seen[0].0, seen[1].0, "the retry carries a fresh token");
    assert_eq!(seen[1].0.len(), 1);
    assert_eq!(seen[1].1, "payload", "the body is sent again");
    assert_eq!(grant_requests(&op), 2);
}

#[tokio::test]
async fn second_unauthorized_is_returned_without_another_retry() {
    let (op, layer) = setup().await;
    let seen = Seen::default();
    let service = layer.layer(upstream(Arc::clone(&seen), |_, _| StatusCode::UNAUTHORIZED));
    let res = service.oneshot(post("")).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        seen.lock().unwrap().len(),
        2,
        "one call and one retry, no loop"
    );
    assert_eq!(grant_requests(&op), 2);
}

#[tokio::test]
async fn other_refusals_are_not_retried() {
    for status in [
        StatusCode::FORBIDDEN,
        StatusCode::BAD_REQUEST,
        StatusCode::INTERNAL_SERVER_ERROR,
    ] {
        let (op, layer) = setup().await;
        let seen = Seen::default();
        let service = layer.layer(upstream(Arc::clone(&seen), move |_, _| status));
        let res = service.oneshot(post("")).await.unwrap();
        assert_eq!(res.status(), status);
        assert_eq!(seen.lock().unwrap().len(), 1, "{status}");
        assert_eq!(grant_requests(&op), 1);
    }
}

#[tokio::test]
async fn token_failure_is_an_error_and_the_upstream_is_not_called() {
    let wrong = "not-the-secret";
    let (_op, layer) = setup_with_secret(wrong).await;
    let seen = Seen::default();
    let service = layer.layer(upstream(Arc::clone(&seen), |_, _| StatusCode::OK));
    let err = service.oneshot(post("")).await.unwrap_err();
    assert!(err.is_token(), "{err:?}");
    let OutboundError::Token(flow) = &err else {
        panic!("{err:?}")
    };
    assert!(flow.to_string().contains("invalid_client"), "{flow}");
    let shown = format!("{err} {err:?} {flow} {layer:?}");
    assert!(!shown.contains(wrong) && !shown.contains(SECRET), "{shown}");
    assert!(seen.lock().unwrap().is_empty(), "no call without a token");
}
