//! RFC 9728 discovery against the real OpenID Provider (npm `oidc-provider`), the way an MCP
//! client finds where to get a token: it calls the API without a token, follows the
//! challenge's `resource_metadata` to the API's metadata, checks that it describes the URL it
//! called, takes the authorization server from it, discovers that server, gets a token for
//! the resource there (client credentials with a resource indicator), and calls again.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use axum::Router;
use axum::routing::post;
use oidc_axum::Authenticated;
use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_e2e::{RealProvider, clients, http_client};
use oidc_tower::BearerAuthLayer;
use oidc_tower::resource_metadata::ProtectedResource;
use serde_json::Value;

/// The value of the `resource_metadata` attribute of a `WWW-Authenticate` challenge.
fn resource_metadata(challenge: &str) -> Option<&str> {
    let start = challenge.find("resource_metadata=\"")? + "resource_metadata=\"".len();
    let rest = challenge.get(start..)?;
    rest.get(..rest.find('"')?)
}

#[tokio::test(flavor = "multi_thread")]
async fn rs_01_client_finds_the_authorization_server_from_the_401_and_gets_in() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", listener.local_addr().unwrap());
    // The OP's API resource is this API: its tokens for it carry `aud` = the resource.
    let op = RealProvider::start(&resource, "http://localhost:3000").await;

    let metadata = ProtectedResource::new(&resource)
        .unwrap()
        .with_authorization_server(op.issuer())
        .unwrap()
        .with_scopes_supported(["api:read"]);
    let verifier = AccessTokenVerifier::new(
        Provider::builder(op.issuer()).build().unwrap(),
        resource.as_str(),
    );
    let app: Router =
        Router::new()
            .route(
                "/mcp",
                post(|Authenticated(identity): Authenticated| async move {
                    identity.subject().to_owned()
                }),
            )
            .layer(BearerAuthLayer::new(verifier).with_resource_metadata(&metadata))
            .route_service(metadata.path(), metadata.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    // 1. No token: 401, and the challenge says where the metadata is.
    let http = http_client();
    let res = http.post(&resource).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned();
    let metadata_url = resource_metadata(&challenge)
        .unwrap_or_else(|| panic!("no resource_metadata in {challenge}"))
        .to_owned();

    // 2. The metadata describes exactly the URL called (RFC 9728 §3.3) and names the OP.
    let doc: Value = http
        .get(&metadata_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["resource"], resource.as_str());
    let issuer = doc["authorization_servers"][0].as_str().unwrap().to_owned();
    assert_eq!(issuer, op.issuer());

    // 3. Discover that server and get a token for the resource there.
    let provider = Provider::builder(&issuer).build().unwrap();
    let (id, secret) = clients::READER;
    let token = ServiceClient::new(provider, id, secret)
        .token(
            &ServiceTokenRequest::new()
                .with_scopes(["api:read"])
                .with_resource(doc["resource"].as_str().unwrap()),
        )
        .await
        .unwrap();

    // 4. Called with it: in.
    let res = http
        .post(&resource)
        .bearer_auth(token.access_token().secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), id);

    // A token that fails verification is refused with the same pointer.
    let res = http
        .post(&resource)
        .bearer_auth("not.a.token")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let challenge = res.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    assert_eq!(resource_metadata(challenge), Some(metadata_url.as_str()));
}
