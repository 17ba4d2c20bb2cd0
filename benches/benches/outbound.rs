//! Per-call cost of a cached outbound service token (`OutboundAuthLayer`: cache lookup, the
//! `Authorization` header, the request clone kept for a 401 retry, the boxed future) against
//! the same call without the layer, in the same run. The upstream is an in-process service
//! that answers at once, so the difference is the layer's overhead alone.
//!
//! The same for a cached token exchange (`OnBehalfOfLayer::exchange`: the user token taken
//! from the extensions, its keyed hash for the cache key, the lookup, the header, the retry
//! clone), and for forwarding the user's token (`OnBehalfOfLayer::forward`).
//!
//! `cargo bench -p benches --bench outbound`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{Request, Response};
use oidc_core::Provider;
use oidc_core::flow::{
    ExchangeRequest, Secret, ServiceClient, ServiceTokenRequest, TokenExchanger,
};
use oidc_testing::{ClientRegistration, TestProvider};
use oidc_tower::OutboundAuthLayer;
use oidc_tower::outbound::{OnBehalfOfLayer, UserToken};
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
    let (tp, layer) = rt.block_on(async {
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

    // Token exchange: a user's token, its exchanged token cached before measuring.
    let user = Secret::new(tp.issue_access_token("svc", "ada"));
    let exchange = rt.block_on(async {
        let provider = Provider::builder(tp.issuer()).build().unwrap();
        let exchanger = TokenExchanger::new(provider, "svc", "secret");
        let wanted = ExchangeRequest::new().with_audience("https://orders.example.test");
        exchanger.exchange(&user, &wanted).await.unwrap();
        OnBehalfOfLayer::exchange(exchanger, wanted)
    });
    let on_behalf = exchange.layer(upstream);
    let forwarding = OnBehalfOfLayer::forward().layer(upstream);
    let as_user = || {
        let mut req = request();
        req.extensions_mut().insert(UserToken::from(user.clone()));
        req
    };
    let before = tp.token_requests().len();
    assert_eq!(
        rt.block_on(on_behalf.clone().oneshot(as_user()))
            .unwrap()
            .into_body(),
        2
    );
    assert_eq!(tp.token_requests().len(), before, "served from the cache");

    let mut group = c.benchmark_group("outbound");
    group.bench_function("plain_call", |b| {
        b.iter(|| rt.block_on(upstream.oneshot(black_box(request()))))
    });
    group.bench_function("cached_service_token", |b| {
        b.iter(|| rt.block_on(with_token.clone().oneshot(black_box(request()))))
    });
    group.bench_function("plain_call_with_user_token", |b| {
        b.iter(|| rt.block_on(upstream.oneshot(black_box(as_user()))))
    });
    group.bench_function("cached_token_exchange", |b| {
        b.iter(|| rt.block_on(on_behalf.clone().oneshot(black_box(as_user()))))
    });
    group.bench_function("forwarded_user_token", |b| {
        b.iter(|| rt.block_on(forwarding.clone().oneshot(black_box(as_user()))))
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
