//! RP-initiated logout revokes the session's tokens at the provider (RFC 7009), after the
//! session is ended, without ever delaying or failing the logout; black-box against an axum
//! app and an `oidc-testing` provider.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod log_capture;
mod login_common;

use std::time::{Duration, Instant};

use log_capture::Capture;
use login_common::{App, Builder, CLIENT_ID, Jar, Resp, SECRET, USER};
use oidc_testing::RecordedTokenRequest;
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;

/// How long a test waits for the background revocation to reach the provider.
const WAIT: Duration = Duration::from_secs(5);
/// How long a test that expects no revocation watches for one.
const QUIET: Duration = Duration::from_millis(600);

/// Waits until the provider recorded `n` revocation requests (at most [`WAIT`]).
async fn revocations(app: &App, n: usize) -> Vec<RecordedTokenRequest> {
    let deadline = Instant::now() + WAIT;
    loop {
        let requests = app.op.revocation_requests();
        if requests.len() >= n || Instant::now() > deadline {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Logs in, then logs out; asserts the logout answered as before revocation existed: 303 to
/// the provider's end-session endpoint, the session gone from the store and from the browser.
async fn login_then_logout(app: &App) -> (Resp, Duration) {
    let mut jar = app.login().await;
    let cookie = jar.session().unwrap().to_owned();
    app.assert_logged_in(&jar).await;
    let started = Instant::now();
    let res = app.logout(&mut jar).await;
    let took = started.elapsed();
    assert_eq!(res.status, 303, "logout: {}", res.body);
    let location = res.location().unwrap();
    assert!(
        location.starts_with(&format!("{}?", app.op.end_session_endpoint())),
        "{location}"
    );
    assert!(!app.store_has(&cookie).await, "the session is deleted");
    app.assert_not_logged_in(&Jar::with_session(&cookie)).await;
    (res, took)
}

/// The refresh and access tokens the provider actually revoked (it records only tokens it
/// issued to this client), in order.
fn revoked_tokens(app: &App) -> (String, String) {
    let revoked = app.op.revoked_tokens();
    assert_eq!(revoked.len(), 2, "refresh and access token revoked");
    (revoked[0].clone(), revoked[1].clone())
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_then_the_access_token() {
    let (capture, _guard) = Capture::start(tracing::Level::TRACE);
    let app = App::start().await;
    login_then_logout(&app).await;

    let requests = revocations(&app, 2).await;
    assert_eq!(requests.len(), 2, "{requests:?}");
    assert_eq!(requests[0].param("token_type_hint"), Some("refresh_token"));
    assert_eq!(requests[1].param("token_type_hint"), Some("access_token"));
    for request in &requests {
        // Client authentication as at the token endpoint (client_secret_basic).
        assert!(request.basic_auth, "{request:?}");
        assert_eq!(request.basic_client_id.as_deref(), Some(CLIENT_ID));
        assert_eq!(request.basic_client_secret.as_deref(), Some(SECRET));
        assert!(request.param("client_secret").is_none(), "not in the body");
    }
    let (refresh, access) = revoked_tokens(&app);
    assert_eq!(requests[0].param("token"), Some(refresh.as_str()));
    assert_eq!(requests[1].param("token"), Some(access.as_str()));

    let logs = capture.text();
    assert!(logs.contains("tokens revoked at logout"), "{logs}");
    assert!(
        !logs.contains(&refresh) && !logs.contains(&access),
        "no token in logs"
    );
}

#[tokio::test]
async fn failing_revocation_endpoint_still_logs_out() {
    let (capture, _guard) = Capture::start(tracing::Level::TRACE);
    let app = App::start().await;
    app.op.fail_revocation(Some(503));
    login_then_logout(&app).await;

    // The revocation was attempted, refused with 503, and logged; the logout stood.
    let requests = revocations(&app, 1).await;
    assert!(!requests.is_empty(), "a revocation request was sent");
    assert_eq!(requests[0].param("token_type_hint"), Some("refresh_token"));
    let token = requests[0].param("token").unwrap().to_owned();
    let deadline = Instant::now() + WAIT;
    while !capture.text().contains("token revocation at logout failed") && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let logs = capture.text();
    assert!(logs.contains("token revocation at logout failed"), "{logs}");
    assert!(!logs.contains(&token), "no token in logs");
    assert!(app.op.revoked_tokens().is_empty());
}

/// A TCP endpoint that accepts connections and never answers. The receiver gets, for the
/// first connection, how long the client kept it open.
async fn hanging_endpoint() -> (String, tokio::sync::oneshot::Receiver<Duration>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/revoke", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let accepted = Instant::now();
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
        let _ = tx.send(accepted.elapsed());
        // Keep accepting (and holding) whatever else comes, answering nothing.
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, rx)
}

#[tokio::test]
async fn hanging_revocation_endpoint_does_not_delay_logout() {
    let timeout = Duration::from_secs(1);
    let app = Builder::new()
        .layer(move |l| l.with_revocation_timeout(timeout))
        .start()
        .await;
    let (url, closed) = hanging_endpoint().await;
    app.op
        .set_discovery_member("revocation_endpoint", Some(json!(url)));

    let (_, took) = login_then_logout(&app).await;
    // The answer does not wait for the provider at all (well under the revocation timeout).
    assert!(took < timeout, "logout took {took:?}");

    // The revocation did reach the endpoint, and was given up after the timeout: the
    // connection is closed by the client, not left hanging.
    let kept_open = tokio::time::timeout(timeout + WAIT, closed)
        .await
        .expect("the revocation request reached the endpoint and was given up")
        .unwrap();
    assert!(
        kept_open >= timeout - Duration::from_millis(200) && kept_open < timeout + WAIT,
        "the revocation was given up after {kept_open:?}"
    );
}

#[tokio::test]
async fn no_revocation_without_a_revocation_endpoint() {
    let (capture, _guard) = Capture::start(tracing::Level::TRACE);
    let app = App::start().await;
    app.op.set_discovery_member("revocation_endpoint", None);
    login_then_logout(&app).await;
    tokio::time::sleep(QUIET).await;
    assert!(app.op.revocation_requests().is_empty());
    // Not a failure to warn about: the provider simply offers no revocation.
    let logs = capture.text();
    assert!(logs.contains("the provider offers no revocation"), "{logs}");
    assert!(!logs.contains("revocation at logout failed"), "{logs}");
}

#[tokio::test]
async fn no_revocation_when_turned_off() {
    let app = Builder::new()
        .layer(|l| l.revoke_on_logout(false))
        .start()
        .await;
    login_then_logout(&app).await;
    tokio::time::sleep(QUIET).await;
    assert!(app.op.revocation_requests().is_empty());
}

#[tokio::test]
async fn backchannel_logout_revokes_nothing() {
    const BCL_PATH: &str = "/auth/backchannel-logout";
    let app = Builder::new()
        .registration(|registration| {
            let uri = registration.redirect_uris()[0].replace("/auth/callback", BCL_PATH);
            registration.with_backchannel_logout_uri(&uri)
        })
        .start()
        .await;
    let jar = app.login().await;
    let me = app.assert_logged_in(&jar).await;
    let sid = me["claims"]["sid"].as_str().unwrap().to_owned();
    let delivery = app
        .op
        .send_backchannel_logout(CLIENT_ID, Some(USER), Some(&sid))
        .await;
    assert_eq!(delivery.status, Some(200), "{delivery:?}");
    app.assert_not_logged_in(&jar).await;
    tokio::time::sleep(QUIET).await;
    assert!(app.op.revocation_requests().is_empty());
}
