//! Session data read back from the store: arbitrary JSON stored in a tower-sessions
//! `MemoryStore` record, as the login state (`oidc.login`) or the pending login transactions
//! (`oidc.tx`), before a request through `oidc_tower::login::LoginLayer` carrying that
//! session's cookie. The provider's token and UserInfo endpoints misbehave as the input says
//! (down, `invalid_grant`, 500, garbage, timeout).
//!
//! Must never panic and never answer 500: a session that cannot be read is answered with the
//! documented 503. The app is reached only with a login state of this issuer that is within
//! the absolute (12 h) and idle (30 min) timeouts, made for this app's client id.

#![no_main]

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use http::{Method, Request, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_fuzz::{Canned, Endpoint, ISSUER, JWKS, NOW, block_on, clock};
use oidc_tower::login::LoginLayer;
use serde_json::Value;
use tower::{Layer as _, ServiceExt as _, service_fn};
use tower_sessions::cookie::time::{Duration, OffsetDateTime};
use tower_sessions::session::{Id, Record};
use tower_sessions::{MemoryStore, SessionStore as _};

const APP: &str = "http://127.0.0.1:3000";
const COOKIE: &str = "oidc-session";

struct Fixture {
    http: Arc<Canned>,
    login: LoginLayer,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let http = Arc::new(Canned::new(None, JWKS.as_bytes().to_vec()));
        let provider = Provider::builder(ISSUER)
            .with_http_client(http.clone())
            .build()
            .unwrap();
        let client = OidcClient::new(provider, "web-app", format!("{APP}/auth/callback"))
            .unwrap()
            .with_client_secret("s3cret")
            .with_clock(clock());
        let login = LoginLayer::new(client, APP).unwrap();
        Fixture { http, login }
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `GET /` from a script (`Accept: application/json`), with `oidc.login`.
    Api,
    /// `GET /` as a browser navigation, with `oidc.login`.
    Navigate,
    /// `GET /auth/callback?code&state&iss`, with `oidc.tx`.
    Callback,
    /// `GET /auth/login?return_to=/x`, with `oidc.tx`.
    StartLogin,
    /// Same-origin `POST /auth/logout`, with `oidc.login`.
    Logout,
}

fuzz_target!(|data: &[u8]| {
    let [mode, endpoint, json @ ..] = data else {
        return;
    };
    let mode = match mode % 5 {
        0 => Mode::Api,
        1 => Mode::Navigate,
        2 => Mode::Callback,
        3 => Mode::StartLogin,
        _ => Mode::Logout,
    };
    let value: Value = serde_json::from_slice(json)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(json).into_owned()));
    let fixture = fixture();
    fixture.http.set_endpoint(Endpoint::from_byte(*endpoint));

    let key = match mode {
        Mode::Callback | Mode::StartLogin => "oidc.tx",
        _ => "oidc.login",
    };
    let login = fixture.login.clone().with_store(MemoryStore::default());
    let mut record = Record {
        id: Id::default(),
        data: HashMap::from([(key.to_owned(), value.clone())]),
        expiry_date: OffsetDateTime::now_utc() + Duration::hours(1),
    };
    // Through the layer's view of its store: the record in this app's namespace, and
    // `record.id` the cookie value that finds it.
    block_on(login.store().create(&mut record)).unwrap();

    let state = value
        .as_array()
        .and_then(|txs| txs.first())
        .and_then(|tx| tx.get("state"))
        .and_then(Value::as_str)
        .unwrap_or("s");
    let encoded: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
    let (method, uri) = match mode {
        Mode::Api | Mode::Navigate => (Method::GET, "/".to_owned()),
        Mode::Callback => (
            Method::GET,
            format!("/auth/callback?code=c&state={encoded}&iss=https%3A%2F%2Fid.example.com"),
        ),
        Mode::StartLogin => (Method::GET, "/auth/login?return_to=%2Fx".to_owned()),
        Mode::Logout => (Method::POST, "/auth/logout".to_owned()),
    };
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .header(http::header::COOKIE, format!("{COOKIE}={}", record.id));
    req = match mode {
        Mode::Navigate => req
            .header(http::header::ACCEPT, "text/html")
            .header("sec-fetch-mode", "navigate"),
        Mode::Logout => req.header(http::header::ORIGIN, APP),
        _ => req.header(http::header::ACCEPT, "application/json"),
    };
    let req = req.body(String::new()).unwrap();

    let calls = Arc::new(AtomicUsize::new(0));
    let inner = {
        let calls = calls.clone();
        service_fn(move |_req: Request<String>| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok::<_, Infallible>(Response::new(String::from("app"))) }
        })
    };
    let service = login.layer(inner);
    let status = block_on(service.oneshot(req)).unwrap().status();

    assert_ne!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "500 for {mode:?}"
    );
    let allowed: &[u16] = match mode {
        Mode::Api => &[200, 401, 503],
        Mode::Navigate => &[200, 303, 401, 503],
        Mode::Callback => &[303, 400, 401, 403, 502, 503, 504],
        Mode::StartLogin => &[303, 400, 401, 502, 503, 504],
        Mode::Logout => &[303, 503],
    };
    assert!(allowed.contains(&status.as_u16()), "{status} for {mode:?}");

    let called = calls.load(Ordering::SeqCst);
    if called > 0 {
        assert!(
            matches!(mode, Mode::Api | Mode::Navigate),
            "app reached in {mode:?}"
        );
        assert_eq!(status, StatusCode::OK);
        let time = |name: &str| value.get(name).and_then(Value::as_i64).unwrap();
        assert_eq!(value.get("issuer").and_then(Value::as_str), Some(ISSUER));
        assert_eq!(
            value.get("client_id").and_then(Value::as_str),
            Some("web-app"),
            "a login of another client reached the app"
        );
        assert!(
            NOW - time("authenticated_at") < 12 * 3600,
            "absolute timeout ignored"
        );
        assert!(NOW - time("last_seen") < 30 * 60, "idle timeout ignored");
    } else {
        assert_ne!(status, StatusCode::OK, "200 without reaching the app");
    }
});
