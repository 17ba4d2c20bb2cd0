//! Per-token verification cost: ours (uncached, cached) against raw aws-lc-rs (key pre-parsed:
//! the floor; key parsed per call) and `jsonwebtoken::decode`, in the same run.
//!
//! `cargo bench -p benches --bench verify`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use benches::{ALGS, RawKey, jwk, jwt_key, jwt_validation, message_and_signature, verifier};
use criterion::{Criterion, criterion_group, criterion_main};
use oidc_core::AdditionalClaims;
use oidc_testing::TestProvider;

fn verify(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tp, cached) = rt.block_on(async {
        let tp = TestProvider::start().await;
        let v = verifier(&tp).await;
        (tp, v)
    });
    let uncached = cached.clone().without_token_cache();
    for (alg, _) in ALGS {
        let mut group = c.benchmark_group(format!("verify/{alg:?}"));
        let token = tp.token().alg(alg).sign();
        let key = jwk(&tp, alg);
        let raw = RawKey::new(&key, alg);
        let parsed = raw.parsed();
        let (message, signature) = message_and_signature(&token);
        let jwt_key = jwt_key(&key);
        let validation = jwt_validation(&tp.issuer(), alg);
        assert!(parsed.verify_sig(&message, &signature).is_ok());
        assert!(raw.verify_parsing(&message, &signature));
        rt.block_on(uncached.verify::<AdditionalClaims>(&token))
            .unwrap();
        rt.block_on(cached.verify::<AdditionalClaims>(&token))
            .unwrap();
        jsonwebtoken::decode::<serde_json::Value>(&token, &jwt_key, &validation).unwrap();

        group.bench_function("aws_lc_parsed_key", |b| {
            b.iter(|| parsed.verify_sig(black_box(&message), black_box(&signature)))
        });
        group.bench_function("aws_lc_key_per_call", |b| {
            b.iter(|| raw.verify_parsing(black_box(&message), black_box(&signature)))
        });
        group.bench_function("ours_uncached", |b| {
            b.iter(|| rt.block_on(uncached.verify::<AdditionalClaims>(black_box(&token))))
        });
        group.bench_function("ours_cached", |b| {
            b.iter(|| rt.block_on(cached.verify::<AdditionalClaims>(black_box(&token))))
        });
        group.bench_function("jsonwebtoken_decode", |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), &jwt_key, &validation)
            })
        });
        group.finish();
    }
    // What the runtime adds to each of ours: `block_on` of a ready future.
    c.bench_function("verify/block_on_overhead", |b| {
        b.iter(|| rt.block_on(async { black_box(1) }))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = verify
}
criterion_main!(benches);
