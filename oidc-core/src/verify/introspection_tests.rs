#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use oidc_testing::TestProvider;
use serde_json::{Value, json};

use super::Introspector;
use crate::claims::AdditionalClaims;
use crate::error::VerifyError;
use crate::flow::ClientAuth;
use crate::provider::Provider;
use crate::verify::{AccessTokenVerifier, Clock};

const TOKEN: &str = "opaque-2YotnFZFEjr1zCsicMWpAA";

struct Setup {
    tp: TestProvider,
    verifier: AccessTokenVerifier,
    now: Arc<AtomicI64>,
}

impl Setup {
    fn now(&self) -> i64 {
        self.now.load(Ordering::SeqCst)
    }

    fn advance(&self, secs: i64) {
        self.now.fetch_add(secs, Ordering::SeqCst);
    }

    /// A valid answer for this provider and the default audience.
    fn active(&self) -> Value {
        json!({
            "active": true,
            "iss": self.tp.issuer(),
            "aud": "api://default",
            "sub": "user-1",
            "client_id": "web",
            "scope": "api:read api:write",
            "exp": self.now() + 300,
            "iat": self.now(),
            "token_type": "Bearer",
        })
    }

    fn answer(&self, change: impl FnOnce(&mut serde_json::Map<String, Value>)) {
        let mut answer = self.active();
        change(answer.as_object_mut().unwrap());
        self.tp.set_introspection(TOKEN, answer);
    }

    async fn verify(&self) -> Result<crate::Claims<AdditionalClaims>, VerifyError> {
        let result = self.verifier.verify::<AdditionalClaims>(TOKEN).await;
        if let Err(error) = &result {
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(TOKEN), "the token leaked into {shown}");
        }
        result
    }
}

async fn setup_with(introspector: Introspector) -> Setup {
    let tp = TestProvider::start().await;
    let now = Arc::new(AtomicI64::new(crate::clock::unix_now(None)));
    let read = Arc::clone(&now);
    let clock: Clock = Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(u64::try_from(read.load(Ordering::SeqCst)).unwrap())
    });
    let provider = Provider::builder(tp.issuer()).build().unwrap();
    let verifier = AccessTokenVerifier::new(provider, "api://default")
        .with_clock(clock)
        .with_introspection(introspector);
    Setup { tp, verifier, now }
}

async fn setup() -> Setup {
    setup_with(Introspector::new("orders-api", "rs-s3cret")).await
}

#[tokio::test]
async fn active_opaque_token_is_accepted_with_subject_and_scopes() {
    let s = setup().await;
    s.tp.set_introspection(TOKEN, s.active());
    let claims = s.verify().await.unwrap();
    assert_eq!(claims.subject(), "user-1");
    assert_eq!(claims.issuer(), s.tp.issuer());
    assert!(claims.scopes().contains("api:read"));
    assert!(claims.scopes().contains("api:write"));
    assert_eq!(claims.custom().get("client_id"), Some(&json!("web")));
    assert_eq!(s.tp.introspection_count(), 1);
}

#[tokio::test]
async fn inactive_token_is_refused() {
    let s = setup().await;
    // Not known to the endpoint: {"active": false}.
    let error = s.verify().await.unwrap_err();
    assert!(matches!(error, VerifyError::Inactive), "{error:?}");
    assert!(!error.is_unavailable());
}

#[tokio::test]
async fn active_that_is_not_json_true_is_refused() {
    for active in [
        json!("true"),
        json!(1),
        json!(null),
        json!([true]),
        json!({}),
    ] {
        let s = setup().await;
        s.answer(|m| {
            m.insert("active".into(), active.clone());
        });
        assert!(
            matches!(s.verify().await, Err(VerifyError::Inactive)),
            "active: {active}"
        );
    }
    let s = setup().await;
    s.answer(|m| {
        m.remove("active");
    });
    assert!(matches!(s.verify().await, Err(VerifyError::Inactive)));
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let s = setup().await;
    s.answer(|m| {
        m.insert("aud".into(), json!(["api://other", ""]));
    });
    assert!(matches!(
        s.verify().await,
        Err(VerifyError::InvalidAudience)
    ));
    let s = setup().await;
    s.answer(|m| {
        m.remove("aud");
    });
    assert!(matches!(
        s.verify().await,
        Err(VerifyError::MissingClaim("aud"))
    ));
}

#[tokio::test]
async fn missing_or_expired_exp_is_refused() {
    let s = setup().await;
    s.answer(|m| {
        m.remove("exp");
    });
    assert!(matches!(
        s.verify().await,
        Err(VerifyError::MissingClaim("exp"))
    ));
    let s = setup().await;
    let now = s.now();
    // Expired even within the JWT leeway: the endpoint's `exp` must be in the future.
    s.answer(|m| {
        m.insert("exp".into(), json!(now - 1));
    });
    assert!(matches!(s.verify().await, Err(VerifyError::Expired)));
    let s = setup().await;
    s.answer(|m| {
        m.insert("exp".into(), json!("9999999999"));
    });
    assert!(matches!(
        s.verify().await,
        Err(VerifyError::InvalidClaim("exp"))
    ));
}

#[tokio::test]
async fn future_nbf_or_iat_is_refused() {
    let s = setup().await;
    let now = s.now();
    s.answer(|m| {
        m.insert("nbf".into(), json!(now + 120));
    });
    assert!(matches!(s.verify().await, Err(VerifyError::NotYetValid)));
    let s = setup().await;
    s.answer(|m| {
        m.insert("iat".into(), json!(now + 120));
    });
    assert!(matches!(s.verify().await, Err(VerifyError::IssuedInFuture)));
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let s = setup().await;
    s.answer(|m| {
        m.insert("iss".into(), json!("https://evil.example"));
    });
    assert!(matches!(s.verify().await, Err(VerifyError::InvalidIssuer)));
}

#[tokio::test]
async fn refresh_token_or_other_token_type_is_refused() {
    for token_type in ["refresh_token", "N_A", "DPoP"] {
        let s = setup().await;
        s.answer(|m| {
            m.insert("token_type".into(), json!(token_type));
        });
        assert!(
            matches!(s.verify().await, Err(VerifyError::NotAnAccessToken)),
            "{token_type}"
        );
    }
    let s = setup().await;
    s.answer(|m| {
        m.insert("cnf".into(), json!({"jkt": "abc"}));
    });
    assert!(matches!(
        s.verify().await,
        Err(VerifyError::SenderConstrained)
    ));
}

#[tokio::test]
async fn missing_subject_falls_back_to_client_id_only() {
    let s = setup().await;
    s.answer(|m| {
        m.remove("sub");
    });
    assert_eq!(s.verify().await.unwrap().subject(), "web");
    let s = setup().await;
    s.answer(|m| {
        m.remove("sub");
        m.remove("client_id");
    });
    assert!(matches!(
        s.verify().await,
        Err(VerifyError::MissingClaim("sub"))
    ));
}

#[tokio::test]
async fn jwt_is_never_sent_to_introspection() {
    let s = setup().await;
    let good = s.tp.token().sign();
    assert_eq!(
        s.verifier
            .verify::<AdditionalClaims>(&good)
            .await
            .unwrap()
            .subject(),
        "user-1"
    );
    let forged = s.tp.token().sign_with_foreign_key();
    assert!(matches!(
        s.verifier.verify::<AdditionalClaims>(&forged).await,
        Err(VerifyError::InvalidSignature)
    ));
    assert_eq!(s.tp.introspection_count(), 0);
}

#[tokio::test]
async fn opaque_token_without_introspection_is_malformed_and_not_sent() {
    let s = setup().await;
    let plain = AccessTokenVerifier::new(
        Provider::builder(s.tp.issuer()).build().unwrap(),
        "api://default",
    );
    assert!(matches!(
        plain.verify::<AdditionalClaims>(TOKEN).await,
        Err(VerifyError::Malformed)
    ));
    assert_eq!(s.tp.introspection_count(), 0);
}

#[tokio::test]
async fn second_call_is_answered_from_cache_without_request() {
    let s = setup().await;
    s.tp.set_introspection(TOKEN, s.active());
    s.verify().await.unwrap();
    s.verify().await.unwrap();
    s.advance(59);
    s.verify().await.unwrap();
    assert_eq!(s.tp.introspection_count(), 1);
    // At most 60 s by the verifier's clock: asked again.
    s.advance(1);
    s.verify().await.unwrap();
    assert_eq!(s.tp.introspection_count(), 2);
}

#[tokio::test]
async fn positive_cache_never_outlives_exp() {
    let s = setup().await;
    let now = s.now();
    s.answer(|m| {
        m.insert("exp".into(), json!(now + 5));
    });
    s.verify().await.unwrap();
    s.advance(5);
    // The endpoint now says expired (same answer, `exp` passed): refused, not a cached yes.
    assert!(matches!(s.verify().await, Err(VerifyError::Expired)));
    assert_eq!(s.tp.introspection_count(), 2);
}

#[tokio::test]
async fn negative_cache_holds_ten_seconds_by_the_verifier_clock() {
    let s = setup().await;
    assert!(matches!(s.verify().await, Err(VerifyError::Inactive)));
    // The token becomes active at the provider: still refused from the cache for 10 s.
    s.tp.set_introspection(TOKEN, s.active());
    s.advance(9);
    assert!(matches!(s.verify().await, Err(VerifyError::Inactive)));
    assert_eq!(s.tp.introspection_count(), 1);
    s.advance(1);
    s.verify().await.unwrap();
    assert_eq!(s.tp.introspection_count(), 2);
}

#[tokio::test]
async fn endpoint_error_is_unavailable_and_not_cached() {
    let s = setup().await;
    s.tp.set_introspection(TOKEN, s.active());
    for status in [500, 503, 401, 400] {
        s.tp.fail_introspection(Some(status));
        let error = s.verify().await.unwrap_err();
        assert!(
            matches!(error, VerifyError::IntrospectionUnavailable(_)),
            "{status}: {error:?}"
        );
        assert!(error.is_unavailable());
    }
    assert_eq!(s.tp.introspection_count(), 4);
    s.tp.fail_introspection(None);
    s.verify().await.unwrap();
    assert_eq!(s.tp.introspection_count(), 5);
}

#[tokio::test]
async fn unreachable_endpoint_is_unavailable() {
    let s = setup_with(
        Introspector::new("orders-api", "rs-s3cret").with_endpoint("http://127.0.0.1:9/introspect"),
    )
    .await;
    let error = s.verify().await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
}

#[tokio::test]
async fn malformed_answers_are_unavailable() {
    let s = setup().await;
    // A duplicated `active`: refused rather than last-one-wins.
    let now = s.now();
    let issuer = s.tp.issuer();
    for bad in [
        json!([{"active": true}]),
        json!("active"),
        // Over the 64 KiB cap.
        json!({"active": true, "iss": issuer, "aud": "api://default", "sub": "u",
               "exp": now + 300, "pad": "x".repeat(70 * 1024)}),
    ] {
        s.tp.set_introspection(TOKEN, bad.clone());
        let error = s.verify().await.unwrap_err();
        assert!(
            matches!(error, VerifyError::IntrospectionUnavailable(_)),
            "{error:?}"
        );
    }
    let error = super::parse(br#"{"active":false,"active":true}"#).unwrap_err();
    assert!(matches!(error, VerifyError::IntrospectionUnavailable(_)));
    assert!(super::parse(br#"{"active":true} {}"#).is_err());
}

#[tokio::test]
async fn concurrent_requests_send_one_introspection() {
    let s = setup().await;
    s.tp.set_introspection(TOKEN, s.active());
    let calls = (0..16).map(|_| {
        let v = s.verifier.clone();
        tokio::spawn(async move { v.verify::<AdditionalClaims>(TOKEN).await })
    });
    for call in calls {
        call.await.unwrap().unwrap();
    }
    assert_eq!(s.tp.introspection_count(), 1);
}

#[tokio::test]
async fn client_secret_basic_on_the_wire() {
    let s = setup_with(
        Introspector::new("orders api", "rs:s3cret")
            .with_auth_method(ClientAuth::ClientSecretBasic),
    )
    .await;
    s.tp.set_introspection(TOKEN, s.active());
    s.verify().await.unwrap();
    let request = &s.tp.introspection_requests()[0];
    // RFC 6749 §2.3.1: id and secret form-urlencoded before the Basic encoding.
    let expected = base64::engine::general_purpose::STANDARD.encode("orders+api:rs%3As3cret");
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Basic {expected}").as_str())
    );
    assert_eq!(request.param("client_secret"), None);
    assert_eq!(request.param("token"), Some(TOKEN));
    assert_eq!(request.param("token_type_hint"), Some("access_token"));
    assert_eq!(request.query, None, "nothing in the URL");
}

#[tokio::test]
async fn client_secret_post_on_the_wire() {
    let s = setup_with(
        Introspector::new("orders-api", "rs-s3cret").with_auth_method(ClientAuth::ClientSecretPost),
    )
    .await;
    s.tp.set_introspection(TOKEN, s.active());
    s.verify().await.unwrap();
    let request = &s.tp.introspection_requests()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(request.param("client_id"), Some("orders-api"));
    assert_eq!(request.param("client_secret"), Some("rs-s3cret"));
    assert_eq!(request.param("token"), Some(TOKEN));
    assert_eq!(request.query, None);
}

#[tokio::test]
async fn auth_method_is_negotiated_from_discovery() {
    let s = setup().await;
    s.tp.set_discovery_member(
        "introspection_endpoint_auth_methods_supported",
        Some(json!(["client_secret_post"])),
    );
    s.tp.set_introspection(TOKEN, s.active());
    s.verify().await.unwrap();
    let request = &s.tp.introspection_requests()[0];
    assert_eq!(request.authorization, None);
    assert_eq!(request.param("client_secret"), Some("rs-s3cret"));
    // Public-client auth is never used to introspect.
    let s = setup_with(Introspector::new("a", "b").with_auth_method(ClientAuth::None)).await;
    assert!(s.verify().await.unwrap_err().is_unavailable());
    assert_eq!(s.tp.introspection_count(), 0);
}

#[tokio::test]
async fn secret_and_token_are_not_in_debug() {
    let s = setup().await;
    let shown = format!("{:?}", s.verifier);
    assert!(!shown.contains("rs-s3cret"), "{shown}");
    assert!(shown.contains("orders-api"));
}

#[tokio::test]
async fn several_issuers_introspect_at_the_first_with_an_introspector() {
    let s = setup().await;
    let other = TestProvider::start().await;
    let combined = AccessTokenVerifier::any_of([
        AccessTokenVerifier::new(
            Provider::builder(other.issuer()).build().unwrap(),
            "api://default",
        ),
        s.verifier.clone(),
    ])
    .unwrap();
    s.tp.set_introspection(TOKEN, s.active());
    // Not refused as an unknown issuer by the synchronous cache lookup.
    assert!(combined.verify_cached::<AdditionalClaims>(TOKEN).is_none());
    let claims = combined.verify::<AdditionalClaims>(TOKEN).await.unwrap();
    assert_eq!(claims.subject(), "user-1");
    assert_eq!(claims.issuer(), s.tp.issuer());
    assert_eq!(other.introspection_count(), 0);
}

#[tokio::test]
async fn cache_off_asks_every_time_once() {
    let s = setup_with(Introspector::new("orders-api", "rs-s3cret").with_cache(
        Duration::ZERO,
        Duration::ZERO,
        0,
    ))
    .await;
    s.tp.set_introspection(TOKEN, s.active());
    s.verify().await.unwrap();
    s.verify().await.unwrap();
    assert_eq!(s.tp.introspection_count(), 2);
    let s = setup_with(Introspector::new("orders-api", "rs-s3cret").with_cache(
        Duration::ZERO,
        Duration::ZERO,
        100,
    ))
    .await;
    s.tp.set_introspection(TOKEN, s.active());
    s.verify().await.unwrap();
    assert_eq!(
        s.tp.introspection_count(),
        1,
        "one request per verification"
    );
}
