//! The bearer-only example's router against the in-process provider of `oidc-testing`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use oidc_axum::{AccessTokenVerifier, Provider};
use oidc_testing::TestProvider;
use reqwest::header::WWW_AUTHENTICATE;
use serde_json::Value;

/// The audience of the test provider's tokens.
const AUDIENCE: &str = "api://default";

/// The provider and the example's app on a loopback port (`http://127.0.0.1:PORT`).
async fn start() -> (TestProvider, String) {
    let op = TestProvider::start().await;
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let app = bearer_only::app(AccessTokenVerifier::new(provider, AUDIENCE));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (op, url)
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The status, the `WWW-Authenticate` header and the body of `req`.
async fn send(req: reqwest::RequestBuilder) -> (u16, Option<String>, String) {
    let res = req.send().await.unwrap();
    let challenge = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    (res.status().as_u16(), challenge, res.text().await.unwrap())
}

#[tokio::test]
async fn request_without_token_gets_401_bearer_challenge() {
    let (_op, url) = start().await;
    for req in [
        http().get(format!("{url}/api/me")),
        http().post(format!("{url}/api/notes")),
    ] {
        let (status, challenge, _) = send(req).await;
        assert_eq!(status, 401);
        let challenge = challenge.expect("a WWW-Authenticate header");
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        // RFC 6750 §3.1: no error code when the request carried no credentials.
        assert!(!challenge.contains("error="), "{challenge}");
    }
}

#[tokio::test]
async fn token_without_the_scope_gets_403_insufficient_scope() {
    let (op, url) = start().await;
    // The provider's default scope is `openid api:read`: valid, but not `notes:write`.
    let token = op.token().claim("sub", "alice").sign();

    let (status, challenge, body) =
        send(http().post(format!("{url}/api/notes")).bearer_auth(&token)).await;
    assert_eq!(status, 403, "{body}");
    let challenge = challenge.expect("a WWW-Authenticate header");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    assert!(challenge.contains("scope=\"notes:write\""), "{challenge}");
    assert!(!body.contains("alice"), "the handler did not run: {body}");

    // The same token is valid where no scope is required.
    let (status, _, body) = send(http().get(format!("{url}/api/me")).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn token_with_the_scope_reaches_the_handler_with_its_subject() {
    let (op, url) = start().await;
    let token = op
        .token()
        .claim("sub", "alice")
        .scope("openid notes:write")
        .sign();

    let (status, _, body) = send(http().post(format!("{url}/api/notes")).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["created"], true);

    let (status, _, body) = send(http().get(format!("{url}/api/me")).bearer_auth(&token)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["sub"], "alice");
    assert_eq!(body["scopes"], serde_json::json!(["openid", "notes:write"]));
}

#[tokio::test]
async fn forged_or_foreign_token_gets_401_invalid_token() {
    let (op, url) = start().await;
    let good = op.token().scope("openid notes:write");
    for (what, token) in [
        ("forged sub", good.sign_then_replace_claim("sub", "admin")),
        ("foreign key", good.sign_with_foreign_key()),
        (
            "other audience",
            good.clone().audience("api://other").sign(),
        ),
        ("expired", good.clone().expires_in(-3600).sign()),
    ] {
        let (status, challenge, body) =
            send(http().post(format!("{url}/api/notes")).bearer_auth(&token)).await;
        assert_eq!(status, 401, "{what}: {body}");
        let challenge = challenge.expect("a WWW-Authenticate header");
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert!(
            challenge.contains("error=\"invalid_token\""),
            "{what}: {challenge}"
        );
        assert!(!body.contains("created"), "{what}: the handler did not run");
    }
}
