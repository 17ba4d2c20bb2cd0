//! Command-line login against the real OpenID Provider (npm `oidc-provider`), with the public
//! native client `cli` of `tests/op/server.mjs`: the device flow (RFC 8628) with its user side
//! driven over HTTP (the code confirmed at `/device`, the login and consent forms),
//! `authorization_pending` before, `access_denied` on abort; the loopback redirect (RFC 8252) with the
//! printed URL followed by the harness' user agent, the OP matching `http://127.0.0.1/callback`
//! on any port; and the token file's logout, whose revocation (RFC 7009) is checked on the
//! wire: the OP refuses the revoked refresh token afterwards.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use oidc_core::Provider;
use oidc_core::cli::{CliError, LoopbackLogin, TokenFile};
use oidc_core::error::FlowError;
use oidc_core::flow::{AuthorizeOptions, DeviceAuthorization, DeviceFlow, DevicePoll, OidcClient};
use oidc_e2e::RealProvider;
use oidc_e2e::user_agent::{UserAgent, approve_device_at_op};
use reqwest::Url;

/// The public native client of `tests/op/server.mjs`.
const CLIENT_ID: &str = "cli";
const REDIRECT_URI: &str = "http://127.0.0.1/callback";

fn client(op: &RealProvider) -> OidcClient {
    let provider = Provider::builder(op.issuer()).build().unwrap();
    OidcClient::new(provider, CLIENT_ID, REDIRECT_URI)
        .unwrap()
        .with_scopes(["profile", "offline_access"])
}

fn op_host(op: &RealProvider) -> String {
    Url::parse(op.issuer())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned()
}

/// The user's side of the device flow: opens the complete verification URI, confirms the
/// code (or aborts), logs in as `account` and consents. Returns the last page's body.
async fn approve_at_op(
    op: &RealProvider,
    authorization: &DeviceAuthorization,
    account: &str,
    abort: bool,
) -> String {
    let uri = authorization
        .verification_uri_complete()
        .expect("oidc-provider sends verification_uri_complete");
    approve_device_at_op(&op_host(op), uri, authorization.user_code(), account, abort).await
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login_is_pending_until_the_user_approves_then_yields_verified_tokens() {
    let op = RealProvider::shared().await;
    let device = DeviceFlow::new(client(op));
    let authorization = device.start().await.unwrap();
    assert!(
        authorization
            .verification_uri()
            .starts_with(&format!("{}/device", op.issuer())),
        "{}",
        authorization.verification_uri()
    );
    // Not approved yet: authorization_pending. (oidc-provider never answers slow_down; that
    // case is tested against oidc-testing, oidc-core/tests/device_flow.rs.)
    assert!(matches!(
        device.poll(&authorization).await.unwrap(),
        DevicePoll::Pending
    ));

    let done = approve_at_op(op, &authorization, "device-user", false).await;
    assert!(done.contains("Sign-in Success"), "{done}");
    let tokens = tokio::time::timeout(Duration::from_secs(60), device.wait(&authorization))
        .await
        .expect("the wait ends once the user approved")
        .unwrap();
    assert_eq!(tokens.subject(), "device-user");
    assert_eq!(tokens.id_claims()["iss"], op.issuer());
    assert_eq!(tokens.id_claims()["aud"], CLIENT_ID);
    assert!(tokens.refresh_token().is_some(), "offline_access granted");
    assert_eq!(
        op.wait_for_grants(
            "urn:ietf:params:oauth:grant-type:device_code",
            CLIENT_ID,
            "device-user",
            1
        )
        .await,
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn device_login_aborted_by_the_user_is_access_denied() {
    let op = RealProvider::shared().await;
    let device = DeviceFlow::new(client(op));
    let authorization = device.start().await.unwrap();
    approve_at_op(op, &authorization, "device-refuser", true).await;
    let err = tokio::time::timeout(Duration::from_secs(60), device.wait(&authorization))
        .await
        .expect("the wait ends once the user aborted")
        .unwrap_err();
    assert!(
        matches!(&err, FlowError::AuthorizationDenied { error, .. } if error == "access_denied"),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_login_on_an_ephemeral_port_then_logout_revokes_at_the_op() {
    let op = RealProvider::shared().await;
    let client = client(op);
    let (urls, mut printed) = tokio::sync::mpsc::unbounded_channel::<String>();
    let login = LoopbackLogin::new(client.clone())
        // offline_access needs a consent prompt at oidc-provider.
        .with_options(AuthorizeOptions::new().with_prompt("consent"))
        .with_opener(move |url: &str| urls.send(url.to_owned()).map_err(std::io::Error::other));
    let run = tokio::spawn(async move { login.run().await });
    let authorize = Url::parse(&printed.recv().await.unwrap()).unwrap();
    let mut agent = UserAgent::new();
    let (callback, prompts) = agent
        .log_in_through_op(&authorize, &op_host(op), "127.0.0.1", "loopback-user")
        .await;
    assert!(prompts.contains(&"login".to_owned()), "{prompts:?}");
    let port = callback.port().unwrap();
    assert_ne!(port, 80);
    assert_eq!(callback.path(), "/callback");
    let page = agent.navigate(callback.as_str()).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.body.contains("You are logged in"), "{page}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    let tokens = run.await.unwrap().unwrap();
    assert_eq!(tokens.subject(), "loopback-user");
    assert!(tokens.refresh_token().is_some());
    // The listener answered once and is closed.
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
    );

    let dir = std::env::temp_dir().join(format!("oidc-e2e-cli-{}-{port}", std::process::id()));
    let file = TokenFile::new(dir.join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    let fresh = file.tokens(&client).await.unwrap();
    assert_eq!(fresh.access_token(), tokens.access_token());
    let logout = file.logout(&client).await.unwrap();
    assert!(
        logout.revocation_offered,
        "revocation_endpoint is published"
    );
    assert!(
        logout.revocation_error.is_none(),
        "{:?}",
        logout.revocation_error
    );
    assert!(!file.path().exists());
    // On the wire: the refresh token, then the access token, were sent with their hints; the
    // OP revoked the refresh token (and its grant) and refuses it now. Its access tokens are
    // JWTs, which it does not revoke (`unsupported_token_type`, not an error).
    let err = client.refresh(&tokens).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    assert!(matches!(
        file.tokens(&client).await,
        Err(CliError::LoginRequired(_))
    ));
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_callback_with_a_wrong_state_is_refused_and_no_token_is_requested() {
    let op = RealProvider::shared().await;
    let client = client(op);
    let (urls, mut printed) = tokio::sync::mpsc::unbounded_channel::<String>();
    let login = LoopbackLogin::new(client)
        .with_opener(move |url: &str| urls.send(url.to_owned()).map_err(std::io::Error::other));
    let run = tokio::spawn(async move { login.run().await });
    let authorize = Url::parse(&printed.recv().await.unwrap()).unwrap();
    let mut agent = UserAgent::new();
    let (callback, _) = agent
        .log_in_through_op(&authorize, &op_host(op), "127.0.0.1", "csrf-victim")
        .await;
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, "forged".to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let page = agent.navigate(forged.as_str()).await;
    assert_eq!(page.status, 400, "{page}");
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(err, CliError::Flow(FlowError::Unbound(_))),
        "{err:?}"
    );
    // The code was never redeemed: no authorization_code grant for this account.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(op.grants("authorization_code", CLIENT_ID, "csrf-victim"), 0);
}
