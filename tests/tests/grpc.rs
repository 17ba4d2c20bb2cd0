//! The gRPC example (`examples/grpc-service`) against the real OpenID Provider (npm
//! `oidc-provider`): service tokens from the OP (client credentials with the API as resource
//! indicator) called over HTTP/2 by a tonic client; a scope per method; the hyper service too.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use grpc_service::proto::orders_client::OrdersClient;
use grpc_service::serve::{serve_grpc, serve_hyper};
use grpc_service::{CancelRequest, ListRequest, grpc_app, hyper_app};
use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_e2e::{RealProvider, clients, http_client};
use tonic::Code;
use tonic::transport::Channel;

async fn token(op: &RealProvider, resource: &str, client: (&str, &str), scopes: &[&str]) -> String {
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let (id, secret) = client;
    ServiceClient::new(provider, id, secret)
        .token(
            &ServiceTokenRequest::new()
                .with_scopes(scopes.iter().copied())
                .with_resource(resource),
        )
        .await
        .unwrap()
        .access_token()
        .secret()
        .to_owned()
}

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_methods_take_real_op_tokens_with_their_scope_only() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}", listener.local_addr().unwrap());
    let op = RealProvider::start(&resource, "http://localhost:3000").await;
    let verifier = AccessTokenVerifier::new(
        Provider::builder(op.issuer()).build().unwrap(),
        resource.as_str(),
    );
    tokio::spawn(serve_grpc(listener, grpc_app(verifier), 16));
    let channel = Channel::from_shared(resource.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = OrdersClient::new(channel);

    let reader = token(&op, &resource, clients::READER, &["api:read"]).await;
    let reply = client
        .list(with_token(ListRequest {}, &reader))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.subject, clients::READER.0);

    let status = client
        .cancel(with_token(CancelRequest { id: "o-1".into() }, &reader))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");

    let writer = token(&op, &resource, clients::WRITER, &["api:read", "api:write"]).await;
    let reply = client
        .cancel(with_token(CancelRequest { id: "o-1".into() }, &writer))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.cancelled_by, clients::WRITER.0);

    // A token of the OP for another resource is not one for this service.
    let other = token(
        &op,
        oidc_e2e::OTHER_RESOURCE,
        clients::READER,
        &["api:read"],
    )
    .await;
    let status = client
        .list(with_token(ListRequest {}, &other))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn hyper_service_takes_a_real_op_token_with_the_scope_and_refuses_others() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}", listener.local_addr().unwrap());
    let op = RealProvider::start(&resource, "http://localhost:3000").await;
    let verifier = AccessTokenVerifier::new(
        Provider::builder(op.issuer()).build().unwrap(),
        resource.as_str(),
    );
    tokio::spawn(serve_hyper(listener, hyper_app(verifier), 16));
    let http = http_client();

    let res = http.get(format!("{resource}/")).send().await.unwrap();
    assert_eq!(res.status(), 401);

    let reader = token(&op, &resource, clients::READER, &["api:read"]).await;
    let res = http
        .get(format!("{resource}/"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.text().await.unwrap(),
        format!("hello {}", clients::READER.0)
    );

    // A token of the OP without `api:read` (only `api:write`): 403.
    let writer = token(&op, &resource, clients::WRITER, &["api:write"]).await;
    let res = http
        .get(format!("{resource}/"))
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}
