//! Quick breakdown of a cache hit (not part of the published figures).
#![allow(clippy::unwrap_used, missing_docs)]
use std::hint::black_box;
use std::time::Instant;

use oidc_core::AdditionalClaims;
use oidc_testing::TestProvider;
use oidc_tower::BearerAuthLayer;
use tower::{Service as _, ServiceExt};

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let tp = TestProvider::start().await;
        // `PROBE=session`: only the session figures (for a profile of that path).
        if std::env::var("PROBE").as_deref() != Ok("session") {
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
            black_box(
                v.verify_cached::<AdditionalClaims>(black_box(&token))
                    .unwrap()
                    .unwrap(),
            );
        }
        println!("hit, sync lookup (verify_cached): {:?}", t.elapsed() / n);

        // The whole layer on a hit against the bare service, same request.
        let header = format!("Bearer {token}");
        let request = || {
            http::Request::builder()
                .uri("/")
                .header(http::header::AUTHORIZATION, &header)
                .body(String::new())
                .unwrap()
        };
        let bare = tower::service_fn(|_req: http::Request<String>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(String::new()))
        });
        let mut layered = tower::Layer::layer(&BearerAuthLayer::new(v.clone()), bare);
        let mut bare = bare;
        let t = Instant::now();
        for _ in 0..n {
            black_box(bare.ready().await.unwrap().call(request()).await.unwrap());
        }
        let bare_time = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            black_box(layered.ready().await.unwrap().call(request()).await.unwrap());
        }
        let layered_time = t.elapsed() / n;
        println!(
            "request through BearerAuth on a hit: {layered_time:?} (bare service {bare_time:?}, layer {:?})",
            layered_time.saturating_sub(bare_time)
        );
        let claims = v.verify_cached::<AdditionalClaims>(&token).unwrap().unwrap();
        let t = Instant::now();
        for _ in 0..n {
            let mut req = request();
            req.extensions_mut().insert(claims.identity().clone());
            req.extensions_mut().insert(claims.clone());
            req.extensions_mut().insert(std::sync::Arc::<str>::from("api"));
            black_box(req);
        }
        let inserts = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            black_box(request());
        }
        println!("three extension inserts: {:?}", inserts.saturating_sub(t.elapsed() / n));
        let t = Instant::now();
        for _ in 0..n {
            let r = request();
            let v = r.headers().get(http::header::AUTHORIZATION).unwrap();
            black_box(v.to_str().unwrap());
            black_box(r);
        }
        let to_str = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            black_box(request());
        }
        println!("header to_str: {:?}", to_str.saturating_sub(t.elapsed() / n));
        let t = Instant::now();
        for _ in 0..n {
            black_box(aws_lc_rs::digest::digest(
                &aws_lc_rs::digest::SHA256,
                black_box(token.as_bytes()),
            ));
        }
        println!("sha256 (the cache key before): {:?}", t.elapsed() / n);
        let c: moka::sync::Cache<[u8; 32], std::sync::Arc<u64>> = moka::sync::Cache::new(10_000);
        c.insert([1; 32], std::sync::Arc::new(1));
        let t = Instant::now();
        for _ in 0..n {
            black_box(c.get(black_box(&[1; 32])));
        }
        println!("moka get: {:?}", t.elapsed() / n);

        }
        // The login layer on a cached session against the bare router, same request.
        let mut kept = None;
        let port = benches::session_app(
            &tp,
            |l| {
                kept = Some(l.clone());
                l
            },
            axum::Router::new().route("/", axum::routing::get(|| async { "ok" })),
        )
        .await;
        let cookie = benches::login(port).await;
        let login = kept.unwrap();
        let router = axum::Router::new().route("/", axum::routing::get(|| async { "ok" }));
        let session_request = || {
            http::Request::builder()
                .uri("/")
                .header(http::header::COOKIE, &cookie)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let mut bare = router.clone();
        let mut layered = router.layer(login);
        let res = ServiceExt::<http::Request<axum::body::Body>>::ready(&mut layered).await.unwrap().call(session_request()).await.unwrap();
        assert_eq!(res.status(), 200, "logged in");
        let n: u32 = 100_000;
        let t = Instant::now();
        for _ in 0..n {
            black_box(ServiceExt::<http::Request<axum::body::Body>>::ready(&mut bare).await.unwrap().call(session_request()).await.unwrap());
        }
        let bare_time = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            black_box(ServiceExt::<http::Request<axum::body::Body>>::ready(&mut layered).await.unwrap().call(session_request()).await.unwrap());
        }
        let layered_time = t.elapsed() / n;
        println!(
            "request through Login on a cached session: {layered_time:?} (bare router {bare_time:?}, layer {:?})",
            layered_time.saturating_sub(bare_time)
        );

        // tower-sessions alone (its session manager on its memory store, the cookie of a
        // stored session), for what the layer's own logic adds on top.
        let store = tower_sessions::MemoryStore::default();
        let managed = axum::Router::new()
            .route(
                "/",
                axum::routing::get(|s: tower_sessions::Session| async move {
                    black_box(s.id());
                    "ok"
                }),
            )
            .route(
                "/set",
                axum::routing::get(|s: tower_sessions::Session| async move {
                    s.insert("k", 1).await.unwrap();
                    "ok"
                }),
            );
        let mut managed = managed.layer(tower_sessions::SessionManagerLayer::new(store));
        let res = ServiceExt::<http::Request<axum::body::Body>>::ready(&mut managed)
            .await
            .unwrap()
            .call(http::Request::builder().uri("/set").body(axum::body::Body::empty()).unwrap())
            .await
            .unwrap();
        let set = res.headers()[http::header::SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
        let t = Instant::now();
        for _ in 0..n {
            let req = http::Request::builder()
                .uri("/")
                .header(http::header::COOKIE, &set)
                .body(axum::body::Body::empty())
                .unwrap();
            black_box(ServiceExt::<http::Request<axum::body::Body>>::ready(&mut managed).await.unwrap().call(req).await.unwrap());
        }
        let managed_time = t.elapsed() / n;
        println!(
            "request through tower-sessions alone: {managed_time:?} (its part {:?})",
            managed_time.saturating_sub(bare_time)
        );
    });
}
