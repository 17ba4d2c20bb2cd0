//! Helpers shared by the integration tests of `oidc-tower`.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode, header};
use oidc_core::{AccessTokenVerifier, Identity, Provider};
use oidc_testing::TestProvider;
use oidc_tower::BearerAuthLayer;
use tower::{Layer as _, Service, ServiceExt as _, service_fn};

/// The audience of `oidc-testing` tokens by default.
pub(crate) const AUDIENCE: &str = "api://default";

/// The challenge of an invalid token with the default realm.
pub(crate) const INVALID_TOKEN: &str =
    r#"Bearer realm="api", error="invalid_token", error_description="the access token is invalid""#;

/// A provider for the test provider's issuer, with short retry backoff.
pub(crate) fn provider(tp: &TestProvider) -> Provider {
    Provider::builder(tp.issuer())
        .with_retry_backoff(Duration::from_millis(100), Duration::from_millis(200))
        .build()
        .unwrap()
}

/// A verifier of `tp`'s tokens for [`AUDIENCE`], in the default (compatible) mode.
pub(crate) fn verifier(tp: &TestProvider) -> AccessTokenVerifier {
    AccessTokenVerifier::new(provider(tp), AUDIENCE)
}

/// Counts the calls of the echo service.
#[derive(Clone, Default)]
pub(crate) struct Calls(Arc<AtomicUsize>);

impl Calls {
    pub(crate) fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    pub(crate) fn add(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// The inner service: counts its calls, answers 200 `"ok"` and copies the request extensions
/// into the response, so that tests see what the layer inserted.
pub(crate) fn echo(
    calls: &Calls,
) -> impl Service<
    Request<String>,
    Response = Response<String>,
    Error = Infallible,
    Future: Send + 'static,
>
+ Clone
+ Send
+ 'static
+ use<> {
    let calls = calls.clone();
    service_fn(move |req: Request<String>| {
        let calls = calls.clone();
        async move {
            calls.add();
            let mut res = Response::new("ok".to_owned());
            *res.extensions_mut() = req.extensions().clone();
            Ok::<_, Infallible>(res)
        }
    })
}

/// A fresh provider, a call counter and the echo service behind a default `BearerAuthLayer`.
pub(crate) async fn bearer_setup() -> (
    TestProvider,
    Calls,
    impl Service<Request<String>, Response = Response<String>, Error = Infallible> + Clone,
) {
    let tp = TestProvider::start().await;
    let calls = Calls::default();
    let svc = BearerAuthLayer::new(verifier(&tp)).layer(echo(&calls));
    (tp, calls, svc)
}

/// Sends `req` through a clone of `svc` and returns the answer.
pub(crate) async fn send<S, B>(svc: &S, req: Request<B>) -> S::Response
where
    S: Service<Request<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    svc.clone().oneshot(req).await.unwrap()
}

/// `GET /` with these `Authorization` header values (appended in order).
pub(crate) fn request(authorization: &[&str]) -> Request<String> {
    request_to("/", authorization)
}

/// `GET uri` with these `Authorization` header values (appended in order).
pub(crate) fn request_to(uri: &str, authorization: &[&str]) -> Request<String> {
    let mut req = Request::get(uri).body(String::new()).unwrap();
    for value in authorization {
        req.headers_mut()
            .append(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
    }
    req
}

/// `GET /` with `Authorization: Bearer <token>`.
pub(crate) fn bearer(token: &str) -> Request<String> {
    request(&[&format!("Bearer {token}")])
}

/// The `WWW-Authenticate` value, if any.
pub(crate) fn challenge<B>(res: &Response<B>) -> Option<&str> {
    res.headers()
        .get(header::WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap())
}

/// Asserts a default rejection: the status, the exact challenge (`None`: no
/// `WWW-Authenticate`), `Cache-Control: no-store` and an empty body.
#[track_caller]
pub(crate) fn assert_rejected(res: &Response<String>, status: StatusCode, want: Option<&str>) {
    assert_eq!(res.status(), status);
    assert_eq!(challenge(res), want);
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
    assert_eq!(res.body(), "", "a rejection body must be empty");
}

/// Asserts that `res` is the inner service's 200 with the `Identity` of `user-1`.
#[track_caller]
pub(crate) fn assert_authenticated(res: &Response<String>, what: &str) {
    assert_eq!(res.status(), StatusCode::OK, "{what}");
    assert_eq!(
        res.extensions().get::<Identity>().unwrap().subject(),
        "user-1",
        "{what}"
    );
}

/// Asserts that neither a header nor the body of `res` contains `token`.
#[track_caller]
pub(crate) fn assert_not_echoed(res: &Response<String>, token: &str) {
    // The signature part is what makes the token unique (and secret-like).
    let needle = token.rsplit('.').find(|s| s.len() >= 8).unwrap_or(token);
    assert!(!res.body().contains(needle), "the body echoes the token");
    for (name, value) in res.headers() {
        let value = String::from_utf8_lossy(value.as_bytes());
        assert!(!value.contains(needle), "header {name} echoes the token");
    }
}

/// Asserts that the provider was never contacted.
#[track_caller]
pub(crate) fn assert_no_fetch(tp: &TestProvider) {
    assert_eq!(tp.discovery_fetch_count(), 0, "discovery was fetched");
    assert_eq!(tp.jwks_fetch_count(), 0, "the jwks was fetched");
}
