//! Cost of one app-issued token (`oidc_core::issue::TokenIssuer::mint`): claims, JSON,
//! base64url and the signature, for ES256 (P-256) and EdDSA (Ed25519); and, for scale, the
//! cost of verifying one with `AccessTokenVerifier` is in `benches/verify.rs`.
//!
//! `cargo bench -p benches --bench issue`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use oidc_core::Algorithm;
use oidc_core::issue::{MintRequest, SigningKey, TokenIssuer};

fn mint(c: &mut Criterion) {
    let mut group = c.benchmark_group("issue/mint");
    for alg in [Algorithm::ES256, Algorithm::EdDSA] {
        let issuer = TokenIssuer::builder(
            "https://app.example.com",
            SigningKey::generate(alg).unwrap(),
        )
        .with_default_audience("https://connector.example.com")
        .build()
        .unwrap();
        let request = MintRequest::new().with_claim("scope", "connector:read connector:write");
        group.bench_function(alg.as_str(), |b| {
            b.iter(|| black_box(issuer.mint(black_box("user-42"), &request).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, mint);
criterion_main!(benches);
