//! Arbitrary bytes served as the provider's JWKS body, then one verification of a valid token
//! signed with the committed key `rsa1` or `ec1` (with or without `kid`).
//!
//! Must never panic; the token may be accepted only when the served document carries the
//! signing key's material (a key the document does not hold never verifies).

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use oidc_core::{AccessTokenVerifier, AdditionalClaims};
use oidc_fuzz::{
    AUDIENCE, Canned, ISSUER, assert_deserved, block_on, clock, contains_key_material, ec_x,
    manual_provider, rsa_modulus, tokens,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let t = tokens();
    let (token, rsa) = match selector % 4 {
        0 => (&t.rs256, true),
        1 => (&t.es256, false),
        2 => (&t.rs256_no_kid, true),
        _ => (&t.es256_no_kid, false),
    };
    let http = Arc::new(Canned::new(None, body.to_vec()));
    let verifier = AccessTokenVerifier::new(manual_provider(http), AUDIENCE)
        .with_clock(clock())
        .without_token_cache();
    if block_on(verifier.verify::<AdditionalClaims>(token)).is_ok() {
        assert_deserved(token, ISSUER);
        let document: serde_json::Value =
            serde_json::from_slice(body).expect("keys accepted from a body that is not JSON");
        let material = if rsa { rsa_modulus() } else { ec_x() };
        assert!(
            contains_key_material(&document, &material),
            "a token verified against a JWKS that does not hold its key: {document}"
        );
    }
});
