//! Arbitrary bytes as a bearer token through `AccessTokenVerifier::verify`, against a provider
//! whose JWKS holds the committed test keys `rsa1` (RS256) and `ec1` (ES256).
//!
//! Must never panic; a token that is accepted must deserve it (see `assert_deserved`: a
//! signature by the committed key of a configured algorithm, and claims that pass the
//! documented rules).

#![no_main]

use libfuzzer_sys::fuzz_target;
use oidc_core::AdditionalClaims;
use oidc_fuzz::{ISSUER, assert_deserved, block_on, verifier};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(claims) = block_on(verifier().verify::<AdditionalClaims>(token)) {
        assert_deserved(token, ISSUER);
        assert_eq!(claims.identity().issuer(), ISSUER);
        assert!(!claims.identity().subject().is_empty());
    }
});
