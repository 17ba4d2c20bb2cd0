//! Options of `LoginLayer`, black-box: the login hook, bearer tokens next to sessions
//! (`accept_bearer`), and `require_login`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::sync::{Arc, Mutex};

use oidc_core::AccessTokenVerifier;
use oidc_testing::find_param;
use oidc_tower::login::{LoginInfo, LoginRefused};

use login_common::{App, Builder, CLIENT_ID, Jar, USER};

// ---------------------------------------------------------------------------------------------
// Login hook

#[tokio::test]
async fn hook_refusal_is_403_without_a_session() {
    let app = Builder::new()
        .layer(|l| {
            l.with_login_hook(|_: LoginInfo| async {
                Err(LoginRefused::new("<b>Your account is suspended</b>"))
            })
        })
        .start()
        .await;
    let res = app.expect_failed_login("hook refuses", 403).await;
    assert!(!res.body.contains("<b>"), "{}", res.body);
    assert!(
        res.body
            .contains("&lt;b&gt;Your account is suspended&lt;/b&gt;"),
        "the message, escaped: {}",
        res.body
    );
}

/// What the hook saw: issuer, subject, email, email verified.
type Seen = (String, String, Option<String>, bool);

#[tokio::test]
async fn hook_maps_the_user_to_a_local_id() {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let record = seen.clone();
    let app = Builder::new()
        .layer(move |l| {
            l.with_login_hook(move |info: LoginInfo| {
                record.lock().unwrap().push((
                    info.issuer().to_owned(),
                    info.subject().to_owned(),
                    info.email().map(str::to_owned),
                    info.email_verified(),
                ));
                async { Ok(Some("local-42".to_owned())) }
            })
        })
        .start()
        .await;
    let jar = app.login().await;
    let me = app.assert_logged_in(&jar).await;
    assert_eq!(me["local_user"], "local-42");
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(
            app.op.issuer(),
            USER.to_owned(),
            Some("user-1@example.test".to_owned()),
            true
        )]
    );
}

#[tokio::test]
async fn hook_without_a_local_id_keeps_none() {
    let app = Builder::new()
        .layer(|l| l.with_login_hook(|_: LoginInfo| async { Ok(None) }))
        .start()
        .await;
    let jar = app.login().await;
    let me = app.assert_logged_in(&jar).await;
    assert!(me["local_user"].is_null());
}

// ---------------------------------------------------------------------------------------------
// accept_bearer

fn with_bearer(builder: Builder) -> Builder {
    builder.layer(|l| {
        let verifier = AccessTokenVerifier::new(l.client().provider().clone(), "api://default");
        l.accept_bearer(verifier)
    })
}

async fn bearer_get(app: &App, path: &str, token: &str) -> login_common::Resp {
    let req = app
        .http
        .get(format!("{}{path}", app.url))
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {token}"));
    app.send(req, &mut Jar::default()).await
}

#[tokio::test]
async fn accept_bearer_lets_a_valid_token_through() {
    let app = with_bearer(Builder::new()).start().await;
    let token = app.op.token().claim("sub", "service-7").sign();
    let res = bearer_get(&app, "/whoami", &token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "service-7");
    assert!(
        res.set_cookies().is_empty(),
        "no session for bearer requests"
    );
    assert!(app.op.authorization_requests().is_empty());
}

#[tokio::test]
async fn accept_bearer_rejects_a_bad_token_with_invalid_token() {
    let app = with_bearer(Builder::new()).start().await;
    let bad = [
        ("foreign key", app.op.token().sign_with_foreign_key()),
        (
            "wrong audience",
            app.op.token().audience("api://other").sign(),
        ),
        (
            "expired",
            app.op
                .token()
                .claim("exp", login_common::now() - 3600)
                .sign(),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, token) in bad {
        let res = bearer_get(&app, "/whoami", &token).await;
        assert_eq!(res.status, 401, "{what}");
        let challenge = res.header("www-authenticate").unwrap_or_default();
        assert!(challenge.starts_with("Bearer "), "{what}: {challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{what}: {challenge}"
        );
        assert!(res.location().is_none(), "{what}: never a login redirect");
        assert!(res.set_cookies().is_empty(), "{what}");
    }
    // Even for a browser navigation, bad bearer credentials are judged alone.
    let req = app
        .http
        .get(format!("{}/me", app.url))
        .header("accept", "text/html")
        .header("authorization", "Bearer not-a-jwt");
    let res = app.send(req, &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    assert!(res.location().is_none());
    assert!(app.op.authorization_requests().is_empty());
}

#[tokio::test]
async fn accept_bearer_keeps_sessions_working() {
    let app = with_bearer(Builder::new()).start().await;
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
}

// ---------------------------------------------------------------------------------------------
// require_login

#[tokio::test]
async fn require_login_default_sends_navigation_straight_to_the_provider() {
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app.nav("/me", &mut jar).await;
    assert_eq!(res.status, 303);
    let authorize = res.location().unwrap().to_owned();
    assert!(
        authorize.starts_with(&format!("{}?", app.op.authorization_endpoint())),
        "{authorize}"
    );
    let params = login_common::query_params(&authorize);
    assert_eq!(find_param(&params, "client_id"), Some(CLIENT_ID));
    assert_eq!(find_param(&params, "response_type"), Some("code"));

    let callback = app.authorize(&authorize).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.location(), Some("/me"));
    app.assert_logged_in(&jar).await;

    // Not a navigation: 401, no redirect.
    let res = app.api("/me", &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    assert!(res.location().is_none());
}

#[tokio::test]
async fn require_login_false_lets_anonymous_requests_through() {
    let app = Builder::new()
        .layer(|l| l.require_login(false))
        .start()
        .await;
    let mut jar = Jar::default();
    let res = app.nav("/", &mut jar).await;
    assert_eq!(res.status, 200);
    assert_eq!(res.body, "home");
    // The User extractor sends a navigation to the login route, an API call gets 401.
    let res = app.nav("/me", &mut jar).await;
    assert_eq!(res.status, 303);
    assert!(
        res.location().unwrap().starts_with("/auth/login"),
        "{:?}",
        res.location()
    );
    let res = app.api("/me", &mut Jar::default()).await;
    assert_eq!(res.status, 401);
    // Logged in, the extractor gives the user.
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
}
