//! The committed **public test keys** and the signing algorithms they serve.
//!
//! Every private key used here lives in the crate's `keys/` folder, is
//! committed to a public repository and ships inside the published crate:
//! anyone can sign with them. They are compiled in with `include_bytes!` so
//! that tests never generate keys at run time. Never trust them outside tests.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::Value;

/// A JWS signing algorithm that the [`TestProvider`](crate::TestProvider) can
/// sign tokens with.
///
/// All RSA algorithms (`RS*` and `PS*`) share the provider's RSA-2048 keys,
/// [`ES256`](SigningAlg::ES256) uses the EC P-256 keys and
/// [`EdDSA`](SigningAlg::EdDSA) the Ed25519 keys. Each algorithm has its own
/// *current* key (see [`TestProvider::kid`](crate::TestProvider::kid)) and
/// each (key, algorithm) pair is published as its own JWK, with its own `kid`
/// and an `alg` member naming that algorithm.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(
    clippy::upper_case_acronyms,
    reason = "the variants are spelled exactly like the JOSE algorithm names"
)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// Ed25519 (EdDSA).
    EdDSA,
}

impl SigningAlg {
    /// Every algorithm the provider signs with, in the order their keys
    /// appear in the JWKS.
    pub const ALL: [SigningAlg; 8] = [
        SigningAlg::RS256,
        SigningAlg::RS384,
        SigningAlg::RS512,
        SigningAlg::PS256,
        SigningAlg::PS384,
        SigningAlg::PS512,
        SigningAlg::ES256,
        SigningAlg::EdDSA,
    ];

    /// The JOSE name of the algorithm, as it appears in a JWT header's `alg`
    /// and in a JWK's `alg` (for example `"RS256"` or `"EdDSA"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::RS384 => "RS384",
            SigningAlg::RS512 => "RS512",
            SigningAlg::PS256 => "PS256",
            SigningAlg::PS384 => "PS384",
            SigningAlg::PS512 => "PS512",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub(crate) const fn family(self) -> Family {
        match self {
            SigningAlg::RS256
            | SigningAlg::RS384
            | SigningAlg::RS512
            | SigningAlg::PS256
            | SigningAlg::PS384
            | SigningAlg::PS512 => Family::Rsa,
            SigningAlg::ES256 => Family::Ec,
            SigningAlg::EdDSA => Family::Ed,
        }
    }

    pub(crate) const fn algorithm(self) -> Algorithm {
        match self {
            SigningAlg::RS256 => Algorithm::RS256,
            SigningAlg::RS384 => Algorithm::RS384,
            SigningAlg::RS512 => Algorithm::RS512,
            SigningAlg::PS256 => Algorithm::PS256,
            SigningAlg::PS384 => Algorithm::PS384,
            SigningAlg::PS512 => Algorithm::PS512,
            SigningAlg::ES256 => Algorithm::ES256,
            SigningAlg::EdDSA => Algorithm::EdDSA,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error returned when parsing an unknown algorithm name into a
/// [`SigningAlg`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownSigningAlg(String);

impl fmt::Display for UnknownSigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown signing algorithm {:?}", self.0)
    }
}

impl std::error::Error for UnknownSigningAlg {}

impl FromStr for SigningAlg {
    type Err = UnknownSigningAlg;

    /// Parses the exact (case-sensitive) JOSE name, such as `"PS256"`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SigningAlg::ALL
            .into_iter()
            .find(|alg| alg.as_str() == s)
            .ok_or_else(|| UnknownSigningAlg(s.to_owned()))
    }
}

/// A key family: which committed keys an algorithm can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    Ec,
    Ed,
}

impl Family {
    /// The algorithm used to derive the public JWK of a key of this family.
    const fn jwk_alg(self) -> SigningAlg {
        match self {
            Family::Rsa => SigningAlg::RS256,
            Family::Ec => SigningAlg::ES256,
            Family::Ed => SigningAlg::EdDSA,
        }
    }
}

/// One committed public test key.
pub(crate) struct TestKey {
    /// Short name, the prefix of every kid of this key (`rsa1`, `ec2`, ...).
    pub(crate) name: &'static str,
    /// SubjectPublicKeyInfo PEM of the public key.
    pub(crate) public_pem: &'static [u8],
    /// The private key, ready for signing.
    pub(crate) encoding: EncodingKey,
    /// The public JWK (`kty` and key parameters only, no `kid`/`use`/`alg`).
    jwk_params: serde_json::Map<String, Value>,
}

impl fmt::Debug for TestKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl TestKey {
    /// The key id under which this key is published for `alg`.
    pub(crate) fn kid(&self, alg: SigningAlg) -> String {
        format!("{}-{}", self.name, alg.as_str())
    }

    /// The public JWK of this key for `alg`, with `kid`, `use` and `alg`.
    pub(crate) fn public_jwk(&self, alg: SigningAlg) -> Value {
        let mut jwk = self.jwk_params.clone();
        jwk.insert("kid".to_owned(), Value::from(self.kid(alg)));
        jwk.insert("use".to_owned(), Value::from("sig"));
        jwk.insert("alg".to_owned(), Value::from(alg.as_str()));
        Value::Object(jwk)
    }
}

/// Every committed key, parsed once per process.
#[derive(Debug)]
pub(crate) struct Keyring {
    rsa: Vec<TestKey>,
    ec: Vec<TestKey>,
    ed: Vec<TestKey>,
    foreign_rsa: TestKey,
    foreign_ec: TestKey,
    foreign_ed: TestKey,
}

impl Keyring {
    /// The published (rotatable) keys of a family, in rotation order.
    pub(crate) fn family(&self, family: Family) -> &[TestKey] {
        match family {
            Family::Rsa => &self.rsa,
            Family::Ec => &self.ec,
            Family::Ed => &self.ed,
        }
    }

    /// The key that `alg` uses at rotation position `index` (wrapping).
    pub(crate) fn key(&self, alg: SigningAlg, index: usize) -> &TestKey {
        let keys = self.family(alg.family());
        // Every family has at least one key (checked in `load`), so the
        // modulo is never by zero and the lookup never misses; fall back to
        // the foreign key only to avoid a panic path.
        keys.get(index % keys.len().max(1))
            .unwrap_or_else(|| self.foreign(alg.family()))
    }

    /// Number of rotatable keys for `alg`.
    pub(crate) fn count(&self, alg: SigningAlg) -> usize {
        self.family(alg.family()).len()
    }

    /// The never-published key of a family.
    pub(crate) fn foreign(&self, family: Family) -> &TestKey {
        match family {
            Family::Rsa => &self.foreign_rsa,
            Family::Ec => &self.foreign_ec,
            Family::Ed => &self.foreign_ed,
        }
    }

    /// Finds the algorithm and rotation index of a published-able kid.
    pub(crate) fn find_kid(&self, kid: &str) -> Option<(SigningAlg, usize)> {
        SigningAlg::ALL.into_iter().find_map(|alg| {
            self.family(alg.family())
                .iter()
                .position(|key| key.kid(alg) == kid)
                .map(|index| (alg, index))
        })
    }

    /// The public JWKs of every kid, keyed by kid.
    pub(crate) fn jwk_by_kid(&self) -> &HashMap<String, Value> {
        &JWK_BY_KID
    }
}

macro_rules! key_file {
    ($name:literal, private) => {
        include_bytes!(concat!("../keys/TEST-ONLY-", $name, ".private.pem"))
    };
    ($name:literal, public) => {
        include_bytes!(concat!("../keys/TEST-ONLY-", $name, ".public.pem"))
    };
}

/// Parses one committed key. The keys are fixed bytes compiled into the
/// crate and covered by unit tests, so a failure is a packaging bug.
#[allow(
    clippy::panic,
    reason = "test support code: the committed keys are constant and unit-tested"
)]
fn load(
    name: &'static str,
    family: Family,
    private_pem: &'static [u8],
    public_pem: &'static [u8],
) -> TestKey {
    let parsed = match family {
        Family::Rsa => EncodingKey::from_rsa_pem(private_pem),
        Family::Ec => EncodingKey::from_ec_pem(private_pem),
        Family::Ed => EncodingKey::from_ed_pem(private_pem),
    };
    let encoding =
        parsed.unwrap_or_else(|e| panic!("oidc-testing: cannot parse test key {name}: {e}"));
    let jwk = Jwk::from_encoding_key(&encoding, family.jwk_alg().algorithm())
        .unwrap_or_else(|e| panic!("oidc-testing: cannot derive the JWK of {name}: {e}"));
    let Ok(Value::Object(mut jwk_params)) = serde_json::to_value(&jwk) else {
        panic!("oidc-testing: the JWK of {name} is not a JSON object");
    };
    // Keep only the key parameters; kid/use/alg are added per algorithm.
    jwk_params.retain(|member, _| matches!(member.as_str(), "kty" | "n" | "e" | "crv" | "x" | "y"));
    TestKey {
        name,
        public_pem,
        encoding,
        jwk_params,
    }
}

static KEYRING: LazyLock<Keyring> = LazyLock::new(|| Keyring {
    rsa: vec![
        load(
            "rsa1",
            Family::Rsa,
            key_file!("rsa1", private),
            key_file!("rsa1", public),
        ),
        load(
            "rsa2",
            Family::Rsa,
            key_file!("rsa2", private),
            key_file!("rsa2", public),
        ),
        load(
            "rsa3",
            Family::Rsa,
            key_file!("rsa3", private),
            key_file!("rsa3", public),
        ),
    ],
    ec: vec![
        load(
            "ec1",
            Family::Ec,
            key_file!("ec1", private),
            key_file!("ec1", public),
        ),
        load(
            "ec2",
            Family::Ec,
            key_file!("ec2", private),
            key_file!("ec2", public),
        ),
    ],
    ed: vec![
        load(
            "ed1",
            Family::Ed,
            key_file!("ed1", private),
            key_file!("ed1", public),
        ),
        load(
            "ed2",
            Family::Ed,
            key_file!("ed2", private),
            key_file!("ed2", public),
        ),
    ],
    foreign_rsa: load(
        "rsa-foreign",
        Family::Rsa,
        key_file!("rsa-foreign", private),
        key_file!("rsa-foreign", public),
    ),
    foreign_ec: load(
        "ec-foreign",
        Family::Ec,
        key_file!("ec-foreign", private),
        key_file!("ec-foreign", public),
    ),
    foreign_ed: load(
        "ed-foreign",
        Family::Ed,
        key_file!("ed-foreign", private),
        key_file!("ed-foreign", public),
    ),
});

static JWK_BY_KID: LazyLock<HashMap<String, Value>> = LazyLock::new(|| {
    let keyring = keyring();
    SigningAlg::ALL
        .into_iter()
        .flat_map(|alg| {
            keyring
                .family(alg.family())
                .iter()
                .map(move |key| (key.kid(alg), key.public_jwk(alg)))
        })
        .collect()
});

/// The process-wide keyring.
pub(crate) fn keyring() -> &'static Keyring {
    &KEYRING
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_committed_key_parses_and_has_a_jwk() {
        let keyring = keyring();
        assert_eq!(keyring.family(Family::Rsa).len(), 3);
        assert_eq!(keyring.family(Family::Ec).len(), 2);
        assert_eq!(keyring.family(Family::Ed).len(), 2);
        for alg in SigningAlg::ALL {
            for key in keyring.family(alg.family()) {
                let jwk = key.public_jwk(alg);
                assert_eq!(jwk["alg"], alg.as_str());
                assert_eq!(jwk["use"], "sig");
                assert_eq!(jwk["kid"], key.kid(alg));
                let expected_kty = match alg.family() {
                    Family::Rsa => "RSA",
                    Family::Ec => "EC",
                    Family::Ed => "OKP",
                };
                assert_eq!(jwk["kty"], expected_kty, "{jwk}");
            }
        }
        assert_eq!(keyring.jwk_by_kid().len(), 3 * 6 + 2 + 2);
    }

    #[test]
    fn jwk_members_are_exactly_the_public_ones() {
        let keyring = keyring();
        let rsa = keyring
            .key(SigningAlg::PS256, 0)
            .public_jwk(SigningAlg::PS256);
        let mut members: Vec<_> = rsa.as_object().unwrap().keys().cloned().collect();
        members.sort();
        assert_eq!(members, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(rsa["e"], "AQAB");

        let ec = keyring
            .key(SigningAlg::ES256, 0)
            .public_jwk(SigningAlg::ES256);
        assert_eq!(ec["crv"], "P-256");
        assert!(ec.get("d").is_none());

        let ed = keyring
            .key(SigningAlg::EdDSA, 0)
            .public_jwk(SigningAlg::EdDSA);
        assert_eq!(ed["crv"], "Ed25519");
        assert!(ed.get("d").is_none());
    }

    #[test]
    fn foreign_keys_differ_from_published_keys() {
        let keyring = keyring();
        for alg in [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA] {
            let foreign = &keyring.foreign(alg.family()).jwk_params;
            assert!(foreign.contains_key("n") || foreign.contains_key("x"));
            for key in keyring.family(alg.family()) {
                assert_ne!(foreign, &key.jwk_params);
            }
        }
    }

    #[test]
    fn kids_are_found_and_wrap() {
        let keyring = keyring();
        assert_eq!(keyring.find_kid("rsa2-PS384"), Some((SigningAlg::PS384, 1)));
        assert_eq!(keyring.find_kid("ed1-EdDSA"), Some((SigningAlg::EdDSA, 0)));
        assert_eq!(keyring.find_kid("rsa-foreign-RS256"), None);
        assert_eq!(keyring.find_kid("nope"), None);
        assert_eq!(keyring.key(SigningAlg::RS256, 3).name, "rsa1");
        assert_eq!(keyring.count(SigningAlg::ES256), 2);
    }

    #[test]
    fn signing_alg_names_round_trip() {
        for alg in SigningAlg::ALL {
            assert_eq!(alg.as_str().parse::<SigningAlg>(), Ok(alg));
            assert_eq!(alg.to_string(), alg.as_str());
        }
        assert!("rs256".parse::<SigningAlg>().is_err());
        assert!("none".parse::<SigningAlg>().is_err());
    }
}
