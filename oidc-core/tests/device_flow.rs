//! The device authorization grant (RFC 8628) against the in-process provider: polling with
//! `authorization_pending` and `slow_down`, expiry, refusal, client authentication, the checks
//! of the provider's answer and of the ID token, cancellation.
//!
//! The sleep between polls and the client's clock are a fake pair: each sleep records its
//! length and moves the clock by it, so that expiry and intervals are exact and instant.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use oidc_core::error::FlowError;
use oidc_core::flow::{DeviceFlow, OidcClient};
use oidc_testing::{ClientRegistration, TestProvider};
use serde_json::Value;

use common::{REDIRECT_URI, client_provider, now};

/// What runs after each fake sleep.
type Hook = Box<dyn Fn(usize) + Send + Sync>;

/// A fake clock and sleep: `sleeps` records every wait, `on_sleep` runs after each (with the
/// number of sleeps so far) to play the user's part.
#[derive(Clone)]
struct FakeTime {
    now: Arc<AtomicI64>,
    sleeps: Arc<Mutex<Vec<Duration>>>,
    on_sleep: Arc<OnceLock<Hook>>,
}

impl FakeTime {
    fn new() -> Self {
        Self {
            now: Arc::new(AtomicI64::new(now())),
            sleeps: Arc::default(),
            on_sleep: Arc::default(),
        }
    }

    fn sleeps(&self) -> Vec<u64> {
        self.sleeps
            .lock()
            .unwrap()
            .iter()
            .map(Duration::as_secs)
            .collect()
    }

    fn flow(&self, client: OidcClient) -> DeviceFlow {
        let now = Arc::clone(&self.now);
        let client = client.with_clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(now.load(Ordering::SeqCst).try_into().unwrap())
        }));
        let time = self.clone();
        DeviceFlow::new(client).with_sleep(Arc::new(move |d| {
            let count = {
                let mut sleeps = time.sleeps.lock().unwrap();
                sleeps.push(d);
                sleeps.len()
            };
            time.now
                .fetch_add(i64::try_from(d.as_secs()).unwrap(), Ordering::SeqCst);
            if let Some(hook) = time.on_sleep.get() {
                hook(count);
            }
            Box::pin(async {})
        }))
    }

    fn on_sleep(&self, hook: impl Fn(usize) + Send + Sync + 'static) {
        assert!(self.on_sleep.set(Box::new(hook)).is_ok());
    }
}

async fn public_client(op: &TestProvider) -> OidcClient {
    op.register_client(ClientRegistration::public("cli", REDIRECT_URI));
    OidcClient::new(client_provider(op).build().unwrap(), "cli", REDIRECT_URI).unwrap()
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_this_and_every_later_poll() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    op.device_slow_down(2);
    let authorization = device.start().await.unwrap();
    assert_eq!(authorization.interval(), Duration::from_secs(5));
    let (user_code, provider) = (authorization.user_code().to_owned(), op.clone());
    time.on_sleep(move |n| {
        if n == 4 {
            assert!(provider.approve_device(&user_code, "ada"));
        }
    });
    let tokens = device.wait(&authorization).await.unwrap();
    assert_eq!(tokens.subject(), "ada");
    // slow_down, slow_down, pending, pending, approved.
    assert_eq!(time.sleeps(), [10, 15, 15, 15]);
    assert_eq!(authorization.interval(), Duration::from_secs(15));
    assert_eq!(op.device_poll_count(), 5);
}

#[tokio::test]
async fn authorization_pending_polls_at_the_interval_then_returns_verified_tokens() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    op.set_device_interval(7);
    let authorization = device.start().await.unwrap();
    let (user_code, provider) = (authorization.user_code().to_owned(), op.clone());
    time.on_sleep(move |n| {
        if n == 2 {
            provider.approve_device(&user_code, "grace");
        }
    });
    let tokens = device.wait(&authorization).await.unwrap();
    assert_eq!(time.sleeps(), [7, 7]);
    assert_eq!(tokens.subject(), "grace");
    assert!(tokens.refresh_token().is_some());
    assert_eq!(tokens.id_claims()["iss"], Value::from(op.issuer()));
    // Each poll: the device code grant with the device code, a public client's id, no secret.
    let polls = op.token_requests();
    assert_eq!(polls.len(), 3);
    for poll in &polls {
        assert_eq!(
            poll.param("grant_type"),
            Some("urn:ietf:params:oauth:grant-type:device_code")
        );
        assert_eq!(
            poll.param("device_code"),
            Some(authorization.device_code().secret())
        );
        assert_eq!(poll.param("client_id"), Some("cli"));
        assert!(!poll.basic_auth && poll.param("client_secret").is_none());
    }
}

#[tokio::test]
async fn device_code_expiry_stops_polling_with_a_clear_error() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    op.set_device_expires_in(20);
    let authorization = device.start().await.unwrap();
    let err = device.wait(&authorization).await.unwrap_err();
    assert!(matches!(err, FlowError::DeviceCodeExpired), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the device code expired before the user approved the login"
    );
    // Polls at 0, 5, 10 and 15 s; none at or after the expiry at 20 s.
    assert_eq!(op.device_poll_count(), 4);
    assert_eq!(time.sleeps(), [5, 5, 5, 5]);
}

#[tokio::test]
async fn max_wait_caps_a_long_expires_in() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time
        .flow(public_client(&op).await)
        .with_max_wait(Duration::from_secs(10));
    op.set_device_expires_in(100_000);
    let authorization = device.start().await.unwrap();
    assert!(authorization.expires_at() <= time.now.load(Ordering::SeqCst) + 10);
    assert!(matches!(
        device.wait(&authorization).await,
        Err(FlowError::DeviceCodeExpired)
    ));
    assert_eq!(op.device_poll_count(), 2);
}

#[tokio::test]
async fn expired_token_from_the_provider_stops_polling() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    let authorization = device.start().await.unwrap();
    let (user_code, provider) = (authorization.user_code().to_owned(), op.clone());
    time.on_sleep(move |n| {
        if n == 1 {
            provider.expire_device(&user_code);
        }
    });
    let err = device.wait(&authorization).await.unwrap_err();
    assert!(matches!(err, FlowError::DeviceCodeExpired), "{err:?}");
    assert_eq!(op.device_poll_count(), 2);
    assert_eq!(time.sleeps().len(), 1);
}

#[tokio::test]
async fn access_denied_stops_polling_without_tokens() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    let authorization = device.start().await.unwrap();
    let (user_code, provider) = (authorization.user_code().to_owned(), op.clone());
    time.on_sleep(move |n| {
        if n == 1 {
            provider.deny_device(&user_code);
        }
    });
    let err = device.wait(&authorization).await.unwrap_err();
    assert!(
        matches!(&err, FlowError::AuthorizationDenied { error, .. } if error == "access_denied"),
        "{err:?}"
    );
    assert_eq!(op.device_poll_count(), 2);
    assert_eq!(time.sleeps().len(), 1);
}

#[tokio::test]
async fn the_device_code_is_refused_after_it_was_redeemed() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    let authorization = device.start().await.unwrap();
    op.approve_device(authorization.user_code(), "ada");
    device.wait(&authorization).await.unwrap();
    assert!(matches!(
        device.poll(&authorization).await,
        Err(FlowError::TokenEndpoint { error }) if error == "invalid_grant"
    ));
}

#[tokio::test]
async fn the_device_id_token_is_validated_as_in_the_code_flow() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    op.mutate_id_token(|claims, _| {
        claims.insert("iss".into(), "https://evil.example".into());
    });
    let authorization = device.start().await.unwrap();
    op.approve_device(authorization.user_code(), "ada");
    let err = device.wait(&authorization).await.unwrap_err();
    assert!(matches!(err, FlowError::IdToken(_)), "{err:?}");

    // An ID token signed by another key is refused too.
    op.clear_mutations();
    op.sign_id_token_with(oidc_testing::IdTokenSigning::ForeignKey);
    let authorization = device.start().await.unwrap();
    op.approve_device(authorization.user_code(), "ada");
    let err = device.wait(&authorization).await.unwrap_err();
    assert!(matches!(err, FlowError::IdToken(_)), "{err:?}");
}

#[tokio::test]
async fn the_device_authorization_request_names_the_scopes_and_authenticates_the_client() {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        "tv",
        "s3cret",
        REDIRECT_URI,
    ));
    let client = OidcClient::new(client_provider(&op).build().unwrap(), "tv", REDIRECT_URI)
        .unwrap()
        .with_client_secret("s3cret")
        .with_scopes(["offline_access", "api:read"]);
    let device = FakeTime::new().flow(client);
    let authorization = device.start().await.unwrap();
    let requests = op.device_authorization_requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(
        request.param("scope"),
        Some("openid offline_access api:read")
    );
    assert_eq!(request.basic_client_id.as_deref(), Some("tv"));
    assert_eq!(request.basic_client_secret.as_deref(), Some("s3cret"));
    assert!(request.param("client_secret").is_none());
    op.approve_device(authorization.user_code(), "ada");
    device.wait(&authorization).await.unwrap();
    assert!(op.token_requests()[0].basic_auth);
}

#[tokio::test]
async fn a_provider_without_the_endpoint_gives_a_clear_error_and_nothing_is_sent() {
    let op = TestProvider::start().await;
    op.set_discovery_member("device_authorization_endpoint", None);
    let device = FakeTime::new().flow(public_client(&op).await);
    let err = device.start().await.unwrap_err();
    assert!(
        matches!(
            err,
            FlowError::MissingEndpoint("device authorization endpoint")
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "the provider has no device authorization endpoint"
    );
    assert!(op.device_authorization_requests().is_empty());

    // Set by hand, the endpoint is used.
    let device = device
        .with_endpoint(op.device_authorization_endpoint())
        .unwrap();
    device.start().await.unwrap();
    assert_eq!(op.device_authorization_requests().len(), 1);
}

#[tokio::test]
async fn a_user_code_with_terminal_escapes_is_refused_before_polling() {
    let op = TestProvider::start().await;
    let device = FakeTime::new().flow(public_client(&op).await);
    for code in [
        Value::from("\u{1b}]8;;https://evil.example\u{7}ABCD\u{1b}]8;;\u{7}"),
        Value::from("ABCD\r\nOpen https://evil.example"),
        Value::from(""),
        Value::from("A".repeat(65)),
    ] {
        op.clear_mutations();
        let hostile = code.clone();
        op.mutate_device_authorization(move |body| {
            body.insert("user_code".into(), hostile.clone());
        });
        let err = device.start().await.unwrap_err();
        assert!(
            matches!(err, FlowError::InvalidResponse(_)),
            "{code}: {err:?}"
        );
    }
    assert_eq!(op.device_poll_count(), 0);
}

#[tokio::test]
async fn a_verification_uri_on_plain_http_or_of_another_scheme_is_refused() {
    let op = TestProvider::start().await;
    let device = FakeTime::new().flow(public_client(&op).await);
    for (member, uri) in [
        ("verification_uri", "http://evil.example/device"),
        ("verification_uri", "javascript:alert(1)"),
        (
            "verification_uri_complete",
            "http://evil.example/device?user_code=X",
        ),
    ] {
        let device_mutation = (member.to_owned(), uri.to_owned());
        op.mutate_device_authorization(move |body| {
            body.insert(device_mutation.0.clone(), device_mutation.1.clone().into());
        });
        let err = device.start().await.unwrap_err();
        assert!(
            matches!(err, FlowError::InvalidResponse(_)),
            "{uri}: {err:?}"
        );
        op.clear_mutations();
    }
}

#[tokio::test]
async fn a_zero_interval_is_raised_to_one_second() {
    let op = TestProvider::start().await;
    let time = FakeTime::new();
    let device = time.flow(public_client(&op).await);
    op.set_device_interval(0);
    let authorization = device.start().await.unwrap();
    assert_eq!(authorization.interval(), Duration::from_secs(1));
    let (user_code, provider) = (authorization.user_code().to_owned(), op.clone());
    time.on_sleep(move |n| {
        if n == 3 {
            provider.approve_device(&user_code, "ada");
        }
    });
    device.wait(&authorization).await.unwrap();
    assert_eq!(time.sleeps(), [1, 1, 1]);
}

#[tokio::test]
async fn debug_shows_neither_the_device_code_nor_the_user_code() {
    let op = TestProvider::start().await;
    let device = FakeTime::new().flow(public_client(&op).await);
    let authorization = device.start().await.unwrap();
    let debug = format!("{authorization:?} {device:?}");
    assert!(!debug.contains(authorization.device_code().secret()));
    assert!(!debug.contains(authorization.user_code()));
    assert!(debug.contains(authorization.verification_uri()));
}

#[tokio::test]
async fn dropping_the_wait_cancels_the_login() {
    let op = TestProvider::start().await;
    op.set_device_interval(1);
    // The real tokio sleep.
    let device = DeviceFlow::new(public_client(&op).await);
    let authorization = device.start().await.unwrap();
    let cancelled = tokio::time::timeout(Duration::from_millis(300), device.wait(&authorization));
    assert!(cancelled.await.is_err());
    assert_eq!(op.device_poll_count(), 1);
    op.approve_device(authorization.user_code(), "ada");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        op.device_poll_count(),
        1,
        "no poll after the wait was dropped"
    );
}
