//! The keys of a JWK set: parsing a set into usable verification keys (aws-lc-rs keys parsed
//! once), skipping unusable ones and refusing duplicated `kid`s, and checking signatures.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::algorithm::Algorithm;
use crate::error::JwksError;

/// The most keys read from one JWK set; the rest are ignored.
pub(crate) const MAX_KEYS: usize = 64;

/// The shape of a key, which decides the algorithms it can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyShape {
    Rsa,
    P256,
    P384,
    Ed25519,
}

/// The largest signature accepted, in bytes: RSA with an 8192-bit modulus.
const MAX_SIGNATURE: usize = 8192 / 8;

/// One usable verification key, parsed when the set was loaded.
pub(crate) struct VerifyingKey {
    kid: Option<Arc<str>>,
    shape: KeyShape,
    alg: Option<Algorithm>,
    /// The key's public parameters as published (RSA: modulus length, modulus, exponent; EC:
    /// the uncompressed point; Ed25519: `x`), to tell a re-published key from a changed one.
    material: Box<[u8]>,
    /// One parsed key per algorithm this key may verify (aws-lc-rs binds the padding and
    /// digest to the parsed key): six for an RSA key without `alg`, one otherwise.
    parsed: Vec<(Algorithm, ParsedPublicKey)>,
    /// Set when the key left the provider's set (or changed under the same `kid`): tokens
    /// validated with it must not be accepted from a token cache any more.
    retired: AtomicBool,
    /// How many signatures this key checked (tests: a token-cache hit must not check one).
    #[cfg(test)]
    pub(crate) verifications: std::sync::atomic::AtomicUsize,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("shape", &self.shape)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// Whether this key may verify a signature made with `alg`: the key type must fit the
    /// algorithm family (and curve), and a key that names its `alg` only verifies that one.
    pub(crate) fn fits(&self, alg: Algorithm) -> bool {
        use Algorithm::*;
        let shape_fits = match alg {
            RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => self.shape == KeyShape::Rsa,
            ES256 => self.shape == KeyShape::P256,
            ES384 => self.shape == KeyShape::P384,
            EdDSA => self.shape == KeyShape::Ed25519,
        };
        shape_fits && self.alg.is_none_or(|a| a == alg)
    }

    /// Checks `signature` (base64url, as in the token) over `message` (the first two token
    /// segments) with the key parsed for `alg`. No allocation: the signature is decoded into a
    /// stack buffer.
    pub(crate) fn verify(&self, alg: Algorithm, message: &[u8], signature: &str) -> bool {
        let Some((_, key)) = self.parsed.iter().find(|(a, _)| *a == alg) else {
            return false;
        };
        #[cfg(test)]
        self.verifications.fetch_add(1, Ordering::Relaxed);
        // Room for the base64 decoder's estimate (it rounds up to whole 3-byte groups).
        let mut buf = [0u8; MAX_SIGNATURE + 3];
        if signature.len() > MAX_SIGNATURE.div_ceil(3) * 4 {
            return false;
        }
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature, &mut buf) else {
            return false;
        };
        let Some(signature) = buf.get(..len) else {
            return false;
        };
        key.verify_sig(message, signature).is_ok()
    }

    pub(crate) fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// The `kid`, shared.
    pub(crate) fn kid_arc(&self) -> Option<&Arc<str>> {
        self.kid.as_ref()
    }

    /// Marks the key as gone from the provider's set: the tokens it validated leave the
    /// token caches.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
    }

    /// Whether the key left the provider's set since it was loaded.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Whether `other` is this key published again: same `kid`, parameters and `alg`.
    pub(crate) fn same_as(&self, other: &VerifyingKey) -> bool {
        self.kid == other.kid
            && self.shape == other.shape
            && self.alg == other.alg
            && self.material == other.material
    }
}

/// Parses `material` (see [`VerifyingKey::material`]) for verification with `alg`. RSA keys
/// are limited to 2048–8192 bits (also checked when the set is parsed), as jsonwebtoken's
/// aws-lc-rs backend does.
fn parse_for(alg: Algorithm, material: &[u8]) -> Option<ParsedPublicKey> {
    let rsa = |params: &'static sig::RsaParameters| {
        rsa_components(material)?.to_parsed_public_key(params).ok()
    };
    match alg {
        Algorithm::RS256 => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        Algorithm::RS384 => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        Algorithm::RS512 => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        Algorithm::PS256 => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        Algorithm::PS384 => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        Algorithm::PS512 => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        Algorithm::ES256 => ParsedPublicKey::new(&sig::ECDSA_P256_SHA256_FIXED, material).ok(),
        Algorithm::ES384 => ParsedPublicKey::new(&sig::ECDSA_P384_SHA384_FIXED, material).ok(),
        Algorithm::EdDSA => ParsedPublicKey::new(&sig::ED25519, material).ok(),
    }
}

/// Splits RSA key material (modulus length, modulus, exponent) back into its components.
fn rsa_components(material: &[u8]) -> Option<RsaPublicKeyComponents<&[u8]>> {
    let (len, rest) = material.split_first_chunk::<4>()?;
    let len = usize::try_from(u32::from_be_bytes(*len)).ok()?;
    let (n, e) = rest.split_at_checked(len)?;
    Some(RsaPublicKeyComponents { n, e })
}

#[derive(Deserialize)]
struct RawSet {
    keys: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

fn b64(field: &Option<String>) -> Result<Vec<u8>, &'static str> {
    let s = field.as_deref().ok_or("missing parameter")?;
    URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .map_err(|_| "parameter is not base64url")
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    bytes.get(first..).unwrap_or_default()
}

pub(crate) fn parse_key(value: serde_json::Value) -> Result<VerifyingKey, &'static str> {
    let raw: RawJwk = serde_json::from_value(value).map_err(|_| "not a jwk")?;
    if raw.use_.as_deref().is_some_and(|u| u != "sig") {
        return Err("use is not sig");
    }
    if raw
        .key_ops
        .as_ref()
        .is_some_and(|ops| !ops.iter().any(|o| o == "verify"))
    {
        return Err("key_ops lacks verify");
    }
    let alg = match raw.alg.as_deref() {
        None => None,
        Some(name) => {
            Some(Algorithm::from_name(name).ok_or("alg is not a supported signature algorithm")?)
        }
    };
    let (shape, material) = match (raw.kty.as_str(), raw.crv.as_deref()) {
        ("RSA", _) => {
            let n = b64(&raw.n)?;
            let e = b64(&raw.e)?;
            let n = strip_leading_zeros(&n);
            let e = strip_leading_zeros(&e);
            let bits = n.len() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err("rsa modulus size out of bounds");
            }
            if e.is_empty() || e.len() > 4 || e.last().is_none_or(|b| b & 1 == 0) || e == [1] {
                return Err("rsa exponent is invalid");
            }
            let len = u32::try_from(n.len()).map_err(|_| "rsa modulus size out of bounds")?;
            let mut material = Vec::with_capacity(4 + n.len() + e.len());
            material.extend_from_slice(&len.to_be_bytes());
            material.extend_from_slice(n);
            material.extend_from_slice(e);
            (KeyShape::Rsa, material)
        }
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (shape, len) = if crv == "P-256" {
                (KeyShape::P256, 32)
            } else {
                (KeyShape::P384, 48)
            };
            let x = b64(&raw.x)?;
            let y = b64(&raw.y)?;
            if x.len() != len || y.len() != len {
                return Err("ec coordinates have the wrong length");
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (shape, point)
        }
        ("OKP", Some("Ed25519")) => {
            let x = b64(&raw.x)?;
            if x.len() != 32 {
                return Err("ed25519 key has the wrong length");
            }
            (KeyShape::Ed25519, x)
        }
        _ => return Err("unsupported kty or crv"),
    };
    let mut key = VerifyingKey {
        kid: raw.kid.map(Arc::from),
        shape,
        alg,
        material: material.into_boxed_slice(),
        parsed: Vec::new(),
        retired: AtomicBool::new(false),
        #[cfg(test)]
        verifications: std::sync::atomic::AtomicUsize::new(0),
    };
    if let Some(a) = alg
        && !key.fits(a)
    {
        return Err("alg does not fit the key type");
    }
    for a in Algorithm::ALL {
        if key.fits(a) {
            let parsed = parse_for(a, &key.material).ok_or("key parameters are invalid")?;
            key.parsed.push((a, parsed));
        }
    }
    Ok(key)
}

/// A parsed JWK set: its usable keys, and the `kid`s refused because several usable keys
/// share them (their keys are not in `keys`).
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    pub(crate) keys: Vec<Arc<VerifyingKey>>,
    pub(crate) duplicated: Vec<Arc<str>>,
}

/// Parses a JWK set document, skipping unusable keys and taking out the keys of every `kid`
/// that names more than one usable key (see the [module docs](super#several-keys-under-one-kid)).
pub(crate) fn parse_set(body: &[u8]) -> Result<KeySet, JwksError> {
    // serde's derived structs also accept arrays; a JWK set is an object.
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(JwksError::InvalidDocument(Arc::new(std::io::Error::other(
            "a jwk set must be a json object",
        ))));
    }
    let set: RawSet =
        serde_json::from_slice(body).map_err(|e| JwksError::InvalidDocument(Arc::new(e)))?;
    let mut keys = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicated: Vec<Arc<str>> = Vec::new();
    for (index, value) in set.keys.into_iter().take(MAX_KEYS).enumerate() {
        match parse_key(value) {
            Ok(key) => {
                if let Some(kid) = key.kid.clone()
                    && !seen.insert(kid.clone())
                    && !duplicated.contains(&kid)
                {
                    duplicated.push(kid);
                }
                keys.push(Arc::new(key));
            }
            Err(reason) => tracing::debug!(index, reason, "skipping unusable jwk"),
        }
    }
    if !duplicated.is_empty() {
        keys.retain(|k| k.kid.as_ref().is_none_or(|kid| !duplicated.contains(kid)));
        tracing::warn!(
            kids = ?duplicated,
            "the provider's key set has several keys under one kid: tokens naming these kids are refused"
        );
    }
    Ok(KeySet { keys, duplicated })
}
