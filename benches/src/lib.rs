//! Shared helpers of the benchmarks: an in-process provider, keys and tokens, and an app behind
//! the login layer with a logged-in session.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "benchmark setup fails loudly"
)]

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_core::{AccessTokenVerifier, Algorithm, Provider};
use oidc_testing::{SigningAlg, TestProvider};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};

use oidc_core::flow::OidcClient;
use oidc_testing::ClientRegistration;
use oidc_tower::login::LoginLayer;
use oidc_tower::login::store::RedisStore;
use serde_json::Value;
use tokio::net::TcpListener;

/// The audience the benchmark tokens are issued for.
pub const AUDIENCE: &str = "api://default";

/// The algorithms measured.
pub const ALGS: [(SigningAlg, Algorithm); 4] = [
    (SigningAlg::RS256, Algorithm::RS256),
    (SigningAlg::PS256, Algorithm::PS256),
    (SigningAlg::ES256, Algorithm::ES256),
    (SigningAlg::EdDSA, Algorithm::EdDSA),
];

/// A verifier for `tp`'s tokens accepting the measured algorithms, keys loaded.
///
/// # Panics
///
/// When the provider cannot be reached.
#[allow(clippy::expect_used, reason = "benchmark setup")]
pub async fn verifier(tp: &TestProvider) -> AccessTokenVerifier {
    let provider = Provider::builder(tp.issuer())
        .build()
        .expect("provider config");
    provider.warm_up().await.expect("keys load");
    AccessTokenVerifier::new(provider, AUDIENCE)
        .with_algorithms(ALGS.map(|(_, a)| a))
        .expect("algorithms")
}

/// The published JWK of `tp`'s current key for `alg`.
///
/// # Panics
///
/// When the provider does not publish it.
#[allow(clippy::expect_used, reason = "benchmark setup")]
pub fn jwk(tp: &TestProvider, alg: SigningAlg) -> Value {
    let kid = tp.kid(alg);
    tp.public_jwks()["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .cloned()
        .expect("current key published")
}

/// Decodes a base64url JWK member.
///
/// # Panics
///
/// When it is missing or not base64url.
#[allow(clippy::expect_used, reason = "benchmark setup")]
pub fn b64_member(jwk: &Value, name: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(jwk[name].as_str().expect("member"))
        .expect("base64url")
}

/// A key in the form each raw aws-lc-rs variant needs.
#[derive(Debug)]
pub enum RawKey {
    /// RSA modulus and exponent.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Exponent.
        e: Vec<u8>,
        /// Padding and digest.
        params: &'static sig::RsaParameters,
    },
    /// An EC point or Ed25519 key, as aws-lc-rs takes it.
    Other {
        /// The public key bytes.
        bytes: Vec<u8>,
        /// The algorithm.
        alg: &'static dyn sig::VerificationAlgorithm,
    },
}

impl RawKey {
    /// The key of `jwk` for `alg`.
    pub fn new(jwk: &Value, alg: SigningAlg) -> Self {
        match alg {
            SigningAlg::ES256 => {
                let mut bytes = vec![4];
                bytes.extend(b64_member(jwk, "x"));
                bytes.extend(b64_member(jwk, "y"));
                Self::Other {
                    bytes,
                    alg: &sig::ECDSA_P256_SHA256_FIXED,
                }
            }
            SigningAlg::EdDSA => Self::Other {
                bytes: b64_member(jwk, "x"),
                alg: &sig::ED25519,
            },
            other => Self::Rsa {
                n: b64_member(jwk, "n"),
                e: b64_member(jwk, "e"),
                params: if other == SigningAlg::PS256 {
                    &sig::RSA_PSS_2048_8192_SHA256
                } else {
                    &sig::RSA_PKCS1_2048_8192_SHA256
                },
            },
        }
    }

    /// Parses the key once.
    ///
    /// # Panics
    ///
    /// When aws-lc-rs rejects it.
    #[allow(clippy::expect_used, reason = "benchmark setup")]
    pub fn parsed(&self) -> ParsedPublicKey {
        match self {
            Self::Rsa { n, e, params } => RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .expect("rsa key"),
            Self::Other { bytes, alg } => ParsedPublicKey::new(*alg, bytes).expect("key"),
        }
    }

    /// Verifies with the key parsed on this call.
    pub fn verify_parsing(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Rsa { n, e, params } => RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok(),
            Self::Other { bytes, alg } => sig::UnparsedPublicKey::new(*alg, bytes)
                .verify(message, signature)
                .is_ok(),
        }
    }
}

/// Splits a token into the signed message and the decoded signature.
///
/// # Panics
///
/// When it is not a compact JWS.
#[allow(clippy::expect_used, reason = "benchmark setup")]
pub fn message_and_signature(token: &str) -> (Vec<u8>, Vec<u8>) {
    let (message, signature) = token.rsplit_once('.').expect("compact jws");
    (
        message.as_bytes().to_vec(),
        URL_SAFE_NO_PAD.decode(signature).expect("base64url"),
    )
}

/// The `jsonwebtoken` algorithm of `alg`.
pub fn jwt_alg(alg: SigningAlg) -> jsonwebtoken::Algorithm {
    match alg {
        SigningAlg::PS256 => jsonwebtoken::Algorithm::PS256,
        SigningAlg::ES256 => jsonwebtoken::Algorithm::ES256,
        SigningAlg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
        _ => jsonwebtoken::Algorithm::RS256,
    }
}

/// A `jsonwebtoken` key for `jwk`, built once.
///
/// # Panics
///
/// When jsonwebtoken rejects it.
#[allow(clippy::expect_used, reason = "benchmark setup")]
pub fn jwt_key(jwk: &Value) -> jsonwebtoken::DecodingKey {
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).expect("jwk");
    jsonwebtoken::DecodingKey::from_jwk(&jwk).expect("decoding key")
}

/// Validation as our verifier does it: issuer, audience, `exp`, 60 s leeway.
pub fn jwt_validation(issuer: &str, alg: SigningAlg) -> jsonwebtoken::Validation {
    let mut v = jsonwebtoken::Validation::new(jwt_alg(alg));
    v.set_issuer(&[issuer]);
    v.set_audience(&[AUDIENCE]);
    v.leeway = 60;
    v
}

/// A store on the Redis server at `url` (a pool of 4 connections).
pub async fn redis_store(url: &str) -> RedisStore {
    use oidc_tower::login::store::fred::prelude::*;
    let pool = Builder::from_config(Config::from_url(url).unwrap())
        .build_pool(4)
        .unwrap();
    pool.init().await.unwrap();
    RedisStore::new(pool)
}

/// `app` behind the login layer (memory store by default; `configure` may set another store)
/// on a loopback port, as the public client `bench-web` of `tp` with auto-login.
pub async fn session_app(
    tp: &TestProvider,
    configure: impl FnOnce(LoginLayer) -> LoginLayer,
    app: axum::Router,
) -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let app_url = format!("http://{addr}");
    let redirect = format!("{app_url}/auth/callback");
    tp.register_client(ClientRegistration::public("bench-web", &redirect));
    tp.set_auto_login(Some("user-1"));
    let provider = Provider::builder(tp.issuer()).build().unwrap();
    let client = OidcClient::new(provider, "bench-web", &redirect).unwrap();
    let login = configure(LoginLayer::new(client, &app_url).unwrap());
    let app = app.layer(login);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr.port()
}

/// Logs in once through the provider's auto-login; returns the session cookie.
pub async fn login(port: u16) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let mut url = format!("http://127.0.0.1:{port}/auth/login?return_to=/");
    for _ in 0..10 {
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut req = http.get(&url);
        if url.contains(&format!(":{port}/")) && !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let res = req.send().await.unwrap();
        for c in res.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            if let Some((k, v)) = pair.split_once('=') {
                jar.insert(k.to_owned(), v.to_owned());
            }
        }
        match res.headers().get("location") {
            Some(loc) if res.status().is_redirection() => {
                let loc = loc.to_str().unwrap();
                url = if loc.starts_with('/') {
                    format!("http://127.0.0.1:{port}{loc}")
                } else {
                    loc.to_owned()
                };
                if loc == "/" {
                    break;
                }
            }
            _ => panic!("login stopped at {url}: {}", res.status()),
        }
    }
    let cookie = jar
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let res = http
        .get(format!("http://127.0.0.1:{port}/"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "session not logged in");
    cookie
}
