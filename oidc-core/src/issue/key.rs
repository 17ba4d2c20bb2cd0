//! Signing keys of the token issuer: ES256 (P-256) and EdDSA (Ed25519), generated or loaded
//! from an unencrypted PKCS#8 PEM file, identified by their RFC 7638 JWK thumbprint.

use std::path::Path;

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use super::error::KeyError;
use crate::Algorithm;
use crate::flow::Secret;
use crate::private_file::write_new_private;

const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

/// A private signing key of the [`TokenIssuer`](super::TokenIssuer).
///
/// `Debug` shows the algorithm and `kid` only, never private material.
///
/// # Examples
///
/// ```
/// use oidc_core::Algorithm;
/// use oidc_core::issue::SigningKey;
///
/// let key = SigningKey::generate(Algorithm::EdDSA)?;
/// // Store it (0600) and load it again: the same key, the same kid.
/// let pem = key.to_pkcs8_pem()?;
/// let again = SigningKey::from_pkcs8_pem(pem.secret())?;
/// assert_eq!(again.kid(), key.kid());
/// assert!(!format!("{key:?}").contains(pem.secret()));
/// # Ok::<_, oidc_core::issue::KeyError>(())
/// ```
pub struct SigningKey {
    pair: Pair,
    kid: String,
    /// The public JWK, `kid`, `use` and `alg` included.
    public: Map<String, Value>,
}

enum Pair {
    Es256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new random key for `alg` (`ES256` or `EdDSA`).
    ///
    /// # Errors
    ///
    /// [`KeyError::UnsupportedAlgorithm`] for any other algorithm, [`KeyError::Crypto`] when
    /// the cryptographic library fails.
    pub fn generate(alg: Algorithm) -> Result<Self, KeyError> {
        let pair = match alg {
            Algorithm::ES256 => Pair::Es256(
                EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
                    .map_err(|_| KeyError::Crypto)?,
            ),
            Algorithm::EdDSA => {
                Pair::Ed25519(Ed25519KeyPair::generate().map_err(|_| KeyError::Crypto)?)
            }
            other => return Err(KeyError::UnsupportedAlgorithm(other)),
        };
        Self::from_pair(pair)
    }

    /// Loads a key from an unencrypted PKCS#8 PEM document (`-----BEGIN PRIVATE KEY-----`,
    /// as written by `openssl genpkey` or [`SigningKey::to_pkcs8_pem`]). The algorithm
    /// follows from the key: P-256 signs with `ES256`, Ed25519 with `EdDSA`.
    ///
    /// # Errors
    ///
    /// [`KeyError::InvalidPem`] without such a block (SEC1 `EC PRIVATE KEY` and encrypted
    /// keys included), [`KeyError::UnsupportedKey`] for any other kind of key.
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, KeyError> {
        let start = pem
            .find(PEM_BEGIN)
            .ok_or(KeyError::InvalidPem("no PRIVATE KEY block"))?;
        let body = pem
            .get(start + PEM_BEGIN.len()..)
            .ok_or(KeyError::InvalidPem("no PRIVATE KEY block"))?;
        let end = body
            .find(PEM_END)
            .ok_or(KeyError::InvalidPem("the PRIVATE KEY block is not closed"))?;
        let b64: String = body
            .get(..end)
            .unwrap_or_default()
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect();
        let der = STANDARD
            .decode(b64)
            .map_err(|_| KeyError::InvalidPem("the PRIVATE KEY block is not base64"))?;
        Self::from_pkcs8_der(&der)
    }

    /// Loads a key from a PKCS#8 DER document (v1 or v2).
    ///
    /// # Errors
    ///
    /// [`KeyError::UnsupportedKey`] unless it is a valid P-256 or Ed25519 private key.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Self, KeyError> {
        if let Ok(pair) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
            return Self::from_pair(Pair::Es256(pair));
        }
        if let Ok(pair) = Ed25519KeyPair::from_pkcs8(der) {
            return Self::from_pair(Pair::Ed25519(pair));
        }
        Err(KeyError::UnsupportedKey)
    }

    /// Loads the key of a PEM file (see [`SigningKey::from_pkcs8_pem`]).
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] when the file cannot be read, or the errors of
    /// [`SigningKey::from_pkcs8_pem`].
    pub fn from_pem_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let pem = std::fs::read_to_string(path).map_err(|e| KeyError::Io {
            path: path.to_owned(),
            kind: e.kind(),
        })?;
        Self::from_pkcs8_pem(&pem)
    }

    /// Loads the key of `path`, or, when the file does not exist, generates one for `alg` and
    /// writes it there (created new, mode `0600` on Unix), so that a restart keeps the key and
    /// tokens minted before it keep verifying.
    ///
    /// An existing file is used whatever its algorithm; `alg` only chooses a new key's.
    ///
    /// # Errors
    ///
    /// The errors of [`SigningKey::from_pem_file`] and [`SigningKey::generate`], and
    /// [`KeyError::Io`] when the file cannot be created.
    pub fn load_or_generate(path: impl AsRef<Path>, alg: Algorithm) -> Result<Self, KeyError> {
        let path = path.as_ref();
        if path.exists() {
            return Self::from_pem_file(path);
        }
        let key = Self::generate(alg)?;
        let pem = key.to_pkcs8_pem()?;
        write_new_private(path, pem.secret().as_bytes()).map_err(|e| KeyError::Io {
            path: path.to_owned(),
            kind: e.kind(),
        })?;
        Ok(key)
    }

    /// The private key as an unencrypted PKCS#8 PEM document. Keep it secret: store it with
    /// mode `0600`, never log it.
    ///
    /// # Errors
    ///
    /// [`KeyError::Crypto`] when the cryptographic library fails.
    pub fn to_pkcs8_pem(&self) -> Result<Secret, KeyError> {
        let doc = match &self.pair {
            Pair::Es256(pair) => pair.to_pkcs8v1(),
            Pair::Ed25519(pair) => pair.to_pkcs8(),
        }
        .map_err(|_| KeyError::Crypto)?;
        let b64 = STANDARD.encode(doc.as_ref());
        let mut pem = String::with_capacity(b64.len() + 80);
        pem.push_str(PEM_BEGIN);
        pem.push('\n');
        for line in b64.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).map_err(|_| KeyError::Crypto)?);
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        Ok(Secret::new(pem))
    }

    /// The JWS algorithm this key signs with.
    pub fn algorithm(&self) -> Algorithm {
        match self.pair {
            Pair::Es256(_) => Algorithm::ES256,
            Pair::Ed25519(_) => Algorithm::EdDSA,
        }
    }

    /// The key id: the RFC 7638 JWK SHA-256 thumbprint of the public key, base64url.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public JWK (`kty`, `crv`, `x`, `y` for P-256, `kid`, `use: sig`, `alg`): no
    /// private member.
    pub fn public_jwk(&self) -> Value {
        Value::Object(self.public.clone())
    }

    /// Signs `message` (the JWS signing input); the signature in JWS form (for ES256 the
    /// fixed-size `R || S`).
    pub(crate) fn sign(&self, message: &[u8]) -> Option<Vec<u8>> {
        match &self.pair {
            Pair::Es256(pair) => pair
                .sign(&SystemRandom::new(), message)
                .ok()
                .map(|s| s.as_ref().to_vec()),
            Pair::Ed25519(pair) => Some(pair.sign(message).as_ref().to_vec()),
        }
    }

    fn from_pair(pair: Pair) -> Result<Self, KeyError> {
        // The thumbprint input: the required members only, in lexicographic order, no
        // whitespace (RFC 7638 §3.2; RFC 8037 §2 for OKP).
        let (mut public, canonical) = match &pair {
            Pair::Es256(p) => {
                // The uncompressed point: 0x04 || x || y.
                let point = p.public_key().as_ref();
                let (x, y) = point
                    .get(1..)
                    .filter(|xy| xy.len() == 64 && point.first() == Some(&4))
                    .map(|xy| xy.split_at(32))
                    .ok_or(KeyError::Crypto)?;
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
                let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y });
                (jwk, canonical)
            }
            Pair::Ed25519(p) => {
                let x = URL_SAFE_NO_PAD.encode(p.public_key().as_ref());
                let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
                (json!({ "kty": "OKP", "crv": "Ed25519", "x": x }), canonical)
            }
        };
        let kid = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, canonical.as_bytes()));
        let alg = match pair {
            Pair::Es256(_) => "ES256",
            Pair::Ed25519(_) => "EdDSA",
        };
        let Value::Object(map) = &mut public else {
            return Err(KeyError::Crypto);
        };
        map.insert("kid".into(), Value::String(kid.clone()));
        map.insert("use".into(), Value::String("sig".into()));
        map.insert("alg".into(), Value::String(alg.into()));
        let public = std::mem::take(map);
        Ok(Self { pair, kid, public })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1 gives an RSA example only; RFC 8037 §A.3 gives the Ed25519 one.
    #[test]
    fn ed25519_thumbprint_matches_rfc_8037_a3() {
        // RFC 8037 §A.1 private key (d) and §A.3 thumbprint.
        let d = URL_SAFE_NO_PAD
            .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
            .unwrap();
        // PKCS#8 v1 prefix for an Ed25519 private key (RFC 8410 §7).
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&d);
        let key = SigningKey::from_pkcs8_der(&der).unwrap();
        assert_eq!(key.kid(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        assert_eq!(
            key.public_jwk()["x"],
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
    }

    #[test]
    fn debug_shows_no_private_material() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA] {
            let key = SigningKey::generate(alg).unwrap();
            let pem = key.to_pkcs8_pem().unwrap();
            let debug = format!("{key:?}");
            let b64 = pem
                .secret()
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>();
            assert!(!debug.contains(&b64), "{debug}");
            assert!(debug.contains(key.kid()), "{debug}");
            // Not even the public key's bytes beyond the kid.
            assert!(!debug.contains(key.public_jwk()["x"].as_str().unwrap()));
        }
    }
}
