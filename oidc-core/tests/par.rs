//! `OidcClient::authorize` with pushed authorization requests (RFC 9126) against the
//! in-process provider, whose discovery document points at a fake PAR endpoint: when it
//! pushes, what it sends (the authorization parameters and the client authentication), the
//! URL it gives the browser, and the hostile or failing answers it refuses. The real OP's PAR
//! endpoint is exercised in tests/tests/par.rs.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Mutex};

use common::{REDIRECT_URI, client_provider};
use oidc_core::error::FlowError;
use oidc_core::flow::{AuthorizeOptions, OidcClient, PushedAuthorization};
use oidc_testing::{ClientRegistration, TestProvider};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT_ID: &str = "par-app";
const SECRET: &str = "par-secret";

/// A fake PAR endpoint answering `status` and `body` to every request; records the requests
/// (head and body) it got.
async fn par_endpoint(status: u16, body: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/par", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            // Read the head, then as much body as Content-Length says.
            loop {
                let n = stream.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap())
                        })
                        .unwrap_or(0);
                    if buf.len() >= end + 4 + length || n == 0 {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            record
                .lock()
                .unwrap()
                .push(String::from_utf8_lossy(&buf).to_string());
            let answer = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(answer.as_bytes()).await;
        }
    });
    (url, seen)
}

async fn setup(par: Option<&str>, required: bool) -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        CLIENT_ID,
        SECRET,
        REDIRECT_URI,
    ));
    op.set_discovery_member(
        "pushed_authorization_request_endpoint",
        par.map(|u| json!(u)),
    );
    op.set_discovery_member(
        "require_pushed_authorization_requests",
        Some(json!(required)),
    );
    let client = OidcClient::new(
        client_provider(&op).build().unwrap(),
        CLIENT_ID,
        REDIRECT_URI,
    )
    .unwrap()
    .with_client_secret(SECRET);
    (op, client)
}

const OK: &str = r#"{"request_uri":"urn:ietf:params:oauth:request_uri:abc","expires_in":60}"#;

fn query(url: &str) -> Vec<(String, String)> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect()
}

#[tokio::test]
async fn required_by_discovery_the_request_is_pushed_with_client_authentication() {
    let (par, seen) = par_endpoint(201, OK).await;
    let (op, client) = setup(Some(&par), true).await;
    let options = AuthorizeOptions::new().with_login_hint("ada@example.com");
    let (url, tx) = client.authorize(&options).await.unwrap();

    // The browser gets the authorization endpoint with client_id and request_uri only.
    assert!(
        url.starts_with(&format!("{}/authorize?", op.issuer())),
        "{url}"
    );
    assert_eq!(
        query(&url),
        [
            ("client_id".to_owned(), CLIENT_ID.to_owned()),
            (
                "request_uri".to_owned(),
                "urn:ietf:params:oauth:request_uri:abc".to_owned()
            ),
        ]
    );

    // The PAR endpoint got every authorization parameter and the client's credentials.
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    let (head, body) = seen[0].split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("POST /par "), "{head}");
    assert!(
        head.to_ascii_lowercase().contains("authorization: basic "),
        "client_secret_basic: {head}"
    );
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let get = |name: &str| {
        params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("response_type"), Some("code"));
    assert_eq!(get("client_id"), Some(CLIENT_ID));
    assert_eq!(get("redirect_uri"), Some(REDIRECT_URI));
    assert_eq!(get("code_challenge_method"), Some("S256"));
    assert_eq!(get("login_hint"), Some("ada@example.com"));
    assert_eq!(get("state"), Some(tx.state()));
    assert!(get("nonce").is_some() && get("scope").unwrap().contains("openid"));
    assert!(
        get("grant_type").is_none(),
        "no token grant parameter: {body}"
    );
}

#[tokio::test]
async fn not_required_it_is_not_pushed_unless_asked() {
    let (par, seen) = par_endpoint(201, OK).await;
    let (_op, client) = setup(Some(&par), false).await;
    let (url, _) = client.authorize(&AuthorizeOptions::new()).await.unwrap();
    assert!(query(&url).iter().any(|(n, _)| n == "state"), "{url}");
    assert!(seen.lock().unwrap().is_empty());

    let client = client.with_pushed_authorization(PushedAuthorization::WhenAvailable);
    let (url, _) = client.authorize(&AuthorizeOptions::new()).await.unwrap();
    assert!(query(&url).iter().any(|(n, _)| n == "request_uri"), "{url}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn without_the_endpoint_when_available_is_plain_and_always_is_missing_endpoint() {
    let (_op, client) = setup(None, false).await;
    let (url, _) = client
        .clone()
        .with_pushed_authorization(PushedAuthorization::WhenAvailable)
        .authorize(&AuthorizeOptions::new())
        .await
        .unwrap();
    assert!(query(&url).iter().any(|(n, _)| n == "state"), "{url}");
    let err = client
        .with_pushed_authorization(PushedAuthorization::Always)
        .authorize(&AuthorizeOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::MissingEndpoint(_)), "{err:?}");
}

#[tokio::test]
async fn par_02_refusals_and_hostile_answers_give_no_url() {
    for (status, body, refused) in [
        (
            401,
            r#"{"error":"invalid_client","error_description":"secret: s3cret"}"#,
            true,
        ),
        (400, r#"{"error":"invalid_request"}"#, true),
        (500, OK, false),
        (
            201,
            r#"{"request_uri":"javascript:alert(1) x","expires_in":60}"#,
            false,
        ),
        (201, r#"{"request_uri":"urn:x","expires_in":999999}"#, false),
        (201, "[]", false),
    ] {
        let (par, seen) = par_endpoint(status, body).await;
        let (_op, client) = setup(Some(&par), true).await;
        let err = client
            .authorize(&AuthorizeOptions::new())
            .await
            .unwrap_err();
        if refused {
            assert!(
                matches!(&err, FlowError::PushedAuthorizationRefused { .. }),
                "{status} {body}: {err:?}"
            );
            assert!(!format!("{err} {err:?}").contains("s3cret"));
        } else {
            assert!(
                matches!(&err, FlowError::InvalidResponse(_)),
                "{status} {body}: {err:?}"
            );
        }
        assert_eq!(seen.lock().unwrap().len(), 1);
    }
}
