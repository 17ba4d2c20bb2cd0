//! Apps sharing one session store never accept each other's sessions (issue 11, item 9),
//! against the real OpenID Provider (npm `oidc-provider`) and Debian's Redis and PostgreSQL:
//! two quickstarts with client ids of their own (`app_url`s on `127.0.0.1` and `127.0.0.2`,
//! see [`LoginProvider::start_sso`]) on one `SESSION_STORE`. A user logs in to the first; the
//! first's session cookie presented to the second (as a browser would on a shared host, or an
//! attacker holding it) is no session there: an API call gets 401, a navigation is sent to
//! log in as the second app. Logging in to the second in that browser makes a session of the
//! second's own, and the first's session is still logged in afterwards.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_e2e::servers::{PostgresServer, RedisServer};
use oidc_e2e::user_agent::{UserAgent, json_body, query};
use oidc_e2e::{LoginProvider, OpLogsOnPanic, Quickstart};
use reqwest::Url;
use tokio::sync::OnceCell;

const SESSION_COOKIE: &str = "oidc-session";

/// One provider for the file, with two apps per store.
async fn provider() -> &'static LoginProvider {
    static OP: OnceCell<LoginProvider> = OnceCell::const_new();
    OP.get_or_init(|| async {
        LoginProvider::start_sso(&["redis-one", "redis-two", "pg-one", "pg-two"], &[]).await
    })
    .await
}

fn host_of(app: &Quickstart) -> String {
    Url::parse(app.base_url())
        .unwrap()
        .host_str()
        .unwrap()
        .to_owned()
}

/// Logs `account` in to `app` through the provider; returns the session cookie.
async fn log_in(
    ua: &mut UserAgent,
    login: &LoginProvider,
    app: &Quickstart,
    account: &str,
) -> String {
    let host = host_of(app);
    let page = ua.navigate(&app.url("/auth/login?return_to=%2Fme")).await;
    assert_eq!(page.status, 303, "{host}: login start: {page}");
    let authorize = page.location().unwrap();
    let (callback, _) = ua
        .log_in_through_op(&authorize, &login.op().host(), &host, account)
        .await;
    let page = ua.navigate(callback.as_str()).await;
    assert_eq!(page.status, 303, "{host}: callback: {page}");
    let me = json_body(&ua.follow(&page).await);
    assert_eq!(me["sub"], account, "{me}");
    ua.cookie(&host, SESSION_COOKIE).unwrap().to_owned()
}

async fn me_status(ua: &mut UserAgent, app: &Quickstart) -> u16 {
    ua.get(&app.url("/me"), &[("accept", "application/json")])
        .await
        .status
        .as_u16()
}

async fn apps_never_accept_each_others_sessions(store_url: &str, one: &str, two: &str) {
    let login = provider().await;
    let _logs = OpLogsOnPanic(login.op());
    let env = [("SESSION_STORE", store_url)];
    let first = login.start_web_app(one, &env).await;
    let second = login.start_web_app(two, &env).await;
    let (first_host, second_host) = (host_of(&first), host_of(&second));
    let account = format!("{one}-alice");

    let mut ua = UserAgent::new();
    let cookie = log_in(&mut ua, login, &first, &account).await;
    assert_eq!(me_status(&mut ua, &first).await, 200);

    // The first app's cookie at the second app: no session.
    ua.set_cookie(&second_host, SESSION_COOKIE, &cookie);
    assert_eq!(
        me_status(&mut ua, &second).await,
        401,
        "{two}: another app's session is no session"
    );
    ua.set_cookie(&second_host, SESSION_COOKIE, &cookie);
    let page = ua.navigate(&second.url("/me")).await;
    assert_eq!(page.status, 303, "{page}");
    let page = ua.follow(&page).await;
    assert_eq!(page.status, 303, "{page}");
    let authorize = page.location().unwrap();
    assert_eq!(
        query(&authorize)["client_id"],
        two,
        "sent to log in as {two}"
    );
    // Logging in to the second app in this browser (single sign-on at the provider) makes a
    // session of its own there.
    let (callback, _) = ua
        .log_in_through_op(&authorize, &login.op().host(), &second_host, &account)
        .await;
    let page = ua.navigate(callback.as_str()).await;
    assert_eq!(page.status, 303, "{two}: callback: {page}");
    let second_cookie = ua.cookie(&second_host, SESSION_COOKIE).unwrap().to_owned();
    assert_ne!(second_cookie, cookie, "a session of the second app's own");
    assert_eq!(me_status(&mut ua, &second).await, 200);
    // ...which the first app does not accept either, while its own session is intact.
    ua.set_cookie(&first_host, SESSION_COOKIE, &second_cookie);
    assert_eq!(
        me_status(&mut ua, &first).await,
        401,
        "{one}: the second's session"
    );
    ua.set_cookie(&first_host, SESSION_COOKIE, &cookie);
    let me = ua
        .get(&first.url("/me"), &[("accept", "application/json")])
        .await;
    assert_eq!(me.status, 200, "{one}: still logged in: {me}");
    assert_eq!(json_body(&me)["sub"], account);
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_sharing_redis_never_accept_each_others_sessions() {
    let redis = RedisServer::start().await;
    apps_never_accept_each_others_sessions(&redis.url(), "redis-one", "redis-two").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn apps_sharing_postgres_never_accept_each_others_sessions() {
    let postgres = PostgresServer::start().await;
    apps_never_accept_each_others_sessions(&postgres.url(), "pg-one", "pg-two").await;
}
