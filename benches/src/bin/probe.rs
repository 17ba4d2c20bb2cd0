//! Quick breakdown of a cache hit (not part of the published figures).
#![allow(clippy::unwrap_used, missing_docs)]
use std::hint::black_box;
use std::time::Instant;

use oidc_core::AdditionalClaims;
use oidc_testing::TestProvider;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = TestProvider::start().await;
        let v = benches::verifier(&tp).await;
        let token = tp.token().sign();
        println!("token bytes: {}", token.len());
        v.verify::<AdditionalClaims>(&token).await.unwrap();
        let n = 200_000;
        let t = Instant::now();
        for _ in 0..n {
            black_box(
                v.verify::<AdditionalClaims>(black_box(&token))
                    .await
                    .unwrap(),
            );
        }
        println!("hit, Map claims: {:?}", t.elapsed() / n);
        let t = Instant::now();
        for _ in 0..n {
            black_box(
                v.verify::<serde::de::IgnoredAny>(black_box(&token))
                    .await
                    .unwrap(),
            );
        }
        println!("hit, IgnoredAny claims: {:?}", t.elapsed() / n);
        let t = Instant::now();
        for _ in 0..n {
            black_box(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                black_box(token.as_bytes()),
            ));
        }
        println!("sha256: {:?}", t.elapsed() / n);
        let c: moka::sync::Cache<[u8; 32], std::sync::Arc<u64>> = moka::sync::Cache::new(10_000);
        c.insert([1; 32], std::sync::Arc::new(1));
        let t = Instant::now();
        for _ in 0..n {
            black_box(c.get(black_box(&[1; 32])));
        }
        println!("moka get: {:?}", t.elapsed() / n);
    });
}
