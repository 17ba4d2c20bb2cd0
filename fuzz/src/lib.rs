//! Shared fixtures of the fuzz targets: a runtime, an in-memory provider, the committed test
//! keys, pre-minted tokens and independent checks (oracles) of what the library accepted.
//!
//! Everything here uses only the public APIs of `oidc-core` and `oidc-tower`. Nothing does
//! I/O: the provider's HTTP client answers from memory.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use oidc_core::error::HttpError;
use oidc_core::http::{HttpClient, HttpRequest, HttpResponse};
use oidc_core::verify::Clock;
use oidc_core::{AccessTokenVerifier, Provider};
use serde_json::{Map, Value, json};

/// The issuer of every provider here, and a second one with a path (RFC 8414 fallback URL).
pub const ISSUER: &str = "https://id.example.com";
pub const ISSUER_WITH_PATH: &str = "https://id.example.com/realms/main";
pub const JWKS_URI: &str = "https://id.example.com/keys";
pub const AUDIENCE: &str = "https://api.example.com";
pub const SUBJECT: &str = "user-1";
/// The verifiers' fixed clock, so that an input means the same thing on every run.
pub const NOW: i64 = 1_700_000_000;
/// The verifiers' leeway (the default).
pub const LEEWAY: i64 = 60;

/// The public JWK set of the committed test keys `rsa1` (RS256) and `ec1` (ES256) of
/// `oidc-testing/keys`, as `oidc-testing`'s provider publishes them. Checked against the
/// private keys when the fixtures are built.
pub const JWKS: &str = r#"{"keys":[
{"kty":"RSA","kid":"rsa1-RS256","use":"sig","alg":"RS256","e":"AQAB","n":"tSFCElJOZ5Y7Df9jDWNw5GVXKyROPQ-s0d-r0u87rMP9nhNW1Xk5xLvPooWd9U8R36UI64cgaMqPwjJ-ev2n6E8idDXwW4AtbZJZBBZ6CfvDc59ieeYU3ACht0Na3PZqMLnTUhqPwJU20Aw2HoU4blE9-nZ1w9Ji7n4RuHGrmYqpeAsOvAtMLwGbpIlnTjGFKTSFPbIfyiaj4CHoOHauxNaefZoXEoJJ4Gz5wUwRpSp47h0qQmBNoLFe2aGhK53jQh2U_wZBTo96VkyBd_J8GdRa-OOWqfxYT-0hDNjWJsLiUfa0yTU4triHQkV8xm6GZGuOflzaQuGyNihlDanWnw"},
{"kty":"EC","kid":"ec1-ES256","use":"sig","alg":"ES256","crv":"P-256","x":"4gYQVWR_1HulK0PAsvyjDU6zKnwjIsJyVGQdvyZwLwM","y":"f4DxChHyPKrLzTskilgcqQa_gT9zi8oQgKncXkCwkiw"}
]}"#;
pub const RSA_KID: &str = "rsa1-RS256";
pub const EC_KID: &str = "ec1-ES256";
const RSA_N: &str = "tSFCElJOZ5Y7Df9jDWNw5GVXKyROPQ-s0d-r0u87rMP9nhNW1Xk5xLvPooWd9U8R36UI64cgaMqPwjJ-ev2n6E8idDXwW4AtbZJZBBZ6CfvDc59ieeYU3ACht0Na3PZqMLnTUhqPwJU20Aw2HoU4blE9-nZ1w9Ji7n4RuHGrmYqpeAsOvAtMLwGbpIlnTjGFKTSFPbIfyiaj4CHoOHauxNaefZoXEoJJ4Gz5wUwRpSp47h0qQmBNoLFe2aGhK53jQh2U_wZBTo96VkyBd_J8GdRa-OOWqfxYT-0hDNjWJsLiUfa0yTU4triHQkV8xm6GZGuOflzaQuGyNihlDanWnw";
const EC_X: &str = "4gYQVWR_1HulK0PAsvyjDU6zKnwjIsJyVGQdvyZwLwM";

const RSA1_PRIVATE: &[u8] = include_bytes!("../../oidc-testing/keys/TEST-ONLY-rsa1.private.pem");
const RSA1_PUBLIC: &[u8] = include_bytes!("../../oidc-testing/keys/TEST-ONLY-rsa1.public.pem");
const EC1_PRIVATE: &[u8] = include_bytes!("../../oidc-testing/keys/TEST-ONLY-ec1.private.pem");
const EC1_PUBLIC: &[u8] = include_bytes!("../../oidc-testing/keys/TEST-ONLY-ec1.public.pem");

// ---------------------------------------------------------------------------------------------
// Runtime

/// The one current-thread runtime of the process.
pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap()
    })
}

/// Runs `f` to completion on the runtime.
pub fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

pub fn clock() -> Clock {
    Arc::new(|| UNIX_EPOCH + Duration::from_secs(NOW as u64))
}

// ---------------------------------------------------------------------------------------------
// The provider's HTTP client

/// What the in-memory provider answers to a request that is not for discovery or keys (the
/// token and UserInfo endpoints).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Endpoint {
    /// The connection fails.
    Down = 0,
    /// `400 {"error":"invalid_grant"}`.
    InvalidGrant = 1,
    /// `500` with an HTML body.
    ServerError = 2,
    /// `200` with a body that is not what was asked for.
    Garbage = 3,
    /// The request times out.
    Timeout = 4,
}

impl Endpoint {
    pub fn from_byte(b: u8) -> Self {
        match b % 5 {
            0 => Self::Down,
            1 => Self::InvalidGrant,
            2 => Self::ServerError,
            3 => Self::Garbage,
            _ => Self::Timeout,
        }
    }
}

/// An HTTP client that answers from memory: a discovery document, a JWK set, and for any other
/// URL what [`Endpoint`] says.
#[derive(Debug)]
pub struct Canned {
    /// Status and body of `{issuer}/.well-known/openid-configuration`, or `None` for 404.
    pub discovery: Option<(u16, Vec<u8>)>,
    /// Status and body of the RFC 8414 metadata URL (asked after a 404 above).
    pub oauth_metadata: (u16, Vec<u8>),
    /// Status and body of every URL that is not the above nor another endpoint: the JWKS.
    pub jwks: (u16, Vec<u8>),
    pub endpoint: AtomicU8,
    pub requests: AtomicUsize,
    pub log: Mutex<Vec<String>>,
}

impl Canned {
    /// Discovery answers `discovery` (the standard document when `None`), keys are `jwks`.
    pub fn new(discovery: Option<Vec<u8>>, jwks: Vec<u8>) -> Self {
        Self {
            discovery: Some((200, discovery.unwrap_or_else(|| discovery_document(ISSUER)))),
            oauth_metadata: (404, Vec::new()),
            jwks: (200, jwks),
            endpoint: AtomicU8::new(Endpoint::Down as u8),
            requests: AtomicUsize::new(0),
            log: Mutex::new(Vec::new()),
        }
    }

    pub fn set_endpoint(&self, endpoint: Endpoint) {
        self.endpoint.store(endpoint as u8, Ordering::Relaxed);
    }

    fn answer(&self, request: &HttpRequest) -> Result<HttpResponse, HttpError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let url = request.uri().to_string();
        let respond = |status: u16, body: &[u8]| {
            Ok(http::Response::builder()
                .status(status)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(body.to_vec())
                .unwrap())
        };
        if url.ends_with("/.well-known/openid-configuration") {
            return match &self.discovery {
                Some((status, body)) => respond(*status, body),
                None => respond(404, b""),
            };
        }
        if url.contains("/.well-known/oauth-authorization-server") {
            return respond(self.oauth_metadata.0, &self.oauth_metadata.1);
        }
        if url.ends_with("/token") || url.ends_with("/userinfo") {
            return match Endpoint::from_byte(self.endpoint.load(Ordering::Relaxed)) {
                Endpoint::Down => Err(HttpError::Connect(Arc::new(std::io::Error::other("down")))),
                Endpoint::Timeout => Err(HttpError::Timeout),
                Endpoint::InvalidGrant => respond(400, br#"{"error":"invalid_grant"}"#),
                Endpoint::ServerError => respond(500, b"<html>oops</html>"),
                Endpoint::Garbage => respond(200, br#"{"access_token":7,"sub":[]}"#),
            };
        }
        respond(self.jwks.0, &self.jwks.1)
    }
}

impl HttpClient for Canned {
    // The desugared form of the `#[async_trait]` method.
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let answer = self.answer(&request);
        Box::pin(async move { answer })
    }
}

/// A complete discovery document for `issuer`, with every endpoint on the issuer's host.
pub fn discovery_document(issuer: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "issuer": issuer,
        "jwks_uri": JWKS_URI,
        "authorization_endpoint": format!("{ISSUER}/authorize"),
        "token_endpoint": format!("{ISSUER}/token"),
        "userinfo_endpoint": format!("{ISSUER}/userinfo"),
        "end_session_endpoint": format!("{ISSUER}/logout"),
        "id_token_signing_alg_values_supported": ["RS256", "ES256"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
    }))
    .unwrap()
}

/// A provider configured by hand (no discovery) whose keys are `jwks`.
pub fn manual_provider(http: Arc<dyn HttpClient>) -> Provider {
    Provider::builder(ISSUER)
        .with_jwks_uri(JWKS_URI)
        .with_http_client(http)
        .build()
        .unwrap()
}

/// The verifier of the token targets: keys `rsa1` and `ec1`, fixed clock, default rules.
pub fn verifier() -> &'static AccessTokenVerifier {
    static V: OnceLock<AccessTokenVerifier> = OnceLock::new();
    V.get_or_init(|| {
        let _ = keys();
        let provider = manual_provider(Arc::new(Canned::new(None, JWKS.as_bytes().to_vec())));
        let verifier = AccessTokenVerifier::new(provider, AUDIENCE).with_clock(clock());
        // The fixtures must work, or a target would silently never reach an accepted token.
        let t = tokens();
        for token in [&t.rs256, &t.es256, &t.rs256_no_kid, &t.es256_no_kid] {
            if let Err(e) = block_on(verifier.verify::<oidc_core::AdditionalClaims>(token)) {
                panic!("fuzz fixture: a valid token is refused: {e}");
            }
        }
        verifier
    })
}

// ---------------------------------------------------------------------------------------------
// Keys and tokens

pub struct Keys {
    pub rsa: EncodingKey,
    pub ec: EncodingKey,
    pub rsa_public: DecodingKey,
    pub ec_public: DecodingKey,
}

/// The committed test keys, parsed once; the hard-coded [`JWKS`] is checked against them.
pub fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        let keys = Keys {
            rsa: EncodingKey::from_rsa_pem(RSA1_PRIVATE).unwrap(),
            ec: EncodingKey::from_ec_pem(EC1_PRIVATE).unwrap(),
            rsa_public: DecodingKey::from_rsa_pem(RSA1_PUBLIC).unwrap(),
            ec_public: DecodingKey::from_ec_pem(EC1_PUBLIC).unwrap(),
        };
        let rsa = jsonwebtoken::jwk::Jwk::from_encoding_key(&keys.rsa, Algorithm::RS256).unwrap();
        let ec = jsonwebtoken::jwk::Jwk::from_encoding_key(&keys.ec, Algorithm::ES256).unwrap();
        let rsa = serde_json::to_value(rsa).unwrap();
        let ec = serde_json::to_value(ec).unwrap();
        assert_eq!(rsa["n"], RSA_N, "the hard-coded JWKS does not match rsa1");
        assert_eq!(ec["x"], EC_X, "the hard-coded JWKS does not match ec1");
        let set: Value = serde_json::from_str(JWKS).unwrap();
        assert_eq!(set["keys"][0]["n"], rsa["n"]);
        assert_eq!(set["keys"][0]["e"], rsa["e"]);
        assert_eq!(set["keys"][1]["x"], ec["x"]);
        assert_eq!(set["keys"][1]["y"], ec["y"]);
        keys
    })
}

/// The claims of a valid access token at [`NOW`].
pub fn valid_claims(issuer: &str) -> Map<String, Value> {
    let Value::Object(claims) = json!({
        "iss": issuer,
        "sub": SUBJECT,
        "aud": AUDIENCE,
        "client_id": "client-1",
        "iat": NOW - 10,
        "exp": NOW + 3600,
        "jti": "jti-1",
        "scope": "openid api:read",
    }) else {
        unreachable!()
    };
    claims
}

/// The header of a valid access token signed with `alg` (`kid` included when `with_kid`).
pub fn valid_header(alg: Algorithm, with_kid: bool) -> Map<String, Value> {
    let mut header = Map::new();
    let (name, kid) = match alg {
        Algorithm::ES256 => ("ES256", EC_KID),
        _ => ("RS256", RSA_KID),
    };
    header.insert("alg".to_owned(), Value::from(name));
    header.insert("typ".to_owned(), Value::from("at+jwt"));
    if with_kid {
        header.insert("kid".to_owned(), Value::from(kid));
    }
    header
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.payload` (both already base64url) with the committed key for `alg`.
pub fn sign(signing_input: &str, alg: Algorithm) -> String {
    let key = match alg {
        Algorithm::ES256 => &keys().ec,
        _ => &keys().rsa,
    };
    jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).unwrap()
}

/// A compact JWS of the given header and payload bytes, signed with the key for `alg`.
pub fn mint_raw(header: &[u8], payload: &[u8], alg: Algorithm) -> String {
    let input = format!("{}.{}", b64(header), b64(payload));
    let signature = sign(&input, alg);
    format!("{input}.{signature}")
}

pub fn mint(header: &Map<String, Value>, claims: &Map<String, Value>, alg: Algorithm) -> String {
    mint_raw(
        &serde_json::to_vec(header).unwrap(),
        &serde_json::to_vec(claims).unwrap(),
        alg,
    )
}

/// Valid tokens, minted once: RS256 and ES256, with and without `kid`, for [`ISSUER`] and
/// [`ISSUER_WITH_PATH`].
pub struct Tokens {
    pub rs256: String,
    pub es256: String,
    pub rs256_no_kid: String,
    pub es256_no_kid: String,
    pub rs256_path_issuer: String,
}

pub fn tokens() -> &'static Tokens {
    static T: OnceLock<Tokens> = OnceLock::new();
    T.get_or_init(|| Tokens {
        rs256: mint(
            &valid_header(Algorithm::RS256, true),
            &valid_claims(ISSUER),
            Algorithm::RS256,
        ),
        es256: mint(
            &valid_header(Algorithm::ES256, true),
            &valid_claims(ISSUER),
            Algorithm::ES256,
        ),
        rs256_no_kid: mint(
            &valid_header(Algorithm::RS256, false),
            &valid_claims(ISSUER),
            Algorithm::RS256,
        ),
        es256_no_kid: mint(
            &valid_header(Algorithm::ES256, false),
            &valid_claims(ISSUER),
            Algorithm::ES256,
        ),
        rs256_path_issuer: mint(
            &valid_header(Algorithm::RS256, true),
            &valid_claims(ISSUER_WITH_PATH),
            Algorithm::RS256,
        ),
    })
}

// ---------------------------------------------------------------------------------------------
// Oracles: what must hold of a token the library accepted

/// Checks, independently of the library, that an accepted `token` deserved it: three
/// segments, a header naming RS256 or ES256 with a signature that the committed key of that
/// algorithm verifies, and claims that pass the documented rules at [`NOW`] for `issuer`.
/// Panics with the broken rule otherwise.
pub fn assert_deserved(token: &str, issuer: &str) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token without three segments");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[0])
            .expect("accepted a header that is not base64url"),
    )
    .expect("accepted a header that is not JSON");
    let alg = match header.get("alg").and_then(Value::as_str) {
        Some("RS256") => Algorithm::RS256,
        Some("ES256") => Algorithm::ES256,
        other => panic!("accepted alg {other:?}, which is not configured"),
    };
    // Any `crit` member is refused, whatever its value (`null` included).
    assert!(header.get("crit").is_none(), "accepted a header with crit");
    let key = match alg {
        Algorithm::ES256 => &keys().ec_public,
        _ => &keys().rsa_public,
    };
    let message = format!("{}.{}", parts[0], parts[1]);
    assert!(
        jsonwebtoken::crypto::verify(parts[2], message.as_bytes(), key, alg).unwrap_or(false),
        "accepted a token whose signature the key for {alg:?} does not verify"
    );
    // `typ`: `at+jwt` (RFC 9068), `JWT` or none (compatible mode), each with or without
    // `application/`, in any case; anything else is refused.
    // A `null` typ is read as no typ (as the header parser reads any optional member).
    let media = header.get("typ").filter(|t| !t.is_null()).map(|t| {
        let t = t.as_str().expect("accepted a non-string typ");
        match t.get(..12) {
            Some(p) if p.eq_ignore_ascii_case("application/") => &t[12..],
            _ => t,
        }
    });
    let at_jwt = media.is_some_and(|m| m.eq_ignore_ascii_case("at+jwt"));
    assert!(
        at_jwt || media.is_none_or(|m| m.eq_ignore_ascii_case("jwt")),
        "accepted typ {:?}",
        header.get("typ")
    );
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("accepted a payload that is not base64url"),
    )
    .expect("accepted a payload that is not JSON");
    let claims = claims
        .as_object()
        .expect("accepted a payload that is not an object");
    assert_eq!(
        claims.get("iss").and_then(Value::as_str),
        Some(issuer),
        "iss"
    );
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => a == AUDIENCE,
        Some(Value::Array(items)) => items.iter().any(|a| a.as_str() == Some(AUDIENCE)),
        _ => false,
    };
    assert!(aud_ok, "accepted aud {:?}", claims.get("aud"));
    let sub = claims
        .get("sub")
        .and_then(Value::as_str)
        .expect("accepted without a string sub");
    assert!(
        !sub.is_empty() && sub.chars().count() <= 255,
        "accepted sub {sub:?}"
    );
    let exp = claims
        .get("exp")
        .and_then(Value::as_i64)
        .expect("accepted without an integer exp");
    assert!(
        exp.saturating_add(LEEWAY) > NOW,
        "accepted an expired token (exp {exp})"
    );
    let iat = claims
        .get("iat")
        .map(|v| v.as_i64().expect("accepted a non-integer iat"));
    let iat = iat.expect("accepted a token without iat (required by default)");
    assert!(iat <= NOW + LEEWAY, "accepted iat {iat} in the future");
    if let Some(nbf) = claims.get("nbf") {
        let nbf = nbf.as_i64().expect("accepted a non-integer nbf");
        assert!(nbf <= NOW + LEEWAY, "accepted nbf {nbf} in the future");
    }
    assert!(!claims.contains_key("events"), "accepted a logout token");
    if !at_jwt {
        for member in ["nonce", "at_hash", "c_hash"] {
            assert!(
                !claims.contains_key(member),
                "accepted an ID token ({member})"
            );
        }
        if let Some(t) = claims.get("typ").and_then(Value::as_str) {
            assert!(
                t.eq_ignore_ascii_case("Bearer"),
                "accepted Keycloak typ {t:?}"
            );
        }
    }
}

/// Whether any string anywhere in `value` decodes (base64url or base64, padded or not) to the
/// big-endian integer `want` (leading zero bytes ignored).
pub fn contains_key_material(value: &Value, want: &[u8]) -> bool {
    let strip = |b: &[u8]| -> Vec<u8> {
        let start = b.iter().position(|x| *x != 0).unwrap_or(b.len());
        b[start..].to_vec()
    };
    let want = strip(want);
    match value {
        Value::String(s) => {
            let trimmed = s.trim_end_matches('=');
            [
                URL_SAFE_NO_PAD.decode(trimmed).ok(),
                STANDARD.decode(s).ok(),
            ]
            .into_iter()
            .flatten()
            .any(|decoded| strip(&decoded) == want)
        }
        Value::Array(items) => items
            .iter()
            .any(|v| contains_key_material(v, want.as_slice())),
        Value::Object(map) => map
            .values()
            .any(|v| contains_key_material(v, want.as_slice())),
        _ => false,
    }
}

/// The modulus of `rsa1` and the `x` coordinate of `ec1`.
pub fn rsa_modulus() -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(RSA_N).unwrap()
}

pub fn ec_x() -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(EC_X).unwrap()
}
