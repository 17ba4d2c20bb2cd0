//! Arbitrary bytes as the provider's discovery document (`Provider::metadata`), served at the
//! OpenID location or, after a 404 there, at the RFC 8414 location; then, when the metadata was
//! accepted, one verification of a valid RS256 token with the keys `rsa1`/`ec1`.
//!
//! Must never panic. Accepted metadata must name exactly the configured issuer and a JWKS URL
//! that is `https` (or `http` on a loopback host, which the URL policy allows for
//! development); a token may be accepted only with an algorithm the document allows.

#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use oidc_core::{AccessTokenVerifier, AdditionalClaims, Provider};
use oidc_fuzz::{
    AUDIENCE, Canned, ISSUER, ISSUER_WITH_PATH, JWKS, assert_deserved, block_on, clock, tokens,
};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let issuer = if selector & 1 == 0 {
        ISSUER
    } else {
        ISSUER_WITH_PATH
    };
    let mut canned = Canned::new(Some(body.to_vec()), JWKS.as_bytes().to_vec());
    if selector & 2 != 0 {
        // No OpenID document: the RFC 8414 location answers instead.
        canned.discovery = None;
        canned.oauth_metadata = (200, body.to_vec());
    }
    let provider = Provider::builder(issuer)
        .with_http_client(Arc::new(canned))
        .build()
        .unwrap();
    let Ok(metadata) = block_on(provider.metadata()) else {
        return;
    };
    assert_eq!(
        metadata.issuer(),
        issuer,
        "metadata of another issuer accepted"
    );
    let jwks_uri = url::Url::parse(metadata.jwks_uri()).expect("a jwks_uri that is not a URL");
    let loopback = match jwks_uri.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    assert!(
        jwks_uri.scheme() == "https" || (jwks_uri.scheme() == "http" && loopback),
        "an insecure jwks_uri was accepted: {jwks_uri}"
    );
    let _ = metadata.authorization_endpoint();
    let _ = metadata.code_challenge_methods_supported();

    let token = if issuer == ISSUER {
        &tokens().rs256
    } else {
        &tokens().rs256_path_issuer
    };
    let verifier = AccessTokenVerifier::new(provider, AUDIENCE)
        .with_clock(clock())
        .without_token_cache();
    if block_on(verifier.verify::<AdditionalClaims>(token)).is_ok() {
        assert_deserved(token, issuer);
        if let Some(algs) = metadata.id_token_signing_alg_values_supported() {
            assert!(
                algs.iter().any(|a| a == "RS256"),
                "RS256 accepted although the provider publishes only {algs:?}"
            );
        }
    }
});
