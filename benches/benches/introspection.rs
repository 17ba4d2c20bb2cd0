//! Opaque tokens: introspection (RFC 7662) answered from its warm cache, against a JWT verify
//! cached and uncached (RS256), in the same run; plus one uncached introspection round trip
//! to the in-process provider over loopback, for scale.
//!
//! `cargo bench -p benches --bench introspection`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use benches::verifier;
use criterion::{Criterion, criterion_group, criterion_main};
use oidc_core::AdditionalClaims;
use oidc_core::verify::Introspector;
use oidc_testing::{SigningAlg, TestProvider};
use serde_json::json;

const OPAQUE: &str = "bench-opaque-access-token-2YotnFZFEjr1zCsicMWpAA";

fn introspection(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tp, base) = rt.block_on(async {
        let tp = TestProvider::start().await;
        let v = verifier(&tp).await;
        (tp, v)
    });
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    tp.set_introspection(
        OPAQUE,
        json!({
            "active": true, "iss": tp.issuer(), "aud": "api://default", "sub": "user-1",
            "client_id": "web", "scope": "api:read", "exp": now + 3600, "iat": now,
            "token_type": "Bearer",
        }),
    );
    let cached = base
        .clone()
        .with_introspection(Introspector::new("api", "api-secret"));
    let uncached_introspection =
        base.clone()
            .with_introspection(Introspector::new("api", "api-secret").with_cache(
                Duration::ZERO,
                Duration::ZERO,
                0,
            ));
    let jwt_uncached = base.clone().without_token_cache();
    let jwt = tp.token().alg(SigningAlg::RS256).sign();
    rt.block_on(cached.verify::<AdditionalClaims>(OPAQUE))
        .unwrap();
    rt.block_on(uncached_introspection.verify::<AdditionalClaims>(OPAQUE))
        .unwrap();
    rt.block_on(cached.verify::<AdditionalClaims>(&jwt))
        .unwrap();
    rt.block_on(jwt_uncached.verify::<AdditionalClaims>(&jwt))
        .unwrap();

    let mut group = c.benchmark_group("introspection");
    group.bench_function("introspection_warm_cache", |b| {
        b.iter(|| rt.block_on(cached.verify::<AdditionalClaims>(black_box(OPAQUE))))
    });
    group.bench_function("jwt_cached", |b| {
        b.iter(|| rt.block_on(cached.verify::<AdditionalClaims>(black_box(&jwt))))
    });
    group.bench_function("jwt_uncached", |b| {
        b.iter(|| rt.block_on(jwt_uncached.verify::<AdditionalClaims>(black_box(&jwt))))
    });
    group.bench_function("introspection_uncached_loopback", |b| {
        b.iter(|| rt.block_on(uncached_introspection.verify::<AdditionalClaims>(black_box(OPAQUE))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = introspection
}
criterion_main!(benches);
