//! Property tests (proptest) for `oidc-tower`: the navigate-versus-API decision of the login
//! layer ([`default_policy`], SES-07) and the answers of the bearer layer to arbitrary
//! `Authorization` headers and queries. The fuzz targets in `fuzz/` cover the same code with
//! coverage guidance; these run with `cargo test`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use oidc_core::error::HttpError;
use oidc_core::http::{HttpClient, HttpRequest, HttpResponse};
use oidc_core::{AccessTokenVerifier, Provider};
use oidc_tower::BearerAuthLayer;
use oidc_tower::login::{Unauthenticated, default_policy};
use proptest::prelude::*;
use tower::{Layer as _, ServiceExt as _, service_fn};

// ---------------------------------------------------------------------------------------------
// The navigate-versus-API decision (SES-07)

/// Methods: the standard ones, and extension tokens.
fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::GET,
            Method::HEAD,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
            Method::TRACE,
            Method::CONNECT,
        ]),
        "[A-Za-z]{1,10}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

/// One of `known`, in mixed case: the decision must not depend on the case of a keyword.
fn mixed_case(known: &'static [&'static str]) -> impl Strategy<Value = HeaderValue> {
    (prop::sample::select(known), any::<u64>()).prop_map(|(v, seed)| {
        let mixed: String = v
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if (seed >> (i % 64)) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        HeaderValue::from_str(&mixed).unwrap()
    })
}

/// Header values as browsers and other clients send them, arbitrary visible ASCII, and
/// arbitrary header bytes (including obs-text, 0x80–0xFF).
fn header_value(known: &'static [&'static str]) -> impl Strategy<Value = HeaderValue> {
    prop_oneof![
        6 => mixed_case(known),
        2 => "[ -~]{0,24}".prop_map(|v| HeaderValue::from_str(&v).unwrap()),
        1 => (prop::sample::select(known), prop::collection::vec(0x80u8..=0xff, 0..3))
            .prop_map(|(v, tail)| {
                let mut bytes = v.as_bytes().to_vec();
                bytes.extend(tail);
                HeaderValue::from_bytes(&bytes).unwrap()
            }),
    ]
}

/// A `Sec-Fetch-Mode` value other than `navigate` (in any case).
fn non_navigate_mode() -> impl Strategy<Value = HeaderValue> {
    header_value(FETCH_MODES).prop_filter("not navigate", |v| {
        !v.as_bytes().eq_ignore_ascii_case(b"navigate")
    })
}

const FETCH_MODES: &[&str] = &[
    "navigate",
    "cors",
    "no-cors",
    "same-origin",
    "websocket",
    "nested-navigate",
    "navigate ",
    "",
];

const ACCEPTS: &[&str] = &[
    "text/html",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    "application/json",
    "*/*",
    "text/*",
    "application/json, text/html;q=0.1",
    "text/plain",
    "",
];

#[derive(Debug, Clone)]
struct Req {
    method: Method,
    fetch_mode: Vec<HeaderValue>,
    accept: Vec<HeaderValue>,
    requested_with: Option<HeaderValue>,
}

impl Req {
    fn parts(&self) -> Parts {
        let mut b = Request::builder().method(self.method.clone()).uri("/x");
        for v in &self.fetch_mode {
            b = b.header("sec-fetch-mode", v.clone());
        }
        for v in &self.accept {
            b = b.header(http::header::ACCEPT, v.clone());
        }
        if let Some(v) = &self.requested_with {
            b = b.header("x-requested-with", v.clone());
        }
        b.body(()).unwrap().into_parts().0
    }

    fn sec_fetch_mode(&self) -> Option<&[u8]> {
        self.fetch_mode.first().map(HeaderValue::as_bytes)
    }

    fn accepts_html(&self) -> bool {
        self.accept.iter().any(|v| {
            v.to_str()
                .unwrap_or_default()
                .split(',')
                .any(|m| m.trim().starts_with("text/html"))
        })
    }
}

fn request() -> impl Strategy<Value = Req> {
    request_with(
        method().boxed(),
        prop::collection::vec(header_value(FETCH_MODES), 0..2).boxed(),
        prop::option::of(header_value(REQUESTED_WITH)).boxed(),
    )
}

const REQUESTED_WITH: &[&str] = &["XMLHttpRequest", "fetch", ""];

fn request_with(
    method: BoxedStrategy<Method>,
    fetch_mode: BoxedStrategy<Vec<HeaderValue>>,
    requested_with: BoxedStrategy<Option<HeaderValue>>,
) -> impl Strategy<Value = Req> {
    (
        method,
        fetch_mode,
        prop::collection::vec(header_value(ACCEPTS), 0..3),
        requested_with,
    )
        .prop_map(|(method, fetch_mode, accept, requested_with)| Req {
            method,
            fetch_mode,
            accept,
            requested_with,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// The whole decision, against the documented rule.
    #[test]
    fn policy_follows_the_documented_rule(req in request()) {
        let got = default_policy(&req.parts());
        let navigation = (req.method == Method::GET || req.method == Method::HEAD)
            && req.requested_with.is_none()
            && match req.sec_fetch_mode() {
                Some(mode) => mode.eq_ignore_ascii_case(b"navigate"),
                None => req.accepts_html(),
            };
        let want = if navigation { Unauthenticated::Redirect } else { Unauthenticated::Reject };
        prop_assert_eq!(got, want, "{:?}", req);
    }

    /// A method other than GET or HEAD is never redirected.
    #[test]
    fn policy_never_redirects_other_methods(req in request_with(
        method().prop_filter("not GET/HEAD", |m| m != Method::GET && m != Method::HEAD).boxed(),
        prop::collection::vec(header_value(FETCH_MODES), 0..2).boxed(),
        prop::option::of(header_value(REQUESTED_WITH)).boxed(),
    )) {
        prop_assert_eq!(default_policy(&req.parts()), Unauthenticated::Reject);
    }

    /// `Sec-Fetch-Mode` other than `navigate` (fetch, cors, no-cors, …) is never redirected,
    /// whatever it accepts.
    #[test]
    fn policy_never_redirects_non_navigate_fetch_modes(req in request_with(
        method().boxed(),
        (non_navigate_mode(), prop::collection::vec(header_value(FETCH_MODES), 0..2))
            .prop_map(|(first, rest)| std::iter::once(first).chain(rest).collect())
            .boxed(),
        prop::option::of(header_value(REQUESTED_WITH)).boxed(),
    )) {
        prop_assert_eq!(default_policy(&req.parts()), Unauthenticated::Reject);
    }

    /// `X-Requested-With`, with any value, is never redirected.
    #[test]
    fn policy_never_redirects_xhr(req in request_with(
        method().boxed(),
        prop::collection::vec(header_value(FETCH_MODES), 0..2).boxed(),
        header_value(REQUESTED_WITH).prop_map(Some).boxed(),
    )) {
        prop_assert_eq!(default_policy(&req.parts()), Unauthenticated::Reject);
    }

    /// A browser navigation (GET or HEAD, `Sec-Fetch-Mode: navigate`, no XHR marker) is
    /// redirected, whatever it accepts.
    #[test]
    fn policy_redirects_navigations(
        head in any::<bool>(),
        mode in mixed_case(&["navigate"]),
        accept in prop::collection::vec(header_value(ACCEPTS), 0..3),
    ) {
        let req = Req {
            method: if head { Method::HEAD } else { Method::GET },
            fetch_mode: vec![mode],
            accept,
            requested_with: None,
        };
        prop_assert_eq!(default_policy(&req.parts()), Unauthenticated::Redirect);
    }
}

/// Regression (found by these properties, fixed in `default_policy`): a `Sec-Fetch-Mode`
/// value that is not visible ASCII (bytes 0x80–0xFF are valid in a header value) used to be
/// read as no `Sec-Fetch-Mode` at all, so a `GET` with such a value and `Accept: text/html`
/// was redirected although its fetch mode is not `navigate`.
#[test]
fn policy_never_redirects_non_ascii_fetch_modes() {
    let parts = Request::builder()
        .uri("/x")
        .header(
            "sec-fetch-mode",
            HeaderValue::from_bytes(b"cors\xff").unwrap(),
        )
        .header(http::header::ACCEPT, "text/html")
        .body(())
        .unwrap()
        .into_parts()
        .0;
    assert_eq!(default_policy(&parts), Unauthenticated::Reject);
}

// ---------------------------------------------------------------------------------------------
// The bearer layer's answers to arbitrary credentials

/// A provider that cannot be reached: every request fails at once, without any I/O.
#[derive(Debug)]
struct Unreachable;

impl HttpClient for Unreachable {
    // The desugared form of the `#[async_trait]` method, to avoid a dependency on async-trait.
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        _request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        Box::pin(async { Err(HttpError::Connect(Arc::new(std::io::Error::other("down")))) })
    }
}

fn verifier() -> AccessTokenVerifier {
    let provider = Provider::builder("https://id.example.com")
        .with_jwks_uri("https://id.example.com/keys")
        .with_http_client(Arc::new(Unreachable))
        .build()
        .unwrap();
    AccessTokenVerifier::new(provider, "https://api.example.com")
}

/// `Authorization` values: bearer-shaped, other schemes, and arbitrary header bytes.
fn authorization() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            prop::sample::select(vec![
                "Bearer", "bearer", "BEARER", "Basic", "Token", "Bearer,"
            ]),
            " {0,3}",
            "[A-Za-z0-9._~+/=-]{0,60}",
            prop::option::of("[ -~]{0,8}"),
        )
            .prop_map(|(scheme, gap, token, tail)| {
                format!("{scheme}{gap}{token}{}", tail.unwrap_or_default()).into_bytes()
            }),
        Just(b"Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln".to_vec()),
        prop::collection::vec(any::<u8>(), 0..80),
    ]
}

fn query() -> impl Strategy<Value = Option<String>> {
    prop::option::of(prop_oneof![
        Just("access_token=abc".to_owned()),
        Just("x=1&access_token".to_owned()),
        "[a-z_=&]{0,30}",
    ])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// Whatever the credentials and query, with the provider unreachable: 400, 401 or 503
    /// (never 5xx other than 503, never 2xx), and the protected service is never called.
    #[test]
    fn bearer_layer_never_lets_bad_credentials_through(
        values in prop::collection::vec(authorization(), 0..3),
        query in query(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let inner = {
            let calls = calls.clone();
            service_fn(move |_req: Request<String>| {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok::<_, Infallible>(Response::new(String::new())) }
            })
        };
        let service = BearerAuthLayer::new(verifier()).layer(inner);
        let uri = match &query {
            Some(q) => format!("/x?{q}"),
            None => "/x".to_owned(),
        };
        let mut builder = Request::builder().uri(uri);
        for v in &values {
            if let Ok(value) = HeaderValue::from_bytes(v) {
                builder = builder.header(http::header::AUTHORIZATION, value);
            }
        }
        let req = builder.body(String::new()).unwrap();
        let res = rt.block_on(service.oneshot(req)).unwrap();
        let status = res.status();
        prop_assert!(
            matches!(
                status,
                StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED | StatusCode::SERVICE_UNAVAILABLE
            ),
            "{status} for {values:?} {query:?}"
        );
        prop_assert_eq!(calls.load(Ordering::SeqCst), 0);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            prop_assert!(res.headers().contains_key(http::header::RETRY_AFTER));
        }
    }
}
