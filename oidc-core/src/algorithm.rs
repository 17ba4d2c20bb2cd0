//! The JWS algorithms a token may be signed with.

use std::fmt;

/// A JWS signature algorithm that tokens may be verified with.
///
/// Only asymmetric algorithms exist here: `none` and the HMAC family cannot be named, so a
/// token can never be checked with a provider's public key used as an HMAC secret
/// (RFC 8725 §3.1). The algorithm used for a token is the intersection of the verifier's
/// configuration and the provider's metadata; the token's own `alg` header only selects from
/// that list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Algorithm {
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
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// EdDSA on Ed25519.
    EdDSA,
}

impl Algorithm {
    /// Every supported algorithm.
    pub const ALL: [Algorithm; 9] = [
        Self::RS256,
        Self::RS384,
        Self::RS512,
        Self::PS256,
        Self::PS384,
        Self::PS512,
        Self::ES256,
        Self::ES384,
        Self::EdDSA,
    ];

    /// The JWS name, as in a token header (`"RS256"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RS256 => "RS256",
            Self::RS384 => "RS384",
            Self::RS512 => "RS512",
            Self::PS256 => "PS256",
            Self::PS384 => "PS384",
            Self::PS512 => "PS512",
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
        }
    }

    /// Looks up a JWS name exactly (case-sensitive, as RFC 7515 requires). `none` and `HS256`
    /// give `None`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The algorithms a verifier accepts: the default set, or a configured list. Either way a
/// provider that publishes `id_token_signing_alg_values_supported` narrows it to the algorithms
/// listed there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Algorithms {
    /// `RS256` and `ES256`; `EdDSA` too, but only when the provider advertises it in
    /// `id_token_signing_alg_values_supported` (so a provider configured by hand, or one that
    /// publishes no list, gets no algorithm beyond the two it had before EdDSA joined).
    Default,
    /// Exactly these (deduplicated, never empty).
    Configured(Vec<Algorithm>),
}

impl Algorithms {
    /// Every algorithm the default set can accept.
    pub(crate) const DEFAULT: [Algorithm; 3] =
        [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

    /// Whether a token may name `alg` at all, before the provider's list is known.
    pub(crate) fn contains(&self, alg: Algorithm) -> bool {
        match self {
            Self::Default => Self::DEFAULT.contains(&alg),
            Self::Configured(list) => list.contains(&alg),
        }
    }

    /// Whether `alg` is accepted given the provider's `id_token_signing_alg_values_supported`
    /// (`None`: not published).
    pub(crate) fn allows(&self, alg: Algorithm, advertised: Option<&[String]>) -> bool {
        if !self.contains(alg) {
            return false;
        }
        match (advertised, self) {
            (Some(list), _) => list.iter().any(|s| s == alg.as_str()),
            (None, Self::Default) => alg != Algorithm::EdDSA,
            (None, Self::Configured(_)) => true,
        }
    }

    /// A configured list, deduplicated in order.
    ///
    /// # Errors
    ///
    /// Returns [`ConfigError::InvalidAlgorithms`](crate::error::ConfigError::InvalidAlgorithms)
    /// for an empty list.
    pub(crate) fn configured(
        algorithms: impl IntoIterator<Item = Algorithm>,
    ) -> Result<Self, crate::error::ConfigError> {
        let mut list: Vec<Algorithm> = Vec::new();
        for a in algorithms {
            if !list.contains(&a) {
                list.push(a);
            }
        }
        if list.is_empty() {
            return Err(crate::error::ConfigError::InvalidAlgorithms(
                "the list is empty",
            ));
        }
        Ok(Self::Configured(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_accepts_eddsa_only_when_advertised() {
        let d = Algorithms::Default;
        let all: Vec<String> = Algorithm::ALL
            .iter()
            .map(|a| a.as_str().to_owned())
            .collect();
        let rsa_only = vec!["RS256".to_owned()];
        for a in Algorithm::ALL {
            let default = Algorithms::DEFAULT.contains(&a);
            assert_eq!(d.contains(a), default, "{a}");
            assert_eq!(d.allows(a, Some(&all)), default, "{a} advertised");
            assert_eq!(d.allows(a, Some(&rsa_only)), a == Algorithm::RS256, "{a}");
        }
        assert!(d.allows(Algorithm::RS256, None));
        assert!(d.allows(Algorithm::ES256, None));
        assert!(!d.allows(Algorithm::EdDSA, None), "not advertised");
        assert!(!d.allows(Algorithm::PS256, None));

        let c = Algorithms::configured([Algorithm::EdDSA, Algorithm::EdDSA]).unwrap();
        assert_eq!(c, Algorithms::Configured(vec![Algorithm::EdDSA]));
        assert!(
            c.allows(Algorithm::EdDSA, None),
            "configured: no list needed"
        );
        assert!(!c.allows(Algorithm::EdDSA, Some(&rsa_only)));
        assert!(!c.allows(Algorithm::RS256, Some(&all)));
        assert!(Algorithms::configured([]).is_err());
    }

    #[test]
    fn names_are_exact_and_exclude_none_and_hmac() {
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(a.as_str()), Some(a));
        }
        for bad in [
            "none", "None", "NONE", "HS256", "HS384", "HS512", "rs256", "", "RS256 ",
        ] {
            assert_eq!(Algorithm::from_name(bad), None, "{bad}");
        }
    }
}
