//! The gRPC service and the hyper service against the in-process provider, over real
//! connections: a tonic client on HTTP/2, reqwest on HTTP/1.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use grpc_service::proto::orders_client::OrdersClient;
use grpc_service::serve::{serve_grpc, serve_hyper};
use grpc_service::{CancelRequest, ListReply, ListRequest, grpc_app, hyper_app};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_testing::TestProvider;
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;

const AUDIENCE: &str = "https://orders.example.test";

async fn verifier(op: &TestProvider) -> AccessTokenVerifier {
    let provider = Provider::builder(op.issuer()).build().unwrap();
    AccessTokenVerifier::new(provider, AUDIENCE)
}

/// The gRPC server on an ephemeral port, and a client connected to it.
async fn grpc(op: &TestProvider) -> (OrdersClient<Channel>, Channel) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(serve_grpc(listener, grpc_app(verifier(op).await), 16));
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    (OrdersClient::new(channel.clone()), channel)
}

fn token(op: &TestProvider, sub: &str, scope: &str) -> String {
    op.token()
        .audience(AUDIENCE)
        .claim("sub", sub)
        .scope(scope)
        .sign()
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let value: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    request
}

fn challenge(status: &tonic::Status) -> String {
    status
        .metadata()
        .get("www-authenticate")
        .expect("a www-authenticate challenge")
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn method_with_its_scope_is_served_with_the_callers_sub() {
    let op = TestProvider::start().await;
    let (mut client, _) = grpc(&op).await;
    let reply = client
        .list(with_token(ListRequest {}, &token(&op, "ada", "api:read")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        reply,
        ListReply {
            subject: "ada".into(),
            orders: vec!["ada-1".into(), "ada-2".into()],
        }
    );
    let reply = client
        .cancel(with_token(
            CancelRequest { id: "o-7".into() },
            &token(&op, "ada", "api:read api:write"),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.cancelled_by, "ada");
    assert_eq!(reply.id, "o-7");
}

#[tokio::test]
async fn method_without_its_scope_is_permission_denied_with_the_scope_challenge() {
    let op = TestProvider::start().await;
    let (mut client, _) = grpc(&op).await;
    let status = client
        .cancel(with_token(
            CancelRequest { id: "o-7".into() },
            &token(&op, "ada", "api:read"),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let challenge = challenge(&status);
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"api:write\""), "{challenge}");
}

#[tokio::test]
async fn call_without_a_token_is_unauthenticated_with_a_bare_challenge() {
    let op = TestProvider::start().await;
    let (mut client, _) = grpc(&op).await;
    let status = client
        .list(tonic::Request::new(ListRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let challenge = challenge(&status);
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(!challenge.contains("error="), "{challenge}");
}

#[tokio::test]
async fn at_01_forged_expired_and_foreign_audience_tokens_are_unauthenticated() {
    let op = TestProvider::start().await;
    let (mut client, _) = grpc(&op).await;
    let forged = op
        .token()
        .audience(AUDIENCE)
        .scope("api:read")
        .sign_with_foreign_key();
    let expired = op
        .token()
        .audience(AUDIENCE)
        .scope("api:read")
        .expires_in(-600)
        .sign();
    let foreign = op
        .token()
        .audience("https://other.example.test")
        .scope("api:read")
        .sign();
    for (what, token) in [
        ("forged", forged),
        ("expired", expired),
        ("foreign", foreign),
    ] {
        let status = client
            .list(with_token(ListRequest {}, &token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        assert!(
            challenge(&status).contains("error=\"invalid_token\""),
            "{what}: {status:?}"
        );
    }
}

#[tokio::test]
async fn method_without_a_route_is_unimplemented_and_needs_a_token_first() {
    let op = TestProvider::start().await;
    let (_, channel) = grpc(&op).await;
    let call = |request: tonic::Request<ListRequest>| {
        let mut grpc = tonic::client::Grpc::new(channel.clone());
        async move {
            grpc.ready().await.unwrap();
            grpc.unary::<_, ListReply, _>(
                request,
                http::uri::PathAndQuery::from_static("/orders.Orders/DeleteAll"),
                tonic_prost::ProstCodec::default(),
            )
            .await
        }
    };
    let status = call(with_token(
        ListRequest {},
        &token(&op, "ada", "api:read api:write"),
    ))
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{status:?}");
    let status = call(tonic::Request::new(ListRequest {})).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

/// The hyper service on an ephemeral port: its base URL.
async fn hyper(op: &TestProvider) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    tokio::spawn(serve_hyper(listener, hyper_app(verifier(op).await), 16));
    url
}

#[tokio::test]
async fn hyper_service_answers_the_caller_with_the_scope_and_refuses_others() {
    let op = TestProvider::start().await;
    let url = hyper(&op).await;
    let http = reqwest::Client::new();

    let res = http
        .get(&url)
        .bearer_auth(token(&op, "ada", "api:read"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hello ada");

    let res = http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(res.text().await.unwrap(), "", "the service was not called");

    let res = http
        .get(&url)
        .bearer_auth(token(&op, "ada", "api:write"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(challenge.contains("insufficient_scope"), "{challenge}");
    assert_eq!(res.text().await.unwrap(), "", "the service was not called");

    let forged = op
        .token()
        .audience(AUDIENCE)
        .scope("api:read")
        .sign_with_foreign_key();
    let res = http.get(&url).bearer_auth(forged).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert!(
        res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}
