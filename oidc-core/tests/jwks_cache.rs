//! The provider side of verification: discovery, the JWKS cache, key selection, outages and
//! hostile upstreams, against a real in-process OpenID Provider (`oidc-testing`).
//!
//! Test names carry the case ids of `SECURITY-CASES.md` (groups KEY, DOS-04 and CB-11), plus
//! the provider builder and `Cache-Control` handling. Timings are shortened through the
//! `ProviderBuilder` settings so that no test sleeps for more than about 2 s.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{
    accepted, assert_rejected, counting_listener, setup, setup_with, verifier, verifier_for,
    verifier_with, verify,
};
use oidc_core::error::{ConfigError, DiscoveryError, HttpError, JwksError, VerifyError};
use oidc_core::http::ReqwestClient;
use oidc_core::{AccessTokenVerifier, AdditionalClaims, Algorithm, Claims, Provider};
use oidc_testing::{Failure, SigningAlg, TestProvider};
use serde_json::{Value, json};

/// Polls `cond` every 20 ms until it holds or `max` passed; returns whether it held.
async fn eventually(max: Duration, cond: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > max {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The published JWK with this kid.
fn published_jwk(tp: &TestProvider, kid: &str) -> Value {
    tp.public_jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .unwrap_or_else(|| panic!("{kid} is not published"))
        .clone()
}

fn jwks_body(keys: Vec<Value>) -> Option<Vec<u8>> {
    Some(serde_json::to_vec(&json!({ "keys": keys })).unwrap())
}

/// A cheap-to-sign (ES256) token whose `kid` is not in any set.
fn random_kid_token(tp: &TestProvider, i: usize) -> String {
    // A simple mix so that kids look random and never repeat.
    let mixed = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xDEAD_BEEF;
    tp.token()
        .alg(SigningAlg::ES256)
        .header("kid", format!("attacker-{mixed:016x}"))
        .sign()
}

/// Runs `count` concurrent verifications of distinct random-kid tokens; returns the results
/// and how long the storm took.
async fn storm(
    tp: &TestProvider,
    v: &AccessTokenVerifier,
    count: usize,
) -> (Vec<Result<Claims, VerifyError>>, Duration) {
    let tokens: Vec<String> = (0..count).map(|i| random_kid_token(tp, i)).collect();
    verify_concurrently(v, tokens).await
}

/// Verifies `tokens` concurrently; returns the results in order and how long they took.
async fn verify_concurrently(
    v: &AccessTokenVerifier,
    tokens: Vec<String>,
) -> (Vec<Result<Claims, VerifyError>>, Duration) {
    let start = Instant::now();
    let handles: Vec<_> = tokens
        .into_iter()
        .map(|token| {
            let v = v.clone();
            tokio::spawn(async move { v.verify::<AdditionalClaims>(&token).await })
        })
        .collect();
    let mut results = Vec::with_capacity(handles.len());
    for handle in handles {
        results.push(handle.await.unwrap());
    }
    (results, start.elapsed())
}

/// Asserts that every result of a storm is an error matching the pattern.
macro_rules! assert_all_rejected {
    ($results:expr, $pattern:pat, $what:expr) => {
        for (i, r) in $results.iter().enumerate() {
            assert!(matches!(r, Err($pattern)), "{}: token {i}: {r:?}", $what);
        }
    };
}

fn short_timeout_client() -> Arc<ReqwestClient> {
    Arc::new(
        ReqwestClient::with_timeouts(Duration::from_millis(300), Duration::from_millis(500))
            .unwrap(),
    )
}

// ---------------------------------------------------------------------------------------------
// KEY-01 no kid, one fitting key
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn key_01_no_kid_single_fitting_key_in_default_jwks_accepted() {
    let (tp, v) = setup().await;
    // The default set has one JWK per (key, alg): six RSA JWKs of the same key with distinct
    // `alg`s, one EC and one OKP key. Exactly one of them fits each algorithm.
    let jwks = tp.public_jwks();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 8);
    assert_eq!(keys.iter().filter(|k| k["kty"] == "RSA").count(), 6);
    assert_eq!(keys.iter().filter(|k| k["alg"] == "RS256").count(), 1);
    assert_eq!(keys.iter().filter(|k| k["alg"] == "ES256").count(), 1);

    let v = v
        .with_algorithms([
            Algorithm::RS256,
            Algorithm::ES256,
            Algorithm::PS256,
            Algorithm::EdDSA,
        ])
        .unwrap();
    for alg in [
        SigningAlg::RS256,
        SigningAlg::ES256,
        SigningAlg::PS256,
        SigningAlg::EdDSA,
    ] {
        let token = tp.token().alg(alg).without_header("kid").sign();
        accepted(&v, &token, alg.as_str()).await;
        // The key is chosen from the set, not trusted from the token.
        let forged = tp
            .token()
            .alg(alg)
            .without_header("kid")
            .sign_with_foreign_key();
        assert_rejected!(v, forged, VerifyError::InvalidSignature, alg.as_str());
    }
    assert_eq!(tp.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn key_01_no_kid_single_key_without_alg_among_other_types_accepted() {
    let tp = TestProvider::start().await;
    // One RSA key with neither kid nor alg, next to keys of other types and an RSA `enc` key.
    let mut rsa = published_jwk(&tp, &tp.kid(SigningAlg::RS256));
    let rsa = rsa.as_object_mut().unwrap();
    rsa.remove("kid");
    rsa.remove("alg");
    let mut enc = published_jwk(&tp, "rsa1-PS256");
    enc["use"] = json!("enc");
    enc["kid"] = json!("enc-1");
    enc.as_object_mut().unwrap().remove("alg");
    tp.set_jwks_override(jwks_body(vec![
        published_jwk(&tp, &tp.kid(SigningAlg::ES256)),
        Value::Object(rsa.clone()),
        published_jwk(&tp, &tp.kid(SigningAlg::EdDSA)),
        enc,
    ]));
    let v = verifier_for(&tp)
        .with_algorithms([Algorithm::RS256, Algorithm::PS256])
        .unwrap();
    let token = tp.token().without_header("kid").sign();
    accepted(&v, &token, "RS256 without kid").await;
    // A key without `alg` may be used with any algorithm of its family.
    let token = tp
        .token()
        .alg(SigningAlg::PS256)
        .without_header("kid")
        .sign();
    accepted(&v, &token, "PS256 without kid").await;
}

// ---------------------------------------------------------------------------------------------
// KEY-02 no kid, several fitting keys: refused (documented choice), never tried one by one
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn key_02_no_kid_several_fitting_keys_rejected() {
    let (tp, v) = setup().await;
    let new_kid = tp.rotate_key(SigningAlg::RS256);
    assert_eq!(new_kid, "rsa2-RS256");
    // rsa1-RS256 and rsa2-RS256 both fit RS256; the token is signed by rsa2.
    let token = tp.token().without_header("kid").sign();
    assert_rejected!(v, token, VerifyError::NoMatchingKey, "two RS256 keys");
    // The same token with its kid verifies: the refusal is about ambiguity only.
    accepted(&v, &tp.token().sign(), "with kid").await;
}

#[tokio::test]
async fn key_02_no_kid_several_keys_without_alg_rejected() {
    let tp = TestProvider::start().await;
    let strip = |mut jwk: Value| {
        let o = jwk.as_object_mut().unwrap();
        o.remove("alg");
        o.remove("kid");
        jwk
    };
    tp.publish_key("rsa2-RS256");
    tp.set_jwks_override(jwks_body(vec![
        strip(published_jwk(&tp, "rsa1-RS256")),
        strip(published_jwk(&tp, "rsa2-RS256")),
    ]));
    let v = verifier_for(&tp);
    let token = tp.token().without_header("kid").sign();
    assert_rejected!(
        v,
        token,
        VerifyError::NoMatchingKey,
        "two kid-less RSA keys"
    );
}

#[tokio::test]
async fn key_02_no_kid_no_fitting_key_rejected() {
    let (tp, v) = setup().await;
    tp.set_jwks_override(jwks_body(vec![published_jwk(
        &tp,
        &tp.kid(SigningAlg::RS256),
    )]));
    let token = tp
        .token()
        .alg(SigningAlg::ES256)
        .without_header("kid")
        .sign();
    assert_rejected!(
        v,
        token,
        VerifyError::NoMatchingKey,
        "ES256 without an EC key"
    );
}

// ---------------------------------------------------------------------------------------------
// KEY-03 rotation and removal
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn key_03_rotated_key_verifies_after_one_refetch() {
    // Default settings (30 s cooldown): a key rotated right after the load is accepted at
    // once, because the cooldown counts from the last *forced* refetch.
    let (tp, v) = setup().await;
    let old_token = tp.token().sign();
    accepted(&v, &old_token, "before rotation").await;
    assert_eq!(tp.jwks_fetch_count(), 1);

    let new_kid = tp.rotate_key(SigningAlg::RS256);
    assert_eq!(new_kid, "rsa2-RS256");
    let new_token = tp.token().sign();
    let claims = accepted(&v, &new_token, "after rotation").await;
    assert_eq!(claims.subject(), "user-1");
    assert_eq!(
        tp.jwks_fetch_count(),
        2,
        "exactly one refetch for {new_kid}"
    );

    // Both keys are now cached: no further fetch for either.
    accepted(&v, &tp.token().sign(), "new kid again").await;
    accepted(&v, &old_token, "old kid still published").await;
    assert_eq!(tp.jwks_fetch_count(), 2);
}

#[tokio::test]
async fn key_03_second_rotation_within_cooldown_waits_for_the_cooldown() {
    // Documented trade-off of KEY-04: forced refetches are paced by time.
    let (tp, v) = setup_with(|b| b.with_unknown_kid_cooldown(Duration::from_millis(400))).await;
    accepted(&v, &tp.token().sign(), "warm-up").await;
    tp.rotate_key(SigningAlg::RS256);
    accepted(&v, &tp.token().sign(), "first rotation").await;
    assert_eq!(tp.jwks_fetch_count(), 2);
    assert_eq!(tp.rotate_key(SigningAlg::RS256), "rsa3-RS256");
    let newest = tp.token().sign();
    assert_rejected!(v, newest, VerifyError::UnknownKey, "within the cooldown");
    assert_eq!(tp.jwks_fetch_count(), 2);
    tokio::time::sleep(Duration::from_millis(450)).await;
    accepted(&v, &newest, "after the cooldown").await;
    assert_eq!(tp.jwks_fetch_count(), 3);
}

#[tokio::test]
async fn key_03_removed_key_rejected_after_forced_refetch() {
    let (tp, v) = setup_with(|b| b.with_unknown_kid_cooldown(Duration::from_millis(200))).await;
    let old_kid = tp.kid(SigningAlg::RS256);
    let old_token = tp.token().sign();
    accepted(&v, &old_token, "before rotation").await;

    let new_kid = tp.rotate_key(SigningAlg::RS256);
    tp.remove_key(&old_kid);
    // Until the set is fetched again the cached key keeps working.
    accepted(&v, &old_token, "cached old key").await;

    let new_token = tp.token().sign();
    accepted(&v, &new_token, &new_kid).await;
    assert_eq!(tp.jwks_fetch_count(), 2);
    assert_rejected!(v, old_token, VerifyError::UnknownKey, "removed key");
    // No kid: the removed key is not among the candidates either.
    let kidless_old = tp
        .token()
        .signing_kid(&old_kid)
        .without_header("kid")
        .sign();
    assert_rejected!(
        v,
        kidless_old,
        VerifyError::InvalidSignature,
        "removed key, no kid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_03_removed_key_rejected_after_due_refresh() {
    let (tp, v) =
        setup_with(|b| b.with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(10)))
            .await;
    tp.set_jwks_cache_control(Some("max-age=1"));
    let old_kid = tp.kid(SigningAlg::RS256);
    let old_token = tp.token().sign();
    tp.rotate_key(SigningAlg::RS256);
    let new_token = tp.token().sign();
    accepted(&v, &old_token, "warm-up, old kid").await;
    accepted(&v, &new_token, "warm-up, new kid").await;
    assert_eq!(tp.jwks_fetch_count(), 1);
    tp.remove_key(&old_kid);

    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Due: this verification uses the cached key and starts a background refresh. (A token of
    // the removed key might already miss here if the refresh wins the race, so use the new one.)
    accepted(&v, &new_token, "served from cache while refreshing").await;
    assert!(
        eventually(Duration::from_secs(2), || tp.jwks_fetch_count() == 2).await,
        "no background refresh"
    );
    // The request was counted on arrival: give the refresh a moment to store the new set.
    let mut rejected = false;
    for _ in 0..50 {
        if matches!(verify(&v, &old_token).await, Err(VerifyError::UnknownKey)) {
            rejected = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rejected, "the removed key still verifies after the refresh");
    assert_rejected!(v, old_token, VerifyError::UnknownKey, "removed key");
    accepted(&v, &new_token, "the remaining key").await;
    // The first miss after the refresh forced one refetch (the key might have come back);
    // the later ones are within its cooldown.
    assert_eq!(tp.jwks_fetch_count(), 3);
}

// ---------------------------------------------------------------------------------------------
// KEY-04 random-kid storms and single flight
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_random_kid_storm_bounded_fetches() {
    let cooldown = Duration::from_secs(1);
    let (tp, v) = setup_with(|b| b.with_unknown_kid_cooldown(cooldown)).await;
    let valid = tp.token().sign();
    accepted(&v, &valid, "warm-up").await;
    assert_eq!(tp.jwks_fetch_count(), 1);

    let valid_during = {
        let v = v.clone();
        let valid = valid.clone();
        tokio::spawn(async move {
            let mut ok = 0;
            for _ in 0..50 {
                if v.verify::<AdditionalClaims>(&valid).await.is_ok() {
                    ok += 1;
                }
                tokio::task::yield_now().await;
            }
            ok
        })
    };
    let (results, elapsed) = storm(&tp, &v, 1000).await;
    assert_all_rejected!(results, VerifyError::UnknownKey, "storm");
    assert_eq!(
        valid_during.await.unwrap(),
        50,
        "valid tokens failed during the storm"
    );
    let refetches = tp.jwks_fetch_count() - 1;
    let allowed = 1 + (elapsed.as_millis() / cooldown.as_millis()) as usize;
    assert!(refetches >= 1, "the storm forced no refetch at all");
    assert!(
        refetches <= allowed,
        "{refetches} refetches in {elapsed:?} (cooldown {cooldown:?})"
    );
    accepted(&v, &valid, "after the storm").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_random_kid_storm_one_forced_refetch_per_default_cooldown() {
    let (tp, v) = setup().await;
    let valid = tp.token().sign();
    accepted(&v, &valid, "warm-up").await;
    for round in 0..3 {
        let (results, elapsed) = storm(&tp, &v, 1000).await;
        assert!(
            elapsed < Duration::from_secs(30),
            "the storm outlasted the cooldown"
        );
        assert_all_rejected!(results, VerifyError::UnknownKey, format!("round {round}"));
        // One load, then one forced refetch for the whole 30 s default cooldown.
        assert_eq!(tp.jwks_fetch_count(), 2, "round {round}");
    }
    assert_eq!(tp.discovery_fetch_count(), 1);
    accepted(&v, &valid, "after the storms").await;
    assert_eq!(tp.jwks_fetch_count(), 2);
}

/// At most one load plus one forced refetch: the requests that found no set load it and do
/// not force another; requests that start after the load may force one per cooldown.
const COLD_STORM_MAX_FETCHES: usize = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_random_kid_storm_cold_cache_bounded_fetches() {
    let (tp, v) = setup().await;
    let (results, _) = storm(&tp, &v, 1000).await;
    assert_all_rejected!(results, VerifyError::UnknownKey, "storm");
    assert_eq!(tp.discovery_fetch_count(), 1);
    let fetches = tp.jwks_fetch_count();
    assert!(
        (1..=COLD_STORM_MAX_FETCHES).contains(&fetches),
        "{fetches} fetches"
    );
    accepted(&v, &tp.token().sign(), "valid token after the storm").await;
    let (_, _) = storm(&tp, &v, 200).await;
    assert!(tp.jwks_fetch_count() <= COLD_STORM_MAX_FETCHES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_random_kid_storm_cold_cache_empty_or_unusable_set_bounded() {
    for body in [
        &br#"{"keys":[]}"#[..],
        br#"{"keys":[{"kty":"oct","k":"c2VjcmV0","kid":"o"},{"kty":"AKP","kid":"a"}]}"#,
    ] {
        let (tp, v) = setup().await;
        tp.set_jwks_override(Some(body.to_vec()));
        for _ in 0..2 {
            let (results, _) = storm(&tp, &v, 1000).await;
            assert_all_rejected!(
                results,
                VerifyError::UnknownKey,
                String::from_utf8_lossy(body)
            );
            let fetches = tp.jwks_fetch_count();
            assert!(
                (1..=COLD_STORM_MAX_FETCHES).contains(&fetches),
                "{}: {fetches} fetches",
                String::from_utf8_lossy(body)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_random_kid_storm_cold_cache_jwks_down_bounded() {
    let base = Duration::from_secs(1);
    let (tp, v) = setup_with(|b| b.with_retry_backoff(base, Duration::from_secs(60))).await;
    tp.fail_jwks(Failure::Status(503));
    let (results, elapsed) = storm(&tp, &v, 1000).await;
    assert_all_rejected!(results, VerifyError::KeysUnavailable(_), "JWKS down");
    let fetches = tp.jwks_fetch_count();
    let allowed = 1 + (elapsed.as_millis() / base.as_millis()) as usize;
    assert!(
        fetches >= 1 && fetches <= allowed,
        "{fetches} fetches in {elapsed:?}"
    );
    assert_eq!(tp.discovery_fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_random_kid_storm_cold_cache_discovery_down_bounded() {
    let (tp, v) = setup().await;
    tp.fail_discovery(Failure::Status(500));
    let (results, elapsed) = storm(&tp, &v, 1000).await;
    assert_all_rejected!(results, VerifyError::KeysUnavailable(_), "discovery down");
    let fetches = tp.discovery_fetch_count();
    let allowed = 1 + elapsed.as_secs() as usize;
    assert!(
        fetches >= 1 && fetches <= allowed,
        "{fetches} discovery fetches in {elapsed:?}"
    );
    assert_eq!(tp.jwks_fetch_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_single_flight_cold_start() {
    let (tp, v) = setup().await;
    let tokens: Vec<String> = (0..100).map(|i| tp.token().claim("n", i).sign()).collect();
    let (results, _) = verify_concurrently(&v, tokens).await;
    assert_eq!(results.len(), 100);
    for result in results {
        assert!(result.is_ok(), "{result:?}");
    }
    assert_eq!(tp.discovery_fetch_count(), 1);
    assert_eq!(tp.jwks_fetch_count(), 1);
}

// ---------------------------------------------------------------------------------------------
// KEY-05 unusable keys in the set
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn key_05_unusable_keys_skipped_good_key_used() {
    let (tp, v) = setup().await;
    let rsa = published_jwk(&tp, &tp.kid(SigningAlg::RS256));
    let ec = published_jwk(&tp, &tp.kid(SigningAlg::ES256));
    let short_n = URL_SAFE_NO_PAD.encode([0xC5u8; 64]); // 512 bits
    let short_x = URL_SAFE_NO_PAD.encode([7u8; 31]);
    for jwk in [
        json!({"kty": "AKP", "alg": "ML-DSA-44", "kid": "akp-1", "pub": "AAAA", "param-set": "bogus"}),
        json!({"kty": "QUANTUM", "kid": "made-up", "x": "AAAA"}),
        json!({"kty": "RSA", "use": "enc", "kid": "enc-1", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "RSA", "key_ops": ["encrypt"], "kid": "ops-1", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "RSA", "alg": "HS256", "kid": "rsa-hs", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "RSA", "alg": "ES256", "kid": "rsa-es", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "oct", "k": "c2VjcmV0LXNlY3JldC1zZWNyZXQ", "kid": "oct-1", "alg": "HS256"}),
        json!({"kty": "RSA", "kid": "rsa-512", "n": short_n, "e": "AQAB"}),
        json!({"kty": "RSA", "kid": "rsa-e-1", "n": rsa["n"], "e": "AQ"}),
        json!({"kty": "RSA", "kid": "rsa-no-e", "n": rsa["n"]}),
        json!({"kty": "EC", "crv": "P-256", "kid": "ec-short-x", "x": short_x, "y": ec["y"]}),
        json!({"kty": "EC", "crv": "P-521", "kid": "ec-p521", "x": ec["x"], "y": ec["y"]}),
        json!({"kty": "OKP", "crv": "X25519", "kid": "x25519", "x": "AAAA"}),
        json!({"kid": "no-kty"}),
        json!("not an object"),
        json!(42),
    ] {
        tp.add_raw_jwk(jwk);
    }
    let v = v
        .with_algorithms([Algorithm::RS256, Algorithm::ES256])
        .unwrap();
    accepted(&v, &tp.token().sign(), "good RSA key").await;
    accepted(&v, &tp.token().alg(SigningAlg::ES256).sign(), "good EC key").await;
    assert_eq!(
        tp.jwks_fetch_count(),
        1,
        "the set loaded in one fetch despite the bad keys"
    );

    // Tokens naming a skipped key, signed by the key material it carries where we have it.
    for kid in [
        "enc-1", "ops-1", "rsa-hs", "rsa-es", "rsa-e-1", "rsa-no-e", "rsa-512", "akp-1", "made-up",
    ] {
        let token = tp.token().header("kid", kid).sign();
        assert_rejected!(v, token, VerifyError::UnknownKey, kid);
    }
    for kid in ["ec-short-x", "ec-p521"] {
        let token = tp.token().alg(SigningAlg::ES256).header("kid", kid).sign();
        assert_rejected!(v, token, VerifyError::UnknownKey, kid);
    }
    // The oct key cannot be reached: HMAC is not an access-token algorithm at all.
    let token = tp
        .token()
        .header("kid", "oct-1")
        .sign_hs256(b"secret-secret-secret");
    assert_rejected!(
        v,
        token,
        VerifyError::DisallowedAlgorithm,
        "oct key with HS256"
    );
    let token = tp.token().header("kid", "oct-1").sign();
    assert_rejected!(v, token, VerifyError::UnknownKey, "oct key with RS256");
}

#[tokio::test]
async fn key_05_set_of_only_bad_keys_is_not_a_fetch_error() {
    let (tp, v) = setup().await;
    tp.set_jwks_override(Some(
        br#"{"keys":[{"kty":"AKP","kid":"a"},7,{"kty":"oct","k":"AA"}]}"#.to_vec(),
    ));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::UnknownKey,
        "no usable key"
    );
    assert!(v.provider().readiness().keys);
}

/// The provider's key under `rsa1-RS256`, then a second JWK with the same kid and the modulus
/// of `rsa2-RS256` (a key the provider holds too: both can sign).
fn two_keys_under_rsa1(tp: &TestProvider) -> Vec<Value> {
    let mut impostor = published_jwk(tp, "rsa1-RS256");
    tp.publish_key("rsa2-RS256");
    let rsa2 = published_jwk(tp, "rsa2-RS256");
    impostor["n"] = rsa2["n"].clone();
    vec![published_jwk(tp, "rsa1-RS256"), impostor]
}

/// A token signed by `rsa2-RS256` that names `rsa1-RS256`.
fn by_rsa2_as_rsa1(tp: &TestProvider) -> String {
    tp.token()
        .signing_kid("rsa2-RS256")
        .header("kid", "rsa1-RS256")
        .sign()
}

#[tokio::test]
async fn key_05_duplicate_kid_refuses_both_keys() {
    let tp = TestProvider::start().await;
    let mut keys = two_keys_under_rsa1(&tp);
    keys.push(published_jwk(&tp, &tp.kid(SigningAlg::ES256)));
    tp.set_jwks_override(jwks_body(keys));
    let v = verifier_for(&tp);
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::DuplicateKeyId,
        "signed by the first JWK of the kid"
    );
    assert_rejected!(
        v,
        by_rsa2_as_rsa1(&tp),
        VerifyError::DuplicateKeyId,
        "signed by the second JWK of the kid"
    );
    // The rest of the set keeps working.
    accepted(&v, &tp.token().alg(SigningAlg::ES256).sign(), "another kid").await;
    // The error names the problem, not the token or the kid.
    let err = verify(&v, &tp.token().sign()).await.unwrap_err();
    assert!(!err.to_string().contains("rsa1"), "{err}");
}

#[tokio::test]
async fn key_05_duplicate_kid_identical_copies_refused() {
    let tp = TestProvider::start().await;
    let rsa1 = published_jwk(&tp, "rsa1-RS256");
    tp.set_jwks_override(jwks_body(vec![rsa1.clone(), rsa1]));
    let v = verifier_for(&tp);
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::DuplicateKeyId,
        "the same key published twice under its kid"
    );
}

#[tokio::test]
async fn key_05_duplicate_kid_counts_only_usable_signature_keys() {
    let tp = TestProvider::start().await;
    let rsa1 = published_jwk(&tp, "rsa1-RS256");
    let keys = two_keys_under_rsa1(&tp);
    let mut enc = keys[1].clone();
    enc["use"] = json!("enc");
    let mut ops = keys[1].clone();
    ops["key_ops"] = json!(["encrypt"]);
    let mut bad = keys[1].clone();
    bad["n"] = json!("AQAB");
    let mut unknown_kty = keys[1].clone();
    unknown_kty["kty"] = json!("AKP");
    for (what, other) in [
        ("use enc", enc),
        ("key_ops without verify", ops),
        ("too short a modulus", bad),
        ("unknown kty", unknown_kty),
    ] {
        tp.set_jwks_override(jwks_body(vec![other, rsa1.clone()]));
        let v = verifier_for(&tp);
        accepted(&v, &tp.token().sign(), what).await;
        assert_rejected!(
            v,
            by_rsa2_as_rsa1(&tp),
            VerifyError::InvalidSignature,
            format!("{what}: the skipped key never verifies")
        );
    }
}

#[tokio::test]
async fn key_05_duplicate_kid_keys_never_picked_for_kid_less_tokens() {
    let tp = TestProvider::start().await;
    // An EC key and the RSA key share a kid; the EC key is the only one that fits ES256.
    let mut ec = published_jwk(&tp, &tp.kid(SigningAlg::ES256));
    ec["kid"] = json!("rsa1-RS256");
    tp.set_jwks_override(jwks_body(vec![ec, published_jwk(&tp, "rsa1-RS256")]));
    let v = verifier_for(&tp);
    let kid_less = tp
        .token()
        .alg(SigningAlg::ES256)
        .without_header("kid")
        .sign();
    assert_rejected!(
        v,
        kid_less,
        VerifyError::NoMatchingKey,
        "kid-less es256 token, the only ec key under a duplicated kid"
    );
    let kid_less = tp.token().without_header("kid").sign();
    assert_rejected!(
        v,
        kid_less,
        VerifyError::NoMatchingKey,
        "kid-less rs256 token, the only rsa key under a duplicated kid"
    );
}

/// A duplicated kid is known, not unknown: tokens naming it force no refetch, however many.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_duplicate_kid_storm_forces_no_refetch() {
    let (tp, v) = setup_with(|b| b.with_unknown_kid_cooldown(Duration::ZERO)).await;
    tp.set_jwks_override(jwks_body(two_keys_under_rsa1(&tp)));
    let tokens: Vec<String> = (0..200)
        .map(|i| tp.token().claim("jti", format!("t-{i}")).sign())
        .collect();
    let (results, _) = verify_concurrently(&v, tokens).await;
    assert_all_rejected!(results, VerifyError::DuplicateKeyId, "duplicated kid");
    assert_eq!(tp.jwks_fetch_count(), 1, "only the first load");
}

/// A token validated (and cached) with a key whose kid later names two keys is refused after
/// the next key set refresh, not answered from the token cache; a corrected set brings the
/// kid back.
#[tokio::test]
async fn key_05_kid_duplicated_after_caching_not_answered_from_the_token_cache() {
    let (tp, v) = setup_with(|b| b.with_unknown_kid_cooldown(Duration::ZERO)).await;
    let token = tp.token().sign();
    accepted(&v, &token, "first, verified in full").await;
    accepted(&v, &token, "second, from the token cache").await;
    assert_eq!(tp.jwks_fetch_count(), 1);
    tp.set_jwks_override(jwks_body(two_keys_under_rsa1(&tp)));
    // An unknown kid forces the refresh that loads the doubled set.
    assert_rejected!(
        v,
        random_kid_token(&tp, 1),
        VerifyError::UnknownKey,
        "unknown kid"
    );
    assert_eq!(tp.jwks_fetch_count(), 2);
    assert_rejected!(
        v,
        token,
        VerifyError::DuplicateKeyId,
        "the cached token after its kid was duplicated"
    );
    tp.set_jwks_override(None);
    assert_rejected!(
        v,
        random_kid_token(&tp, 2),
        VerifyError::UnknownKey,
        "unknown kid"
    );
    assert_eq!(tp.jwks_fetch_count(), 3);
    accepted(&v, &token, "the kid names one key again").await;
}

// ---------------------------------------------------------------------------------------------
// KEY-07 JWKS outages
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_07_jwks_5xx_after_good_fetch_keeps_last_keys() {
    let (tp, v) = setup_with(|b| {
        b.with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(10))
            .with_unknown_kid_cooldown(Duration::from_millis(100))
            .with_retry_backoff(Duration::from_millis(100), Duration::from_millis(200))
    })
    .await;
    tp.set_jwks_cache_control(Some("max-age=1"));
    let token = tp.token().sign();
    accepted(&v, &token, "warm-up").await;
    tp.fail_jwks(Failure::Status(500));

    // An unknown kid forces a refetch, which fails: the token is unknown, keys stay.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let unknown = tp.token().header("kid", "nope").sign();
    assert_rejected!(
        v,
        unknown,
        VerifyError::UnknownKey,
        "unknown kid while down"
    );
    assert_eq!(tp.jwks_fetch_count(), 2);
    accepted(&v, &token, "known kid after a failed refetch").await;

    // The periodic refresh comes due and fails too.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    accepted(&v, &token, "known kid, refresh due").await;
    assert!(eventually(Duration::from_secs(2), || tp.jwks_fetch_count() >= 3).await);
    for _ in 0..5 {
        accepted(&v, &token, "known kid while down").await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(v.provider().readiness().is_ready());
    assert!(
        tp.jwks_fetch_count() <= 3 + 5,
        "retries paced by the backoff"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_07_jwks_hang_after_good_fetch_bounded_by_client_timeout() {
    let (tp, v) = setup_with(|b| {
        b.with_http_client(short_timeout_client())
            .with_unknown_kid_cooldown(Duration::from_millis(100))
    })
    .await;
    let token = tp.token().sign();
    accepted(&v, &token, "warm-up").await;
    tp.fail_jwks(Failure::Hang);
    tokio::time::sleep(Duration::from_millis(150)).await;

    let start = Instant::now();
    let unknown = tp.token().header("kid", "rotated-maybe").sign();
    assert_rejected!(
        v,
        unknown,
        VerifyError::UnknownKey,
        "unknown kid while hanging"
    );
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "did not wait for the fetch: {waited:?}"
    );
    assert!(
        waited < Duration::from_secs(3),
        "not bounded by the client timeout: {waited:?}"
    );
    assert_eq!(tp.jwks_fetch_count(), 2);

    let start = Instant::now();
    accepted(&v, &token, "known kid while the endpoint hangs").await;
    assert!(
        start.elapsed() < Duration::from_millis(300),
        "known kid waited on the provider"
    );
}

#[tokio::test]
async fn key_07_cold_start_jwks_down_keys_unavailable() {
    let (tp, v) =
        setup_with(|b| b.with_retry_backoff(Duration::from_millis(200), Duration::from_secs(1)))
            .await;
    tp.fail_jwks(Failure::Status(500));
    let token = tp.token().sign();

    let first = assert_rejected!(
        v,
        token,
        VerifyError::KeysUnavailable(JwksError::Status(500)),
        "first attempt"
    );
    assert!(first.is_unavailable());

    let second = assert_rejected!(
        v,
        token,
        VerifyError::KeysUnavailable(JwksError::Backoff { .. }),
        "within the backoff"
    );
    assert!(second.is_unavailable());
    let retry_after = second.retry_after().expect("retry_after while backing off");
    assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_millis(200));
    assert_eq!(tp.jwks_fetch_count(), 1, "no fetch during the backoff");
    assert!(!v.provider().readiness().keys);
    // A bad token is still reported as unavailable keys, not as a bad token.
    assert!(
        verify(&v, &tp.token().sign_with_foreign_key())
            .await
            .unwrap_err()
            .is_unavailable()
    );
    // Errors that are about the token are not "unavailable".
    let bad = verify(&v, "x.y").await.unwrap_err();
    assert!(!bad.is_unavailable() && bad.retry_after().is_none());
}

#[tokio::test]
async fn key_07_cold_start_jwks_hang_times_out() {
    let (tp, v) = setup_with(|b| b.with_http_client(short_timeout_client())).await;
    tp.fail_jwks(Failure::Hang);
    let start = Instant::now();
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::Timeout)),
        "cold start, JWKS hangs"
    );
    assert!(start.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn key_07_cold_start_connection_refused() {
    let tp = TestProvider::start().await;
    // A port with nothing listening on it.
    let addr = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let v = verifier_with(&tp, |b| b.with_jwks_uri(format!("http://{addr}/jwks")));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::Connect(_))),
        "cold start, connection refused"
    );
}

#[tokio::test]
async fn key_07_recovers_after_backoff() {
    let (tp, v) = setup_with(|b| {
        b.with_retry_backoff(Duration::from_millis(150), Duration::from_millis(300))
    })
    .await;
    tp.fail_jwks(Failure::Status(503));
    let token = tp.token().sign();
    assert!(verify(&v, &token).await.unwrap_err().is_unavailable());
    tp.fail_jwks(Failure::None);
    // Still within the backoff: no new attempt yet.
    let err = verify(&v, &token).await.unwrap_err();
    assert!(err.retry_after().is_some(), "{err:?}");
    assert_eq!(tp.jwks_fetch_count(), 1);
    tokio::time::sleep(Duration::from_millis(200)).await;
    accepted(&v, &token, "after recovery").await;
    assert_eq!(tp.jwks_fetch_count(), 2);
    assert!(v.provider().readiness().is_ready());
}

#[tokio::test]
async fn key_07_discovery_down_then_recovers() {
    let (tp, v) = setup_with(|b| {
        b.with_retry_backoff(Duration::from_millis(150), Duration::from_millis(300))
    })
    .await;
    tp.fail_discovery(Failure::Status(502));
    let token = tp.token().sign();
    assert_rejected!(
        v,
        token,
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::Status(502))),
        "discovery 502"
    );
    let err = verify(&v, &token).await.unwrap_err();
    assert!(err.retry_after().is_some(), "{err:?}");
    tp.fail_discovery(Failure::None);
    tokio::time::sleep(Duration::from_millis(200)).await;
    accepted(&v, &token, "after discovery recovered").await;
}

#[tokio::test]
async fn key_07_max_stale_bounds_last_good_keys() {
    let (tp, v) = setup_with(|b| {
        b.with_max_stale(Duration::from_millis(800))
            .with_retry_backoff(Duration::from_millis(100), Duration::from_millis(200))
    })
    .await;
    let token = tp.token().sign();
    accepted(&v, &token, "warm-up").await;
    tp.fail_jwks(Failure::Status(500));
    accepted(&v, &token, "within max-stale").await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(!v.provider().readiness().keys, "keys older than max-stale");
    assert_rejected!(
        v,
        token,
        VerifyError::KeysUnavailable(JwksError::Status(500)),
        "beyond max-stale"
    );
    // And back once the provider is.
    tp.fail_jwks(Failure::None);
    tokio::time::sleep(Duration::from_millis(150)).await;
    accepted(&v, &token, "after recovery").await;
}

// ---------------------------------------------------------------------------------------------
// DOS-04 hostile upstream responses
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dos_04_huge_jwks_rejected_by_body_cap() {
    let (tp, v) = setup().await;
    tp.fail_jwks(Failure::Huge(2 * 1024 * 1024));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::BodyTooLarge {
            limit: 1_048_576
        })),
        "2 MiB JWKS"
    );
}

#[tokio::test]
async fn dos_04_body_cap_configurable() {
    let client = ReqwestClient::new().unwrap().with_max_body(64 * 1024);
    let (tp, v) = setup_with(|b| {
        b.with_http_client(Arc::new(client))
            .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
    })
    .await;
    // The normal JWKS padded to 100 KB, under a 64 KiB cap.
    tp.fail_jwks(Failure::Huge(100_000));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::BodyTooLarge { limit: 65_536 })),
        "100 KB JWKS, 64 KiB cap"
    );
    // The same padded document under the default 1 MiB cap is fine (valid JSON + spaces).
    let (tp2, v2) = setup().await;
    tp2.fail_jwks(Failure::Huge(100_000));
    accepted(&v2, &tp2.token().sign(), "padded set under the default cap").await;
}

#[tokio::test]
async fn dos_04_jwks_over_512_kib_rejected_under_a_larger_client_cap() {
    // The default client reads up to 1 MiB; a key set is capped at 512 KiB (DOS-04) by the
    // JWKS cache itself, whatever the client allows.
    let (tp, v) = setup().await;
    tp.fail_jwks(Failure::Huge(600_000));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::BodyTooLarge { limit: 524_288 })),
        "600 KB JWKS, 1 MiB client cap"
    );
    assert_eq!(tp.jwks_fetch_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dos_04_jwks_redirect_not_followed() {
    let (tp, v) = setup().await;
    let (addr, hits) = counting_listener().await;
    tp.fail_jwks(Failure::Redirect(format!("http://{addr}/jwks")));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Status(302)),
        "JWKS redirect"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dos_04_discovery_redirect_not_followed() {
    let (tp, v) = setup().await;
    let (addr, hits) = counting_listener().await;
    tp.fail_discovery(Failure::Redirect(format!(
        "http://{addr}/.well-known/openid-configuration"
    )));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::Status(302))),
        "discovery redirect"
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the redirect was followed");
    assert_eq!(tp.jwks_fetch_count(), 0);
}

/// A bare HTTP/1.1 server on a std thread: reads one request, then lets `respond` write
/// whatever it likes (until the client goes away).
fn raw_http_server(respond: fn(&mut std::net::TcpStream) -> std::io::Result<()>) -> SocketAddr {
    use std::io::Read as _;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = respond(&mut stream);
        }
    });
    addr
}

#[tokio::test]
async fn dos_04_chunked_body_without_length_capped() {
    let addr = raw_http_server(|stream| {
        use std::io::Write as _;
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
        )?;
        stream.write_all(b"b\r\n{\"keys\":[] \r\n")?;
        let chunk = vec![b' '; 64 * 1024];
        for _ in 0..64 {
            // 4 MiB of padding in total, no Content-Length to check up front.
            write!(stream, "{:x}\r\n", chunk.len())?;
            stream.write_all(&chunk)?;
            stream.write_all(b"\r\n")?;
        }
        stream.write_all(b"1\r\n}\r\n0\r\n\r\n")
    });
    let (tp, v) = setup_with(|b| b.with_jwks_uri(format!("http://{addr}/jwks"))).await;
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::BodyTooLarge {
            limit: 1_048_576
        })),
        "chunked 4 MiB JWKS"
    );
}

#[tokio::test]
async fn dos_04_trickling_jwks_bounded_by_total_timeout() {
    let addr = raw_http_server(|stream| {
        use std::io::Write as _;
        stream.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )?;
        for _ in 0..100 {
            std::thread::sleep(Duration::from_millis(50));
            stream.write_all(b" ")?;
            stream.flush()?;
        }
        Ok(())
    });
    let (tp, v) = setup_with(|b| {
        b.with_jwks_uri(format!("http://{addr}/jwks"))
            .with_http_client(short_timeout_client())
    })
    .await;
    let start = Instant::now();
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Http(HttpError::Timeout)),
        "trickling JWKS"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn dos_04_garbage_jwks_rejected() {
    let (tp, v) = setup().await;
    tp.fail_jwks(Failure::Garbage);
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::InvalidDocument(_)),
        "garbage JWKS"
    );
    // Valid JSON that is not a JWK set, and a truncated document.
    for body in [
        &br#"{"keys":"none"}"#[..],
        b"[]",
        b"{}",
        br#"{"keys":[{"kty":"RSA""#,
    ] {
        let (tp, v) = setup().await;
        tp.set_jwks_override(Some(body.to_vec()));
        assert_rejected!(
            v,
            tp.token().sign(),
            VerifyError::KeysUnavailable(JwksError::InvalidDocument(_)),
            String::from_utf8_lossy(body)
        );
    }
}

#[tokio::test]
async fn dos_04_garbage_or_huge_discovery_rejected() {
    let (tp, v) = setup().await;
    tp.fail_discovery(Failure::Garbage);
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::InvalidDocument(_))),
        "garbage discovery"
    );
    let (tp, v) = setup().await;
    tp.fail_discovery(Failure::Huge(2 * 1024 * 1024));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::Http(
            HttpError::BodyTooLarge { .. }
        ))),
        "2 MiB discovery"
    );
    let (tp, v) = setup_with(|b| b.with_http_client(short_timeout_client())).await;
    tp.fail_discovery(Failure::Hang);
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::Http(
            HttpError::Timeout
        ))),
        "hanging discovery"
    );
}

// ---------------------------------------------------------------------------------------------
// CB-11 discovery
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn cb_11_discovery_issuer_mismatch_refused() {
    for (what, value) in [
        ("other host", Some("https://evil.example".to_owned())),
        ("trailing slash", None),
    ] {
        let (tp, v) = setup().await;
        let found = value.unwrap_or_else(|| format!("{}/", tp.issuer()));
        tp.set_discovery_member("issuer", Some(json!(found)));
        let err = verify(&v, &tp.token().sign()).await.unwrap_err();
        assert!(err.is_unavailable(), "{what}: {err:?}");
        match &err {
            VerifyError::KeysUnavailable(JwksError::Discovery(
                DiscoveryError::IssuerMismatch { found: f },
            )) => assert_eq!(f, &found, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        // The same through `source()`, as a logger would see it.
        let source = std::error::Error::source(&err).unwrap();
        let jwks = source.downcast_ref::<JwksError>().unwrap();
        assert!(matches!(
            jwks,
            JwksError::Discovery(DiscoveryError::IssuerMismatch { .. })
        ));
        assert_eq!(
            tp.jwks_fetch_count(),
            0,
            "{what}: keys fetched from a refused provider"
        );
    }
}

#[tokio::test]
async fn cb_11_rfc8414_fallback_verifies() {
    let (tp, v) = setup().await;
    tp.serve_oauth_metadata_only(true);
    accepted(&v, &tp.token().sign(), "via oauth-authorization-server").await;
    assert_eq!(
        tp.discovery_fetch_count(),
        2,
        "404 on openid-configuration, then RFC 8414"
    );
    assert_eq!(tp.jwks_fetch_count(), 1);
}

#[tokio::test]
async fn cb_11_insecure_jwks_uri_refused() {
    let (tp, v) = setup().await;
    tp.set_discovery_member("jwks_uri", Some(json!("http://keys.example.com/jwks")));
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::InvalidEndpoint(
            ConfigError::InsecureUrl { .. }
        ))),
        "http jwks_uri"
    );
    assert_eq!(tp.jwks_fetch_count(), 0);
    for (what, uri) in [
        ("file scheme", json!("file:///etc/passwd")),
        (
            "user info",
            json!(format!("http://user:pw@{}/jwks", tp.addr())),
        ),
        ("not a string", json!(42)),
    ] {
        let (tp, v) = setup().await;
        tp.set_discovery_member("jwks_uri", Some(uri));
        assert_rejected!(
            v,
            tp.token().sign(),
            VerifyError::KeysUnavailable(JwksError::Discovery(
                DiscoveryError::InvalidEndpoint(_) | DiscoveryError::InvalidDocument(_)
            )),
            what
        );
        assert_eq!(tp.jwks_fetch_count(), 0, "{what}");
    }
    let (tp, v) = setup().await;
    tp.set_discovery_member("jwks_uri", None);
    assert_rejected!(
        v,
        tp.token().sign(),
        VerifyError::KeysUnavailable(JwksError::Discovery(DiscoveryError::InvalidDocument(_))),
        "missing jwks_uri"
    );
}

#[tokio::test]
async fn cb_11_metadata_exposes_endpoints() {
    let tp = TestProvider::start().await;
    tp.set_discovery_member(
        "end_session_endpoint",
        Some(json!("https://id.example/logout")),
    );
    tp.set_discovery_member("userinfo_endpoint", None);
    let doc = tp.discovery_document();
    let provider = Provider::builder(tp.issuer()).build().unwrap();
    let issuer = tp.issuer();
    let m = provider.metadata().await.unwrap();
    assert_eq!(m.issuer(), issuer);
    assert_eq!(m.jwks_uri(), tp.jwks_uri());
    assert_eq!(
        m.authorization_endpoint(),
        Some(format!("{issuer}/authorize").as_str())
    );
    assert_eq!(m.token_endpoint(), Some(format!("{issuer}/token").as_str()));
    assert_eq!(m.userinfo_endpoint(), None);
    assert_eq!(m.end_session_endpoint(), Some("https://id.example/logout"));
    let strings = |name: &str| -> Option<Vec<String>> {
        doc.get(name).map(|v| {
            v.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        })
    };
    assert_eq!(
        m.code_challenge_methods_supported().map(<[String]>::to_vec),
        strings("code_challenge_methods_supported")
    );
    assert_eq!(
        m.id_token_signing_alg_values_supported()
            .map(<[String]>::to_vec),
        strings("id_token_signing_alg_values_supported")
    );
    let algs = m.id_token_signing_alg_values_supported().unwrap();
    assert!(algs.iter().any(|a| a == "RS256") && algs.iter().any(|a| a == "EdDSA"));
    assert_eq!(
        m.authorization_response_iss_parameter_supported(),
        doc["authorization_response_iss_parameter_supported"]
            .as_bool()
            .unwrap_or(false)
    );
    // Cached: one discovery fetch.
    provider.metadata().await.unwrap();
    assert_eq!(tp.discovery_fetch_count(), 1);
    assert!(provider.readiness().metadata);
    assert!(!provider.readiness().keys);
}

#[tokio::test]
async fn cb_11_jwks_uri_taken_from_discovery() {
    // The keys come from wherever discovery points, even another host/port.
    let keys_host = TestProvider::start().await;
    let (tp, v) = setup().await;
    tp.set_discovery_member("jwks_uri", Some(json!(keys_host.jwks_uri())));
    accepted(&v, &tp.token().sign(), "keys from the discovered jwks_uri").await;
    assert_eq!(tp.jwks_fetch_count(), 0);
    assert_eq!(keys_host.jwks_fetch_count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Provider builder, readiness, manual configuration
// ---------------------------------------------------------------------------------------------

#[test]
fn provider_builder_rejects_insecure_or_invalid_urls() {
    let err = Provider::builder("http://id.example.com")
        .build()
        .unwrap_err();
    assert!(
        matches!(&err, ConfigError::InsecureUrl { url } if url == "http://id.example.com"),
        "{err:?}"
    );
    assert!(
        Provider::builder("http://id.example.com")
            .insecure_allow_http()
            .build()
            .is_ok()
    );
    let err = Provider::builder("https://id.example.com")
        .with_jwks_uri("http://id.example.com/keys")
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InsecureUrl { .. }), "{err:?}");
    assert!(matches!(
        Provider::builder("not a url").build().unwrap_err(),
        ConfigError::InvalidIssuer(_)
    ));
    for bad in [
        "https://id.example.com/#x",
        "https://u:p@id.example.com",
        "ftp://id.example.com",
    ] {
        assert!(
            matches!(
                Provider::builder(bad).build().unwrap_err(),
                ConfigError::InvalidUrl { .. }
            ),
            "{bad}"
        );
    }
    for ok in [
        "https://id.example.com",
        "http://localhost:4000",
        "http://127.0.0.1:1",
        "http://[::1]:2",
    ] {
        assert!(Provider::builder(ok).build().is_ok(), "{ok}");
    }
}

#[tokio::test]
async fn provider_build_does_no_io() {
    let tp = TestProvider::start().await;
    let provider = Provider::builder(tp.issuer()).build().unwrap();
    let v = verifier(provider.clone());
    assert_eq!(provider.issuer(), tp.issuer());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tp.discovery_fetch_count(), 0);
    assert_eq!(tp.jwks_fetch_count(), 0);
    let r = provider.readiness();
    assert!(!r.metadata && !r.keys && !r.is_ready());
    assert!(!v.provider().readiness().is_ready());
}

#[tokio::test]
async fn provider_warm_up_loads_metadata_and_keys() {
    let tp = TestProvider::start().await;
    let provider = Provider::builder(tp.issuer()).build().unwrap();
    provider.warm_up().await.unwrap();
    let r = provider.readiness();
    assert!(r.metadata && r.keys && r.is_ready());
    assert_eq!((tp.discovery_fetch_count(), tp.jwks_fetch_count()), (1, 1));
    provider.warm_up().await.unwrap();
    assert_eq!(tp.jwks_fetch_count(), 1, "a second warm-up does nothing");
    let v = verifier(provider);
    accepted(&v, &tp.token().sign(), "after warm-up").await;
    assert_eq!((tp.discovery_fetch_count(), tp.jwks_fetch_count()), (1, 1));
}

#[tokio::test]
async fn provider_warm_up_reports_failures() {
    let tp = TestProvider::start().await;
    tp.fail_discovery(Failure::Status(500));
    let provider = Provider::builder(tp.issuer())
        .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
        .build()
        .unwrap();
    let err = provider.warm_up().await.unwrap_err();
    assert!(
        matches!(err, JwksError::Discovery(DiscoveryError::Status(500))),
        "{err:?}"
    );
    assert!(!provider.readiness().is_ready());
    tp.fail_discovery(Failure::None);
    tokio::time::sleep(Duration::from_millis(80)).await;
    provider.warm_up().await.unwrap();
    assert!(provider.readiness().is_ready());
}

#[tokio::test]
async fn provider_manual_jwks_uri_skips_discovery() {
    let tp = TestProvider::start().await;
    let provider = Provider::builder(tp.issuer())
        .with_jwks_uri(tp.jwks_uri())
        .build()
        .unwrap();
    assert!(
        provider.readiness().metadata,
        "manual metadata is known without I/O"
    );
    assert!(!provider.readiness().keys);
    let m = provider.metadata().await.unwrap();
    assert_eq!(m.jwks_uri(), tp.jwks_uri());
    assert_eq!(m.token_endpoint(), None);
    assert_eq!(m.id_token_signing_alg_values_supported(), None);
    let v = verifier(provider);
    accepted(&v, &tp.token().sign(), "rs256").await;
    accepted(&v, &tp.token().alg(SigningAlg::ES256).sign(), "es256").await;
    assert_eq!(tp.discovery_fetch_count(), 0);
    assert_eq!(tp.jwks_fetch_count(), 1);
}

// ---------------------------------------------------------------------------------------------
// Cache-Control driven refresh
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_max_age_triggers_background_refresh() {
    let (tp, v) =
        setup_with(|b| b.with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(10)))
            .await;
    tp.set_jwks_cache_control(Some("public, max-age=1"));
    let token = tp.token().sign();
    accepted(&v, &token, "warm-up").await;
    // Not yet due: no fetch.
    accepted(&v, &token, "fresh").await;
    assert_eq!(tp.jwks_fetch_count(), 1);

    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The refresh is slow; the verification must not wait for it.
    tp.fail_jwks(Failure::Delay(Duration::from_millis(800)));
    let start = Instant::now();
    accepted(&v, &token, "due: served from cache").await;
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "the verification waited for the refresh: {:?}",
        start.elapsed()
    );
    assert!(
        eventually(Duration::from_secs(2), || tp.jwks_fetch_count() == 2).await,
        "no background refresh"
    );
    // Concurrent verifications while the refresh is under way start no second one.
    for _ in 0..10 {
        accepted(&v, &token, "during refresh").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(tp.jwks_fetch_count(), 2);
}

#[tokio::test]
async fn cache_control_max_age_clamped_to_min_refresh() {
    let (tp, v) =
        setup_with(|b| b.with_refresh_bounds(Duration::from_secs(1), Duration::from_secs(10)))
            .await;
    tp.set_jwks_cache_control(Some("max-age=0"));
    let token = tp.token().sign();
    for _ in 0..20 {
        accepted(&v, &token, "max-age=0").await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        tp.jwks_fetch_count(),
        1,
        "max-age=0 must not refetch on every request"
    );
}

// ---------------------------------------------------------------------------------------------
// DOS-05 expensive keys and verification loops: key sizes capped, kid-less tokens never try
// keys one by one, unknown kids paced (KEY-04)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn dos_05_rsa_keys_outside_2048_to_8192_bits_are_never_used() {
    let tp = TestProvider::start().await;
    let good = published_jwk(&tp, &tp.kid(SigningAlg::RS256));
    let with_modulus = |kid: &str, bits: usize| {
        let mut jwk = good.clone();
        jwk["kid"] = kid.into();
        // An odd modulus of exactly `bits` bits: its size alone decides.
        let mut n = vec![0xC5_u8; bits / 8];
        n[0] = 0xF1;
        jwk["n"] = URL_SAFE_NO_PAD.encode(n).into();
        jwk
    };
    tp.set_jwks_override(jwks_body(vec![
        good.clone(),
        with_modulus("rsa-16384", 16_384),
        with_modulus("rsa-1024", 1_024),
    ]));
    let v = verifier_for(&tp);
    for kid in ["rsa-16384", "rsa-1024"] {
        for _ in 0..3 {
            let token = tp.token().header("kid", kid).sign();
            assert_rejected!(v, token, VerifyError::UnknownKey, kid);
        }
    }
    // The other key of the same set is kept and verifies; the refusals cost at most one
    // forced refetch within the cooldown.
    accepted(&v, &tp.token().sign(), "the 2048-bit key of the same set").await;
    assert!(
        tp.jwks_fetch_count() <= 2,
        "{} fetches",
        tp.jwks_fetch_count()
    );
}

#[tokio::test]
async fn dos_05_kid_less_token_against_many_keys_is_refused_without_trying_them() {
    let tp = TestProvider::start().await;
    let good = published_jwk(&tp, &tp.kid(SigningAlg::RS256));
    // 200 RS256 keys without kid, the signing key among them.
    let keys: Vec<Value> = (0..200)
        .map(|_| {
            let mut jwk = good.clone();
            jwk.as_object_mut().unwrap().remove("kid");
            jwk
        })
        .collect();
    tp.set_jwks_override(jwks_body(keys));
    let v = verifier_for(&tp);
    let token = tp.token().without_header("kid").sign();
    assert_rejected!(
        v,
        token,
        VerifyError::NoMatchingKey,
        "a kid-less token with 200 fitting keys"
    );
    assert!(
        tp.jwks_fetch_count() <= 2,
        "{} fetches",
        tp.jwks_fetch_count()
    );
}
