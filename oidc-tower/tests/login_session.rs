//! Sessions of `LoginLayer`, black-box: fixation, cookie attributes, tampered cookies,
//! timeouts, refresh, logout replay and unauthenticated request spraying. Tests are named after
//! the SES (and IDT-14) cases of `SECURITY-CASES.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::time::{Duration, Instant};

use axum::body::Body;
use http::{Request, header};
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_testing::TestProvider;
use oidc_tower::login::LoginLayer;
use serde_json::json;
use tower::ServiceExt as _;
use tower_sessions::session::Id;
use tower_sessions::{MemoryStore, SessionStore as _};

use login_common::{App, Builder, COOKIE, Jar, USER, cookie_value, is_removal};

/// Asserts the attributes of a session `Set-Cookie` on an `http` app.
fn assert_http_cookie_attributes(set_cookie: &str) {
    let attrs: Vec<String> = set_cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(
        set_cookie.starts_with(&format!("{COOKIE}=")),
        "{set_cookie}"
    );
    assert!(attrs.iter().any(|a| a == "httponly"), "{set_cookie}");
    assert!(attrs.iter().any(|a| a == "samesite=lax"), "{set_cookie}");
    assert!(attrs.iter().any(|a| a == "path=/"), "{set_cookie}");
    assert!(
        !attrs.iter().any(|a| a.starts_with("domain")),
        "{set_cookie}"
    );
    assert!(
        !attrs.iter().any(|a| a == "secure"),
        "no Secure on http: {set_cookie}"
    );
    let value = cookie_value(set_cookie);
    assert!(value.len() < 64, "an opaque id, not tokens: {value}");
    assert!(!value.contains("eyJ"), "no JWT in the cookie");
}

fn refresh_count(app: &App) -> usize {
    app.op
        .token_requests()
        .iter()
        .filter(|t| t.param("grant_type") == Some("refresh_token"))
        .count()
}

/// A fresh provider and a client of it (`web-app`, `s3cret`) for the app at `app_url`.
async fn client_for(app_url: &str) -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let client = OidcClient::new(provider, "web-app", format!("{app_url}/auth/callback"))
        .unwrap()
        .with_client_secret("s3cret");
    (op, client)
}

/// A top-level browser navigation `GET path` (`Accept: text/html`), for a router called in
/// process.
fn navigation(path: &str) -> Request<Body> {
    Request::get(path)
        .header(header::ACCEPT, "text/html")
        .body(Body::empty())
        .unwrap()
}

/// Starts the default app with access tokens of 1 s (with the 60 s refresh margin every
/// request refreshes) and logs in.
async fn logged_in_refreshing() -> (App, Jar) {
    let app = App::start().await;
    app.op.set_access_token_lifetime(1);
    let jar = app.login().await;
    (app, jar)
}

/// Starts the default app with `edit` applied to its layer, logs in and asserts the session.
async fn logged_in_with(
    edit: impl FnOnce(LoginLayer) -> LoginLayer + Send + 'static,
) -> (App, Jar) {
    let app = Builder::new().layer(edit).start().await;
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
    (app, jar)
}

// ---------------------------------------------------------------------------------------------
// SES-01: session fixation

#[tokio::test]
async fn ses_01_planted_arbitrary_cookie_is_never_authenticated() {
    let app = App::start().await;
    let planted = "attacker-chosen-session-value";
    let mut jar = Jar::with_session(planted);
    let authorize = app.begin(&mut jar, None).await;
    assert_ne!(
        jar.session(),
        Some(planted),
        "an unknown id is replaced at once"
    );
    let callback = app.authorize(&authorize).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303);
    assert_ne!(jar.session(), Some(planted));
    app.assert_logged_in(&jar).await;
    app.assert_not_logged_in(&Jar::with_session(planted)).await;
}

#[tokio::test]
async fn ses_01_planted_pre_login_session_id_is_cycled_at_login() {
    let app = App::start().await;
    // The attacker gets a genuine pre-login session id of this app ...
    let mut attacker = Jar::default();
    app.begin(&mut attacker, None).await;
    let planted = attacker.session().unwrap().to_owned();
    assert!(app.store_has(&planted).await);

    // ... and plants it in the victim's browser, who then logs in.
    let mut victim = Jar::with_session(&planted);
    let authorize = app.begin(&mut victim, None).await;
    assert_eq!(
        victim.session(),
        Some(planted.as_str()),
        "same pre-login session"
    );
    let callback = app.authorize(&authorize).await;
    let res = app.callback(&callback, &mut victim).await;
    assert_eq!(res.status, 303);
    let fresh = res.new_session_values();
    assert_eq!(fresh.len(), 1);
    assert_ne!(fresh[0], planted, "a new session id after the callback");
    assert_eq!(victim.session(), Some(fresh[0].as_str()));

    app.assert_logged_in(&victim).await;
    app.assert_not_logged_in(&Jar::with_session(&planted)).await;
    assert!(
        !app.store_has(&planted).await,
        "the planted id is gone from the store"
    );
}

// ---------------------------------------------------------------------------------------------
// SES-02: cookie attributes

#[tokio::test]
async fn ses_02_session_cookie_attributes_on_http() {
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app.nav("/auth/login", &mut jar).await;
    let cookies = res.session_cookies_named(COOKIE);
    assert_eq!(cookies.len(), 1, "{:?}", res.set_cookies());
    assert_http_cookie_attributes(&cookies[0]);

    let (_, res) = app.login_to(None).await;
    let cookies = res.session_cookies_named(COOKIE);
    assert_eq!(cookies.len(), 1, "{:?}", res.set_cookies());
    assert_http_cookie_attributes(&cookies[0]);
}

#[tokio::test]
async fn ses_02_session_cookie_is_host_prefixed_and_secure_on_https() {
    let (_op, client) = client_for("https://app.example.com").await;
    let layer = LoginLayer::new(client, "https://app.example.com").unwrap();
    let app = login_common::router(&layer, Some(MemoryStore::default()));

    let res = app.oneshot(navigation("/auth/login")).await.unwrap();
    assert_eq!(res.status(), 303);
    let cookies: Vec<&str> = res
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = cookies[0];
    let attrs: Vec<String> = cookie
        .split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    assert!(cookie.starts_with("__Host-oidc-session="), "{cookie}");
    assert!(attrs.iter().any(|a| a == "secure"), "{cookie}");
    assert!(attrs.iter().any(|a| a == "httponly"), "{cookie}");
    assert!(attrs.iter().any(|a| a == "samesite=lax"), "{cookie}");
    assert!(attrs.iter().any(|a| a == "path=/"), "{cookie}");
    assert!(!attrs.iter().any(|a| a.starts_with("domain")), "{cookie}");
}

#[tokio::test]
async fn ses_02_a_custom_cookie_name_keeps_the_host_prefix_on_https() {
    let (_op, client) = client_for("https://app.example.com").await;
    let layer = LoginLayer::new(client, "https://app.example.com")
        .unwrap()
        .with_cookie_name("shop")
        .unwrap();
    let app = axum::Router::new()
        .route("/app", axum::routing::get(|| async { "app" }))
        .layer(layer);
    let res = app.oneshot(navigation("/app")).await.unwrap();
    assert_eq!(res.status(), 303);
    let cookie = res.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("__Host-shop="), "{cookie}");
    assert!(cookie.to_ascii_lowercase().contains("secure"), "{cookie}");
}

#[tokio::test]
async fn ses_02_bad_cookie_names_are_refused() {
    let (_op, client) = client_for("https://app.example.com").await;
    let layer = LoginLayer::new(client, "https://app.example.com").unwrap();
    for name in [
        "",
        "a;b",
        "a b",
        "a=b",
        "__Host-x",
        "__secure-x",
        &"x".repeat(65),
    ] {
        let err = layer.clone().with_cookie_name(name).unwrap_err();
        assert!(
            matches!(err, oidc_core::error::ConfigError::InvalidCookieName { .. }),
            "{name:?}: {err}"
        );
    }
}

#[tokio::test]
async fn the_login_layer_alone_serves_a_login_without_a_session_layer() {
    // One `.layer(login)`: the layer brings its session manager (before, this request got
    // a 500 "misconfigured" page without the separate session layer).
    let (_op, client) = client_for("http://127.0.0.1:1").await;
    let layer = LoginLayer::new(client, "http://127.0.0.1:1").unwrap();
    let app = axum::Router::new()
        .route("/app", axum::routing::get(|| async { "app" }))
        .layer(layer);
    let res = app.clone().oneshot(navigation("/app")).await.unwrap();
    assert_eq!(res.status(), 303);
    assert!(res.headers().contains_key(header::SET_COOKIE));
    let res = app.oneshot(navigation("/auth/login")).await.unwrap();
    assert_eq!(res.status(), 303);
}

// ---------------------------------------------------------------------------------------------
// SES-04: tampered cookies

#[tokio::test]
async fn ses_04_tampered_session_cookies_are_no_session() {
    let app = App::start().await;
    let jar = app.login().await;
    let good = jar.session().unwrap().to_owned();
    let mut flipped = good.clone().into_bytes();
    flipped[3] = if flipped[3] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let variants = [
        ("bit flip", flipped),
        ("truncated", good[..good.len() - 3].to_owned()),
        ("extended", format!("{good}AAAA")),
        ("huge", "A".repeat(16 * 1024)),
        ("unknown id", Id::default().to_string()),
        ("percent garbage", "%00%ff%22".to_owned()),
        ("empty", String::new()),
    ];
    for (what, value) in variants {
        let jar = Jar::with_session(&value);
        let mut nav = jar.clone();
        let res = app.nav("/me", &mut nav).await;
        assert_eq!(res.status, 303, "{what}: navigation → login");
        assert!(
            res.location()
                .unwrap()
                .starts_with(&app.op.authorization_endpoint()),
            "{what}"
        );
        let mut api = jar.clone();
        let res = app.api("/me", &mut api).await;
        assert_eq!(res.status, 401, "{what}: API → 401");
        assert!(res.location().is_none(), "{what}");
        let mut post = jar.clone();
        let res = app
            .send(
                app.http
                    .post(format!("{}/api/x", app.url))
                    .header("accept", "application/json"),
                &mut post,
            )
            .await;
        assert_eq!(res.status, 401, "{what}: POST → 401");
    }
    app.assert_logged_in(&jar).await;
}

#[tokio::test]
async fn ses_04_tampered_pre_login_cookie_at_the_callback_is_400() {
    let app = App::start().await;
    let (jar, callback) = app.until_callback(None).await;
    let good = jar.session().unwrap().to_owned();
    for (what, value) in [
        ("bit flip", format!("B{}", &good[1..])),
        ("truncated", good[..10].to_owned()),
        ("unknown id", Id::default().to_string()),
    ] {
        let mut sent = Jar::with_session(&value);
        let res = app.callback(&callback, &mut sent).await;
        assert_eq!(res.status, 400, "{what}");
        assert_eq!(app.token_request_count(), 0, "{what}");
    }
    // The genuine cookie still completes its login.
    let mut jar = jar;
    assert_eq!(app.callback(&callback, &mut jar).await.status, 303);
    app.assert_logged_in(&jar).await;
}

// ---------------------------------------------------------------------------------------------
// SES-05 and IDT-14: timeouts, refresh

#[tokio::test]
async fn ses_05_idle_timeout_ends_the_session() {
    let (app, jar) = logged_in_with(|l| l.with_idle_timeout(Duration::from_secs(2))).await;
    tokio::time::sleep(Duration::from_millis(3100)).await;
    app.assert_not_logged_in(&jar).await;
    let mut nav = jar.clone();
    assert_eq!(app.nav("/me", &mut nav).await.status, 303);
}

#[tokio::test]
async fn ses_05_absolute_timeout_ends_the_session_despite_refreshes() {
    let app = Builder::new()
        .layer(|l| l.with_absolute_timeout(Duration::from_secs(2)))
        .start()
        .await;
    // Access tokens of 1 s: with the 60 s refresh margin every request refreshes.
    app.op.set_access_token_lifetime(1);
    let jar = app.login().await;
    let started = Instant::now();
    app.assert_logged_in(&jar).await;
    assert!(refresh_count(&app) >= 1, "the session was refreshed");

    let ended_after = loop {
        let me = app.me(&jar).await;
        if me.status != 200 {
            assert_eq!(me.status, 401);
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_millis(3500),
            "the session outlived its absolute timeout"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ended_after >= Duration::from_millis(900), "{ended_after:?}");
    assert!(refresh_count(&app) >= 2, "refreshed until the end");
    app.assert_not_logged_in(&jar).await;
    assert!(!app.store_has(jar.session().unwrap()).await);
}

#[tokio::test]
async fn ses_05_refresh_failure_ends_the_session() {
    let (app, jar) = logged_in_refreshing().await;
    app.assert_logged_in(&jar).await;
    let refreshes = refresh_count(&app);
    assert!(refreshes >= 1);

    app.op.revoke_user(USER);
    app.assert_not_logged_in(&jar).await;
    assert_eq!(
        refresh_count(&app),
        refreshes + 1,
        "one refresh, answered invalid_grant"
    );
    assert!(
        !app.store_has(jar.session().unwrap()).await,
        "the session is gone"
    );
    app.assert_not_logged_in(&jar).await;
}

#[tokio::test]
async fn ses_05_revalidation_notices_a_revoked_grant() {
    let (app, jar) = logged_in_with(|l| l.with_revalidation_interval(Duration::from_secs(1))).await;
    app.op.revoke_user(USER);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.assert_not_logged_in(&jar).await;
}

#[tokio::test]
async fn ses_05_rotated_refresh_token_is_stored_even_when_the_app_answers_500() {
    let (app, jar) = logged_in_refreshing().await;
    let first = app.op.token_requests()[0].clone();
    assert_eq!(first.param("grant_type"), Some("authorization_code"));

    // This request refreshes (the provider rotates the refresh token), then the handler fails.
    let mut boom = jar.clone();
    let res = app.nav("/boom", &mut boom).await;
    assert_eq!(res.status, 500);
    assert_eq!(refresh_count(&app), 1);
    let used = app.op.token_requests()[1]
        .param("refresh_token")
        .unwrap()
        .to_owned();

    // The server-side session must hold the rotated token, not the used one: replaying a used
    // refresh token makes the provider revoke the whole grant.
    let id: Id = jar.session().unwrap().parse().unwrap();
    let record = tower_sessions::SessionStore::load(&app.store, &id)
        .await
        .unwrap()
        .expect("the session is stored");
    let stored = serde_json::to_string(&record.data).unwrap();
    assert!(
        !stored.contains(&used),
        "the used refresh token is still the one stored"
    );
    app.assert_logged_in(&jar).await;
}

#[tokio::test]
async fn idt_14_refresh_keeps_the_session_when_the_id_token_matches() {
    let (app, jar) = logged_in_refreshing().await;
    for round in 1..=3 {
        app.assert_logged_in(&jar).await;
        assert_eq!(refresh_count(&app), round);
    }
}

#[tokio::test]
async fn idt_14_refreshed_id_token_with_other_identity_ends_the_session() {
    type Change = fn(&mut serde_json::Map<String, serde_json::Value>, &str);
    let cases: [(&str, Change); 5] = [
        ("sub changed", |c, _| {
            c.insert("sub".to_owned(), json!("attacker"));
        }),
        ("iss changed", |c, _| {
            c.insert("iss".to_owned(), json!("https://evil.example"));
        }),
        ("iss with a trailing slash", |c, iss| {
            c.insert("iss".to_owned(), json!(format!("{iss}/")));
        }),
        ("aud changed (trusted list)", |c, _| {
            c.insert("aud".to_owned(), json!([login_common::CLIENT_ID, "other"]));
            c.insert("azp".to_owned(), json!(login_common::CLIENT_ID));
        }),
        ("azp added", |c, _| {
            c.insert("azp".to_owned(), json!(login_common::CLIENT_ID));
        }),
    ];
    for (what, change) in cases {
        let (app, jar) = logged_in_refreshing().await;
        let issuer = app.op.issuer();
        app.op.mutate_id_token(move |c, _| change(c, &issuer));
        let me = app.me(&jar).await;
        assert_eq!(me.status, 401, "{what}: the session ends");
        assert_eq!(refresh_count(&app), 1, "{what}: the refresh was made");
        app.assert_not_logged_in(&jar).await;
        assert!(!app.store_has(jar.session().unwrap()).await, "{what}");
    }
}

// ---------------------------------------------------------------------------------------------
// SES-06, SES-07

#[tokio::test]
async fn ses_06_old_cookie_after_logout_is_not_authenticated() {
    let app = App::start().await;
    let jar = app.login().await;
    let old = jar.session().unwrap().to_owned();
    let mut logout = jar.clone();
    let res = app.logout(&mut logout).await;
    assert_eq!(res.status, 303);
    assert!(
        res.session_cookies_named(COOKIE)
            .iter()
            .all(|c| is_removal(c))
    );
    assert!(
        !app.store_has(&old).await,
        "the server-side session is gone"
    );
    let replay = Jar::with_session(&old);
    app.assert_not_logged_in(&replay).await;
    let mut nav = replay.clone();
    let res = app.nav("/me", &mut nav).await;
    assert_eq!(res.status, 303);
    assert!(
        res.location()
            .unwrap()
            .starts_with(&app.op.authorization_endpoint())
    );
}

#[tokio::test]
async fn ses_07_non_navigation_requests_get_401_and_store_no_transaction() {
    let app = App::start().await;
    let url = |p: &str| format!("{}{p}", app.url);
    let requests = [
        (
            "POST JSON",
            app.http
                .post(url("/api/x"))
                .header("accept", "application/json"),
        ),
        (
            "GET JSON",
            app.http
                .get(url("/api/x"))
                .header("accept", "application/json"),
        ),
        (
            "XHR",
            app.http
                .get(url("/me"))
                .header("accept", "text/html")
                .header("x-requested-with", "XMLHttpRequest"),
        ),
        (
            "fetch (Sec-Fetch-Mode: cors)",
            app.http
                .get(url("/me"))
                .header("accept", "text/html")
                .header("sec-fetch-mode", "cors"),
        ),
        (
            "POST form",
            app.http
                .post(url("/app"))
                .header("accept", "text/html")
                .header("sec-fetch-mode", "navigate"),
        ),
        ("no Accept", app.http.get(url("/me"))),
    ];
    for (what, req) in requests {
        let mut jar = Jar::default();
        let res = app.send(req, &mut jar).await;
        assert_eq!(res.status, 401, "{what}");
        assert!(res.location().is_none(), "{what}: no redirect");
        assert!(
            res.set_cookies().is_empty(),
            "{what}: no session, so no transaction"
        );
        assert!(app.op.authorization_requests().is_empty());
    }

    // No transaction anywhere: a callback for a state the provider really issued is refused.
    let (_other_browser, callback) = app.until_callback(None).await;
    let mut sprayer = Jar::default();
    let res = app.callback(&callback, &mut sprayer).await;
    assert_eq!(res.status, 400);
    assert_eq!(app.token_request_count(), 0);
}

#[tokio::test]
async fn ses_07_navigation_is_sent_to_the_provider_and_returns_there() {
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app.nav("/app?x=1", &mut jar).await;
    assert_eq!(res.status, 303);
    let authorize = res.location().unwrap().to_owned();
    assert!(authorize.starts_with(&format!("{}?", app.op.authorization_endpoint())));
    assert!(jar.session().is_some(), "the transaction is stored");
    let callback = app.authorize(&authorize).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some("/app?x=1"));
    let page = app.nav("/app?x=1", &mut jar).await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body, "app");
}

// DOS-03: login starts without cookies cost bounded state

/// Asserts that the session cookie `res` sets and the stored record of `jar`'s session both
/// expire in `lifetime` seconds (within 5 s).
async fn assert_session_lifetime(app: &App, res: &login_common::Resp, jar: &Jar, lifetime: i64) {
    let expected = lifetime - 5..=lifetime;
    let cookies = res.session_cookies_named(COOKIE);
    assert_eq!(cookies.len(), 1, "{:?}", res.set_cookies());
    let max_age: i64 = cookies[0]
        .split(';')
        .find_map(|a| a.trim().strip_prefix("Max-Age="))
        .unwrap_or_else(|| panic!("no Max-Age in {}", cookies[0]))
        .parse()
        .unwrap();
    assert!(expected.contains(&max_age), "{}", cookies[0]);
    let id: Id = jar.session().unwrap().parse().unwrap();
    let record = app
        .store
        .load(&id)
        .await
        .unwrap()
        .expect("the session is stored");
    let left = record.expiry_date - tower_sessions::cookie::time::OffsetDateTime::now_utc();
    assert!(expected.contains(&left.whole_seconds()), "{left}");
}

#[tokio::test]
async fn ses_03_the_cookie_carrying_a_login_start_is_lax_and_lives_at_most_ten_minutes() {
    // The default settings: a 10-minute transaction lifetime, a 30-minute idle timeout.
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app.nav("/app", &mut jar).await;
    assert_eq!(res.status, 303);
    let cookies = res.session_cookies_named(COOKIE);
    assert_eq!(cookies.len(), 1, "{:?}", res.set_cookies());
    assert_http_cookie_attributes(&cookies[0]);
    assert_session_lifetime(&app, &res, &jar, 600).await;
    // The callback, a cross-site top-level GET, carries it (SameSite=Lax) and logs in.
    let callback = app.authorize(res.location().unwrap()).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303);
    assert_session_lifetime(&app, &res, &jar, 1800).await;
    app.assert_logged_in(&jar).await;
}

#[tokio::test]
async fn dos_03_a_session_holding_only_pending_logins_lives_as_long_as_they_do() {
    let app = Builder::new()
        .layer(|l| {
            l.with_transaction_lifetime(Duration::from_secs(120))
                .with_idle_timeout(Duration::from_secs(3600))
        })
        .start()
        .await;
    let mut jar = Jar::default();
    let res = app.nav("/app", &mut jar).await;
    assert_eq!(res.status, 303);
    // The transaction lifetime.
    assert_session_lifetime(&app, &res, &jar, 120).await;

    // Logged in, the session takes the idle timeout.
    let callback = app.authorize(res.location().unwrap()).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303);
    assert_session_lifetime(&app, &res, &jar, 3600).await;

    // A logged-in user starting another login keeps the idle timeout.
    let res = app.nav("/auth/login", &mut jar).await;
    assert_eq!(res.status, 303);
    assert_session_lifetime(&app, &res, &jar, 3600).await;
    app.assert_logged_in(&jar).await;
}

#[tokio::test]
async fn dos_03_a_flood_of_login_starts_is_bounded_by_the_default_store() {
    let (_op, client) = client_for("http://127.0.0.1:1").await;
    let store = oidc_tower::login::store::MemoryStore::with_max_sessions(50);
    let layer = LoginLayer::new(client, "http://127.0.0.1:1")
        .unwrap()
        .with_store(store.clone());
    let app = axum::Router::new()
        .route("/app", axum::routing::get(|| async { "app" }))
        .layer(layer);
    for _ in 0..1_000 {
        let res = app.clone().oneshot(navigation("/app")).await.unwrap();
        assert_eq!(res.status(), 303);
        assert!(res.headers().contains_key(header::SET_COOKIE));
    }
    let held = store.session_count();
    assert!(held <= 50, "{held} sessions held for a capacity of 50");
    assert!(held > 0, "nothing was stored");
}
