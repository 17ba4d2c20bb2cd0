//! Client credentials (service accounts) against the real OpenID Provider (npm
//! `oidc-provider`): `ServiceClient` obtains tokens with `client_secret_basic` and
//! `client_secret_post`, the tokens verify with `AccessTokenVerifier` for the API resource,
//! and `OutboundAuthLayer` over hyper's client calls an API behind `BearerAuthLayer`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use oidc_axum::Authenticated;
use oidc_core::error::{FlowError, HttpError};
use oidc_core::flow::{ClientAuth, ServiceClient, ServiceTokenRequest};
use oidc_core::http::{HttpClient, HttpRequest, HttpResponse, ReqwestClient};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_e2e::{RealProvider, clients, jwt_claims};
use oidc_tower::{BearerAuthLayer, OutboundAuthLayer};
use tower::ServiceExt;

/// What the token requests looked like on the wire: (`Authorization: Basic` sent,
/// `client_secret` in the body).
type Wire = Arc<Mutex<Vec<(bool, bool)>>>;

/// The default HTTP client, recording each token request's client authentication.
#[derive(Debug)]
struct Recording {
    inner: ReqwestClient,
    wire: Wire,
}

impl HttpClient for Recording {
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        if request.method() == http::Method::POST {
            let basic = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .is_some_and(|v| v.as_bytes().starts_with(b"Basic "));
            let body = String::from_utf8_lossy(request.body());
            let post = body.split('&').any(|p| p.starts_with("client_secret="));
            self.wire.lock().unwrap().push((basic, post));
        }
        self.inner.execute(request)
    }
}

fn recording_provider(op: &RealProvider) -> (Provider, Wire) {
    let wire = Wire::default();
    let http = Recording {
        inner: ReqwestClient::new().unwrap(),
        wire: Arc::clone(&wire),
    };
    let provider = Provider::builder(op.issuer())
        .with_http_client(Arc::new(http))
        .build()
        .unwrap();
    (provider, wire)
}

/// Registered in `tests/op/server.mjs` with `token_endpoint_auth_method: client_secret_post`.
const POST_CLIENT: (&str, &str) = ("svc-post", "post-secret");

fn provider(op: &RealProvider) -> Provider {
    Provider::builder(op.issuer()).build().unwrap()
}

fn api_read(op: &RealProvider) -> ServiceTokenRequest {
    ServiceTokenRequest::new()
        .with_scopes(["api:read"])
        .with_resource(op.api_resource())
}

async fn assert_verifies(op: &RealProvider, token: &str, client_id: &str) {
    let verifier = AccessTokenVerifier::new(provider(op), op.api_resource());
    let claims: oidc_core::Claims = verifier.verify(token).await.unwrap();
    assert_eq!(claims.subject(), client_id);
    assert!(
        claims.scopes().contains("api:read"),
        "{:?}",
        claims.scopes()
    );
    assert_eq!(jwt_claims(token)["client_id"], client_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn client_secret_basic_token_verifies_for_the_api() {
    let op = RealProvider::shared().await;
    let (id, secret) = clients::READER;
    // No method set: discovery lists client_secret_basic first, so Basic it is.
    let (recorded, wire) = recording_provider(op);
    let client = ServiceClient::new(recorded, id, secret);
    let token = client.token(&api_read(op)).await.unwrap();
    assert_verifies(op, token.access_token().secret(), id).await;
    // Cached: the same token again, no second request.
    let again = client.token(&api_read(op)).await.unwrap();
    assert_eq!(again.access_token(), token.access_token());
    assert_eq!(
        *wire.lock().unwrap(),
        [(true, false)],
        "Basic, no secret in the body"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_secret_post_token_verifies_for_the_api() {
    let op = RealProvider::shared().await;
    let (id, secret) = POST_CLIENT;
    let (recorded, wire) = recording_provider(op);
    let client =
        ServiceClient::new(recorded, id, secret).with_auth_method(ClientAuth::ClientSecretPost);
    let token = client.token(&api_read(op)).await.unwrap();
    assert_verifies(op, token.access_token().secret(), id).await;
    assert_eq!(
        *wire.lock().unwrap(),
        [(false, true)],
        "the secret in the body only"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_secret_is_a_clear_error_without_the_secret() {
    let op = RealProvider::shared().await;
    let (id, _) = clients::READER;
    let wrong = "definitely-not-the-reader-secret";
    let client = ServiceClient::new(provider(op), id, wrong);
    let err = client.token(&api_read(op)).await.unwrap_err();
    assert!(
        matches!(&err, FlowError::TokenEndpoint { error } if error == "invalid_client"),
        "{err:?}"
    );
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(wrong), "{shown}");
}

#[tokio::test(flavor = "multi_thread")]
async fn outbound_layer_calls_a_bearer_protected_api_through_hyper() {
    let op = RealProvider::shared().await;
    // The API: BearerAuthLayer with the provider's keys, for the API resource.
    let verifier = AccessTokenVerifier::new(provider(op), op.api_resource());
    let app =
        Router::new()
            .route(
                "/whoami",
                get(|Authenticated(identity): Authenticated| async move {
                    identity.subject().to_owned()
                }),
            )
            .layer(BearerAuthLayer::new(verifier));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/whoami", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    let hyper = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = || {
        http::Request::get(&url)
            .header(http::header::AUTHORIZATION, "Bearer not-a-token")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    // Without the layer: the API refuses.
    let plain = hyper.clone().oneshot(request()).await.unwrap();
    assert_eq!(plain.status(), 401);

    let (id, secret) = clients::READER;
    let layer = OutboundAuthLayer::new(ServiceClient::new(provider(op), id, secret), api_read(op));
    let service = tower::ServiceBuilder::new().layer(layer).service(hyper);
    for _ in 0..3 {
        let res = service.clone().oneshot(request()).await.unwrap();
        assert_eq!(res.status(), 200);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, id.as_bytes());
    }
}
