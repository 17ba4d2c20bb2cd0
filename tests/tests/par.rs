//! Pushed authorization requests (RFC 9126) against the real OpenID Provider (npm
//! `oidc-provider`, PAR enabled): a client the OP registers with
//! `require_pushed_authorization_requests` logs in only when the request is pushed; the
//! browser's URL then carries nothing but `client_id` and `request_uri`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_core::Provider;
use oidc_core::flow::{AuthorizationResponse, AuthorizeOptions, OidcClient, PushedAuthorization};
use oidc_e2e::RealProvider;
use oidc_e2e::user_agent::UserAgent;
use reqwest::Url;

const APP_URL: &str = "http://127.0.0.1:4391";
const CLIENT: &str = "par-app";
const SECRET: &str = "par-app-secret";

async fn op() -> RealProvider {
    let apps = format!(r#"[{{"client_id":"{CLIENT}","app_url":"{APP_URL}","require_par":true}}]"#);
    RealProvider::start_with_env(
        "https://api.example.com/api",
        "http://localhost:3000",
        &[("WEB_APPS", apps.as_str())],
    )
    .await
}

fn client(op: &RealProvider, when: Option<PushedAuthorization>) -> OidcClient {
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let client = OidcClient::new(provider, CLIENT, format!("{APP_URL}/auth/callback"))
        .unwrap()
        .with_client_secret(SECRET);
    match when {
        Some(when) => client.with_pushed_authorization(when),
        None => client,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pushed_request_logs_in_and_the_browser_url_carries_only_the_request_uri() {
    let op = op().await;
    let client = client(&op, Some(PushedAuthorization::Always));
    let (url, tx) = client.authorize(&AuthorizeOptions::new()).await.unwrap();
    let url = Url::parse(&url).unwrap();
    let names: Vec<String> = url
        .query_pairs()
        .map(|(name, _)| name.into_owned())
        .collect();
    assert_eq!(names, ["client_id", "request_uri"], "{url}");
    assert!(
        url.query_pairs()
            .any(|(n, v)| n == "request_uri" && v.starts_with("urn:"))
    );

    let mut ua = UserAgent::new();
    let op_host = Url::parse(op.issuer())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned();
    let (callback, _) = ua
        .log_in_through_op(&url, &op_host, "127.0.0.1", "par-user")
        .await;
    let tokens = client
        .complete(
            &tx,
            AuthorizationResponse::from_query(callback.query().unwrap()).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(tokens.subject(), "par-user");
}

#[tokio::test(flavor = "multi_thread")]
async fn par_01_a_request_not_pushed_is_refused_by_an_op_that_requires_it() {
    let op = op().await;
    // The OP requires PAR of this client only; discovery does not say so, so the default
    // (`WhenRequired`) does not push, and the OP refuses the plain request.
    let (url, _) = client(&op, None)
        .authorize(&AuthorizeOptions::new())
        .await
        .unwrap();
    let url = Url::parse(&url).unwrap();
    assert!(
        url.query_pairs().any(|(n, _)| n == "state"),
        "not pushed: {url}"
    );
    let mut ua = UserAgent::new();
    let page = ua.navigate(url.as_str()).await;
    let location = page.location().map(|l| l.to_string()).unwrap_or_default();
    assert!(
        location.contains("error=invalid_request") || page.status == 400,
        "{page}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn par_02_wrong_client_secret_is_refused_at_the_par_endpoint_before_any_redirect() {
    let op = op().await;
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let client = OidcClient::new(provider, CLIENT, format!("{APP_URL}/auth/callback"))
        .unwrap()
        .with_client_secret("wrong")
        .with_pushed_authorization(PushedAuthorization::Always);
    let err = client
        .authorize(&AuthorizeOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, oidc_core::error::FlowError::PushedAuthorizationRefused { error } if error == "invalid_client"),
        "{err:?}"
    );
}
