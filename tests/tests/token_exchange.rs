//! Token exchange (RFC 8693) against the real OpenID Provider (npm `oidc-provider`, with the
//! grant registered by `tests/op/server.mjs`): a user logs in with the code flow as `obo-app`,
//! the app calls a downstream API behind `BearerAuthLayer` through `OnBehalfOfLayer`, which
//! exchanges the user's (opaque) access token for a JWT access token of the API; the API
//! accepts it and sees the user's `sub`. A revoked, unknown or non-user subject token is
//! refused by the OP and the API is not called.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oidc_axum::Authenticated;
use oidc_core::flow::{
    AuthorizationResponse, AuthorizeOptions, ExchangeRequest, OidcClient, Secret, TokenExchanger,
    TokenRevoker, TokenSet, TokenTypeHint,
};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_e2e::user_agent::UserAgent;
use oidc_e2e::{RealProvider, clients, jwt_claims};
use oidc_tower::BearerAuthLayer;
use oidc_tower::outbound::{OnBehalfOfLayer, OutboundError, UserToken};
use reqwest::Url;
use tower::{Layer, ServiceExt};

/// The token exchange client of `tests/op/server.mjs`.
const CLIENT_ID: &str = "obo-app";
const SECRET: &str = "obo-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:8977/callback";

fn provider(op: &RealProvider) -> Provider {
    Provider::builder(op.issuer()).build().unwrap()
}

fn login_client(op: &RealProvider) -> OidcClient {
    OidcClient::new(provider(op), CLIENT_ID, REDIRECT_URI)
        .unwrap()
        .with_client_secret(SECRET)
        .with_scopes(["profile"])
}

/// A code-flow login of `account` at the OP, driven over HTTP; the callback is completed by
/// the client itself (nothing listens on the redirect URI).
async fn log_in(op: &RealProvider, account: &str) -> TokenSet {
    let client = login_client(op);
    let (url, tx) = client.authorize(&AuthorizeOptions::new()).await.unwrap();
    let op_host = Url::parse(op.issuer())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let mut agent = UserAgent::new();
    let (callback, _) = agent
        .log_in_through_op(&Url::parse(&url).unwrap(), &op_host, "127.0.0.1", account)
        .await;
    let response = AuthorizationResponse::from_query(callback.query().unwrap()).unwrap();
    let tokens = client.complete(&tx, response).await.unwrap();
    assert_eq!(tokens.subject(), account);
    tokens
}

/// The downstream API: `GET /whoami` behind `BearerAuthLayer` for the OP's API resource,
/// answering the verified `sub`; counts the requests that reach it.
async fn downstream(op: &RealProvider) -> (String, Arc<AtomicUsize>) {
    let verifier = AccessTokenVerifier::new(provider(op), op.api_resource());
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let app =
        Router::new()
            .route(
                "/whoami",
                get(|Authenticated(identity): Authenticated| async move {
                    identity.subject().to_owned()
                }),
            )
            .layer(BearerAuthLayer::new(verifier))
            .layer(axum::middleware::from_fn(
                move |req: axum::extract::Request, next: axum::middleware::Next| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    next.run(req)
                },
            ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits)
}

fn exchanger(op: &RealProvider) -> TokenExchanger {
    TokenExchanger::new(provider(op), CLIENT_ID, SECRET)
}

fn for_the_api(op: &RealProvider) -> ExchangeRequest {
    ExchangeRequest::new()
        .with_resource(op.api_resource())
        .with_scopes(["api:read"])
}

/// `GET url` as the handler sends it: the user's token in the extensions, and a caller
/// `Authorization` that must not reach the API.
fn request(url: &str, user: &Secret) -> http::Request<Empty<Bytes>> {
    let mut req = http::Request::get(url)
        .header(http::header::AUTHORIZATION, "Bearer not-for-the-api")
        .body(Empty::<Bytes>::new())
        .unwrap();
    req.extensions_mut().insert(UserToken::from(user.clone()));
    req
}

#[tokio::test(flavor = "multi_thread")]
async fn app_calls_the_downstream_as_the_user_with_an_exchanged_token() {
    let op = RealProvider::shared().await;
    let tokens = log_in(op, "obo-user").await;
    let users_token = tokens.access_token().clone();
    let (url, hits) = downstream(op).await;

    // The user's own token is not for the API: the API refuses it.
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let forwarded = OnBehalfOfLayer::forward().layer(hyper.clone());
    let res = forwarded
        .oneshot(request(&url, &users_token))
        .await
        .unwrap();
    assert_eq!(res.status(), 401, "an opaque token of the app, not the API");

    let app = OnBehalfOfLayer::exchange(exchanger(op), for_the_api(op)).layer(hyper);
    for _ in 0..2 {
        let res = app
            .clone()
            .oneshot(request(&url, &users_token))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "obo-user".as_bytes(), "the API sees the user");
    }
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    // One exchange for both calls (cached), logged by the OP for the user.
    assert_eq!(
        op.wait_for_grants(
            "urn:ietf:params:oauth:grant-type:token-exchange",
            CLIENT_ID,
            "obo-user",
            1
        )
        .await,
        1
    );

    // What the OP issued: a JWT for the API, for the user, naming the app as the actor.
    let exchanged = exchanger(op)
        .exchange(&users_token, &for_the_api(op))
        .await
        .unwrap();
    let claims = jwt_claims(exchanged.access_token().secret());
    assert_eq!(claims["sub"], "obo-user");
    assert_eq!(claims["aud"], op.api_resource());
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(claims["act"]["sub"], CLIENT_ID);
    assert_eq!(claims["scope"], "api:read");
}

/// The exchange of `subject` is refused by the OP with `invalid_grant`, the API is not called
/// and the token is not in the error.
async fn assert_refused(op: &RealProvider, subject: &Secret) {
    let (url, hits) = downstream(op).await;
    let hyper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let app = OnBehalfOfLayer::exchange(exchanger(op), for_the_api(op)).layer(hyper);
    let err = app.oneshot(request(&url, subject)).await.unwrap_err();
    let OutboundError::Token(flow) = &err else {
        panic!("a token error expected: {err:?}")
    };
    assert!(flow.is_invalid_grant(), "{flow:?}");
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(subject.secret()), "{shown}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the API was not called");
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_subject_token_is_refused_by_the_op_and_the_downstream_is_not_called() {
    let op = RealProvider::shared().await;
    let tokens = log_in(op, "obo-revoked").await;
    let revoker = TokenRevoker::new(login_client(op));
    revoker
        .revoke(tokens.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap();
    assert_refused(op, tokens.access_token()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_subject_token_is_refused_by_the_op() {
    let op = RealProvider::shared().await;
    assert_refused(op, &Secret::new("not-a-token-the-op-issued")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn service_token_is_not_a_user_token_and_is_refused() {
    let op = RealProvider::shared().await;
    let (id, secret) = clients::READER;
    let service_token = op
        .client_credentials_token(id, secret, "api:read", Some(op.api_resource()))
        .await;
    assert_refused(op, &Secret::new(service_token)).await;
}
