//! The bearer layer (`oidc_tower::BearerAuthLayer`) on a `tower::service_fn`, with arbitrary
//! `Authorization` header values (those `HeaderValue::from_bytes` takes) and an arbitrary
//! query string, while the provider's keys cannot be obtained.
//!
//! Input: lines separated by `\n` (which no header value can contain); a line that starts
//! with `?` is the query, every other line one `Authorization` header (at most 4).
//!
//! Must never panic; the answer is 400, 401 or 503 (with `Retry-After`), and the protected
//! service is never called.

#![no_main]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::{HeaderValue, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use oidc_core::AccessTokenVerifier;
use oidc_fuzz::{AUDIENCE, Canned, block_on, clock, manual_provider};
use oidc_tower::BearerAuthLayer;
use tower::{Layer as _, ServiceExt as _, service_fn};

fn verifier() -> &'static AccessTokenVerifier {
    static V: std::sync::OnceLock<AccessTokenVerifier> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        let mut canned = Canned::new(None, Vec::new());
        canned.jwks = (503, b"down".to_vec());
        AccessTokenVerifier::new(manual_provider(Arc::new(canned)), AUDIENCE).with_clock(clock())
    })
}

fuzz_target!(|data: &[u8]| {
    let mut query = None;
    let mut values = Vec::new();
    for line in data.split(|b| *b == b'\n') {
        match line.strip_prefix(b"?") {
            Some(q) => query = Some(String::from_utf8_lossy(q).into_owned()),
            None => values.push(line),
        }
    }
    let uri = match &query {
        Some(q) => format!("/x?{q}"),
        None => "/x".to_owned(),
    };
    let Ok(uri) = uri.parse::<http::Uri>() else {
        return;
    };
    let mut req = Request::builder().uri(uri);
    for value in values.iter().take(4) {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            req = req.header(http::header::AUTHORIZATION, value);
        }
    }
    let Ok(req) = req.body(String::new()) else {
        return;
    };

    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |_req: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::new())) }
        })
    };
    let service = BearerAuthLayer::new(verifier().clone()).layer(inner);
    let res = block_on(service.oneshot(req)).unwrap();
    let status = res.status();
    assert!(
        matches!(
            status,
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
        ),
        "answered {status}"
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert!(res.headers().contains_key(http::header::RETRY_AFTER));
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "the protected service was called"
    );
});
