//! Where `LoginLayer` sends the browser: the return-to path after login (RED cases) and
//! RP-initiated logout (LO cases of `SECURITY-CASES.md`), black-box against an axum app and an
//! `oidc-testing` provider.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use oidc_testing::{LogoutState, find_param};

use login_common::{
    App, Builder, CLIENT_ID, COOKIE, Jar, Resp, USER, is_removal, jwt_claims, param, with_param,
};

// ---------------------------------------------------------------------------------------------
// RED-01, RED-03

#[tokio::test]
async fn red_01_return_to_keeps_only_same_origin_paths() {
    let app = App::start().await;
    let kept = ["/", "/app", "/app?x=1#y", "/a/b/c?q=%20x&r=1", "/%E2%9C%93"];
    for path in kept {
        let (_, res) = app.login_to(Some(path)).await;
        assert_eq!(res.location(), Some(path), "{path:?} is kept");
    }
    let refused = [
        "https://evil.example/",
        "http://evil.example/app",
        "//evil.example",
        "//evil.example/app",
        "/\\evil.example",
        "\\\\evil",
        "/%2F%2Fevil.example",
        "/%2f/evil.example",
        "%2F%2Fevil",
        "/%5Cevil.example",
        "/%252F%252Fevil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\nSet-Cookie: x=1",
        "https:evil.example",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "http://trusted@evil.example",
        &format!("{}@evil.example", app.url),
        "app",
        "",
        " /app",
    ];
    for path in refused {
        let (_, res) = app.login_to(Some(path)).await;
        assert_eq!(res.location(), Some("/"), "{path:?} → the default");
    }
    // The provider never saw the return-to path (it is not in `state`).
    for request in app.op.authorization_requests() {
        let state = find_param(&request, "state").unwrap();
        assert!(!state.contains("evil") && !state.contains("app"), "{state}");
    }
}

#[tokio::test]
async fn red_01_protected_navigation_returns_to_the_same_path() {
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app.nav("/app?x=1&y=%2F%2Fz", &mut jar).await;
    assert_eq!(res.status, 303);
    let callback = app.authorize(res.location().unwrap()).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some("/app?x=1&y=%2F%2Fz"));
}

#[tokio::test]
async fn red_03_return_to_on_the_callback_url_is_ignored() {
    let app = App::start().await;
    for evil in ["https://evil.example/", "//evil.example", "/elsewhere"] {
        let (mut jar, callback) = app.until_callback(Some("/app")).await;
        let res = app
            .callback(
                &format!("{callback}&return_to={evil}&redirect_uri={evil}"),
                &mut jar,
            )
            .await;
        assert_eq!(res.status, 303, "{evil}");
        assert_eq!(
            res.location(),
            Some("/app"),
            "{evil}: from the transaction only"
        );
        app.assert_logged_in(&jar).await;
    }
    // A `state` that carries a URL is just a wrong state.
    let (mut jar, callback) = app.until_callback(Some("/app")).await;
    let before = app.token_request_count();
    let res = app
        .callback(
            &with_param(&callback, "state", Some("https://evil.example/")),
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 400);
    assert!(res.location().is_none());
    assert_eq!(app.token_request_count(), before);
}

// ---------------------------------------------------------------------------------------------
// LO-01 to LO-03

async fn logout(app: &App, jar: &mut Jar, headers: &[(&str, &str)], query: &str) -> Resp {
    let mut req = app.http.post(format!("{}/auth/logout{query}", app.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    app.send(req, jar).await
}

#[tokio::test]
async fn lo_01_logout_destroys_the_session_and_redirects_to_the_provider() {
    for same_origin in ["origin", "sec-fetch-site"] {
        let app = App::start().await;
        let jar = app.login().await;
        let old = jar.session().unwrap().to_owned();
        let mut browser = jar.clone();
        let header: (&str, &str) = match same_origin {
            "origin" => ("origin", &app.url),
            _ => ("sec-fetch-site", "same-origin"),
        };
        // A post_logout_redirect_uri in the query is ignored.
        let res = logout(
            &app,
            &mut browser,
            &[header],
            "?post_logout_redirect_uri=https%3A%2F%2Fevil.example%2F&state=evil",
        )
        .await;

        assert_eq!(res.status, 303, "{same_origin}: {}", res.body);
        let location = res.location().unwrap().to_owned();
        assert!(
            location.starts_with(&format!("{}?", app.op.end_session_endpoint())),
            "{location}"
        );
        let hint = param(&location, "id_token_hint").expect("id_token_hint");
        let claims = jwt_claims(&hint);
        assert_eq!(claims["sub"], USER);
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(claims["iss"], app.op.issuer());
        assert_eq!(param(&location, "client_id").as_deref(), Some(CLIENT_ID));
        assert_eq!(
            param(&location, "post_logout_redirect_uri"),
            Some(format!("{}/", app.url)),
            "the configured URI, never the query's"
        );
        let state = param(&location, "state").expect("state");
        assert!(state.len() >= 22 && state != "evil", "{state}");
        assert_eq!(res.header("cache-control"), Some("no-store"));

        let cookies = res.session_cookies_named(COOKIE);
        assert_eq!(cookies.len(), 1, "{:?}", res.set_cookies());
        assert!(is_removal(&cookies[0]), "{}", cookies[0]);
        assert!(
            cookies[0].to_ascii_lowercase().contains("max-age=0"),
            "{}",
            cookies[0]
        );
        assert!(
            browser.session().is_none(),
            "the browser dropped the cookie"
        );

        assert!(
            !app.store_has(&old).await,
            "the server-side session is destroyed"
        );
        app.assert_not_logged_in(&jar).await;

        // The provider ends its session and returns to the configured URI with the state.
        let back = app.send(app.http.get(&location), &mut Jar::default()).await;
        assert_eq!(back.status, 303, "{}", back.body);
        let back_to = back.location().unwrap();
        assert!(back_to.starts_with(&format!("{}/?", app.url)), "{back_to}");
        assert_eq!(param(back_to, "state"), Some(state));
        assert_eq!(app.op.end_session_requests().len(), 1);
    }
}

#[tokio::test]
async fn lo_02_cross_site_or_get_logout_changes_nothing() {
    let app = App::start().await;
    let jar = app.login().await;
    let session = jar.session().unwrap().to_owned();

    let mut browser = jar.clone();
    let res = app
        .send(
            app.http
                .get(format!("{}/auth/logout", app.url))
                .header("accept", "text/html"),
            &mut browser,
        )
        .await;
    assert_eq!(res.status, 405, "GET");
    assert_eq!(res.header("allow"), Some("POST"));
    assert!(res.set_cookies().is_empty(), "GET");

    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("no Origin, no Sec-Fetch-Site", &[]),
        ("foreign Origin", &[("origin", "https://evil.example")]),
        ("Origin null", &[("origin", "null")]),
        (
            "foreign Origin with Sec-Fetch-Site same-origin",
            &[
                ("origin", "https://evil.example"),
                ("sec-fetch-site", "same-origin"),
            ],
        ),
        (
            "Sec-Fetch-Site cross-site",
            &[("sec-fetch-site", "cross-site")],
        ),
        (
            "Sec-Fetch-Site same-site",
            &[("sec-fetch-site", "same-site")],
        ),
    ];
    for (what, headers) in cases {
        let mut browser = jar.clone();
        let res = logout(&app, &mut browser, headers, "").await;
        assert_eq!(res.status, 403, "{what}");
        assert!(res.location().is_none(), "{what}");
        assert!(res.set_cookies().is_empty(), "{what}: the cookie is kept");
    }
    // An Origin of the same host on another port is another origin.
    let other_port = format!("{}1", app.url);
    let mut browser = jar.clone();
    let res = logout(&app, &mut browser, &[("origin", &other_port)], "").await;
    assert_eq!(res.status, 403, "{other_port}");

    assert!(app.store_has(&session).await, "the session is intact");
    app.assert_logged_in(&jar).await;
    assert!(app.op.end_session_requests().is_empty());
}

#[tokio::test]
async fn lo_03_provider_without_end_session_endpoint_logs_out_locally() {
    let app = App::start().await;
    app.op.set_discovery_member("end_session_endpoint", None);
    let jar = app.login().await;
    let old = jar.session().unwrap().to_owned();
    let mut browser = jar.clone();
    let res = logout(&app, &mut browser, &[("origin", &app.url)], "").await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some(format!("{}/", app.url).as_str()));
    assert!(
        res.session_cookies_named(COOKIE)
            .iter()
            .all(|c| is_removal(c))
    );
    assert!(!app.store_has(&old).await);
    app.assert_not_logged_in(&jar).await;
    assert!(app.op.end_session_requests().is_empty());
}

#[tokio::test]
async fn lo_03_return_with_another_or_no_state_shows_the_page() {
    for (what, state) in [
        (
            "other state",
            LogoutState::Value("not-the-one-sent".to_owned()),
        ),
        ("no state", LogoutState::Omit),
    ] {
        let app = Builder::new()
            .layer(|l| l.require_login(false))
            .start()
            .await;
        app.op.set_logout_state(state);
        let jar = app.login().await;
        let mut browser = jar.clone();
        let res = logout(&app, &mut browser, &[("origin", &app.url)], "").await;
        assert_eq!(res.status, 303, "{what}");
        let back = app
            .send(app.http.get(res.location().unwrap()), &mut Jar::default())
            .await;
        assert_eq!(back.status, 303, "{what}");
        let page = app.nav(back.location().unwrap(), &mut browser).await;
        assert_eq!(
            page.status, 200,
            "{what}: the public page, no error, no loop"
        );
        assert_eq!(page.body, "home");
        app.assert_not_logged_in(&jar).await;
    }
}

#[tokio::test]
async fn lo_logout_without_a_session_goes_to_the_post_logout_uri() {
    let app = App::start().await;
    let res = logout(&app, &mut Jar::default(), &[("origin", &app.url)], "").await;
    assert_eq!(res.status, 303);
    assert_eq!(res.location(), Some(format!("{}/", app.url).as_str()));
    assert!(app.op.end_session_requests().is_empty());
}
