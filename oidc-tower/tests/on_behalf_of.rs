//! `OnBehalfOfLayer`: calling an upstream as the signed-in user, with a token exchanged for it
//! (RFC 8693) or, opt-in, the user's own token. The caller's `Authorization` replaced, the
//! user token required, refusals as errors without an upstream call, one fresh exchange and
//! one retry on a 401 in exchange mode, none in forward mode.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use http::{Request, Response, StatusCode, header};
use oidc_core::error::FlowError;
use oidc_core::flow::{ExchangeRequest, Secret, TokenExchanger};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_testing::{ClientRegistration, TestProvider, TokenExchangeAnswer, find_param};
use oidc_tower::outbound::{OnBehalfOfLayer, OutboundError, UserToken};
use oidc_tower::{BearerAuthLayer, PresentedToken};
use serde_json::Value;
use tower::{Layer, Service, ServiceExt, service_fn};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ORDERS: &str = "https://orders.example.test";

/// What the upstream saw: each call's `Authorization` values, and whether a `UserToken`
/// extension reached it.
type Seen = Arc<Mutex<Vec<(Vec<String>, bool)>>>;

async fn setup() -> (TestProvider, TokenExchanger) {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        "app",
        "app-secret",
        "http://127.0.0.1/unused",
    ));
    let provider = Provider::builder(op.issuer()).build().unwrap();
    (op, TokenExchanger::new(provider, "app", "app-secret"))
}

fn orders() -> ExchangeRequest {
    ExchangeRequest::new().with_audience(ORDERS)
}

/// An upstream that records each request and answers with `status(call_number)`.
fn upstream(
    seen: Seen,
    status: impl Fn(usize) -> StatusCode + Clone + Send + 'static,
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
            let leaked = req.extensions().get::<UserToken>().is_some();
            let n = {
                let mut seen = seen.lock().unwrap();
                seen.push((auth, leaked));
                seen.len()
            };
            let mut res = Response::new(String::new());
            *res.status_mut() = status(n);
            Ok::<_, Infallible>(res)
        }
    })
}

fn exchanges(op: &TestProvider) -> usize {
    op.token_requests()
        .iter()
        .filter(|r| find_param(&r.params, "grant_type") == Some(GRANT))
        .count()
}

/// A request as a handler builds it: the caller's own `Authorization` and the user's token.
fn request_as(user: Option<&str>) -> Request<String> {
    let mut req = Request::get("http://orders.example.test/mine")
        .header(header::AUTHORIZATION, "Bearer caller-token")
        .body(String::new())
        .unwrap();
    if let Some(user) = user {
        req.extensions_mut()
            .insert(UserToken::from(Secret::new(user)));
    }
    req
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn bearer_of(auth: &[String]) -> &str {
    let [value] = auth else {
        panic!("exactly one Authorization header expected: {auth:?}")
    };
    value.strip_prefix("Bearer ").unwrap()
}

/// A refusal: neither token appears in the error's `Display` or `Debug`.
fn assert_clean<E: std::fmt::Debug + std::fmt::Display>(err: &OutboundError<E>, user: &str) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(user), "{text}");
    }
}

#[tokio::test]
async fn exchange_mode_sends_a_token_for_the_upstream_carrying_the_users_sub() {
    let (op, exchanger) = setup().await;
    let user = op.issue_access_token("app", "ada");
    let seen = Seen::default();
    let service = OnBehalfOfLayer::exchange(exchanger, orders())
        .layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
    let res = service.oneshot(request_as(Some(&user))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    let [(auth, leaked)] = seen.as_slice() else {
        panic!("one upstream call expected: {seen:?}")
    };
    let sent = bearer_of(auth);
    assert_ne!(sent, user, "not the user's own token");
    assert_ne!(sent, "caller-token");
    let issued = claims(sent);
    assert_eq!(issued["sub"], "ada");
    assert_eq!(issued["aud"], ORDERS);
    assert!(
        !leaked,
        "the UserToken extension is not passed to the client"
    );
    assert_eq!(exchanges(&op), 1);
}

#[tokio::test]
async fn exchanged_token_is_cached_across_calls_of_one_user() {
    let (op, exchanger) = setup().await;
    let user = op.issue_access_token("app", "ada");
    let seen = Seen::default();
    let service = OnBehalfOfLayer::exchange(exchanger, orders())
        .layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
    for _ in 0..3 {
        service
            .clone()
            .oneshot(request_as(Some(&user)))
            .await
            .unwrap();
    }
    assert_eq!(exchanges(&op), 1);
    assert_eq!(seen.lock().unwrap().len(), 3);
}

#[tokio::test]
async fn authorization_header_is_marked_sensitive() {
    let (op, exchanger) = setup().await;
    let user = op.issue_access_token("app", "ada");
    let service = OnBehalfOfLayer::exchange(exchanger, orders()).layer(service_fn(
        |req: Request<String>| async move {
            let sensitive = req.headers()[header::AUTHORIZATION].is_sensitive();
            Ok::<_, Infallible>(Response::new(sensitive.to_string()))
        },
    ));
    let res = service.oneshot(request_as(Some(&user))).await.unwrap();
    assert_eq!(res.body(), "true");
}

#[tokio::test]
async fn missing_user_token_is_an_error_and_the_upstream_is_not_called() {
    let (op, exchanger) = setup().await;
    for layer in [
        OnBehalfOfLayer::exchange(exchanger, orders()),
        OnBehalfOfLayer::forward(),
    ] {
        let seen = Seen::default();
        let service = layer.layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
        let err = service.oneshot(request_as(None)).await.unwrap_err();
        assert!(matches!(err, OutboundError::NoUserToken), "{err:?}");
        assert!(err.is_token());
        assert!(seen.lock().unwrap().is_empty(), "upstream not called");
    }
    assert_eq!(exchanges(&op), 0);
}

#[tokio::test]
async fn refused_exchange_is_an_error_and_the_upstream_is_not_called() {
    let (op, exchanger) = setup().await;
    let user = op.issue_access_token("app", "ada");
    op.revoke_user("ada");
    let seen = Seen::default();
    let service = OnBehalfOfLayer::exchange(exchanger, orders())
        .layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
    let err = service.oneshot(request_as(Some(&user))).await.unwrap_err();
    let OutboundError::Token(flow) = &err else {
        panic!("a token error expected: {err:?}")
    };
    assert!(flow.is_invalid_grant(), "{flow:?}");
    assert_clean(&err, &user);
    assert!(seen.lock().unwrap().is_empty(), "upstream not called");
}

#[tokio::test]
async fn hostile_exchange_answer_is_an_error_and_the_upstream_is_not_called() {
    for answer in [
        TokenExchangeAnswer::IssuedTokenType("urn:ietf:params:oauth:token-type:id_token".into()),
        TokenExchangeAnswer::HugeToken(64 * 1024),
        TokenExchangeAnswer::EchoSubjectToken,
        TokenExchangeAnswer::Error("invalid_target".into()),
    ] {
        let (op, exchanger) = setup().await;
        let user = op.issue_access_token("app", "ada");
        op.set_token_exchange_answer(answer.clone());
        let seen = Seen::default();
        let service = OnBehalfOfLayer::exchange(exchanger, orders())
            .layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
        let err = service.oneshot(request_as(Some(&user))).await.unwrap_err();
        assert!(
            matches!(
                &err,
                OutboundError::Token(
                    FlowError::InvalidResponse(_) | FlowError::TokenEndpoint { .. }
                )
            ),
            "{answer:?}: {err:?}"
        );
        assert_clean(&err, &user);
        assert!(!format!("{err:?}").contains("AAAAAAAA"));
        assert!(
            seen.lock().unwrap().is_empty(),
            "{answer:?}: upstream not called"
        );
    }
}

#[tokio::test]
async fn expired_user_token_is_not_exchanged_and_the_upstream_is_not_called() {
    let (op, exchanger) = setup().await;
    let user = op.issue_access_token("app", "ada");
    let seen = Seen::default();
    let service = OnBehalfOfLayer::exchange(exchanger, orders())
        .layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
    let mut req = request_as(None);
    req.extensions_mut()
        .insert(UserToken::from(Secret::new(user.clone())).with_expires_at(1_000));
    let err = service.oneshot(req).await.unwrap_err();
    assert!(
        matches!(err, OutboundError::Token(FlowError::SubjectTokenExpired)),
        "{err:?}"
    );
    assert_eq!(exchanges(&op), 0);
    assert!(seen.lock().unwrap().is_empty());
}

/// Tokens minted in one second are equal: number each exchanged token so a new one differs.
fn distinct_tokens(op: &TestProvider) {
    let n = Arc::new(AtomicUsize::new(0));
    op.mutate_token_response(move |body| {
        let token = body["access_token"].as_str().unwrap().to_owned();
        let i = n.fetch_add(1, Ordering::SeqCst);
        body.insert("access_token".into(), format!("{token}{i}").into());
    });
}

#[tokio::test]
async fn upstream_401_in_exchange_mode_gets_one_fresh_exchange_and_one_retry() {
    let (op, exchanger) = setup().await;
    distinct_tokens(&op);
    let user = op.issue_access_token("app", "ada");
    let seen = Seen::default();
    let service =
        OnBehalfOfLayer::exchange(exchanger, orders()).layer(upstream(Arc::clone(&seen), |n| {
            if n == 1 {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            }
        }));
    let res = service.oneshot(request_as(Some(&user))).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    let [(first, _), (second, _)] = seen.as_slice() else {
        panic!("two upstream calls expected: {seen:?}")
    };
    assert_ne!(bearer_of(first), bearer_of(second), "a fresh token");
    assert_ne!(bearer_of(second), user);
    assert_eq!(exchanges(&op), 2, "the cache was bypassed once");
}

#[tokio::test]
async fn second_401_in_exchange_mode_is_returned_without_another_retry() {
    let (op, exchanger) = setup().await;
    distinct_tokens(&op);
    let user = op.issue_access_token("app", "ada");
    let seen = Seen::default();
    let service = OnBehalfOfLayer::exchange(exchanger, orders())
        .layer(upstream(Arc::clone(&seen), |_| StatusCode::UNAUTHORIZED));
    let res = service.oneshot(request_as(Some(&user))).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(seen.lock().unwrap().len(), 2);
    assert_eq!(exchanges(&op), 2);
}

#[tokio::test]
async fn forward_mode_sends_the_users_token_and_never_retries() {
    let (op, _) = setup().await;
    let seen = Seen::default();
    let service =
        OnBehalfOfLayer::forward().layer(upstream(Arc::clone(&seen), |_| StatusCode::UNAUTHORIZED));
    let res = service
        .oneshot(request_as(Some("the-users-token")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let seen = seen.lock().unwrap();
    let [(auth, leaked)] = seen.as_slice() else {
        panic!("one upstream call, no retry: {seen:?}")
    };
    assert_eq!(
        bearer_of(auth),
        "the-users-token",
        "caller's header replaced"
    );
    assert!(!leaked);
    assert_eq!(exchanges(&op), 0);
}

#[tokio::test]
async fn forward_mode_refuses_a_token_that_is_not_a_header_value() {
    let seen = Seen::default();
    let service = OnBehalfOfLayer::forward().layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
    let err = service
        .oneshot(request_as(Some("bad\ntoken")))
        .await
        .unwrap_err();
    assert!(err.is_token(), "{err:?}");
    assert!(seen.lock().unwrap().is_empty());
}

#[tokio::test]
async fn api_exchanges_the_presented_bearer_token_of_its_caller() {
    let (op, exchanger) = setup().await;
    let user = op.issue_access_token("app", "ada");
    let seen = Seen::default();
    let orders_client = OnBehalfOfLayer::exchange(exchanger, orders())
        .layer(upstream(Arc::clone(&seen), |_| StatusCode::OK));
    // The API's handler: the verified token of its caller, on to the orders API.
    let handler = service_fn(move |req: Request<String>| {
        let orders_client = orders_client.clone();
        async move {
            let presented = req.extensions().get::<PresentedToken>().cloned().unwrap();
            let mut call = Request::new(String::new());
            call.extensions_mut().insert(UserToken::from(presented));
            let res = orders_client.oneshot(call).await.unwrap();
            Ok::<_, Infallible>(Response::new(res.status().to_string()))
        }
    });
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let api = BearerAuthLayer::new(AccessTokenVerifier::new(provider, "api://default"))
        .keep_presented_token(true)
        .layer(handler);
    let req = Request::get("/orders")
        .header(header::AUTHORIZATION, format!("Bearer {user}"))
        .body(String::new())
        .unwrap();
    let res = api.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    let [(auth, _)] = seen.as_slice() else {
        panic!("one upstream call expected: {seen:?}")
    };
    assert_eq!(claims(bearer_of(auth))["sub"], "ada");
    assert_ne!(bearer_of(auth), user);
}

#[test]
fn user_token_debug_is_redacted() {
    let token = UserToken::from(Secret::new("the-users-token")).with_expires_at(5);
    assert_eq!(format!("{token:?}"), "UserToken(..)");
    assert_eq!(token.expires_at(), Some(5));
    assert!(OnBehalfOfLayer::forward().is_forward());
}
