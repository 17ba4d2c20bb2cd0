//! Token exchange (RFC 8693) against the in-process provider: the request on the wire, client
//! authentication, the checks of the answer (each hostile answer refused, with no token in
//! the error), caching per user and request, single-flight, the subject token's lifetime, and
//! renewal after a downstream 401.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_core::Provider;
use oidc_core::error::{FlowError, FlowErrorKind};
use oidc_core::flow::{ExchangeRequest, ExchangeTokenType, ExchangedToken, Secret, TokenExchanger};
use oidc_testing::{
    ClientRegistration, RecordedTokenRequest, TestProvider, TokenEndpointAuth, TokenExchangeAnswer,
    find_param,
};
use serde_json::{Value, json};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const SECRET: &str = "app:s3c ret/+%";
const ORDERS: &str = "https://orders.example.test";

async fn setup(method: TokenEndpointAuth) -> (TestProvider, TokenExchanger) {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::confidential("app", SECRET, "http://127.0.0.1/unused")
            .with_auth_method(method),
    );
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let exchanger = TokenExchanger::new(provider, "app", SECRET);
    (op, exchanger)
}

fn orders() -> ExchangeRequest {
    ExchangeRequest::new()
        .with_audience(ORDERS)
        .with_scopes(["orders:read"])
}

fn exchanges(op: &TestProvider) -> Vec<RecordedTokenRequest> {
    op.token_requests()
        .into_iter()
        .filter(|r| find_param(&r.params, "grant_type") == Some(GRANT))
        .collect()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// A refused exchange: `err` says why, and neither the subject token nor the provider's
/// description is in its `Display` or `Debug`.
fn assert_clean(err: &FlowError, subject: &Secret) {
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains(subject.secret()), "{text}");
        assert!(!text.contains("refused by the test knob"), "{text}");
        assert!(!text.contains("AAAAAAAAAAAAAAAA"), "{text}");
    }
}

/// A clock the test moves by hand, starting now.
fn manual_clock() -> (Arc<dyn Fn() -> SystemTime + Send + Sync>, Arc<AtomicI64>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = Arc::new(AtomicI64::new(i64::try_from(now).unwrap()));
    let read = Arc::clone(&secs);
    let clock: Arc<dyn Fn() -> SystemTime + Send + Sync> = Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(read.load(Ordering::SeqCst)).unwrap())
    });
    (clock, secs)
}

#[tokio::test]
async fn exchange_sends_rfc_8693_parameters_and_gets_the_users_token_for_the_audience() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let request = orders().with_resource("https://orders.example.test/v2");
    let token = exchanger.exchange(&subject, &request).await.unwrap();

    let sent = exchanges(&op);
    let [sent] = sent.as_slice() else {
        panic!("one exchange expected: {sent:?}")
    };
    assert!(sent.basic_auth);
    assert_eq!(sent.basic_client_id.as_deref(), Some("app"));
    assert_eq!(sent.basic_client_secret.as_deref(), Some(SECRET));
    assert_eq!(sent.param("client_secret"), None);
    assert_eq!(sent.param("subject_token"), Some(subject.secret()));
    assert_eq!(sent.param("subject_token_type"), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(sent.param("requested_token_type"), Some(ACCESS_TOKEN_TYPE));
    assert_eq!(sent.param("audience"), Some(ORDERS));
    assert_eq!(
        sent.param("resource"),
        Some("https://orders.example.test/v2")
    );
    assert_eq!(sent.param("scope"), Some("orders:read"));
    assert_eq!(
        sent.params
            .iter()
            .filter(|(k, _)| k == "grant_type")
            .count(),
        1,
        "one grant_type: {sent:?}"
    );

    assert_ne!(token.access_token(), &subject);
    assert_eq!(token.issued_token_type(), ExchangeTokenType::AccessToken);
    assert_eq!(token.scope(), Some("orders:read"));
    let issued = claims(token.access_token().secret());
    assert_eq!(issued["sub"], "ada");
    assert_eq!(
        issued["aud"],
        json!([ORDERS, "https://orders.example.test/v2"])
    );
    assert_eq!(issued["act"]["sub"], "app");
    assert!(!format!("{token:?}").contains(token.access_token().secret()));
}

#[tokio::test]
async fn client_secret_post_is_used_when_discovery_lists_only_post() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretPost).await;
    op.set_discovery_member(
        "token_endpoint_auth_methods_supported",
        Some(json!(["client_secret_post"])),
    );
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    exchanger.exchange(&subject, &orders()).await.unwrap();
    let sent = exchanges(&op);
    assert!(!sent[0].basic_auth);
    assert_eq!(sent[0].param("client_id"), Some("app"));
    assert_eq!(sent[0].param("client_secret"), Some(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_exchange_is_reused_per_user_and_request_and_concurrent_calls_send_one() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let ada = Secret::new(op.issue_access_token("app", "ada"));
    let bob = Secret::new(op.issue_access_token("app", "bob"));
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (exchanger, ada) = (exchanger.clone(), ada.clone());
        calls.spawn(async move { exchanger.exchange(&ada, &orders()).await.unwrap() });
    }
    let tokens: Vec<ExchangedToken> = calls.join_all().await;
    assert_eq!(exchanges(&op).len(), 1, "single-flight");
    assert!(
        tokens
            .iter()
            .all(|t| t.access_token() == tokens[0].access_token())
    );

    // Another user: another token, never Ada's.
    let bobs = exchanger.exchange(&bob, &orders()).await.unwrap();
    assert_ne!(bobs.access_token(), tokens[0].access_token());
    assert_eq!(claims(bobs.access_token().secret())["sub"], "bob");
    // Another request of the same user: another token.
    let other = ExchangeRequest::new().with_audience("https://billing.example.test");
    let billing = exchanger.exchange(&ada, &other).await.unwrap();
    assert_ne!(billing.access_token(), tokens[0].access_token());
    assert_eq!(exchanges(&op).len(), 3);
    // Cached now: no more requests.
    exchanger.exchange(&ada, &orders()).await.unwrap();
    exchanger.exchange(&bob, &orders()).await.unwrap();
    assert_eq!(exchanges(&op).len(), 3);
}

#[tokio::test]
async fn revoked_subject_token_is_refused_with_invalid_grant() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.revoke_user("ada");
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    assert_eq!(err.kind(), FlowErrorKind::Rejected);
    assert_clean(&err, &subject);
}

#[tokio::test]
async fn unknown_subject_token_is_refused_with_invalid_grant() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    // Signed by the provider but never issued by its token endpoint.
    let subject = Secret::new(op.token().claim("sub", "ada").sign());
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    assert_clean(&err, &subject);
}

#[tokio::test]
async fn oauth_error_answers_become_token_endpoint_errors_with_their_code() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let exchanger = exchanger.with_failure_cooldown(Duration::ZERO);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    for code in [
        "invalid_target",
        "unauthorized_client",
        "invalid_client",
        "invalid_scope",
    ] {
        op.set_token_exchange_answer(TokenExchangeAnswer::Error(code.to_owned()));
        let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
        assert!(
            matches!(&err, FlowError::TokenEndpoint { error } if error == code),
            "{code}: {err:?}"
        );
        assert_eq!(err.kind(), FlowErrorKind::Rejected);
        assert_clean(&err, &subject);
    }
}

#[tokio::test]
async fn malformed_error_code_is_not_passed_on() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.set_token_exchange_answer(TokenExchangeAnswer::Error("bad\u{1b}[31m\"code".to_owned()));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(matches!(err, FlowError::InvalidResponse(_)), "{err:?}");
    assert!(!err.to_string().contains('\u{1b}'));
}

/// A knob's answer is refused as an invalid response, and nothing is cached as a token: the
/// same call with the provider fixed sends a new request.
async fn assert_refused(answer: TokenExchangeAnswer, request: ExchangeRequest) {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let exchanger = exchanger.with_failure_cooldown(Duration::ZERO);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.set_token_exchange_answer(answer.clone());
    let err = exchanger.exchange(&subject, &request).await.unwrap_err();
    assert!(
        matches!(err, FlowError::InvalidResponse(_)),
        "{answer:?}: {err:?}"
    );
    assert_eq!(err.kind(), FlowErrorKind::ProviderFailure);
    assert_clean(&err, &subject);
    op.set_token_exchange_answer(TokenExchangeAnswer::Normal);
    exchanger.exchange(&subject, &request).await.unwrap();
    assert_eq!(
        exchanges(&op).len(),
        2,
        "{answer:?}: the refusal was not cached"
    );
}

#[tokio::test]
async fn wrong_issued_token_type_is_refused() {
    for wrong in [
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:jwt",
        "access_token",
        "",
    ] {
        assert_refused(
            TokenExchangeAnswer::IssuedTokenType(wrong.to_owned()),
            orders(),
        )
        .await;
    }
}

#[tokio::test]
async fn missing_issued_token_type_is_refused() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.mutate_token_response(|body| {
        body.remove("issued_token_type");
    });
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(matches!(err, FlowError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn token_type_other_than_bearer_is_refused() {
    for wrong in ["DPoP", "mac", "N_A", ""] {
        assert_refused(TokenExchangeAnswer::TokenType(wrong.to_owned()), orders()).await;
    }
}

#[tokio::test]
async fn bearer_in_any_case_is_accepted() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.set_token_exchange_answer(TokenExchangeAnswer::TokenType("bEaReR".to_owned()));
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    exchanger.exchange(&subject, &orders()).await.unwrap();
}

#[tokio::test]
async fn jwt_requested_accepts_n_a_token_type() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let request = orders().with_requested_token_type(ExchangeTokenType::Jwt);
    let token = exchanger.exchange(&subject, &request).await.unwrap();
    assert_eq!(token.issued_token_type(), ExchangeTokenType::Jwt);
    assert_eq!(
        exchanges(&op)[0].param("requested_token_type"),
        Some("urn:ietf:params:oauth:token-type:jwt")
    );
}

#[tokio::test]
async fn huge_exchanged_token_is_refused() {
    assert_refused(TokenExchangeAnswer::HugeToken(16 * 1024 + 1), orders()).await;
}

#[tokio::test]
async fn token_at_the_size_limit_is_accepted_and_the_limit_is_configurable() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.set_token_exchange_answer(TokenExchangeAnswer::HugeToken(16 * 1024));
    exchanger.exchange(&subject, &orders()).await.unwrap();
    let small = exchanger.clone().with_max_token_size(1024);
    let err = small
        .exchange(&subject, &orders().with_audience("other"))
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn echoed_subject_token_is_refused() {
    assert_refused(TokenExchangeAnswer::EchoSubjectToken, orders()).await;
}

#[tokio::test]
async fn insane_expires_in_is_refused() {
    for wrong in [
        json!(0),
        json!(-60),
        json!(1.5),
        json!("soon"),
        json!(10 * 366 * 24 * 3600),
        json!(true),
    ] {
        assert_refused(TokenExchangeAnswer::ExpiresIn(wrong), orders()).await;
    }
}

#[tokio::test]
async fn error_member_in_a_200_answer_is_refused() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.mutate_token_response(|body| {
        body.insert("error".into(), "invalid_grant".into());
    });
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    assert_clean(&err, &subject);
}

#[tokio::test]
async fn provider_failure_is_not_cached_as_a_token() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let exchanger = exchanger.with_failure_cooldown(Duration::ZERO);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.fail_token(oidc_testing::Failure::Status(503));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert_eq!(err.kind(), FlowErrorKind::ProviderFailure);
    assert_clean(&err, &subject);
    op.fail_token(oidc_testing::Failure::None);
    exchanger.exchange(&subject, &orders()).await.unwrap();
}

#[tokio::test]
async fn failure_is_remembered_for_the_cooldown() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.set_token_exchange_answer(TokenExchangeAnswer::Error("invalid_target".into()));
    for _ in 0..5 {
        exchanger.exchange(&subject, &orders()).await.unwrap_err();
    }
    assert_eq!(exchanges(&op).len(), 1);
}

#[tokio::test]
async fn expired_jwt_subject_token_is_not_sent() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    op.set_access_token_lifetime(-10);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(matches!(err, FlowError::SubjectTokenExpired), "{err:?}");
    assert_eq!(err.kind(), FlowErrorKind::Rejected);
    assert!(exchanges(&op).is_empty(), "no request was sent");
}

#[tokio::test]
async fn exchanged_token_is_not_reused_past_the_subject_tokens_expiry() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let (clock, secs) = manual_clock();
    let exchanger = exchanger.with_clock(clock);
    // The provider lets the subject token live 100 s, the exchanged one at most as long.
    op.set_access_token_lifetime(100);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let start = secs.load(Ordering::SeqCst);
    // The caller knows an earlier expiry (the login's expires_in): 40 s.
    let token = exchanger
        .exchange_with_expiry(&subject, start + 40, &orders())
        .await
        .unwrap();
    assert!(token.renew_at() <= start + 40, "{token:?}");
    secs.store(start + 39, Ordering::SeqCst);
    exchanger
        .exchange_with_expiry(&subject, start + 40, &orders())
        .await
        .unwrap();
    assert_eq!(exchanges(&op).len(), 1, "still cached");
    secs.store(start + 40, Ordering::SeqCst);
    let err = exchanger
        .exchange_with_expiry(&subject, start + 40, &orders())
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::SubjectTokenExpired), "{err:?}");
    assert_eq!(exchanges(&op).len(), 1, "nothing sent, nothing served");
}

#[tokio::test]
async fn jwt_subject_exp_bounds_the_cache() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let (clock, secs) = manual_clock();
    let exchanger = exchanger
        .with_clock(clock)
        .with_renewal_margin(Duration::ZERO);
    op.set_access_token_lifetime(50);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let subject_exp = claims(subject.secret())["exp"].as_i64().unwrap();
    // The provider's exchanged tokens live 300 s; the subject's exp caps their reuse.
    op.set_token_exchange_answer(TokenExchangeAnswer::ExpiresIn(json!(300)));
    let token = exchanger.exchange(&subject, &orders()).await.unwrap();
    assert!(token.renew_at() <= subject_exp, "{token:?}");
    secs.store(subject_exp, Ordering::SeqCst);
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(matches!(err, FlowError::SubjectTokenExpired), "{err:?}");
    assert_eq!(exchanges(&op).len(), 1);
}

#[tokio::test]
async fn exchanged_token_is_renewed_before_its_own_expiry() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let (clock, secs) = manual_clock();
    let exchanger = exchanger.with_clock(clock);
    op.set_access_token_lifetime(3600);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    op.set_token_exchange_answer(TokenExchangeAnswer::ExpiresIn(json!(120)));
    let first = exchanger.exchange(&subject, &orders()).await.unwrap();
    let start = secs.load(Ordering::SeqCst);
    assert_eq!(first.renew_at(), first.expires_at() - 30);
    secs.store(first.renew_at() - 1, Ordering::SeqCst);
    exchanger.exchange(&subject, &orders()).await.unwrap();
    assert_eq!(exchanges(&op).len(), 1);
    secs.store(start + 90, Ordering::SeqCst);
    exchanger.exchange(&subject, &orders()).await.unwrap();
    assert_eq!(exchanges(&op).len(), 2, "renewed at its renewal time");
}

#[tokio::test]
async fn renew_bypasses_the_rejected_cached_token_once() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let first = exchanger.exchange(&subject, &orders()).await.unwrap();
    // Tokens minted in the same second are equal: make the second one differ.
    op.mutate_token_response(|body| {
        let token = body["access_token"].as_str().unwrap().to_owned();
        body.insert("access_token".into(), format!("{token}x").into());
    });
    let fresh = exchanger.renew(&subject, &orders(), &first).await.unwrap();
    assert_ne!(fresh.access_token(), first.access_token());
    assert_eq!(exchanges(&op).len(), 2);
    // Another caller that saw the old token refused gets the new one, no third exchange.
    let again = exchanger.renew(&subject, &orders(), &first).await.unwrap();
    assert_eq!(again.access_token(), fresh.access_token());
    assert_eq!(
        exchanger
            .exchange(&subject, &orders())
            .await
            .unwrap()
            .access_token(),
        fresh.access_token()
    );
    assert_eq!(exchanges(&op).len(), 2);
}

#[tokio::test]
async fn public_client_auth_is_refused_without_a_request() {
    let (op, exchanger) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let exchanger = exchanger.with_auth_method(oidc_core::flow::ClientAuth::None);
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(matches!(err, FlowError::UnsupportedClientAuth), "{err:?}");
    assert!(exchanges(&op).is_empty());
}

#[tokio::test]
async fn wrong_client_secret_is_invalid_client() {
    let (op, _) = setup(TokenEndpointAuth::ClientSecretBasic).await;
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let exchanger = TokenExchanger::new(provider, "app", "wrong");
    let subject = Secret::new(op.issue_access_token("app", "ada"));
    let err = exchanger.exchange(&subject, &orders()).await.unwrap_err();
    assert!(
        matches!(&err, FlowError::TokenEndpoint { error } if error == "invalid_client"),
        "{err:?}"
    );
    assert!(!format!("{err:?}{err}").contains("wrong"));
}
