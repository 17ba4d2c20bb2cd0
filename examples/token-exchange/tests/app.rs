//! The example against the in-process provider: a caller's token exchanged for the orders
//! API, which sees the caller; a revoked caller refused without a downstream call; the
//! forwarding mode refused by an orders API that checks its audience.

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
use oidc_axum::Authenticated;
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_testing::{ClientRegistration, TestProvider};
use oidc_tower::BearerAuthLayer;
use token_exchange::{Settings, app};

const ORDERS: &str = "https://orders.example.test";

async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// The orders API: answers the caller's `sub`, only for tokens of its audience; counts calls.
async fn orders_api(op: &TestProvider) -> (String, Arc<AtomicUsize>) {
    let verifier =
        AccessTokenVerifier::new(Provider::builder(op.issuer()).build().unwrap(), ORDERS);
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let router = Router::new()
        .route(
            "/orders",
            get(move |Authenticated(id): Authenticated| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { format!("orders of {}", id.subject()) }
            }),
        )
        .layer(BearerAuthLayer::new(verifier));
    (format!("{}/orders", serve(router).await), hits)
}

async fn setup(forward: bool) -> (TestProvider, String, Arc<AtomicUsize>) {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        "gateway",
        "gateway-secret",
        "http://127.0.0.1/unused",
    ));
    let (orders_url, hits) = orders_api(&op).await;
    let settings = Settings {
        issuer: op.issuer(),
        audience: "api://default".to_owned(),
        client_id: "gateway".to_owned(),
        client_secret: "gateway-secret".to_owned(),
        orders_url,
        orders_audience: Some(ORDERS.to_owned()),
        orders_resource: None,
        scopes: vec!["orders:read".to_owned()],
        forward,
    };
    let gateway = serve(app(&settings).unwrap()).await;
    (op, gateway, hits)
}

async fn get_my_orders(gateway: &str, token: &str) -> (u16, String) {
    let res = reqwest::Client::new()
        .get(format!("{gateway}/my-orders"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn orders_api_sees_the_caller_through_an_exchanged_token() {
    let (op, gateway, hits) = setup(false).await;
    let user = op.issue_access_token("gateway", "ada");
    assert_eq!(
        get_my_orders(&gateway, &user).await,
        (200, "orders of ada".to_owned())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn revoked_caller_is_refused_and_the_orders_api_is_not_called() {
    let (op, gateway, hits) = setup(false).await;
    let user = op.issue_access_token("gateway", "ada");
    op.revoke_user("ada");
    let (status, body) = get_my_orders(&gateway, &user).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains(&user));
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn forwarded_token_of_another_audience_is_refused_by_the_orders_api() {
    let (op, gateway, hits) = setup(true).await;
    let user = op.issue_access_token("gateway", "ada");
    let (status, _) = get_my_orders(&gateway, &user).await;
    assert_eq!(
        status, 401,
        "the caller's token is for the gateway, not the orders API"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "refused by the orders API's bearer layer"
    );
}
