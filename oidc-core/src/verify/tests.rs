use super::*;

use crate::claims::AdditionalClaims;
use oidc_testing::{SigningAlg, TestProvider};
use serde_json::json;

fn provider() -> Provider {
    Provider::builder("https://id.example.com").build().unwrap()
}

#[test]
fn defaults_match_the_documentation() {
    let v = AccessTokenVerifier::new(provider(), "api://default");
    let c = &*v.inner;
    assert_eq!(c.audiences, ["api://default"]);
    assert_eq!(c.algorithms, [Algorithm::RS256, Algorithm::ES256]);
    assert_eq!(c.leeway, 60);
    assert_eq!(c.max_token_size, 16 * 1024);
    assert!(!c.require_at_jwt);
    assert!(c.require_iat);
    assert!(c.clock.is_none());
    assert!(!v.is_strict());
}

#[test]
fn idt_05_algorithm_list_deduplicated_and_never_empty() {
    let v = AccessTokenVerifier::new(provider(), "api://default")
        .with_algorithms([Algorithm::PS256, Algorithm::RS256, Algorithm::PS256])
        .unwrap();
    assert_eq!(v.inner.algorithms, [Algorithm::PS256, Algorithm::RS256]);
    assert!(matches!(
        v.with_algorithms([]),
        Err(ConfigError::InvalidAlgorithms(_))
    ));
}

#[test]
fn builder_methods_do_not_change_clones() {
    let base = AccessTokenVerifier::new(provider(), "api://default");
    let strict = base
        .clone()
        .require_at_jwt(true)
        .with_leeway(Duration::from_secs(5));
    assert!(strict.is_strict() && strict.inner.leeway == 5);
    assert!(!base.is_strict() && base.inner.leeway == 60);
    let debug = format!("{strict:?}");
    assert!(debug.contains("https://id.example.com") && debug.contains("require_at_jwt: true"));
}

/// Errors name the failed check, never the token's contents (the crate-level promise that
/// they can be logged). `CustomClaims` carries no deserializer error, whose message could quote
/// a claim value.
#[tokio::test]
async fn errors_do_not_echo_token_contents() {
    const MARK: &str = "MARKER7f3a";
    let tp = TestProvider::start().await;
    let v = AccessTokenVerifier::new(
        Provider::builder(tp.issuer()).build().unwrap(),
        "api://default",
    );
    let long_sub = format!("{MARK}{}", "x".repeat(300));
    let tokens = [
        tp.token().claim("iss", MARK).sign(),
        tp.token().audience(MARK).sign(),
        tp.token().claim("sub", long_sub.as_str()).sign(),
        tp.token().claim("exp", MARK).sign(),
        tp.token().header("kid", MARK).sign(),
        tp.token().header("typ", format!("{MARK}+jwt")).sign(),
        tp.token().sign_none(MARK, "c2ln"),
        tp.token().header("crit", json!([MARK])).sign(),
        tp.token().claim("sub", MARK).sign_with_foreign_key(),
        tp.token().alg(SigningAlg::PS256).claim("sub", MARK).sign(),
        format!("{MARK}.{MARK}.{MARK}"),
    ];
    for token in tokens {
        let err = v.verify::<AdditionalClaims>(&token).await.unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains(MARK), "{shown}");
    }
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Typed {
        level: u8,
    }
    let token = tp.token().claim("level", MARK).sign();
    let err = v.verify::<Typed>(&token).await.unwrap_err();
    assert!(matches!(err, VerifyError::CustomClaims));
    assert!(!format!("{err} {err:?}").contains(MARK));
    assert!(std::error::Error::source(&err).is_none());
}

// --- Token cache ------------------------------------------------------------------------------

/// A clock the test moves by hand, in seconds since the epoch.
fn manual_clock() -> (Clock, Arc<std::sync::atomic::AtomicU64>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let secs = Arc::new(std::sync::atomic::AtomicU64::new(now));
    let read = secs.clone();
    let clock: Clock = Arc::new(move || {
        UNIX_EPOCH + Duration::from_secs(read.load(std::sync::atomic::Ordering::SeqCst))
    });
    (clock, secs)
}

/// How many signatures the provider's current RS256 key has checked.
async fn verifications(v: &AccessTokenVerifier, tp: &TestProvider) -> usize {
    match v
        .provider()
        .key_for(Some(&tp.kid(SigningAlg::RS256)), Algorithm::RS256)
        .await
        .unwrap()
    {
        crate::provider::KeyLookup::Found(key) => {
            key.verifications.load(std::sync::atomic::Ordering::SeqCst)
        }
        other => panic!("{other:?}"),
    }
}

async fn cache_setup() -> (TestProvider, AccessTokenVerifier) {
    let tp = TestProvider::start().await;
    let v = AccessTokenVerifier::new(
        Provider::builder(tp.issuer()).build().unwrap(),
        "api://default",
    );
    (tp, v)
}

#[tokio::test]
async fn cache_hit_skips_the_signature_check() {
    let (tp, v) = cache_setup().await;
    let token = tp.token().claim("tenant", "t1").sign();
    let first = v.verify::<AdditionalClaims>(&token).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 1);
    for _ in 0..5 {
        let again = v.verify::<AdditionalClaims>(&token).await.unwrap();
        assert_eq!(again.subject(), first.subject());
        assert_eq!(again.custom(), first.custom());
        assert_eq!(again.custom()["tenant"], "t1");
    }
    // A typed claim set from the same cached entry.
    #[derive(serde::Deserialize)]
    struct Tenant {
        tenant: String,
    }
    let typed = v.verify::<Tenant>(&token).await.unwrap();
    assert_eq!(typed.custom().tenant, "t1");
    assert_eq!(verifications(&v, &tp).await, 1);
    // A clone shares the cache; a changed configuration starts empty.
    v.clone().verify::<AdditionalClaims>(&token).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 1);
    let changed = v.clone().with_leeway(Duration::from_secs(10));
    changed.verify::<AdditionalClaims>(&token).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 2);
    // Another token is verified in full.
    v.verify::<AdditionalClaims>(&tp.token().sign())
        .await
        .unwrap();
    assert_eq!(verifications(&v, &tp).await, 3);
}

#[tokio::test]
async fn cache_does_not_widen_a_changed_configuration() {
    let (tp, v) = cache_setup().await;
    let token = tp.token().header("typ", "JWT").sign();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    let strict = v.clone().require_at_jwt(true);
    assert!(matches!(
        strict.verify::<AdditionalClaims>(&token).await,
        Err(VerifyError::WrongTokenType)
    ));
    // Changing the only handle in place (no clone) also starts a new cache.
    let mut only = AccessTokenVerifier::new(v.provider().clone(), "api://default");
    only.verify::<AdditionalClaims>(&token).await.unwrap();
    only = only.add_audience("api://other").require_at_jwt(true);
    assert!(only.verify::<AdditionalClaims>(&token).await.is_err());
}

#[tokio::test]
async fn cache_hit_applies_the_time_checks_with_the_verifier_clock() {
    let (tp, v) = cache_setup().await;
    let (clock, secs) = manual_clock();
    let v = v.with_clock(clock);
    let now = i64::try_from(secs.load(std::sync::atomic::Ordering::SeqCst)).unwrap();
    let token = tp.token().claim("exp", now + 100).sign();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 1);
    // Past exp + leeway (60 s): refused, from the cached entry.
    secs.fetch_add(161, std::sync::atomic::Ordering::SeqCst);
    assert!(matches!(
        v.verify::<AdditionalClaims>(&token).await,
        Err(VerifyError::Expired)
    ));
    assert_eq!(verifications(&v, &tp).await, 1);
    // A clock moved back before nbf (minus leeway) refuses too.
    let token = tp.token().claim("nbf", now).sign();
    secs.store(
        u64::try_from(now).unwrap(),
        std::sync::atomic::Ordering::SeqCst,
    );
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    secs.store(
        u64::try_from(now - 120).unwrap(),
        std::sync::atomic::Ordering::SeqCst,
    );
    assert!(matches!(
        v.verify::<AdditionalClaims>(&token).await,
        Err(VerifyError::NotYetValid)
    ));
}

#[tokio::test]
async fn cache_entries_leave_with_their_key() {
    let (tp, v) = cache_setup().await;
    let kid = tp.kid(SigningAlg::RS256);
    let token = tp.token().sign();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    tp.remove_key(&kid);
    // Still cached, and the key set has not been refetched yet: accepted, as without a cache.
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    // A token with an unknown kid forces a refetch, which shows the key gone.
    let before = tp.jwks_fetch_count();
    let unknown = tp.token().header("kid", "not-published").sign();
    assert!(matches!(
        v.verify::<AdditionalClaims>(&unknown).await,
        Err(VerifyError::UnknownKey)
    ));
    assert_eq!(tp.jwks_fetch_count(), before + 1);
    assert!(matches!(
        v.verify::<AdditionalClaims>(&token).await,
        Err(VerifyError::UnknownKey)
    ));
}

#[tokio::test]
async fn cache_keeps_entries_of_a_key_published_again_unchanged() {
    let (tp, v) = cache_setup().await;
    let token = tp.token().sign();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    let kid = tp.kid(SigningAlg::RS256);
    let lookup = || async {
        match v
            .provider()
            .key_for(Some(&kid), Algorithm::RS256)
            .await
            .unwrap()
        {
            crate::provider::KeyLookup::Found(key) => key,
            other => panic!("{other:?}"),
        }
    };
    let loaded = lookup().await;
    // A refetch that returns the same key keeps the loaded key and its cached tokens.
    let fetches = tp.jwks_fetch_count();
    let unknown = tp.token().header("kid", "not-published").sign();
    assert!(v.verify::<AdditionalClaims>(&unknown).await.is_err());
    assert_eq!(tp.jwks_fetch_count(), fetches + 1);
    assert!(Arc::ptr_eq(&loaded, &lookup().await));
    assert!(!loaded.is_retired());
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 1);
}

#[tokio::test]
async fn cache_can_be_turned_off() {
    let (tp, v) = cache_setup().await;
    let v = v.without_token_cache();
    assert!(format!("{v:?}").contains("token_cache: None"));
    let token = tp.token().sign();
    for _ in 0..3 {
        v.verify::<AdditionalClaims>(&token).await.unwrap();
    }
    assert_eq!(verifications(&v, &tp).await, 3);
    let zero = v.clone().with_token_cache(0, Duration::from_secs(60));
    zero.verify::<AdditionalClaims>(&token).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 4);
    // Errors are never cached, with or without the cache.
    let on = v.with_token_cache(10, Duration::from_secs(60));
    let bad = tp.token().audience("api://other").sign();
    for _ in 0..2 {
        assert!(matches!(
            on.verify::<AdditionalClaims>(&bad).await,
            Err(VerifyError::InvalidAudience)
        ));
    }
    assert_eq!(verifications(&on, &tp).await, 6);
}

#[test]
fn cache_defaults_match_the_documentation() {
    let v = AccessTokenVerifier::new(provider(), "api://default");
    assert_eq!(
        v.inner.cache.settings(),
        Some(cache::Settings {
            capacity: 10_000,
            max_age: Duration::from_secs(300)
        })
    );
}
