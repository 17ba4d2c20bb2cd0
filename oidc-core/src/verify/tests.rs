use super::*;

use std::time::{SystemTime, UNIX_EPOCH};

use crate::claims::AdditionalClaims;
use oidc_testing::{SigningAlg, TestProvider};
use serde_json::json;

fn provider() -> Provider {
    Provider::builder("https://id.example.com").build().unwrap()
}

/// The configuration of a single-issuer verifier.
fn config(v: &AccessTokenVerifier) -> &Config {
    match &v.kind {
        Kind::One(config) => config,
        Kind::AnyOf(_) => panic!("a verifier of several issuers"),
    }
}

#[test]
fn defaults_match_the_documentation() {
    let v = AccessTokenVerifier::new(provider(), "api://default");
    let c = config(&v);
    assert_eq!(c.audiences, ["api://default"]);
    // RS256 and ES256, and EdDSA when the provider advertises it.
    assert_eq!(c.algorithms, crate::algorithm::Algorithms::Default);
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
    assert_eq!(
        config(&v).algorithms,
        crate::algorithm::Algorithms::Configured(vec![Algorithm::PS256, Algorithm::RS256])
    );
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
    assert!(strict.is_strict() && config(&strict).leeway == 5);
    assert!(!base.is_strict() && config(&base).leeway == 60);
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
        crate::jwks::KeyLookup::Found(key) => {
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
            crate::jwks::KeyLookup::Found(key) => key,
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
        config(&v).cache.settings(),
        Some(cache::Settings {
            capacity: 10_000,
            max_age: Duration::from_secs(300)
        })
    );
}

// --- Several issuers --------------------------------------------------------------------------

/// Two running providers with distinct current RS256 keys (the test keys are shared by every
/// `TestProvider`: `b` signs with `rsa2` and does not publish `a`'s `rsa1`), and a verifier
/// for both.
async fn two_issuers() -> (TestProvider, TestProvider, AccessTokenVerifier) {
    let a = TestProvider::start().await;
    let b = TestProvider::start().await;
    let a_kid = a.kid(SigningAlg::RS256);
    assert_ne!(b.rotate_key(SigningAlg::RS256), a_kid);
    b.remove_key(&a_kid);
    let v = AccessTokenVerifier::any_of([
        AccessTokenVerifier::new(Provider::builder(a.issuer()).build().unwrap(), "api://a"),
        AccessTokenVerifier::new(Provider::builder(b.issuer()).build().unwrap(), "api://b"),
    ])
    .unwrap();
    (a, b, v)
}

fn fetches(tp: &TestProvider) -> usize {
    tp.discovery_fetch_count() + tp.jwks_fetch_count()
}

fn set(v: &AccessTokenVerifier) -> &Issuers {
    match &v.kind {
        Kind::AnyOf(set) => set,
        Kind::One(_) => panic!("a verifier of one issuer"),
    }
}

#[test]
fn any_of_needs_distinct_issuers_and_flattens() {
    let one = |issuer: &str, aud: &str| {
        AccessTokenVerifier::new(Provider::builder(issuer).build().unwrap(), aud)
    };
    assert!(matches!(
        AccessTokenVerifier::any_of([]),
        Err(ConfigError::NoIssuer)
    ));
    // One verifier is that verifier, not a combination.
    let a = one("https://a.example.com", "api");
    let only = AccessTokenVerifier::any_of([a.clone()]).unwrap();
    assert!(std::ptr::eq(config(&a), config(&only)));
    // The same issuer twice, whatever the other settings.
    let err = AccessTokenVerifier::any_of([a.clone(), one("https://a.example.com", "other")])
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::DuplicateIssuer { issuer } if issuer == "https://a.example.com"),
        "{err:?}"
    );
    // Issuers differing by a trailing slash or case are different issuers.
    let ab = AccessTokenVerifier::any_of([
        a.clone(),
        one("https://a.example.com/", "api"),
        one("https://A.example.com", "api"),
    ])
    .unwrap();
    // Nested combinations are taken apart, in order; a duplicate inside is found too.
    let abc =
        AccessTokenVerifier::any_of([ab.clone(), one("https://c.example.com", "api")]).unwrap();
    let issuers: Vec<&str> = abc.providers().map(Provider::issuer).collect();
    assert_eq!(
        issuers,
        [
            "https://a.example.com",
            "https://a.example.com/",
            "https://A.example.com",
            "https://c.example.com"
        ]
    );
    assert_eq!(abc.provider().issuer(), "https://a.example.com");
    assert!(AccessTokenVerifier::any_of([ab, a]).is_err());
    let debug = format!("{abc:?}");
    assert!(
        debug.contains("any_of") && debug.contains("https://c.example.com"),
        "{debug}"
    );
}

#[test]
fn builder_methods_change_every_issuer_and_no_clone() {
    let a = AccessTokenVerifier::new(
        Provider::builder("https://a.example.com").build().unwrap(),
        "a",
    );
    let b = AccessTokenVerifier::new(
        Provider::builder("https://b.example.com").build().unwrap(),
        "b",
    )
    .require_at_jwt(true);
    let both = AccessTokenVerifier::any_of([a.clone(), b.clone()]).unwrap();
    assert!(!both.is_strict());
    let changed = both
        .clone()
        .require_at_jwt(true)
        .with_leeway(Duration::from_secs(7))
        .add_audience("shared")
        .with_max_token_size(100);
    assert!(changed.is_strict());
    for c in set(&changed).configs() {
        assert_eq!(c.leeway, 7);
        assert_eq!(c.audiences.last().map(String::as_str), Some("shared"));
    }
    assert_eq!(set(&changed).max_token_size, 100);
    // The originals and the earlier combination are unchanged.
    assert!(!both.is_strict() && !a.is_strict() && config(&a).leeway == 60);
    assert_eq!(config(&b).audiences, ["b"]);
    assert!(set(&both).configs().all(|c| c.leeway == 60));
    assert_eq!(set(&both).max_token_size, 16 * 1024);
    // The lookup index follows the change.
    assert!(set(&changed).by_issuer.iter().all(|c| c.leeway == 7));
}

#[tokio::test]
async fn any_of_accepts_each_issuer_with_its_own_settings() {
    let (a, b, v) = two_issuers().await;
    let from_a = v
        .verify::<AdditionalClaims>(&a.token().audience("api://a").claim("sub", "alice").sign())
        .await
        .unwrap();
    assert_eq!(
        (from_a.issuer(), from_a.subject()),
        (a.issuer().as_str(), "alice")
    );
    let from_b = v
        .verify::<AdditionalClaims>(&b.token().audience("api://b").claim("sub", "alice").sign())
        .await
        .unwrap();
    assert_eq!(from_b.issuer(), b.issuer());
    // Each issuer's audience only.
    assert!(matches!(
        v.verify::<AdditionalClaims>(&a.token().audience("api://b").sign())
            .await,
        Err(VerifyError::InvalidAudience)
    ));
    assert!(matches!(
        v.verify::<AdditionalClaims>(&b.token().audience("api://a").sign())
            .await,
        Err(VerifyError::InvalidAudience)
    ));
}

#[tokio::test]
async fn any_of_refuses_unknown_issuers_without_any_request() {
    let (a, b, v) = two_issuers().await;
    let c = TestProvider::start().await;
    let ia = a.issuer();
    let variants = [
        c.issuer(),
        format!("{ia}/"),
        format!("{ia}/realms/x"),
        ia.trim_end_matches(|ch: char| ch.is_ascii_digit())
            .to_owned(),
        ia.replace("http://", "HTTP://"),
        ia.to_uppercase(),
        format!(" {ia}"),
        format!("{ia}\u{0}"),
        String::new(),
    ];
    for iss in &variants {
        let token = a
            .token()
            .audience("api://a")
            .claim("iss", iss.as_str())
            .sign();
        assert!(
            matches!(
                v.verify::<AdditionalClaims>(&token).await,
                Err(VerifyError::InvalidIssuer)
            ),
            "{iss:?}"
        );
    }
    for token in [
        c.token().sign(),
        a.token().audience("api://a").claim("iss", 5).sign(),
        a.token()
            .audience("api://a")
            .claim("iss", json!([ia]))
            .sign(),
    ] {
        assert!(matches!(
            v.verify::<AdditionalClaims>(&token).await,
            Err(VerifyError::InvalidIssuer)
        ));
    }
    assert!(matches!(
        v.verify::<AdditionalClaims>(&a.token().without_claim("iss").sign())
            .await,
        Err(VerifyError::MissingClaim("iss"))
    ));
    for bad in ["a.b.c", "x", &"e".repeat(17 * 1024)] {
        assert!(v.verify::<AdditionalClaims>(bad).await.is_err());
    }
    assert_eq!(fetches(&a) + fetches(&b) + fetches(&c), 0);
}

#[tokio::test]
async fn any_of_checks_the_chosen_issuer_keys() {
    let (a, b, v) = two_issuers().await;
    // Names A, signed with B's key (its kid, unknown to A).
    let token = b
        .token()
        .audience("api://a")
        .claim("iss", a.issuer())
        .sign();
    assert!(matches!(
        v.verify::<AdditionalClaims>(&token).await,
        Err(VerifyError::UnknownKey)
    ));
    // Names A and A's kid, signed with B's key.
    let token = b
        .token()
        .audience("api://a")
        .claim("iss", a.issuer())
        .header("kid", a.kid(SigningAlg::RS256))
        .sign();
    assert!(matches!(
        v.verify::<AdditionalClaims>(&token).await,
        Err(VerifyError::InvalidSignature)
    ));
    // B was never asked for anything.
    assert_eq!(fetches(&b), 0);
    assert!(fetches(&a) > 0);
}

#[tokio::test]
async fn any_of_size_cap_is_each_issuer_cap() {
    let a = TestProvider::start().await;
    let b = TestProvider::start().await;
    let v = AccessTokenVerifier::any_of([
        AccessTokenVerifier::new(
            Provider::builder(a.issuer()).build().unwrap(),
            "api://default",
        )
        .with_max_token_size(1500),
        AccessTokenVerifier::new(
            Provider::builder(b.issuer()).build().unwrap(),
            "api://default",
        )
        .with_max_token_size(4000),
    ])
    .unwrap();
    let pad = "x".repeat(1500);
    assert!(matches!(
        v.verify::<AdditionalClaims>(&a.token().claim("pad", pad.as_str()).sign())
            .await,
        Err(VerifyError::TooLarge { limit: 1500 })
    ));
    v.verify::<AdditionalClaims>(&b.token().claim("pad", pad.as_str()).sign())
        .await
        .unwrap();
    let pad = "x".repeat(4000);
    assert!(matches!(
        v.verify::<AdditionalClaims>(&b.token().claim("pad", pad.as_str()).sign())
            .await,
        Err(VerifyError::TooLarge { limit: 4000 })
    ));
    assert_eq!(fetches(&a), 0);
}

#[tokio::test]
async fn any_of_cache_entries_stay_with_their_issuer() {
    let (a, b, v) = two_issuers().await;
    let va = AccessTokenVerifier::any_of([v.clone()]).unwrap();
    let token_a = a.token().audience("api://a").sign();
    let token_b = b.token().audience("api://b").sign();
    for _ in 0..3 {
        assert_eq!(
            v.verify::<AdditionalClaims>(&token_a)
                .await
                .unwrap()
                .issuer(),
            a.issuer()
        );
        assert_eq!(
            v.verify::<AdditionalClaims>(&token_b)
                .await
                .unwrap()
                .issuer(),
            b.issuer()
        );
    }
    // One signature check per token, on its own issuer's key.
    let count = |tp: &TestProvider, kid: String| {
        let p = v
            .providers()
            .find(|p| p.issuer() == tp.issuer())
            .unwrap()
            .clone();
        async move {
            match p.key_for(Some(&kid), Algorithm::RS256).await.unwrap() {
                crate::jwks::KeyLookup::Found(key) => {
                    key.verifications.load(std::sync::atomic::Ordering::SeqCst)
                }
                other => panic!("{other:?}"),
            }
        }
    };
    assert_eq!(count(&a, a.kid(SigningAlg::RS256)).await, 1);
    assert_eq!(count(&b, b.kid(SigningAlg::RS256)).await, 1);
    // Clones share the caches; a changed combination starts empty.
    va.verify::<AdditionalClaims>(&token_a).await.unwrap();
    assert_eq!(count(&a, a.kid(SigningAlg::RS256)).await, 1);
    let changed = v.clone().with_leeway(Duration::from_secs(1));
    changed.verify::<AdditionalClaims>(&token_a).await.unwrap();
    assert_eq!(count(&a, a.kid(SigningAlg::RS256)).await, 2);
    // A cached token is not accepted by a verifier of another issuer.
    let only_b = set(&v).configs().nth(1).unwrap().clone();
    let only_b = AccessTokenVerifier {
        kind: Kind::One(only_b),
    };
    assert!(matches!(
        only_b.verify::<AdditionalClaims>(&token_a).await,
        Err(VerifyError::UnknownKey)
    ));
}

#[tokio::test]
async fn any_of_readiness_and_warm_up_cover_every_issuer() {
    let (a, b, v) = two_issuers().await;
    assert!(!v.readiness().metadata && !v.readiness().keys);
    v.providers().next().unwrap().warm_up().await.unwrap();
    assert!(v.provider().readiness().is_ready());
    assert!(!v.readiness().is_ready(), "one issuer of two is not ready");
    b.fail_jwks(oidc_testing::Failure::Status(503));
    assert!(v.warm_up().await.is_err());
    assert!(!v.readiness().keys);
    assert!(v.readiness().metadata);
    b.fail_jwks(oidc_testing::Failure::None);
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(5)).await;
    tokio::time::resume();
    v.warm_up().await.unwrap();
    assert!(v.readiness().is_ready());
    assert_eq!((a.jwks_fetch_count(), b.jwks_fetch_count()), (1, 2));
}

#[tokio::test]
async fn cache_hits_share_the_decoded_claims() {
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Tenant {
        tenant: String,
    }
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Subject {
        sub: String,
    }
    let (tp, v) = cache_setup().await;
    let token = tp.token().claim("tenant", "t1").sign();
    // The default claim type: the verified payload itself, from the first verification on.
    let first = v.verify::<AdditionalClaims>(&token).await.unwrap();
    let again = v.verify::<AdditionalClaims>(&token).await.unwrap();
    assert!(std::ptr::eq(first.custom(), again.custom()));
    // The first other type is decoded once and shared by later hits.
    let typed = v.verify::<Tenant>(&token).await.unwrap();
    let typed_again = v.verify::<Tenant>(&token).await.unwrap();
    assert!(std::ptr::eq(typed.custom(), typed_again.custom()));
    assert_eq!(typed.custom().tenant, "t1");
    // Any further type is decoded for each request, and right.
    let sub = v.verify::<Subject>(&token).await.unwrap();
    let sub_again = v.verify::<Subject>(&token).await.unwrap();
    assert!(!std::ptr::eq(sub.custom(), sub_again.custom()));
    assert_eq!(sub.custom(), sub_again.custom());
    assert_eq!(sub.custom().sub, first.subject());
    // Still shared with the earlier ones, and never re-verified.
    assert!(std::ptr::eq(
        v.verify::<AdditionalClaims>(&token).await.unwrap().custom(),
        first.custom()
    ));
    assert_eq!(verifications(&v, &tp).await, 1);
    // Handing claims on copies nothing; taking them out copies only when still shared.
    let handed = first.clone();
    assert!(std::ptr::eq(handed.custom(), first.custom()));
    let (_, owned) = handed.into_parts();
    assert_eq!(&owned, first.custom());
}

#[tokio::test]
async fn custom_claims_refused_on_a_hit_are_refused_again() {
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct NeedsRegion {
        region: String,
    }
    let (tp, v) = cache_setup().await;
    let token = tp.token().sign();
    v.verify::<AdditionalClaims>(&token).await.unwrap();
    for _ in 0..2 {
        assert!(matches!(
            v.verify::<NeedsRegion>(&token).await,
            Err(VerifyError::CustomClaims)
        ));
    }
    // A failing type first: nothing is cached, and the next type still works.
    let other = tp.token().sign();
    assert!(matches!(
        v.verify::<NeedsRegion>(&other).await,
        Err(VerifyError::CustomClaims)
    ));
    v.verify::<AdditionalClaims>(&other).await.unwrap();
    assert_eq!(verifications(&v, &tp).await, 3);
}
