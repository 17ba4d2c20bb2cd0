//! Per-call cost of a cached outbound service token (`OutboundAuthLayer`: cache lookup, the
//! `Authorization` header, the request clone kept for a 401 retry, the boxed future) against
//! the same call without the layer, in the same run. The upstream is an in-process service
//! that answers at once, so the difference is the layer's overhead alone.
//!
//! `cargo bench -p benches --bench outbound`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use oidc_core::Provider;
use oidc_core::flow::{ServiceClient, ServiceTokenRequest};
use oidc_testing::{ClientRegistration, TestProvider};
use oidc_tower::OutboundAuthLayer;
use tower::{Layer, ServiceExt, service_fn};

fn request() -> Request<String> {
    Request::post("http://api.example.test/orders")
        .header("content-type", "application/json")
        .body(r#"{"id":1}"#.to_owned())
        .unwrap()
}

fn outbound(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_tp, layer) = rt.block_on(async {
        let tp = TestProvider::start().await;
        tp.register_client(ClientRegistration::confidential(
            "svc",
            "secret",
            "http://127.0.0.1/unused",
        ));
        let provider = Provider::builder(tp.issuer()).build().unwrap();
        let client = ServiceClient::new(provider, "svc", "secret");
        let request = ServiceTokenRequest::new()
            .with_scopes(["api:read"])
            .with_resource("https://api.example.test");
        // Warm: the token is cached before measuring.
        client.token(&request).await.unwrap();
        (tp, OutboundAuthLayer::new(client, request))
    });
    let upstream = service_fn(|req: Request<String>| async move {
        Ok::<_, Infallible>(Response::new(req.headers().len()))
    });
    let with_token = layer.layer(upstream);
    assert_eq!(
        rt.block_on(with_token.clone().oneshot(request()))
            .unwrap()
            .into_body(),
        2
    );

    let mut group = c.benchmark_group("outbound");
    group.bench_function("plain_call", |b| {
        b.iter(|| rt.block_on(upstream.oneshot(black_box(request()))))
    });
    group.bench_function("cached_service_token", |b| {
        b.iter(|| rt.block_on(with_token.clone().oneshot(black_box(request()))))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(50)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = outbound
}
criterion_main!(benches);
