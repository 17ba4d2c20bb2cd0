//! App-issued tokens (`oidc_core::issue`): minted tokens checked independently with
//! jsonwebtoken, the JWKS, rotation, key files, and revalidation of users against an
//! in-process provider (`oidc-testing`). The verifier side (`AccessTokenVerifier` through
//! `BearerAuthLayer` against the issuer's routes) is tested in `oidc-tower/tests/issue.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider};
use jsonwebtoken::jwk::{Jwk, JwkSet, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation, decode, decode_header};
use oidc_core::Algorithm;
use oidc_core::error::FlowError;
use oidc_core::flow::{AuthorizationResponse, OidcClient, TokenSet};
use oidc_core::issue::{
    BuildError, KeyError, MintError, MintRequest, RevalidationError, Revalidator, SigningKey,
    TokenIssuer,
};
use oidc_core::verify::Clock;
use oidc_testing::{ClientRegistration, Failure, TestProvider};
use serde_json::Value;

const ISSUER: &str = "https://app.example.com";
const AUDIENCE: &str = "https://connector.example.com";
const ALGS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::EdDSA];

/// A clock the test moves by hand.
#[derive(Clone)]
struct FakeClock(Arc<Mutex<SystemTime>>);

impl FakeClock {
    fn new() -> Self {
        Self(Arc::new(Mutex::new(
            UNIX_EPOCH + Duration::from_secs(1_900_000_000),
        )))
    }
    fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Arc::new(move || *now.lock().unwrap())
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
    fn unix(&self) -> u64 {
        self.0
            .lock()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }
}

fn issuer(alg: Algorithm) -> TokenIssuer {
    TokenIssuer::builder(ISSUER, SigningKey::generate(alg).unwrap())
        .with_default_audience(AUDIENCE)
        .build()
        .unwrap()
}

fn jsonwebtoken_alg(alg: Algorithm) -> jsonwebtoken::Algorithm {
    match alg {
        Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
        Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        other => panic!("{other}"),
    }
}

/// Verifies `token` with jsonwebtoken against the JWK set `jwks` (the key named by its
/// `kid`), for `iss` = [`ISSUER`] and `aud` = `audience`; `now_checks` off for fake clocks.
fn independent_verify(
    jwks: &Value,
    token: &str,
    audience: &str,
    now_checks: bool,
) -> Result<Value, String> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).unwrap();
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set.find(&kid).ok_or("kid not in the jwks")?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_issuer(&[ISSUER]);
    validation.set_audience(&[audience]);
    validation.validate_exp = now_checks;
    validation.validate_nbf = now_checks;
    validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "sub", "aud", "jti"]);
    decode::<Value>(token, &key, &validation)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[test]
fn minted_token_verifies_independently_with_its_registered_claims() {
    for alg in ALGS {
        let issuer = issuer(alg);
        let minted = issuer
            .mint(
                "user-1",
                &MintRequest::new().with_claim("scope", "connector:read"),
            )
            .unwrap();
        let token = minted.token().secret();
        let header = decode_header(token).unwrap();
        assert_eq!(header.alg, jsonwebtoken_alg(alg), "{alg}");
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(issuer.signing_kid().as_str()));
        assert_eq!(minted.kid(), issuer.signing_kid());

        let claims = independent_verify(&issuer.jwks(), token, AUDIENCE, true).unwrap();
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(claims["sub"], "user-1");
        assert_eq!(claims["aud"], AUDIENCE);
        assert_eq!(claims["scope"], "connector:read");
        let iat = claims["iat"].as_i64().unwrap();
        assert_eq!(claims["nbf"].as_i64(), Some(iat));
        assert_eq!(
            claims["exp"].as_i64(),
            Some(iat + 300),
            "default lifetime 5 min"
        );
        assert_eq!(minted.expires_in(), Duration::from_secs(300));
        assert_eq!(claims["jti"], minted.jti());
        assert_eq!(minted.jti().len(), 22, "128 random bits, base64url");

        // The jti is random: a second token for the same user has another.
        let again = issuer.mint("user-1", &MintRequest::new()).unwrap();
        assert_ne!(again.jti(), minted.jti());
        // Debug of the minted token does not show it.
        assert!(!format!("{minted:?}").contains(token));
    }
}

#[test]
fn kid_is_the_rfc_7638_thumbprint() {
    for alg in ALGS {
        let key = SigningKey::generate(alg).unwrap();
        let jwk: Jwk = serde_json::from_value(key.public_jwk()).unwrap();
        assert_eq!(
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap(),
            key.kid(),
            "{alg}"
        );
    }
}

#[test]
fn extras_overriding_registered_claims_are_refused() {
    let issuer = issuer(Algorithm::ES256);
    for name in ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"] {
        let request = MintRequest::new().with_claim(name, "attacker");
        let err = issuer.mint("user-1", &request).unwrap_err();
        assert!(
            matches!(&err, MintError::ReservedClaim(n) if n == name),
            "{name}: {err:?}"
        );
        assert!(err.to_string().contains(name), "{err}");
        assert!(
            !err.to_string().contains("attacker"),
            "no claim value: {err}"
        );
    }
    // Unregistered names are fine, also close ones.
    let ok = MintRequest::new()
        .with_claim("scope", "a")
        .with_claim("ISS", "x");
    issuer.mint("user-1", &ok).unwrap();
}

#[test]
fn mint_refuses_bad_subjects_and_missing_audiences() {
    let issuer = issuer(Algorithm::EdDSA);
    let long = "x".repeat(256);
    for bad in ["", long.as_str()] {
        assert!(matches!(
            issuer.mint(bad, &MintRequest::new()),
            Err(MintError::InvalidSubject)
        ));
    }
    issuer.mint(&"x".repeat(255), &MintRequest::new()).unwrap();
    assert!(matches!(
        issuer.mint("u", &MintRequest::new().with_audience("")),
        Err(MintError::EmptyAudience)
    ));
    let no_default = TokenIssuer::builder(ISSUER, SigningKey::generate(Algorithm::EdDSA).unwrap())
        .build()
        .unwrap();
    assert!(matches!(
        no_default.mint("u", &MintRequest::new()),
        Err(MintError::NoAudience)
    ));
    let minted = no_default
        .mint("u", &MintRequest::new().with_audience("api://b"))
        .unwrap();
    independent_verify(&no_default.jwks(), minted.token().secret(), "api://b", true).unwrap();
}

#[test]
fn builder_refuses_bad_settings() {
    let key = || SigningKey::generate(Algorithm::ES256).unwrap();
    for lifetime in [Duration::ZERO, Duration::from_secs(3601)] {
        assert!(matches!(
            TokenIssuer::builder(ISSUER, key())
                .with_lifetime(lifetime)
                .build(),
            Err(BuildError::Lifetime { .. })
        ));
    }
    TokenIssuer::builder(ISSUER, key())
        .with_lifetime(Duration::from_secs(3600))
        .build()
        .unwrap();
    for bad in [
        "http://app.example.com",
        "https://app.example.com/#x",
        "https://app.example.com/?tenant=a",
        "not a url",
    ] {
        assert!(
            matches!(
                TokenIssuer::builder(bad, key()).build(),
                Err(BuildError::Issuer(_))
            ),
            "{bad}"
        );
    }
    TokenIssuer::builder("http://127.0.0.1:8080", key())
        .build()
        .unwrap();
    assert!(matches!(
        TokenIssuer::builder(ISSUER, key())
            .with_default_audience("")
            .build(),
        Err(BuildError::EmptyAudience)
    ));
}

/// The members a public JWK of this issuer may have: an allow-list.
const PUBLIC_MEMBERS: [&str; 7] = ["kty", "crv", "x", "y", "kid", "use", "alg"];

#[test]
fn jwks_never_contains_private_key_members() {
    for alg in ALGS {
        let issuer = issuer(alg);
        issuer.rotate().unwrap();
        let jwks = issuer.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 2, "signer and retired key");
        for key in keys {
            for member in key.as_object().unwrap().keys() {
                assert!(
                    PUBLIC_MEMBERS.contains(&member.as_str()),
                    "{alg}: unexpected member {member:?}"
                );
            }
            assert!(key.get("d").is_none());
            assert_eq!(key["use"], "sig");
            assert_eq!(key["alg"], alg.as_str());
        }
        // And no byte of the private key: the PKCS#8 document's base64 lines are not in it.
        let text = jwks.to_string();
        let discovery = issuer.discovery_document().to_string();
        let debug = format!("{issuer:?}");
        let key = SigningKey::generate(alg).unwrap();
        let pem = key.to_pkcs8_pem().unwrap();
        let issuer = TokenIssuer::builder(ISSUER, key).build().unwrap();
        let text_of_loaded = issuer.jwks().to_string();
        for line in pem.secret().lines().filter(|l| !l.starts_with("-----")) {
            assert!(!text_of_loaded.contains(line), "{alg}");
            assert!(!format!("{issuer:?}").contains(line));
        }
        assert!(
            !text.contains("\"d\"") && !discovery.contains("\"d\"") && !debug.contains("\"d\"")
        );
    }
}

#[test]
fn discovery_document_names_the_issuer_and_its_jwks() {
    let issuer = TokenIssuer::builder(
        "https://app.example.com/tenant/",
        SigningKey::generate(Algorithm::EdDSA).unwrap(),
    )
    .build()
    .unwrap();
    let doc = issuer.discovery_document();
    assert_eq!(doc["issuer"], "https://app.example.com/tenant/");
    assert_eq!(
        doc["jwks_uri"],
        "https://app.example.com/tenant/.well-known/jwks.json"
    );
    assert_eq!(doc["jwks_uri"], issuer.jwks_uri());
    let algs = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(algs.contains(&Value::from("EdDSA")) && algs.contains(&Value::from("ES256")));
    assert!(doc.get("token_endpoint").is_none());
}

/// KEY-03 for the issuer: after rotation the old key stays published until its last token
/// can have expired (lifetime + leeway), and not after.
#[test]
fn key_03_rotated_key_is_published_until_its_last_token_expired_then_dropped() {
    for alg in ALGS {
        let clock = FakeClock::new();
        let issuer = TokenIssuer::builder(ISSUER, SigningKey::generate(alg).unwrap())
            .with_default_audience(AUDIENCE)
            .with_lifetime(Duration::from_secs(120))
            .with_leeway(Duration::from_secs(30))
            .with_clock(clock.clock())
            .build()
            .unwrap();
        let old_kid = issuer.signing_kid();
        let old = issuer.mint("user-1", &MintRequest::new()).unwrap();
        let old_token = old.token().secret().to_owned();
        assert_eq!(
            old.expires_at(),
            UNIX_EPOCH + Duration::from_secs(clock.unix() + 120)
        );

        let new_kid = issuer.rotate().unwrap();
        assert_ne!(new_kid, old_kid);
        assert_eq!(issuer.signing_kid(), new_kid);
        let new = issuer.mint("user-1", &MintRequest::new()).unwrap();
        assert_eq!(new.kid(), new_kid, "the new key signs at once");
        let kids = |i: &TokenIssuer| -> Vec<String> {
            i.jwks()["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(kids(&issuer), [new_kid.clone(), old_kid.clone()]);
        independent_verify(&issuer.jwks(), &old_token, AUDIENCE, false).unwrap();

        // Just before lifetime + leeway: still published, the old token still verifies.
        clock.advance(Duration::from_secs(149));
        assert_eq!(kids(&issuer), [new_kid.clone(), old_kid.clone()]);
        independent_verify(&issuer.jwks(), &old_token, AUDIENCE, false).unwrap();

        // After: dropped, the old token no longer finds its key; the new one still verifies.
        clock.advance(Duration::from_secs(1));
        assert_eq!(kids(&issuer), std::slice::from_ref(&new_kid));
        let err = independent_verify(&issuer.jwks(), &old_token, AUDIENCE, false).unwrap_err();
        assert_eq!(err, "kid not in the jwks");
        independent_verify(&issuer.jwks(), new.token().secret(), AUDIENCE, false).unwrap();
    }
}

#[test]
fn rotation_is_bounded_and_refuses_a_published_key() {
    let full = issuer(Algorithm::EdDSA);
    for _ in 1..oidc_core::issue::MAX_PUBLISHED_KEYS {
        full.rotate().unwrap();
    }
    assert!(matches!(
        full.rotate(),
        Err(KeyError::TooManyKeys { max: 16 })
    ));
    let pem = SigningKey::generate(Algorithm::ES256)
        .unwrap()
        .to_pkcs8_pem()
        .unwrap();
    let fresh = issuer(Algorithm::ES256);
    let key = SigningKey::from_pkcs8_pem(pem.secret()).unwrap();
    let kid = key.kid().to_owned();
    fresh.rotate_to(key).unwrap();
    assert!(matches!(
        fresh.rotate_to(SigningKey::from_pkcs8_pem(pem.secret()).unwrap()),
        Err(KeyError::DuplicateKey { kid: k }) if k == kid
    ));
}

fn test_key(name: &str) -> String {
    let path = format!("{}/../oidc-testing/keys/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn pkcs8_pem_keys_load_and_other_keys_are_refused() {
    let ec = SigningKey::from_pkcs8_pem(&test_key("TEST-ONLY-ec1.private.pem")).unwrap();
    assert_eq!(ec.algorithm(), Algorithm::ES256);
    let ed = SigningKey::from_pkcs8_pem(&test_key("TEST-ONLY-ed1.private.pem")).unwrap();
    assert_eq!(ed.algorithm(), Algorithm::EdDSA);

    // RSA (PKCS#1 PEM), its public half, SEC1, encrypted, garbage.
    for (pem, what) in [
        (test_key("TEST-ONLY-rsa1.private.pem"), "rsa pkcs#1"),
        (test_key("TEST-ONLY-ec1.public.pem"), "public key"),
        (
            "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----\n".to_owned(),
            "sec1",
        ),
        (
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n"
                .to_owned(),
            "encrypted",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\n%%%\n-----END PRIVATE KEY-----\n".to_owned(),
            "not base64",
        ),
        (
            "-----BEGIN PRIVATE KEY-----\nMC4CAQA".to_owned(),
            "unclosed",
        ),
    ] {
        let err = SigningKey::from_pkcs8_pem(&pem).unwrap_err();
        assert!(matches!(err, KeyError::InvalidPem(_)), "{what}: {err:?}");
        assert!(err.to_string().contains("PKCS#8"), "{what}: {err}");
    }
    // PKCS#8 of a key type that cannot sign here: P-384.
    let p384 = aws_lc_rs::signature::EcdsaKeyPair::generate(
        &aws_lc_rs::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
    )
    .unwrap()
    .to_pkcs8v1()
    .unwrap();
    assert!(matches!(
        SigningKey::from_pkcs8_der(p384.as_ref()),
        Err(KeyError::UnsupportedKey)
    ));
    for alg in [Algorithm::RS256, Algorithm::PS256, Algorithm::ES384] {
        assert!(matches!(
            SigningKey::generate(alg),
            Err(KeyError::UnsupportedAlgorithm(a)) if a == alg
        ));
    }
}

#[test]
fn load_or_generate_keeps_the_key_across_restarts_in_a_0600_file() {
    let dir = std::env::temp_dir().join(format!("oidc-issue-key-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("token-key.pem");
    let first = SigningKey::load_or_generate(&path, Algorithm::EdDSA).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    // The second start loads it (the algorithm argument only chooses a new key's).
    let second = SigningKey::load_or_generate(&path, Algorithm::ES256).unwrap();
    assert_eq!(second.kid(), first.kid());
    assert_eq!(second.algorithm(), Algorithm::EdDSA);
    let missing = SigningKey::from_pem_file(dir.join("absent.pem")).unwrap_err();
    assert!(matches!(
        missing,
        KeyError::Io {
            kind: std::io::ErrorKind::NotFound,
            ..
        }
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

// --- revalidation -----------------------------------------------------------------------

const CLIENT_ID: &str = "token-app";
const SECRET: &str = "token-app-secret";

async fn provider_and_client() -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        CLIENT_ID,
        SECRET,
        REDIRECT_URI,
    ));
    op.set_auto_login(Some("user-1"));
    let client = OidcClient::new(
        client_provider(&op).build().unwrap(),
        CLIENT_ID,
        REDIRECT_URI,
    )
    .unwrap()
    .with_client_secret(SECRET);
    (op, client)
}

async fn login(client: &OidcClient) -> TokenSet {
    let (tx, res) = authorize_at_provider(client).await;
    client
        .complete(
            &tx,
            AuthorizationResponse::from_query(callback_query(&res)).unwrap(),
        )
        .await
        .unwrap()
}

fn refreshes(op: &TestProvider) -> usize {
    op.token_requests()
        .iter()
        .filter(|r| r.param("grant_type") == Some("refresh_token"))
        .count()
}

struct World {
    op: TestProvider,
    clock: FakeClock,
    revalidator: Revalidator,
    issuer: TokenIssuer,
}

async fn world(
    configure: impl FnOnce(oidc_core::issue::RevalidatorBuilder) -> oidc_core::issue::RevalidatorBuilder,
) -> World {
    let (op, client) = provider_and_client().await;
    let tokens = login(&client).await;
    let clock = FakeClock::new();
    let revalidator = configure(
        Revalidator::builder(client)
            .with_interval(Duration::from_secs(60))
            .with_clock(clock.clock()),
    )
    .build()
    .unwrap();
    revalidator.register("session-1", tokens).unwrap();
    World {
        op,
        clock,
        revalidator,
        issuer: issuer(Algorithm::ES256),
    }
}

impl World {
    async fn mint(&self) -> Result<oidc_core::issue::MintedToken, MintError> {
        self.revalidator
            .mint("session-1", &self.issuer, &MintRequest::new())
            .await
    }
}

/// SES-05 for minted tokens: once the provider refuses the refresh (the user was disabled),
/// no token is minted after the interval, and later attempts stay refused without asking
/// the provider again.
#[tokio::test]
async fn ses_05_mint_is_refused_once_the_provider_refuses_the_user() {
    let w = world(|b| b).await;
    // Fresh login: no refresh needed, the token is for the provider's sub.
    let minted = w.mint().await.unwrap();
    let claims =
        independent_verify(&w.issuer.jwks(), minted.token().secret(), AUDIENCE, true).unwrap();
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(refreshes(&w.op), 0);

    w.op.revoke_user("user-1");
    // Within the interval: not asked (the documented bound).
    w.clock.advance(Duration::from_secs(59));
    w.mint().await.unwrap();
    assert_eq!(refreshes(&w.op), 0);

    // The interval has passed: the provider is asked and says no.
    w.clock.advance(Duration::from_secs(1));
    let err = w.mint().await.unwrap_err();
    assert!(
        matches!(err.revalidation(), Some(RevalidationError::Refused(e)) if e.is_invalid_grant()),
        "{err:?}"
    );
    assert_eq!(refreshes(&w.op), 1);

    // Later attempts: refused, the provider not asked again (no retry that could mint).
    for _ in 0..3 {
        w.clock.advance(Duration::from_secs(120));
        let err = w.mint().await.unwrap_err();
        assert!(
            matches!(err.revalidation(), Some(RevalidationError::Refused(_))),
            "{err:?}"
        );
    }
    assert_eq!(refreshes(&w.op), 1);
}

#[tokio::test]
async fn accepted_revalidation_refreshes_once_per_interval_and_keeps_rotated_refresh_tokens() {
    let w = world(|b| b).await;
    for round in 1..=3 {
        w.clock.advance(Duration::from_secs(61));
        w.mint().await.unwrap();
        w.mint().await.unwrap();
        assert_eq!(refreshes(&w.op), round, "one refresh per interval");
    }
    // oidc-testing rotates refresh tokens and revokes the grant on reuse: three accepted
    // refreshes in a row mean each used the token the previous one returned.
    let used: Vec<String> =
        w.op.token_requests()
            .iter()
            .filter_map(|r| r.param("refresh_token").map(str::to_owned))
            .collect();
    assert_eq!(used.len(), 3);
    assert!(used[0] != used[1] && used[1] != used[2]);
}

/// Single flight: concurrent mints for one user after the interval share one refresh (two
/// refreshes with one rotated refresh token would look like a replay and end the grant).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_mints_for_one_user_make_one_refresh() {
    let w = Arc::new(world(|b| b).await);
    w.op.fail_token(Failure::Delay(Duration::from_millis(200)));
    w.clock.advance(Duration::from_secs(61));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let w = Arc::clone(&w);
            tokio::spawn(async move { w.mint().await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(refreshes(&w.op), 1);
}

/// Provider unavailable is not "the provider said no": minting is refused (fail closed)
/// while it cannot be asked, at most one request per pause, and allowed again once it
/// confirms the user.
#[tokio::test]
async fn unavailable_provider_refuses_minting_after_the_interval_until_it_answers() {
    let w = world(|b| b).await;
    w.op.fail_token(Failure::Status(503));
    w.clock.advance(Duration::from_secs(61));
    let err = w.mint().await.unwrap_err();
    let Some(RevalidationError::Unavailable { retry_after, .. }) = err.revalidation() else {
        panic!("{err:?}");
    };
    assert_eq!(*retry_after, Duration::from_secs(5));
    assert!(err.revalidation().unwrap().is_unavailable());
    let asked = w.op.token_requests().len();
    // Within the pause: refused without a request.
    w.clock.advance(Duration::from_secs(4));
    assert!(
        w.mint()
            .await
            .unwrap_err()
            .revalidation()
            .unwrap()
            .is_unavailable()
    );
    assert_eq!(w.op.token_requests().len(), asked);
    // After it, asked again; the provider answers: minting resumes.
    w.op.fail_token(Failure::None);
    w.clock.advance(Duration::from_secs(1));
    w.mint().await.unwrap();

    // A broken token response (not JSON) is the provider failing, not a refusal.
    w.op.fail_token(Failure::Garbage);
    w.clock.advance(Duration::from_secs(61));
    assert!(
        w.mint()
            .await
            .unwrap_err()
            .revalidation()
            .unwrap()
            .is_unavailable()
    );
}

#[tokio::test]
async fn userinfo_that_names_another_user_refuses_the_login() {
    let w = world(|b| b.require_userinfo(true)).await;
    w.clock.advance(Duration::from_secs(61));
    w.mint().await.unwrap();
    w.op.mutate_userinfo(|claims| {
        claims.insert("sub".into(), "someone-else".into());
    });
    w.clock.advance(Duration::from_secs(61));
    let err = w.mint().await.unwrap_err();
    assert!(
        matches!(
            err.revalidation(),
            Some(RevalidationError::Refused(
                FlowError::UserInfoSubjectMismatch
            ))
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn unknown_or_removed_logins_get_no_token() {
    let w = world(|b| b).await;
    let err = w
        .revalidator
        .mint("session-2", &w.issuer, &MintRequest::new())
        .await
        .unwrap_err();
    assert!(matches!(
        err.revalidation(),
        Some(RevalidationError::UnknownUser)
    ));
    w.revalidator.remove("session-1");
    assert!(matches!(
        w.mint().await.unwrap_err().revalidation(),
        Some(RevalidationError::UnknownUser)
    ));
    assert!(matches!(
        Revalidator::builder(provider_and_client().await.1)
            .with_interval(Duration::ZERO)
            .build(),
        Err(BuildError::Interval)
    ));
}
