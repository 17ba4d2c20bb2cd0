//! Building and signing test tokens, including hostile ones.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

use crate::client::DEFAULT_AUDIENCE;
use crate::keys::{SigningAlg, TestKey, keyring};
use crate::state::ProviderState;

/// The default lifetime of tokens, in seconds.
const DEFAULT_LIFETIME_SECS: i64 = 300;

/// Builds a JWT signed by a [`TestProvider`](crate::TestProvider); get one
/// from [`TestProvider::token`](crate::TestProvider::token).
///
/// The header and claims are JSON objects that the builder methods edit
/// freely: nothing is validated, so tests can build any malformed or hostile
/// token. The `sign*` methods serialize them exactly as built (compact JSON,
/// base64url without padding) and only differ in the signature part.
///
/// Defaults: header `{"alg": "RS256", "typ": "at+jwt", "kid": <current
/// RS256 kid>}`; claims `{"iss": <issuer>, "sub": "user-1", "aud":
/// "api://default", "client_id": "client-1", "iat": <now>, "exp": <now +
/// 300>, "jti": <unique>, "scope": "openid api:read"}`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use oidc_testing::{SigningAlg, TestProvider};
///
/// let provider = TestProvider::start().await;
/// let token = provider
///     .token()
///     .alg(SigningAlg::ES256)
///     .claim("sub", "alice")
///     .scope("openid api:write")
///     .expires_in(-60) // already expired
///     .without_header("typ")
///     .sign();
/// assert_eq!(token.split('.').count(), 3);
/// # }
/// ```
#[derive(Clone)]
pub struct TokenBuilder {
    provider: Arc<ProviderState>,
    alg: SigningAlg,
    /// Rotation position of the signing key within `alg`'s family.
    key_index: usize,
    /// Set once the `kid` header was edited by hand: `alg` then keeps it.
    kid_pinned: bool,
    header: Map<String, Value>,
    claims: Map<String, Value>,
    now: i64,
}

impl fmt::Debug for TokenBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenBuilder")
            .field("alg", &self.alg)
            .field("signing_key", &keyring().key(self.alg, self.key_index).name)
            .field("header", &self.header)
            .field("claims", &self.claims)
            .finish_non_exhaustive()
    }
}

impl TokenBuilder {
    pub(crate) fn new(provider: Arc<ProviderState>) -> Self {
        let alg = SigningAlg::RS256;
        let key_index = provider.current_index(alg);
        let now = unix_now();
        let mut header = Map::new();
        header.insert("alg".to_owned(), Value::from(alg.as_str()));
        header.insert("typ".to_owned(), Value::from("at+jwt"));
        header.insert(
            "kid".to_owned(),
            Value::from(keyring().key(alg, key_index).kid(alg)),
        );
        let mut claims = Map::new();
        claims.insert("iss".to_owned(), Value::from(provider.issuer()));
        claims.insert("sub".to_owned(), Value::from("user-1"));
        claims.insert("aud".to_owned(), Value::from(DEFAULT_AUDIENCE));
        claims.insert("client_id".to_owned(), Value::from("client-1"));
        claims.insert("iat".to_owned(), Value::from(now));
        claims.insert(
            "exp".to_owned(),
            Value::from(now.saturating_add(DEFAULT_LIFETIME_SECS)),
        );
        claims.insert("jti".to_owned(), Value::from(unique_jti()));
        claims.insert("scope".to_owned(), Value::from("openid api:read"));
        TokenBuilder {
            provider,
            alg,
            key_index,
            kid_pinned: false,
            header,
            claims,
            now,
        }
    }

    /// Signs with `alg` using the provider's current key for `alg` (looked up
    /// now), and sets the header's `alg`, and its `kid` to that key's kid
    /// unless the `kid` header was set or removed by hand before.
    pub fn alg(mut self, alg: SigningAlg) -> Self {
        self.alg = alg;
        self.key_index = self.provider.current_index(alg);
        self.header
            .insert("alg".to_owned(), Value::from(alg.as_str()));
        if !self.kid_pinned {
            self.header.insert(
                "kid".to_owned(),
                Value::from(keyring().key(alg, self.key_index).kid(alg)),
            );
        }
        self
    }

    /// Signs with the committed key published under `kid` (such as
    /// `rsa2-PS256`, whether or not it is currently published), switching the
    /// algorithm to that kid's and setting the header's `alg` and `kid`.
    ///
    /// # Panics
    ///
    /// Panics when no committed key has this kid.
    #[allow(
        clippy::panic,
        reason = "test support code: an unknown kid is a mistake in the test"
    )]
    pub fn signing_kid(mut self, kid: &str) -> Self {
        let Some((alg, index)) = keyring().find_kid(kid) else {
            panic!("oidc-testing: no test key has kid {kid:?}");
        };
        self.alg = alg;
        self.key_index = index;
        self.kid_pinned = true;
        self.header
            .insert("alg".to_owned(), Value::from(alg.as_str()));
        self.header.insert("kid".to_owned(), Value::from(kid));
        self
    }

    /// Sets a claim (replacing any previous value).
    pub fn claim(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.claims.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a claim.
    pub fn without_claim(mut self, name: &str) -> Self {
        self.claims.remove(name);
        self
    }

    /// Sets a header member (replacing any previous value): anything,
    /// including `typ`, `kid`, `jku`, `x5u`, `jwk` or `crit`. Setting `alg`
    /// changes only the header: the signature still uses the builder's
    /// algorithm (see [`alg`](TokenBuilder::alg)).
    pub fn header(mut self, name: &str, value: impl Into<Value>) -> Self {
        if name == "kid" {
            self.kid_pinned = true;
        }
        self.header.insert(name.to_owned(), value.into());
        self
    }

    /// Removes a header member, such as `kid` or `typ`.
    pub fn without_header(mut self, name: &str) -> Self {
        if name == "kid" {
            self.kid_pinned = true;
        }
        self.header.remove(name);
        self
    }

    /// Sets `exp` to now + `secs` (a negative value gives an expired token).
    /// "Now" is when the builder was created, which is also its `iat`.
    pub fn expires_in(self, secs: i64) -> Self {
        let exp = self.now.saturating_add(secs);
        self.claim("exp", exp)
    }

    /// Sets the `scope` claim.
    pub fn scope(self, scope: &str) -> Self {
        self.claim("scope", scope)
    }

    /// Sets the `aud` claim: a string, or a JSON array of strings (for
    /// example `serde_json::json!(["a", "b"])`), or any other JSON value.
    pub fn audience(self, aud: impl Into<Value>) -> Self {
        self.claim("aud", aud)
    }

    /// The header as currently built.
    pub fn header_json(&self) -> Value {
        Value::Object(self.header.clone())
    }

    /// The claims as currently built.
    pub fn claims_json(&self) -> Value {
        Value::Object(self.claims.clone())
    }

    /// Signs the token with the provider's key for the chosen algorithm and
    /// returns the compact JWS `header.payload.signature`.
    pub fn sign(&self) -> String {
        let key = keyring().key(self.alg, self.key_index);
        self.sign_with(key)
    }

    /// Signs with the never-published foreign key of the chosen algorithm's
    /// family (RSA-2048, P-256 or Ed25519), with the header exactly as built
    /// (so with the published key's `kid` by default): the signature does not
    /// verify with any key of the JWKS.
    pub fn sign_with_foreign_key(&self) -> String {
        let key = keyring().foreign(self.alg.family());
        self.sign_with(key)
    }

    /// A hostile unsigned token: the header's `alg` is set to `alg_name`
    /// (such as `"none"`, `"NONE"` or `"None"`) and the signature part is
    /// `signature` as given (the empty string for a plain `alg: none`
    /// token).
    pub fn sign_none(&self, alg_name: &str, signature: &str) -> String {
        let mut header = self.header.clone();
        header.insert("alg".to_owned(), Value::from(alg_name));
        format!("{}.{signature}", signing_input(&header, &self.claims))
    }

    /// A hostile algorithm-confusion token: the header's `alg` is set to
    /// `"HS256"` and the token is HMAC-SHA256-signed with `secret` as the key
    /// (tests pass [`TestProvider::rsa_public_key_pem`](crate::TestProvider::rsa_public_key_pem)
    /// or the JSON bytes of a published JWK).
    pub fn sign_hs256(&self, secret: &[u8]) -> String {
        let mut header = self.header.clone();
        header.insert("alg".to_owned(), Value::from("HS256"));
        let input = signing_input(&header, &self.claims);
        let signature = sign_message(
            input.as_bytes(),
            &EncodingKey::from_secret(secret),
            Algorithm::HS256,
        );
        format!("{input}.{signature}")
    }

    /// A validly signed token whose signature then has one bit flipped (in
    /// its middle byte), so it no longer verifies.
    pub fn sign_tampered_signature(&self) -> String {
        let input = signing_input(&self.header, &self.claims);
        let key = keyring().key(self.alg, self.key_index);
        let signature = sign_message(input.as_bytes(), &key.encoding, self.alg.algorithm());
        let mut bytes = URL_SAFE_NO_PAD.decode(&signature).unwrap_or_default();
        let middle = bytes.len() / 2;
        if let Some(byte) = bytes.get_mut(middle) {
            *byte ^= 0x01;
        }
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// A validly signed token whose payload is then replaced by the claims
    /// with `name` set to `value`: the signature is the original one and no
    /// longer matches.
    pub fn sign_then_replace_claim(&self, name: &str, value: impl Into<Value>) -> String {
        let signed = self.sign();
        let signature = signed.rsplit('.').next().unwrap_or_default();
        let mut claims = self.claims.clone();
        claims.insert(name.to_owned(), value.into());
        format!("{}.{signature}", signing_input(&self.header, &claims))
    }

    /// The header and claims, for the provider's own minting (ID tokens run
    /// the test's mutations on them before signing).
    pub(crate) fn parts_mut(&mut self) -> (&mut Map<String, Value>, &mut Map<String, Value>) {
        (&mut self.header, &mut self.claims)
    }

    fn sign_with(&self, key: &TestKey) -> String {
        let input = signing_input(&self.header, &self.claims);
        let signature = sign_message(input.as_bytes(), &key.encoding, self.alg.algorithm());
        format!("{input}.{signature}")
    }
}

/// `base64url(header) "." base64url(claims)`.
fn signing_input(header: &Map<String, Value>, claims: &Map<String, Value>) -> String {
    format!("{}.{}", encode_json(header), encode_json(claims))
}

fn encode_json(object: &Map<String, Value>) -> String {
    // Serializing a JSON map to memory cannot fail.
    let json = serde_json::to_vec(object).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Signs `message` and returns the base64url signature.
#[allow(
    clippy::panic,
    reason = "test support code: the committed keys match their algorithms (unit-tested)"
)]
fn sign_message(message: &[u8], key: &EncodingKey, alg: Algorithm) -> String {
    jsonwebtoken::crypto::sign(message, key, alg)
        .unwrap_or_else(|e| panic!("oidc-testing: signing with {alg:?} failed: {e}"))
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> i64 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0);
    i64::try_from(secs).unwrap_or(i64::MAX)
}

/// A `jti` unique within the process and very likely across processes.
fn unique_jti() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or(0);
    format!("jti-{}-{nanos:09}-{count}", std::process::id())
}

/// The decoded payload of a compact JWT, without any verification.
pub(crate) fn unverified_claims(token: &str) -> Option<Map<String, Value>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(claims) => Some(claims),
        _ => None,
    }
}
