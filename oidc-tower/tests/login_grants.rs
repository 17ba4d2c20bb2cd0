//! The refused grants at `LoginLayer`'s callback and login start: an implicit or hybrid
//! authorization response (tokens in the callback URL) is answered 400 with a page that says
//! implicit responses are not accepted and names the code flow, without a token request,
//! without a session, and without echoing the token.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use login_common::{App, Jar, Resp, param, query_params};

const LEAKED: &str = "leaked-token-value";

/// A 400 page that says implicit responses are refused and names the code flow; no token
/// request since `before`, no redirect, no authenticated session, the token not echoed.
async fn assert_implicit_refused(app: &App, what: &str, res: &Resp, before: usize) {
    assert_eq!(res.status, 400, "{what}: {}", res.body);
    assert!(res.location().is_none(), "{what}: no redirect");
    assert!(
        res.body.contains("Implicit responses are not accepted")
            && res.body.contains("authorization code flow"),
        "{what}: {}",
        res.body
    );
    assert!(
        !res.body.contains(LEAKED),
        "{what}: the token is not echoed"
    );
    assert!(!res.body.contains("leaked"), "{what}: {}", res.body);
    assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"), "{what}");
    assert_eq!(
        app.token_request_count(),
        before,
        "{what}: no token request"
    );
    for value in res.new_session_values() {
        app.assert_not_logged_in(&Jar::with_session(&value)).await;
    }
}

#[tokio::test]
async fn implicit_response_at_the_callback_is_refused_without_token_request_or_session() {
    let app = App::start().await;
    let (jar, callback) = app.until_callback(None).await;
    let state = param(&callback, "state").unwrap();
    let iss = param(&callback, "iss").unwrap_or_default();
    let base = app.callback_url();
    let cases = [
        // response_type=token, answered in the query (response_mode=query)
        (
            "access token, no code",
            format!(
                "{base}?access_token={LEAKED}&token_type=Bearer&expires_in=3600&state={state}&iss={iss}"
            ),
        ),
        // response_type=id_token token
        (
            "id token and access token, no code",
            format!(
                "{base}?id_token={LEAKED}&access_token={LEAKED}&token_type=Bearer&state={state}"
            ),
        ),
        (
            "id token alone",
            format!("{base}?id_token={LEAKED}&state={state}"),
        ),
        // A hybrid response (code id_token token): the valid code is not redeemed either.
        (
            "hybrid: a valid code with tokens",
            format!("{callback}&id_token={LEAKED}&access_token={LEAKED}&token_type=Bearer"),
        ),
    ];
    for (what, url) in cases {
        let before = app.token_request_count();
        let mut sent = jar.clone();
        let res = app.callback(&url, &mut sent).await;
        assert_implicit_refused(&app, what, &res, before).await;
        app.assert_not_logged_in(&sent).await;
    }
    assert_eq!(app.token_request_count(), 0);
    app.assert_not_logged_in(&jar).await;
}

#[tokio::test]
async fn callback_without_parameters_says_implicit_fragments_are_not_accepted() {
    // The implicit flow answers in the URL fragment, which the browser never sends: the
    // callback arrives without any parameter.
    let app = App::start().await;
    let (jar, _callback) = app.until_callback(None).await;
    let mut sent = jar.clone();
    let res = app.callback(&app.callback_url(), &mut sent).await;
    assert_eq!(res.status, 400, "{}", res.body);
    assert!(
        res.body.contains("no parameters")
            && res.body.contains("implicit flow")
            && res.body.contains("authorization code flow"),
        "{}",
        res.body
    );
    assert_eq!(app.token_request_count(), 0);
    app.assert_not_logged_in(&sent).await;
}

#[tokio::test]
async fn login_start_ignores_response_type_and_grant_type_in_its_query() {
    // `/auth/login` takes only `return_to`, `login_hint` and `prompt` from the browser (an
    // allow-list): a `response_type=token` or `grant_type` there does not reach the
    // provider; the request stays the code flow.
    let app = App::start().await;
    let mut jar = Jar::default();
    let res = app
        .nav(
            "/auth/login?response_type=token&response_mode=fragment&grant_type=password",
            &mut jar,
        )
        .await;
    assert_eq!(res.status, 303, "{}", res.body);
    let params = query_params(res.location().unwrap());
    let values = |name: &str| -> Vec<&str> {
        params
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(values("response_type"), ["code"]);
    assert!(values("response_mode").is_empty());
    assert!(values("grant_type").is_empty());
}
