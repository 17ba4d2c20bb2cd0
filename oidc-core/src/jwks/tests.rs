use super::fetch::{MAX_BODY, fetch, max_age};
use super::key::{parse_key, parse_set};
use super::*;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::HttpError;
use crate::http::{HttpRequest, HttpResponse};

use oidc_testing::TestProvider;
use serde_json::{Value, json};

fn timings() -> JwksTimings {
    JwksTimings::default()
}

/// An HTTP client for tests that never reach it: every request fails.
#[derive(Debug)]
struct NoHttp;

#[async_trait::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, _request: HttpRequest) -> Result<HttpResponse, HttpError> {
        Err(HttpError::Timeout)
    }
}

/// A cache whose sets come from the `refresh` loaders of the test.
fn new_cache(timings: JwksTimings) -> JwksCache {
    JwksCache::new(timings, Arc::new(NoHttp))
}

/// An HTTP client that answers every request with `status` and `body`, and records the
/// requests.
#[derive(Debug)]
struct Canned {
    status: u16,
    body: Vec<u8>,
    requests: Mutex<Vec<(http::Method, String, Option<String>)>>,
}

impl Canned {
    fn new(status: u16, body: Vec<u8>) -> Self {
        Self {
            status,
            body,
            requests: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait::async_trait]
impl HttpClient for Canned {
    async fn execute(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let accept = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        self.requests.lock().unwrap().push((
            request.method().clone(),
            request.uri().to_string(),
            accept,
        ));
        Ok(http::Response::builder()
            .status(self.status)
            .body(self.body.clone())
            .unwrap())
    }
}

/// A valid, empty JWK set padded with spaces to exactly `len` bytes.
fn padded_empty_set(len: usize) -> Vec<u8> {
    let mut body = br#"{"keys": []}"#.to_vec();
    body.resize(len, b' ');
    body
}

// --- Fetching: the request, the status, the size cap (DOS-04) ---------------------------------

#[tokio::test]
async fn fetch_gets_the_jwks_uri_asking_for_a_jwk_set() {
    let http = Canned::new(200, padded_empty_set(12));
    let fetched = fetch(&http, "https://id.example.com/keys").await.unwrap();
    assert!(fetched.keys.keys.is_empty());
    assert_eq!(
        *http.requests.lock().unwrap(),
        [(
            http::Method::GET,
            "https://id.example.com/keys".to_owned(),
            Some("application/jwk-set+json, application/json".to_owned())
        )]
    );
}

#[tokio::test]
async fn fetch_refuses_any_status_but_200() {
    for status in [201, 204, 302, 304, 404, 500] {
        let http = Canned::new(status, padded_empty_set(12));
        assert!(
            matches!(
                fetch(&http, "https://id.example.com/keys").await,
                Err(JwksError::Status(s)) if s == status
            ),
            "{status}"
        );
    }
}

#[tokio::test]
async fn dos_04_jwks_body_over_512_kib_refused_whatever_the_client_allows() {
    // A client that reads any size (a custom HttpClient): the cache still refuses the body.
    let http = Canned::new(200, padded_empty_set(MAX_BODY + 1));
    assert!(matches!(
        fetch(&http, "https://id.example.com/keys").await,
        Err(JwksError::Http(HttpError::BodyTooLarge { limit })) if limit == 512 * 1024
    ));
    // At the cap, the same document is a key set.
    let http = Canned::new(200, padded_empty_set(MAX_BODY));
    assert!(fetch(&http, "https://id.example.com/keys").await.is_ok());
}

fn set(keys: Vec<Value>) -> Vec<u8> {
    serde_json::to_vec(&json!({ "keys": keys })).unwrap()
}

fn kids(keys: &[Arc<VerifyingKey>]) -> Vec<&str> {
    keys.iter().filter_map(|k| k.kid()).collect()
}

/// The published JWKs of a fresh test provider (no HTTP is done).
async fn published() -> (TestProvider, Vec<Value>) {
    let tp = TestProvider::start().await;
    let keys = tp.public_jwks()["keys"].as_array().unwrap().clone();
    (tp, keys)
}

fn jwk(keys: &[Value], kid: &str) -> Value {
    keys.iter().find(|k| k["kid"] == kid).unwrap().clone()
}

fn b64e(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

// --- KEY-05: parsing a set with unusable keys -------------------------------------------------

#[tokio::test]
async fn key_05_parse_set_skips_unusable_keys_and_keeps_the_rest() {
    let (_tp, keys) = published().await;
    let rsa = jwk(&keys, "rsa1-RS256");
    let ec = jwk(&keys, "ec1-ES256");
    let ed = jwk(&keys, "ed1-EdDSA");
    let body = set(vec![
        json!({"kty": "AKP", "alg": "ML-DSA-65", "kid": "akp", "pub": "AAAA", "param-set": "bogus"}),
        json!({"kty": "made-up", "kid": "weird"}),
        json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "RSA", "key_ops": ["encrypt", "wrapKey"], "kid": "ops", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "oct", "k": "c2VjcmV0", "kid": "oct", "alg": "HS256"}),
        json!({"kty": "RSA", "kid": "rsa-512", "n": b64e(&[0xC1; 64]), "e": "AQAB"}),
        json!({"kty": "EC", "crv": "P-256", "kid": "ec-bad-x", "x": b64e(&[1; 31]), "y": ec["y"]}),
        json!({"kty": "EC", "crv": "P-256", "kid": "ec-no-y", "x": ec["x"]}),
        json!({"kty": "OKP", "crv": "Ed25519", "kid": "ed-long", "x": b64e(&[1; 33])}),
        json!({"kty": "RSA", "alg": "ES256", "kid": "rsa-as-ec", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "RSA", "alg": "none", "kid": "rsa-none", "n": rsa["n"], "e": rsa["e"]}),
        json!({"kty": "RSA", "kid": "rsa-bad-b64", "n": "!!!", "e": "AQAB"}),
        json!({"kid": "no-kty"}),
        json!(null),
        json!("string"),
        rsa.clone(),
        ec.clone(),
        ed.clone(),
        // Usable variants: explicit `use: sig` and `key_ops` with `verify`.
        json!({"kty": "RSA", "use": "sig", "key_ops": ["verify"], "kid": "rsa-ops-ok", "n": rsa["n"], "e": rsa["e"]}),
    ]);
    let parsed = parse_set(&body).unwrap();
    assert!(parsed.duplicated.is_empty());
    assert_eq!(
        kids(&parsed.keys),
        ["rsa1-RS256", "ec1-ES256", "ed1-EdDSA", "rsa-ops-ok"]
    );
}

#[test]
fn key_05_parse_set_rejects_documents_that_are_not_sets() {
    for body in [
        &b"not json"[..],
        b"{}",
        br#"{"keys": {}}"#,
        br#"{"keys": "x"}"#,
        b"",
        br#"[[]]"#,
        br#"  [[{"kty":"RSA"}]]"#,
    ] {
        assert!(
            matches!(parse_set(body), Err(JwksError::InvalidDocument(_))),
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert!(parse_set(br#"{"keys": []}"#).unwrap().keys.is_empty());
}

#[tokio::test]
async fn key_05_rsa_size_and_exponent_bounds() {
    let (_tp, keys) = published().await;
    let rsa = jwk(&keys, "rsa1-RS256");
    let n = URL_SAFE_NO_PAD.decode(rsa["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256);
    let with = |n: &[u8], e: &str| json!({"kty": "RSA", "n": b64e(n), "e": e});
    let mut padded = vec![0u8; 3];
    padded.extend_from_slice(&n);
    for (what, value, ok) in [
        ("2048 bits", with(&n, "AQAB"), true),
        ("leading zeros stripped", with(&padded, "AQAB"), true),
        ("2040 bits", with(&n[1..], "AQAB"), false),
        ("8192 bits", with(&[0xC3; 1024], "AQAB"), true),
        ("8200 bits", with(&[0xC3; 1025], "AQAB"), false),
        ("e = 1", with(&n, "AQ"), false),
        ("e even", with(&n, "AAI"), false),
        ("e empty", with(&n, ""), false),
        ("e zero", with(&n, "AA"), false),
        ("e 5 bytes", with(&n, &b64e(&[1, 0, 0, 0, 1])), false),
        ("e = 3", with(&n, "Aw"), true),
    ] {
        assert_eq!(parse_key(value).is_ok(), ok, "{what}");
    }
}

#[tokio::test]
async fn key_01_fits_by_type_curve_and_alg() {
    use Algorithm::*;
    let (_tp, keys) = published().await;
    let mut no_alg = jwk(&keys, "rsa1-RS256");
    no_alg.as_object_mut().unwrap().remove("alg");
    let cases = [
        (jwk(&keys, "rsa1-RS256"), vec![RS256]),
        (jwk(&keys, "rsa1-PS384"), vec![PS384]),
        (no_alg, vec![RS256, RS384, RS512, PS256, PS384, PS512]),
        (jwk(&keys, "ec1-ES256"), vec![ES256]),
        (jwk(&keys, "ed1-EdDSA"), vec![EdDSA]),
    ];
    for (value, fitting) in cases {
        let key = parse_key(value.clone()).unwrap();
        for alg in Algorithm::ALL {
            assert_eq!(
                key.fits(alg),
                fitting.contains(&alg),
                "{} with {alg}",
                value["kid"]
            );
        }
    }
}

/// Every `kid` that names two usable keys, whatever they are, is refused with all its keys.
#[tokio::test]
async fn key_05_duplicate_kid_takes_out_every_key_under_it() {
    let (_tp, keys) = published().await;
    let rsa1 = jwk(&keys, "rsa1-RS256");
    let ec = jwk(&keys, "ec1-ES256");
    let under = |mut key: Value, kid: &str| {
        key["kid"] = json!(kid);
        key
    };
    let mut other_alg = rsa1.clone();
    other_alg["alg"] = json!("PS256");
    let mut enc = rsa1.clone();
    enc["use"] = json!("enc");
    let mut unusable = rsa1.clone();
    unusable["kty"] = json!("made-up");
    let cases = [
        (
            "another key type",
            vec![rsa1.clone(), under(ec.clone(), "rsa1-RS256")],
            true,
        ),
        ("an identical copy", vec![rsa1.clone(), rsa1.clone()], true),
        (
            "the same key with another alg",
            vec![rsa1.clone(), other_alg],
            true,
        ),
        (
            "three keys",
            vec![rsa1.clone(), rsa1.clone(), under(ec.clone(), "rsa1-RS256")],
            true,
        ),
        // Only usable signature keys count.
        ("a use:enc key", vec![enc.clone(), rsa1.clone()], false),
        ("an unusable key", vec![rsa1.clone(), unusable], false),
    ];
    for (what, set_keys, refused) in cases {
        let parsed = parse_set(&set(set_keys)).unwrap();
        if refused {
            assert!(parsed.keys.is_empty(), "{what}: {:?}", parsed.keys);
            assert_eq!(parsed.duplicated.len(), 1, "{what}");
            assert_eq!(&*parsed.duplicated[0], "rsa1-RS256", "{what}");
        } else {
            assert_eq!(kids(&parsed.keys), ["rsa1-RS256"], "{what}");
            assert!(parsed.duplicated.is_empty(), "{what}");
        }
    }
    // The rest of the set is kept; keys without kid do not collide with each other.
    let mut no_kid = ec.clone();
    no_kid.as_object_mut().unwrap().remove("kid");
    let parsed = parse_set(&set(vec![
        rsa1.clone(),
        ec.clone(),
        no_kid.clone(),
        no_kid,
        under(ec, "rsa1-RS256"),
    ]))
    .unwrap();
    assert_eq!(kids(&parsed.keys), ["ec1-ES256"]);
    assert_eq!(parsed.keys.len(), 3, "the two keys without kid stay");
    assert_eq!(parsed.duplicated.len(), 1);
}

#[tokio::test]
async fn key_05_key_count_capped() {
    let (_tp, keys) = published().await;
    let rsa1 = jwk(&keys, "rsa1-RS256");
    let many: Vec<Value> = (0..100)
        .map(|i| {
            let mut k = rsa1.clone();
            k["kid"] = json!(format!("k{i}"));
            k
        })
        .collect();
    let parsed = parse_set(&set(many)).unwrap().keys;
    assert_eq!(parsed.len(), MAX_KEYS);
    assert_eq!(parsed.last().unwrap().kid(), Some("k63"));
}

/// A key whose kid becomes duplicated is retired (its token-cache entries die) and its kid is
/// marked, not forgotten; a corrected set brings the kid back.
#[tokio::test]
async fn key_05_kid_duplicated_at_refresh_retires_its_key() {
    let (_tp, raw) = published().await;
    let cache = new_cache(JwksTimings {
        unknown_kid_cooldown: Duration::ZERO,
        ..timings()
    });
    let first = parse_set(&set(raw.clone())).unwrap();
    let load = |keys: KeySet| async move {
        Ok(Fetched {
            keys,
            max_age: None,
        })
    };
    cache.refresh(Reason::Load, || load(first)).await.unwrap();
    let Some(ByKid::Key(before)) = cache.get("rsa1-RS256") else {
        panic!("rsa1-RS256 is loaded")
    };
    let mut twin = jwk(&raw, "ec1-ES256");
    twin["kid"] = json!("rsa1-RS256");
    let mut doubled = raw.clone();
    doubled.push(twin);
    let second = parse_set(&set(doubled)).unwrap();
    cache
        .refresh(Reason::UnknownKid, || load(second))
        .await
        .unwrap();
    assert!(
        before.is_retired(),
        "the key under a now duplicated kid is retired"
    );
    assert!(matches!(cache.get("rsa1-RS256"), Some(ByKid::Duplicated)));
    assert!(
        !cache.all().iter().any(|k| k.kid() == Some("rsa1-RS256")),
        "kid-less tokens cannot pick it either"
    );
    let Some(ByKid::Key(ec)) = cache.get("ec1-ES256") else {
        panic!("ec1-ES256 is still loaded")
    };
    assert!(!ec.is_retired());

    // Corrected: the kid names one key again.
    let third = parse_set(&set(raw)).unwrap();
    cache
        .refresh(Reason::UnknownKid, || load(third))
        .await
        .unwrap();
    let Some(ByKid::Key(after)) = cache.get("rsa1-RS256") else {
        panic!("rsa1-RS256 names one key again")
    };
    assert!(!after.is_retired());
}

// --- Cache-Control ----------------------------------------------------------------------------

#[test]
fn cache_control_max_age_parsing() {
    let hv = |s: &'static str| http::HeaderValue::from_static(s);
    for (value, want) in [
        ("max-age=300", Some(300)),
        ("public, max-age=60", Some(60)),
        ("public,max-age=0,must-revalidate", Some(0)),
        ("MAX-AGE = 5", Some(5)),
        ("max-age=\"10\"", Some(10)),
        ("no-store", None),
        ("s-maxage=10", None),
        ("max-age=-1", None),
        ("max-age=abc", None),
        ("max-age=", None),
        ("", None),
    ] {
        assert_eq!(
            max_age(Some(&hv(value))),
            want.map(Duration::from_secs),
            "{value:?}"
        );
    }
    assert_eq!(max_age(None), None);
}

// --- The cache: single flight, cooldown, backoff, staleness, removal --------------------------

async fn test_keys() -> (TestProvider, Vec<Arc<VerifyingKey>>) {
    let (tp, keys) = published().await;
    let parsed = parse_set(&set(keys)).unwrap().keys;
    assert_eq!(parsed.len(), 8);
    (tp, parsed)
}

fn fetched(keys: &[Arc<VerifyingKey>], max_age: Option<Duration>) -> Fetched {
    Fetched {
        keys: KeySet {
            keys: keys.to_vec(),
            duplicated: Vec::new(),
        },
        max_age,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_concurrent_loads_share_one_fetch() {
    let (_tp, keys) = test_keys().await;
    let cache = Arc::new(new_cache(timings()));
    let fetches = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for _ in 0..50 {
        let cache = cache.clone();
        let fetches = fetches.clone();
        let keys = keys.clone();
        handles.push(tokio::spawn(async move {
            cache
                .refresh(Reason::Load, || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    Ok(fetched(&keys, None))
                })
                .await
        }));
    }
    for h in handles {
        assert!(matches!(h.await.unwrap(), Ok(true)));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    assert!(cache.is_loaded());
    assert!(matches!(cache.get("rsa1-RS256"), Some(ByKid::Key(_))));
}

#[tokio::test]
async fn key_04_load_asked_after_a_concurrent_load_finished_does_not_fetch_again() {
    // A caller that saw `is_loaded() == false` just before another caller's load completed
    // then asks for a load of its own: that must not be a second fetch (single flight).
    let (_tp, keys) = test_keys().await;
    let cache = new_cache(timings());
    let fetches = AtomicUsize::new(0);
    let load = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(fetched(&keys, None))
    };
    assert!(!cache.is_loaded());
    assert!(matches!(cache.refresh(Reason::Load, load).await, Ok(true)));
    assert!(matches!(cache.refresh(Reason::Load, load).await, Ok(true)));
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn key_04_unknown_kid_refetch_paced_by_cooldown() {
    let (_tp, keys) = test_keys().await;
    let cache = new_cache(JwksTimings {
        unknown_kid_cooldown: Duration::from_millis(100),
        ..timings()
    });
    let fetches = AtomicUsize::new(0);
    let load = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(fetched(&keys, None))
    };
    cache.refresh(Reason::Load, load).await.unwrap();
    // The cooldown counts from the last forced refetch, not from the load: the first unknown
    // kid after a load may force one (a key rotated right after the load, KEY-03)...
    assert!(matches!(
        cache.refresh(Reason::UnknownKid, load).await,
        Ok(true)
    ));
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // ...and then none until the cooldown has passed (KEY-04).
    for _ in 0..100 {
        assert!(matches!(
            cache.refresh(Reason::UnknownKid, load).await,
            Ok(false)
        ));
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    // Neither a periodic refresh nor a load restarts the cooldown.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(matches!(
        cache.refresh(Reason::UnknownKid, load).await,
        Ok(true)
    ));
    assert!(matches!(
        cache.refresh(Reason::UnknownKid, load).await,
        Ok(false)
    ));
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn key_04_unknown_kid_on_empty_cache_also_paced() {
    // mobula#28: an empty (or unusable) set must not make every unknown kid refetch.
    let cache = new_cache(timings());
    let fetches = AtomicUsize::new(0);
    let load = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(fetched(&[], None))
    };
    cache.refresh(Reason::Load, load).await.unwrap();
    assert!(cache.is_loaded() && cache.all().is_empty());
    for _ in 0..100 {
        let _ = cache.refresh(Reason::UnknownKid, load).await;
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "one load and one forced refetch per cooldown"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_04_concurrent_unknown_kids_share_one_forced_fetch() {
    let (_tp, keys) = test_keys().await;
    let cache = Arc::new(new_cache(timings()));
    let fetches = Arc::new(AtomicUsize::new(0));
    cache
        .refresh(Reason::Load, || async { Ok(fetched(&keys, None)) })
        .await
        .unwrap();
    let mut handles = Vec::new();
    for _ in 0..200 {
        let cache = cache.clone();
        let fetches = fetches.clone();
        let keys = keys.clone();
        handles.push(tokio::spawn(async move {
            cache
                .refresh(Reason::UnknownKid, || async {
                    fetches.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(fetched(&keys, None))
                })
                .await
        }));
    }
    for h in handles {
        assert!(h.await.unwrap().is_ok());
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn key_07_failures_back_off_and_keep_the_last_keys() {
    let (_tp, keys) = test_keys().await;
    let cache = new_cache(JwksTimings {
        retry_base: Duration::from_millis(100),
        retry_max: Duration::from_millis(400),
        unknown_kid_cooldown: Duration::ZERO,
        ..timings()
    });
    let fetches = AtomicUsize::new(0);
    let good = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(fetched(&keys, None))
    };
    let bad = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Err(JwksError::Status(500))
    };
    cache.refresh(Reason::Load, good).await.unwrap();
    assert!(matches!(
        cache.refresh(Reason::UnknownKid, bad).await,
        Err(JwksError::Status(500))
    ));
    // The failed fetch kept the keys.
    assert!(cache.is_loaded());
    assert!(matches!(cache.get("rsa1-RS256"), Some(ByKid::Key(_))));
    assert_eq!(cache.all().len(), 8);
    // Within the backoff: no attempt, a retry hint instead.
    let err = cache.refresh(Reason::UnknownKid, bad).await.unwrap_err();
    let retry = err.retry_after().unwrap();
    assert!(retry <= Duration::from_millis(100), "{retry:?}");
    assert!(!cache.refresh_due());
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    tokio::time::sleep(Duration::from_millis(120)).await;
    // The second failure doubles the wait.
    assert!(cache.refresh(Reason::UnknownKid, bad).await.is_err());
    let retry = cache
        .refresh(Reason::UnknownKid, bad)
        .await
        .unwrap_err()
        .retry_after()
        .unwrap();
    assert!(
        retry > Duration::from_millis(100) && retry <= Duration::from_millis(200),
        "{retry:?}"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn key_07_keys_expire_after_max_stale() {
    let (_tp, keys) = test_keys().await;
    let cache = new_cache(JwksTimings {
        max_stale: Duration::from_millis(150),
        ..timings()
    });
    cache
        .refresh(Reason::Load, || async { Ok(fetched(&keys, None)) })
        .await
        .unwrap();
    assert!(cache.is_loaded() && matches!(cache.get("rsa1-RS256"), Some(ByKid::Key(_))));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!cache.is_loaded());
    assert!(cache.all().is_empty());
    assert!(
        cache.get("rsa1-RS256").is_none(),
        "a stale key is still served by kid"
    );
}

#[tokio::test]
async fn key_03_removed_kids_leave_the_cache_on_refresh() {
    let (_tp, keys) = test_keys().await;
    let cache = new_cache(JwksTimings {
        unknown_kid_cooldown: Duration::ZERO,
        ..timings()
    });
    cache
        .refresh(Reason::Load, || async { Ok(fetched(&keys, None)) })
        .await
        .unwrap();
    let remaining: Vec<_> = keys
        .iter()
        .filter(|k| k.kid() != Some("rsa1-RS256"))
        .cloned()
        .collect();
    cache
        .refresh(Reason::UnknownKid, || async {
            Ok(fetched(&remaining, None))
        })
        .await
        .unwrap();
    assert!(cache.get("rsa1-RS256").is_none());
    assert!(matches!(cache.get("rsa1-PS256"), Some(ByKid::Key(_))));
    assert_eq!(cache.all().len(), 7);
    assert!(!cache.all().iter().any(|k| k.kid() == Some("rsa1-RS256")));
}

#[tokio::test]
async fn cache_control_due_refresh_honours_clamped_max_age() {
    let (_tp, keys) = test_keys().await;
    let cache = new_cache(JwksTimings {
        min_refresh: Duration::from_millis(100),
        max_refresh: Duration::from_millis(300),
        ..timings()
    });
    let fetches = AtomicUsize::new(0);
    // The provider asks for an hour; the upper bound wins.
    let load = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(fetched(&keys, Some(Duration::from_secs(3600))))
    };
    cache.refresh(Reason::Load, load).await.unwrap();
    assert!(!cache.refresh_due());
    assert!(matches!(cache.refresh(Reason::Due, load).await, Ok(true)));
    assert_eq!(fetches.load(Ordering::SeqCst), 1, "not due: no fetch");
    tokio::time::sleep(Duration::from_millis(320)).await;
    assert!(cache.refresh_due());
    cache.refresh(Reason::Due, load).await.unwrap();
    assert_eq!(fetches.load(Ordering::SeqCst), 2);
    assert!(!cache.refresh_due());

    // max-age=0 is raised to the lower bound.
    let zero = || async {
        fetches.fetch_add(1, Ordering::SeqCst);
        Ok(fetched(&keys, Some(Duration::ZERO)))
    };
    tokio::time::sleep(Duration::from_millis(320)).await;
    cache.refresh(Reason::Due, zero).await.unwrap();
    assert!(
        !cache.refresh_due(),
        "due immediately after a max-age=0 fetch"
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(cache.refresh_due());
}
