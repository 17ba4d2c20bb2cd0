//! The client credentials grant against the in-process provider: client authentication,
//! caching, expiry by the clock, single-flight renewal, and errors.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oidc_testing::{ClientRegistration, Failure, TestProvider, TokenEndpointAuth, find_param};
use serde_json::json;

use super::*;

const SECRET: &str = "s3c:r et/+%";

async fn setup(method: TokenEndpointAuth) -> (TestProvider, Provider) {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::confidential("svc", SECRET, "http://127.0.0.1/unused")
            .with_auth_method(method),
    );
    let provider = Provider::builder(op.issuer()).build().unwrap();
    (op, provider)
}

/// A clock the test moves by hand, starting now.
fn manual_clock() -> (Clock, Arc<AtomicU64>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = Arc::new(AtomicU64::new(now));
    let read = Arc::clone(&secs);
    let clock: Clock =
        Arc::new(move || UNIX_EPOCH + Duration::from_secs(read.load(Ordering::SeqCst)));
    (clock, secs)
}

fn grant_requests(op: &TestProvider) -> usize {
    op.token_requests()
        .iter()
        .filter(|r| find_param(&r.params, "grant_type") == Some("client_credentials"))
        .count()
}

fn api_read() -> ServiceTokenRequest {
    ServiceTokenRequest::new()
        .with_scopes(["api:read"])
        .with_resource("https://api.example.test")
}

#[tokio::test]
async fn client_secret_basic_sends_form_urlencoded_credentials_in_the_header() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let client = ServiceClient::new(provider, "svc", SECRET);
    let token = client.token(&api_read()).await.unwrap();
    let requests = op.token_requests();
    let [request] = requests.as_slice() else {
        panic!("one token request expected: {requests:?}")
    };
    assert!(request.basic_auth);
    assert_eq!(request.basic_client_id.as_deref(), Some("svc"));
    assert_eq!(request.basic_client_secret.as_deref(), Some(SECRET));
    assert_eq!(find_param(&request.params, "client_secret"), None);
    assert_eq!(
        find_param(&request.params, "grant_type"),
        Some("client_credentials")
    );
    assert_eq!(find_param(&request.params, "scope"), Some("api:read"));
    assert_eq!(
        find_param(&request.params, "resource"),
        Some("https://api.example.test")
    );
    assert_eq!(token.scope(), Some("api:read"));
    assert!(!token.access_token().secret().is_empty());
}

#[tokio::test]
async fn client_secret_post_is_picked_when_discovery_lists_only_post() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretPost).await;
    op.set_discovery_member(
        "token_endpoint_auth_methods_supported",
        Some(json!(["private_key_jwt", "client_secret_post"])),
    );
    let client = ServiceClient::new(provider, "svc", SECRET);
    client.token(&api_read()).await.unwrap();
    let requests = op.token_requests();
    let [request] = requests.as_slice() else {
        panic!("one token request expected: {requests:?}")
    };
    assert!(!request.basic_auth);
    assert_eq!(find_param(&request.params, "client_id"), Some("svc"));
    assert_eq!(find_param(&request.params, "client_secret"), Some(SECRET));
}

#[tokio::test]
async fn explicit_auth_method_overrides_discovery() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretPost).await;
    // Discovery lists basic first; the explicit setting wins.
    let client =
        ServiceClient::new(provider, "svc", SECRET).with_auth_method(ClientAuth::ClientSecretPost);
    client.token(&api_read()).await.unwrap();
    assert!(!op.token_requests().first().unwrap().basic_auth);
}

#[tokio::test]
async fn no_common_auth_method_fails_without_a_token_request() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.set_discovery_member(
        "token_endpoint_auth_methods_supported",
        Some(json!(["private_key_jwt", "tls_client_auth"])),
    );
    let client = ServiceClient::new(provider.clone(), "svc", SECRET);
    let err = client.token(&api_read()).await.unwrap_err();
    assert!(matches!(err, FlowError::UnsupportedClientAuth), "{err:?}");
    let public = ServiceClient::new(provider, "svc", SECRET).with_auth_method(ClientAuth::None);
    let err = public.token(&api_read()).await.unwrap_err();
    assert!(matches!(err, FlowError::UnsupportedClientAuth), "{err:?}");
    assert_eq!(op.token_requests().len(), 0);
}

#[tokio::test]
async fn cached_token_is_reused_per_request_key() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let client = ServiceClient::new(provider, "svc", SECRET);
    let first = client.token(&api_read()).await.unwrap();
    let again = client
        .clone()
        .token(
            &ServiceTokenRequest::new()
                .with_resource("https://api.example.test")
                .with_scopes(["api:read", "api:read"]),
        )
        .await
        .unwrap();
    assert_eq!(first.access_token(), again.access_token());
    assert_eq!(grant_requests(&op), 1);
    // Other scopes, another resource, an audience: each its own token.
    let write = client
        .token(&api_read().with_scopes(["api:read api:write"]))
        .await
        .unwrap();
    let other = client
        .token(&api_read().with_resource("https://other.example.test"))
        .await
        .unwrap();
    let audience = client
        .token(&api_read().with_audience("orders"))
        .await
        .unwrap();
    assert_eq!(grant_requests(&op), 4);
    assert_ne!(write.access_token(), first.access_token());
    assert_ne!(other.access_token(), first.access_token());
    assert_ne!(audience.access_token(), first.access_token());
}

#[tokio::test]
async fn expired_token_is_never_served() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.set_access_token_lifetime(300);
    let (clock, secs) = manual_clock();
    let client = ServiceClient::new(provider, "svc", SECRET)
        .with_clock(clock)
        .with_renewal_margin(Duration::from_secs(30));
    let first = client.token(&api_read()).await.unwrap();
    assert_eq!(first.renew_at(), first.expires_at() - 30);
    // Before the renewal time: the cached token.
    secs.fetch_add(269, Ordering::SeqCst);
    let cached = client.token(&api_read()).await.unwrap();
    assert_eq!(cached.access_token(), first.access_token());
    assert_eq!(grant_requests(&op), 1);
    // From the renewal time on (here: well after expiry), never the old token.
    secs.fetch_add(1, Ordering::SeqCst);
    let renewed = client.token(&api_read()).await.unwrap();
    assert_ne!(renewed.access_token(), first.access_token());
    assert_eq!(grant_requests(&op), 2);
    secs.fetch_add(3600, Ordering::SeqCst);
    let later = client.token(&api_read()).await.unwrap();
    assert_ne!(later.access_token(), renewed.access_token());
    let now = i64::try_from(secs.load(Ordering::SeqCst)).unwrap();
    assert!(later.expires_at() > now);
    assert_eq!(grant_requests(&op), 3);
}

#[tokio::test]
async fn short_lived_token_is_renewed_within_its_lifetime() {
    // A margin longer than the lifetime is capped at half of it: the token is not renewed on
    // every call, and still never handed out after it expired.
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.set_access_token_lifetime(10);
    let (clock, secs) = manual_clock();
    let client = ServiceClient::new(provider, "svc", SECRET).with_clock(clock);
    let first = client.token(&api_read()).await.unwrap();
    assert_eq!(first.renew_at(), first.expires_at() - 5);
    secs.fetch_add(4, Ordering::SeqCst);
    assert_eq!(
        client.token(&api_read()).await.unwrap().access_token(),
        first.access_token()
    );
    secs.fetch_add(1, Ordering::SeqCst);
    assert_ne!(
        client.token(&api_read()).await.unwrap().access_token(),
        first.access_token()
    );
    assert_eq!(grant_requests(&op), 2);
}

#[tokio::test]
async fn zero_lifetime_token_is_refused() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.set_access_token_lifetime(0);
    let client = ServiceClient::new(provider, "svc", SECRET);
    let err = client.token(&api_read()).await.unwrap_err();
    assert!(matches!(err, FlowError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn missing_expires_in_caches_for_the_default_lifetime() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.mutate_token_response(|body| {
        body.remove("expires_in");
    });
    let (clock, secs) = manual_clock();
    let client = ServiceClient::new(provider, "svc", SECRET).with_clock(clock);
    let first = client.token(&api_read()).await.unwrap();
    let now = i64::try_from(secs.load(Ordering::SeqCst)).unwrap();
    assert_eq!(first.expires_at(), now + 60);
    secs.fetch_add(30, Ordering::SeqCst);
    assert_ne!(
        client.token(&api_read()).await.unwrap().access_token(),
        first.access_token()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_token_request() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.fail_token(Failure::Delay(Duration::from_millis(200)));
    let (clock, secs) = manual_clock();
    let client = ServiceClient::new(provider, "svc", SECRET).with_clock(clock);
    for round in 1..=2 {
        let tasks: Vec<_> = (0..32)
            .map(|_| {
                let client = client.clone();
                tokio::spawn(async move { client.token(&api_read()).await })
            })
            .collect();
        let mut tokens = Vec::new();
        for task in tasks {
            tokens.push(task.await.unwrap().unwrap());
        }
        assert!(
            tokens
                .iter()
                .all(|t| t.access_token() == tokens[0].access_token())
        );
        assert_eq!(grant_requests(&op), round, "one request per renewal");
        // Past the renewal time: the next round renews, once.
        secs.fetch_add(3600, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renewal_after_a_rejection_is_single_flight() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let client = ServiceClient::new(provider, "svc", SECRET);
    let stale = client.token(&api_read()).await.unwrap();
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (client, stale) = (client.clone(), stale.clone());
            tokio::spawn(async move { client.renew(&api_read(), &stale).await })
        })
        .collect();
    let mut renewed = Vec::new();
    for task in tasks {
        renewed.push(task.await.unwrap().unwrap());
    }
    assert!(
        renewed
            .iter()
            .all(|t| t.access_token() != stale.access_token())
    );
    assert!(
        renewed
            .iter()
            .all(|t| t.access_token() == renewed[0].access_token())
    );
    assert_eq!(grant_requests(&op), 2, "one first token, one renewal");
    // The renewed token is what the cache now serves.
    assert_eq!(
        client.token(&api_read()).await.unwrap().access_token(),
        renewed[0].access_token()
    );
}

#[tokio::test]
async fn token_endpoint_error_is_clear_and_never_shows_the_secret() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let wrong = "wrong-secret-value";
    let client = ServiceClient::new(provider, "svc", wrong);
    let err = client.token(&api_read()).await.unwrap_err();
    assert!(
        matches!(&err, FlowError::TokenEndpoint { error } if error == "invalid_client"),
        "{err:?}"
    );
    assert_eq!(err.kind(), crate::error::FlowErrorKind::Rejected);
    let shown = format!("{err} {err:?} {client:?}");
    assert!(!shown.contains(wrong), "{shown}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert_eq!(grant_requests(&op), 1);
}

#[tokio::test]
async fn malformed_token_responses_are_refused() {
    type Mutation = fn(&mut serde_json::Map<String, serde_json::Value>);
    let cases: [(&str, Mutation); 5] = [
        ("header injection in the token", |b| {
            b.insert("access_token".into(), json!("abc\r\nX-Evil: 1"));
        }),
        ("token_type mac", |b| {
            b.insert("token_type".into(), json!("mac"));
        }),
        ("error member", |b| {
            b.insert("error".into(), json!("server_error"));
        }),
        ("empty access token", |b| {
            b.insert("access_token".into(), json!(""));
        }),
        ("no access token", |b| {
            b.remove("access_token");
        }),
    ];
    for (name, mutation) in cases {
        let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
        op.mutate_token_response(mutation);
        let client = ServiceClient::new(provider, "svc", SECRET);
        let err = client.token(&api_read()).await.unwrap_err();
        assert!(
            matches!(
                err,
                FlowError::InvalidResponse(_) | FlowError::TokenEndpoint { .. }
            ),
            "{name}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failure_is_shared_by_waiting_callers_then_retried_after_the_cooldown() {
    let (op, provider) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.fail_token(Failure::Status(500));
    let client = ServiceClient::new(provider, "svc", SECRET)
        .with_failure_cooldown(Duration::from_millis(300));
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.token(&api_read()).await })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    assert_eq!(op.token_requests().len(), 1);
    op.fail_token(Failure::None);
    assert!(
        client.token(&api_read()).await.is_err(),
        "within the cooldown"
    );
    assert_eq!(op.token_requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    client.token(&api_read()).await.unwrap();
    assert_eq!(op.token_requests().len(), 2);
}

#[test]
fn negotiation_prefers_basic_and_defaults_to_it() {
    let list = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(negotiate(None).unwrap(), ClientAuth::ClientSecretBasic);
    assert_eq!(
        negotiate(Some(&list(&["client_secret_post", "client_secret_basic"]))).unwrap(),
        ClientAuth::ClientSecretBasic
    );
    assert_eq!(
        negotiate(Some(&list(&["none", "client_secret_post"]))).unwrap(),
        ClientAuth::ClientSecretPost
    );
    assert!(negotiate(Some(&list(&["none"]))).is_err());
    assert!(negotiate(Some(&[])).is_err());
}
