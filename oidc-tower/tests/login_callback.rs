//! The authorization request, the callback and the token exchange of `LoginLayer`, black-box:
//! an axum app and a hostile `oidc-testing` provider. Tests are named after the CB cases of
//! `SECURITY-CASES.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_testing::{CallbackIss, Failure, RecordedTokenRequest, find_param};
use serde_json::json;

use login_common::{App, Auth, Builder, CLIENT_ID, Jar, SECRET, param, with_param};

fn s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        verifier.as_bytes(),
    ))
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn is_unreserved(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Asserts a 400 "not bound to this browser" answer with no token request since `before`
/// and no authenticated session cookie.
async fn assert_unbound(app: &App, what: &str, res: &login_common::Resp, before: usize) {
    assert_eq!(res.status, 400, "{what}: {}", res.body);
    assert!(res.location().is_none(), "{what}: no redirect");
    assert_eq!(
        app.token_request_count(),
        before,
        "{what}: no token request"
    );
    assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
    for value in res.new_session_values() {
        app.assert_not_logged_in(&Jar::with_session(&value)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// CB-01: what the provider receives

#[tokio::test]
async fn cb_01_authorization_and_token_requests_are_well_formed() {
    let app = App::start().await;
    app.login().await;
    app.login().await;

    let auths = app.op.authorization_requests();
    let tokens = app.op.token_requests();
    assert_eq!(auths.len(), 2);
    assert_eq!(tokens.len(), 2);
    for (a, t) in auths.iter().zip(&tokens) {
        let get = |name: &str| find_param(a, name).unwrap_or_else(|| panic!("{name} in {a:?}"));
        let mut names: Vec<&str> = a.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(names.len(), before, "no parameter twice: {a:?}");

        assert_eq!(get("response_type"), "code");
        assert_eq!(get("client_id"), CLIENT_ID);
        assert_eq!(get("redirect_uri"), app.callback_url());
        let scopes: Vec<&str> = get("scope").split(' ').collect();
        assert!(scopes.contains(&"openid"), "{scopes:?}");
        assert_eq!(get("code_challenge_method"), "S256");
        for front_channel_token in ["access_token", "id_token", "token", "response_mode"] {
            assert!(
                find_param(a, front_channel_token).is_none(),
                "{front_channel_token}"
            );
        }
        for random in ["state", "nonce"] {
            let value = get(random);
            assert!(value.len() >= 22, "{random} has ≥ 128 bits: {value}");
            assert!(is_base64url(value), "{random}: {value}");
        }
        assert_ne!(get("state"), get("nonce"));

        let challenge = get("code_challenge");
        let verifier = t
            .param("code_verifier")
            .expect("the token request sends the verifier");
        assert!((43..=128).contains(&verifier.len()), "{verifier}");
        assert!(is_unreserved(verifier), "{verifier}");
        assert_eq!(s256(verifier), challenge, "S256 challenge of the verifier");

        assert_eq!(t.param("grant_type"), Some("authorization_code"));
        assert_eq!(t.param("redirect_uri"), Some(app.callback_url().as_str()));
        assert!(t.param("code").is_some_and(|c| !c.is_empty()));
    }
    let fresh = |name: &str| {
        assert_ne!(
            find_param(&auths[0], name),
            find_param(&auths[1], name),
            "{name} is fresh per login"
        );
    };
    fresh("state");
    fresh("nonce");
    fresh("code_challenge");
    assert_ne!(
        tokens[0].param("code_verifier"),
        tokens[1].param("code_verifier")
    );
}

fn assert_single(t: &RecordedTokenRequest, name: &str) {
    assert_eq!(
        t.params.iter().filter(|(k, _)| k == name).count(),
        1,
        "{name} once in {:?}",
        t.params
    );
}

#[tokio::test]
async fn cb_01_client_secret_basic_form_encodes_id_and_secret() {
    // Characters that Basic credentials must form-urlencode (RFC 6749 §2.3.1): the provider
    // decodes them, so an unencoded `+` or `:` would fail its client authentication.
    let id = "web:app+1";
    let secret = "p+s/w:rd%20=&x";
    let app = Builder::new()
        .client_id(id)
        .auth(Auth::Basic(secret.to_owned()))
        .start()
        .await;
    app.login().await;
    let t = &app.op.token_requests()[0];
    assert!(t.basic_auth);
    assert_eq!(t.basic_client_id.as_deref(), Some(id));
    assert_eq!(t.basic_client_secret.as_deref(), Some(secret));
    assert!(t.param("client_secret").is_none(), "no secret in the body");
}

#[tokio::test]
async fn cb_01_client_secret_post_sends_id_and_secret_in_the_body() {
    let app = Builder::new()
        .auth(Auth::Post(SECRET.to_owned()))
        .start()
        .await;
    app.login().await;
    let t = &app.op.token_requests()[0];
    assert!(!t.basic_auth);
    assert_single(t, "client_id");
    assert_single(t, "client_secret");
    assert_eq!(t.param("client_id"), Some(CLIENT_ID));
    assert_eq!(t.param("client_secret"), Some(SECRET));
}

#[tokio::test]
async fn cb_01_public_client_sends_only_its_id() {
    let app = Builder::new().auth(Auth::Public).start().await;
    app.login().await;
    let t = &app.op.token_requests()[0];
    assert!(!t.basic_auth);
    assert_single(t, "client_id");
    assert_eq!(t.param("client_id"), Some(CLIENT_ID));
    assert!(t.param("client_secret").is_none());
    assert!(t.param("code_verifier").is_some());
}

// ---------------------------------------------------------------------------------------------
// CB-02, CB-03: callbacks not bound to this browser's transaction

#[tokio::test]
async fn cb_02_unbound_callbacks_are_refused_without_a_token_request() {
    let app = App::start().await;
    type Forge = fn(&str, &Jar) -> (String, Jar);
    let cases: [(&str, Forge); 7] = [
        ("state missing", |cb, jar| {
            (with_param(cb, "state", None), jar.clone())
        }),
        ("attacker's state", |cb, jar| {
            (
                with_param(cb, "state", Some("Q2FsbGJhY2stb2YtYW4tYXR0YWNrZXI")),
                jar.clone(),
            )
        }),
        ("empty state", |cb, jar| {
            (with_param(cb, "state", Some("")), jar.clone())
        }),
        ("no session cookie", |cb, _| (cb.to_owned(), Jar::default())),
        ("state twice (other value)", |cb, jar| {
            (format!("{cb}&state=other"), jar.clone())
        }),
        ("state twice (same value)", |cb, jar| {
            let state = param(cb, "state").unwrap();
            (format!("{cb}&state={state}"), jar.clone())
        }),
        ("code twice", |cb, jar| {
            (format!("{cb}&code=other"), jar.clone())
        }),
    ];
    for (what, forge) in cases {
        let (jar, callback) = app.until_callback(None).await;
        let (url, mut sent) = forge(&callback, &jar);
        let before = app.token_request_count();
        let res = app.callback(&url, &mut sent).await;
        assert_unbound(&app, what, &res, before).await;
        assert!(res.new_session_values().is_empty(), "{what}");
        app.assert_not_logged_in(&sent).await;

        // The browser's own transaction is untouched: its real callback still works.
        let mut jar = jar;
        let ok = app.callback(&callback, &mut jar).await;
        assert_eq!(ok.status, 303, "{what}: the genuine callback afterwards");
        app.assert_logged_in(&jar).await;
    }
}

#[tokio::test]
async fn cb_02_login_csrf_with_the_attackers_callback_is_refused() {
    let app = App::start().await;
    // The attacker starts a login in their own browser and stops at the callback ...
    let (_attacker, attackers_callback) = app.until_callback(None).await;
    // ... and makes the victim's browser (with or without its own pending login) load it.
    let (victim_with_login, _) = app.until_callback(None).await;
    for (what, mut victim) in [
        ("victim without a session", Jar::default()),
        ("victim with its own pending login", victim_with_login),
    ] {
        let before = app.token_request_count();
        let res = app.callback(&attackers_callback, &mut victim).await;
        assert_unbound(&app, what, &res, before).await;
        app.assert_not_logged_in(&victim).await;
    }
    assert_eq!(app.token_request_count(), 0);
}

#[tokio::test]
async fn cb_03_replayed_callback_is_refused_and_the_code_redeemed_once() {
    let app = App::start().await;
    let (pre, callback) = app.until_callback(None).await;
    let mut jar = pre.clone();
    let ok = app.callback(&callback, &mut jar).await;
    assert_eq!(ok.status, 303);
    assert_eq!(app.token_request_count(), 1);

    for (what, mut replay) in [
        ("replay in the same browser (history)", jar.clone()),
        ("replay with the pre-login cookie", pre.clone()),
        ("replay without cookies", Jar::default()),
    ] {
        let res = app.callback(&callback, &mut replay).await;
        assert_unbound(&app, what, &res, 1).await;
    }
    assert_eq!(
        app.token_request_count(),
        1,
        "the code was never redeemed twice"
    );
}

#[tokio::test]
async fn cb_03_expired_transaction_is_refused_with_a_start_again_link() {
    let app = Builder::new()
        .layer(|l| l.with_transaction_lifetime(Duration::from_secs(1)))
        .start()
        .await;
    // A browser whose session outlives its transactions (a logged-in user signing in again):
    // the expired transaction is found, consumed and refused.
    let (mut pre, _) = app.login_to(None).await;
    let before = app.assert_logged_in(&pre).await;
    let authorize = app.begin(&mut pre, None).await;
    let callback = app.authorize(&authorize).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for (what, page) in [
        ("expired", "took too long. Please start again"),
        ("expired, second try (consumed)", "does not belong"),
    ] {
        let mut jar = pre.clone();
        let res = app.callback(&callback, &mut jar).await;
        assert_eq!(res.status, 400, "{what}: {}", res.body);
        assert!(res.location().is_none(), "{what}: no redirect");
        assert_eq!(app.token_request_count(), 1, "{what}: no token request");
        assert_eq!(res.header("cache-control"), Some("no-store"), "{what}");
        assert!(res.body.contains(page), "{what}: {}", res.body);
        assert!(res.body.contains("href=\"/auth/login\""), "{}", res.body);
        // No new login: the session (its id, its user) is the one it was.
        for value in res.new_session_values() {
            assert_eq!(Some(value.as_str()), pre.session(), "{what}");
        }
        assert_eq!(app.assert_logged_in(&jar).await, before, "{what}");
    }

    // A browser that was not logged in: its session ended with its transactions (SES-03), so
    // the late callback finds nothing, and says so with a link to sign in again.
    let (fresh, callback) = app.until_callback(None).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut jar = fresh.clone();
    let res = app.callback(&callback, &mut jar).await;
    assert_unbound(&app, "expired with its session", &res, 1).await;
    assert!(res.body.contains("has expired"), "{}", res.body);
    assert!(res.body.contains("href=\"/auth/login\""), "{}", res.body);
    app.assert_not_logged_in(&jar).await;
}

// ---------------------------------------------------------------------------------------------
// CB-04, CB-05: errors and RFC 9207 `iss` in the authorization response

#[tokio::test]
async fn cb_04_provider_error_with_valid_state_is_escaped_401() {
    let app = App::start().await;
    app.op.set_authorization_error(
        Some("access_denied"),
        Some("<script>alert('pwned')</script>"),
    );
    let (pre, callback) = app.until_callback(None).await;
    assert_eq!(param(&callback, "error").as_deref(), Some("access_denied"));
    let mut after = pre.clone();
    let res = app.callback(&callback, &mut after).await;
    app.assert_failed_login("access_denied", 401, &res, &pre, &after, &callback)
        .await;
    assert!(!res.body.contains("<script>"), "{}", res.body);
    assert!(!res.body.contains("alert('pwned')"), "{}", res.body);
    assert_eq!(app.token_request_count(), 0, "no token request");
}

#[tokio::test]
async fn cb_04_provider_error_with_invalid_state_is_400() {
    let app = App::start().await;
    app.op
        .set_authorization_error(Some("access_denied"), Some("<script>x</script>"));
    let (jar, callback) = app.until_callback(None).await;
    for (what, url, mut sent) in [
        (
            "forged state",
            with_param(&callback, "state", Some("Zm9yZ2VkLXN0YXRlLXZhbHVlLTEyMw")),
            jar.clone(),
        ),
        (
            "no state",
            with_param(&callback, "state", None),
            jar.clone(),
        ),
        ("no session", callback.clone(), Jar::default()),
    ] {
        let res = app.callback(&url, &mut sent).await;
        assert_unbound(&app, what, &res, 0).await;
        assert!(!res.body.contains("<script>"), "{what}");
    }
}

#[tokio::test]
async fn cb_05_wrong_or_missing_iss_parameter_is_refused() {
    for (what, iss) in [
        ("another issuer", Some("https://evil.example")),
        ("trailing slash", None),
        ("omitted although advertised", Some("")),
    ] {
        let app = App::start().await;
        let value = match iss {
            Some("") => CallbackIss::Omit,
            Some(other) => CallbackIss::Value(other.to_owned()),
            None => CallbackIss::Value(format!("{}/", app.op.issuer())),
        };
        app.op.set_callback_iss(value);
        let (mut jar, callback) = app.until_callback(None).await;
        let res = app.callback(&callback, &mut jar).await;
        assert_unbound(&app, what, &res, 0).await;
        app.assert_not_logged_in(&jar).await;
    }
}

#[tokio::test]
async fn cb_05_iss_is_compared_even_when_not_advertised() {
    let app = App::start().await;
    app.op
        .set_discovery_member("authorization_response_iss_parameter_supported", None);
    app.op
        .set_callback_iss(CallbackIss::Value("https://evil.example".to_owned()));
    let (mut jar, callback) = app.until_callback(None).await;
    let res = app.callback(&callback, &mut jar).await;
    assert_unbound(&app, "present, not advertised, wrong", &res, 0).await;

    // Not advertised and absent: accepted.
    app.op.set_callback_iss(CallbackIss::Omit);
    let (jar, res) = app.login_to(Some("/app")).await;
    assert_eq!(res.location(), Some("/app"));
    app.assert_logged_in(&jar).await;
}

// ---------------------------------------------------------------------------------------------
// CB-07, CB-08: code injection; PKCE and nonce both enforced

#[tokio::test]
async fn cb_07a_injected_code_fails_pkce_at_an_honest_provider() {
    let app = App::start().await;
    let mut victim = Jar::default();
    let authorize = app.begin(&mut victim, None).await;
    let state = param(&authorize, "state").unwrap();
    // The attacker's own code, bound to the attacker's PKCE challenge and nonce.
    let attacker_verifier = "attacker-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
    let code = app.op.issue_code(
        CLIENT_ID,
        &app.callback_url(),
        "attacker",
        Some("attacker-nonce"),
        &s256(attacker_verifier),
    );
    let injected = format!(
        "{}?{}",
        app.callback_url(),
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("code", &code)
            .append_pair("state", &state)
            .append_pair("iss", &app.op.issuer())
            .finish()
    );
    let pre = victim.clone();
    let res = app.callback(&injected, &mut victim).await;
    app.assert_failed_login("injected code, PKCE", 401, &res, &pre, &victim, &injected)
        .await;
    assert_eq!(app.token_request_count(), 1);
}

#[tokio::test]
async fn cb_07b_injected_code_fails_the_nonce_when_the_provider_ignores_pkce() {
    // An injected code without PKCE, carrying the attacker's nonce.
    let app = App::start().await;
    app.op.ignore_pkce(true);
    let mut victim = Jar::default();
    let authorize = app.begin(&mut victim, None).await;
    let state = param(&authorize, "state").unwrap();
    let code = app.op.issue_code(
        CLIENT_ID,
        &app.callback_url(),
        "attacker",
        Some("attacker-nonce"),
        "",
    );
    let injected = format!(
        "{}?code={code}&state={state}&iss={}",
        app.callback_url(),
        url::form_urlencoded::byte_serialize(app.op.issuer().as_bytes()).collect::<String>()
    );
    let pre = victim.clone();
    let res = app.callback(&injected, &mut victim).await;
    app.assert_failed_login(
        "injected code, no PKCE",
        401,
        &res,
        &pre,
        &victim,
        &injected,
    )
    .await;
    assert_eq!(
        app.token_request_count(),
        1,
        "the provider redeemed the code"
    );

    // The same downgrade through the normal flow with the attacker's nonce.
    let app = App::start().await;
    app.op.ignore_pkce(true);
    app.op.set_nonce_override(Some("attacker-nonce".to_owned()));
    app.expect_failed_login("PKCE ignored, attacker's nonce", 401)
        .await;
}

#[tokio::test]
async fn cb_08_pkce_state_and_nonce_without_advertised_pkce_support() {
    let app = App::start().await;
    app.op
        .set_discovery_member("code_challenge_methods_supported", None);
    assert!(
        app.op
            .discovery_document()
            .get("code_challenge_methods_supported")
            .is_none()
    );
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
    let a = &app.op.authorization_requests()[0];
    assert_eq!(find_param(a, "code_challenge_method"), Some("S256"));
    assert!(find_param(a, "code_challenge").is_some());
    assert!(find_param(a, "state").is_some());
    assert!(find_param(a, "nonce").is_some());

    // State is still enforced ...
    let (mut jar, callback) = app.until_callback(None).await;
    let before = app.token_request_count();
    let res = app
        .callback(
            &with_param(&callback, "state", Some("b3RoZXItc3RhdGUtdmFsdWUtMTIz")),
            &mut jar,
        )
        .await;
    assert_unbound(&app, "wrong state", &res, before).await;
    // ... and so is the nonce.
    app.op
        .set_nonce_override(Some("someone-elses-nonce".to_owned()));
    app.expect_failed_login("wrong nonce", 401).await;
}

// ---------------------------------------------------------------------------------------------
// CB-10: token endpoint failures

#[tokio::test]
async fn cb_10_oauth_error_from_the_token_endpoint_is_401() {
    let app = App::start().await;
    app.op.set_code_lifetime(-1);
    app.expect_failed_login("invalid_grant (expired code)", 401)
        .await;
    assert_eq!(app.token_request_count(), 1);
}

#[tokio::test]
async fn cb_10_broken_token_responses_are_502() {
    type Break = fn(&oidc_testing::TestProvider);
    let cases: [(&str, Break); 10] = [
        ("500", |op| op.fail_token(Failure::Status(500))),
        ("503", |op| op.fail_token(Failure::Status(503))),
        ("404, not an OAuth error", |op| {
            op.fail_token(Failure::Status(404))
        }),
        ("not JSON", |op| op.fail_token(Failure::Garbage)),
        ("redirect to another host", |op| {
            op.fail_token(Failure::Redirect("http://127.0.0.1:9/token".to_owned()));
        }),
        ("2 MiB body", |op| {
            op.fail_token(Failure::Huge(2 * 1024 * 1024))
        }),
        ("access_token missing", |op| {
            op.mutate_token_response(|b| {
                b.remove("access_token");
            });
        }),
        ("token_type missing", |op| {
            op.mutate_token_response(|b| {
                b.remove("token_type");
            });
        }),
        ("token_type mac", |op| {
            op.mutate_token_response(|b| {
                b.insert("token_type".to_owned(), json!("mac"));
            });
        }),
        ("access_token not a string", |op| {
            op.mutate_token_response(|b| {
                b.insert("access_token".to_owned(), json!(42));
            });
        }),
    ];
    for (what, break_it) in cases {
        let app = App::start().await;
        break_it(&app.op);
        app.expect_failed_login(what, 502).await;
        assert_eq!(app.token_request_count(), 1, "{what}");
    }
}

#[tokio::test]
async fn cb_10_error_member_in_a_200_token_response_gives_no_session() {
    for (what, keep_tokens, status) in [
        // No access_token nor token_type: a malformed success response.
        ("200 with only an error", false, 502),
        // Tokens and an OAuth error: the error wins.
        ("200 with an error and tokens", true, 401),
    ] {
        let app = App::start().await;
        app.op.mutate_token_response(move |b| {
            if !keep_tokens {
                b.clear();
            }
            b.insert("error".to_owned(), json!("invalid_grant"));
        });
        app.expect_failed_login(what, status).await;
    }
}

#[tokio::test]
async fn cb_10_silent_token_endpoint_is_504() {
    let app = Builder::new()
        .http_timeouts(Duration::from_millis(100), Duration::from_millis(500))
        .start()
        .await;
    app.op.fail_token(Failure::Hang);
    app.expect_failed_login("hang", 504).await;
}

// ---------------------------------------------------------------------------------------------
// CB-12: no leakage of code and state

#[tokio::test]
async fn cb_12_callback_answers_a_bare_no_store_303() {
    let app = App::start().await;
    let (_, res) = app.login_to(Some("/app?x=1")).await;
    assert_eq!(res.status, 303);
    assert_eq!(
        res.location(),
        Some("/app?x=1"),
        "a clean URL: no code, no state"
    );
    assert_eq!(res.body, "", "no body");
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));

    // Error answers of the callback too.
    let (mut jar, callback) = app.until_callback(None).await;
    let res = app
        .callback(&with_param(&callback, "state", None), &mut jar)
        .await;
    assert_eq!(res.status, 400);
    assert_eq!(res.header("cache-control"), Some("no-store"));
    assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
}
