//! No token, code or secret in the logs of a whole login: every event of every target is
//! captured at TRACE level during a login, requests, a refresh and a logout, and searched for
//! each secret the test saw.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod log_capture;
mod login_common;

use std::str::FromStr as _;

use log_capture::Capture;
use login_common::{App, Builder, Jar, SECRET, param};
use serde_json::Value;
use tower_sessions::SessionStore as _;
use tower_sessions::session::Id;

/// Every string of at least 12 characters in a JSON value.
fn long_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) if s.len() >= 12 => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| long_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| long_strings(v, out)),
        _ => {}
    }
}

#[tokio::test]
async fn no_token_code_or_secret_in_the_logs_of_a_full_login() {
    let (capture, _guard) = Capture::start(tracing::Level::TRACE);

    // Short-lived access tokens, so that a request after the login refreshes them.
    let app: App = Builder::new()
        .layer(|l| l.with_refresh_margin(std::time::Duration::from_secs(3600)))
        .start()
        .await;
    let (mut jar, callback) = app.until_callback(Some("/me")).await;
    let code = param(&callback, "code").unwrap();
    let state = param(&callback, "state").unwrap();
    let res = app.callback(&callback, &mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);

    let id = Id::from_str(jar.session().unwrap()).unwrap();
    let before = app.store.load(&id).await.unwrap().unwrap();
    let mut secrets = vec![code, state, SECRET.to_owned()];
    for value in before.data.values() {
        long_strings(value, &mut secrets);
    }
    // The refresh margin makes this request refresh the tokens.
    app.assert_logged_in(&jar).await;
    assert!(app.token_request_count() >= 2, "a refresh happened");
    let after = app.store.load(&id).await.unwrap().unwrap();
    for value in after.data.values() {
        long_strings(value, &mut secrets);
    }
    let logout = app.logout(&mut jar).await;
    assert_eq!(logout.status, 303);
    app.assert_not_logged_in(&jar).await;

    let logs = capture.text();
    assert!(logs.contains("login"), "the capture works: {logs}");
    assert!(logs.contains("logout"), "the capture works: {logs}");
    // The tokens themselves are among the secrets (not only their claims).
    assert!(
        secrets
            .iter()
            .any(|s| s.matches('.').count() == 2 && s.len() > 100),
        "a JWT was collected: {secrets:?}"
    );
    let names = ["sub", "email", "iss", "aud"];
    for secret in &secrets {
        // Claims such as the issuer URL or the subject may be logged; tokens and their
        // parts, codes and secrets may not.
        let is_claim_value = after
            .data
            .values()
            .filter_map(|v| v.get("claims"))
            .any(|claims| {
                names
                    .iter()
                    .any(|n| claims.get(n) == Some(&Value::String(secret.clone())))
            });
        if is_claim_value || secret.starts_with("http") {
            continue;
        }
        assert!(
            !logs.contains(secret.as_str()),
            "the logs contain a secret ({} chars, starting {:?})",
            secret.len(),
            &secret[..4]
        );
        for part in secret.split('.').filter(|p| p.len() >= 16) {
            assert!(!logs.contains(part), "the logs contain part of a token");
        }
    }
}

/// Nothing a request carries reaches a log line unescaped (issue 11, item 10): a callback's
/// `error` and `error_description`, the request path and the login parameters, each with an
/// encoded newline, carriage return and escape character, are logged (if at all) escaped, so
/// that no forged line appears in the log.
#[tokio::test]
async fn request_data_never_reaches_a_log_line_unescaped() {
    let (capture, _guard) = Capture::start(tracing::Level::TRACE);

    let app = App::start().await;
    const INJECT: &str = "%0AFORGED%0D%0AFORGED%1B[31mFORGED";
    // The provider's error for a transaction of this browser: logged as the failure's cause.
    let (mut jar, callback) = app.until_callback(None).await;
    let state = param(&callback, "state").unwrap();
    let iss = param(&callback, "iss").unwrap();
    let denied = format!(
        "{}?{}&error=access_denied{INJECT}&error_description=no{INJECT}",
        app.callback_url(),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("state", &state)
            .append_pair("iss", &iss)
            .finish()
    );
    let res = app.callback(&denied, &mut jar).await;
    assert_eq!(res.status, 401, "{}", res.body);
    // The same without a transaction (unbound callback), and with a path that carries it.
    let unbound = format!(
        "{}?error=x{INJECT}&error_description=y{INJECT}&state=z{INJECT}",
        app.callback_url()
    );
    assert_eq!(
        app.callback(&unbound, &mut Jar::default()).await.status,
        400
    );
    let login =
        format!("/auth/login?return_to=/x{INJECT}&login_hint=a{INJECT}&prompt=login{INJECT}");
    app.nav(&login, &mut Jar::default()).await;
    app.nav(&format!("/me{INJECT}"), &mut Jar::default()).await;
    app.api(
        &format!("/auth/callback{INJECT}?code=c{INJECT}"),
        &mut Jar::default(),
    )
    .await;

    let logs = capture.text();
    // The capture saw the refusal and its (escaped) cause.
    assert!(
        logs.contains(r#"access_denied\nFORGED\r\nFORGED\u{1b}[31mFORGED"#),
        "the provider's error is logged, escaped: {logs}"
    );
    for line in logs.lines() {
        assert!(
            !line.trim_start().starts_with("FORGED"),
            "a forged log line: {line:?}\nin {logs}"
        );
        assert!(
            !line.contains('\r') && !line.contains('\u{1b}'),
            "a raw control character in a log line: {line:?}"
        );
    }
}
