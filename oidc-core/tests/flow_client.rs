//! `OidcClient` against an in-process provider (`oidc-testing`): the exact `FlowError` of each
//! failure and its `kind` (the status an HTTP layer answers with). Tests are named after the
//! case ids of `SECURITY-CASES.md`; the browser-level behaviour is tested through `LoginLayer`
//! in `oidc-tower/tests/login_*.rs`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider};
use oidc_core::error::{FlowError, FlowErrorKind, HttpError};
use oidc_core::flow::{AuthorizationResponse, AuthorizeOptions, OidcClient, TokenSet, Transaction};
use oidc_core::http::ReqwestClient;
use oidc_testing::{CallbackIss, ClientRegistration, Failure, TestProvider};
use serde_json::json;

const CLIENT_ID: &str = "flow-app";
const SECRET: &str = "flow-secret";

async fn setup() -> (TestProvider, OidcClient) {
    setup_with(None).await
}

async fn setup_with(timeouts: Option<(Duration, Duration)>) -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::confidential(CLIENT_ID, SECRET, REDIRECT_URI)
            .add_post_logout_redirect_uri("http://127.0.0.1:3999/"),
    );
    op.set_auto_login(Some("user-1"));
    (op.clone(), client_for(&op, timeouts))
}

fn client_for(op: &TestProvider, timeouts: Option<(Duration, Duration)>) -> OidcClient {
    let mut builder = client_provider(op);
    if let Some((connect, total)) = timeouts {
        builder = builder.with_http_client(Arc::new(
            ReqwestClient::with_timeouts(connect, total).unwrap(),
        ));
    }
    OidcClient::new(builder.build().unwrap(), CLIENT_ID, REDIRECT_URI)
        .unwrap()
        .with_client_secret(SECRET)
}

/// Starts a login and lets the provider answer it: the transaction and the callback query.
async fn until_callback(client: &OidcClient) -> (Transaction, String) {
    let (tx, res) = authorize_at_provider(client).await;
    let location = res.headers()["location"].to_str().unwrap();
    assert!(location.starts_with(REDIRECT_URI), "{location}");
    (tx, callback_query(&res).to_owned())
}

async fn login(client: &OidcClient) -> Result<TokenSet, FlowError> {
    let (tx, query) = until_callback(client).await;
    client
        .complete(&tx, AuthorizationResponse::from_query(&query).unwrap())
        .await
}

/// Asserts that `err` matches the pattern and is of the given `FlowErrorKind`.
macro_rules! assert_flow_error {
    ($err:expr, $pattern:pat $(if $guard:expr)?, $kind:expr, $what:expr) => {{
        let err = &$err;
        assert!(matches!(err, $pattern $(if $guard)?), "{}: {err:?}", $what);
        assert_eq!(err.kind(), $kind, "{}: {err:?}", $what);
    }};
}

/// Fetches the userinfo for the login that gave `tokens`.
async fn userinfo(
    client: &OidcClient,
    tokens: &TokenSet,
) -> Result<serde_json::Map<String, serde_json::Value>, FlowError> {
    client
        .userinfo(tokens.access_token(), tokens.subject())
        .await
}

fn replace_param(query: &str, name: &str, value: Option<&str>) -> String {
    let mut pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .filter(|(k, _)| k != name)
        .collect();
    if let Some(value) = value {
        pairs.push((name.to_owned(), value.to_owned()));
    }
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn flow_cb_01_round_trip_gives_a_verified_token_set() {
    let (op, client) = setup().await;
    let options = AuthorizeOptions::new().with_return_to("//evil.example");
    let (_, tx) = client.authorize(&options).await.unwrap();
    assert_eq!(tx.return_to(), "/", "sanitized");
    assert_eq!(tx.issuer(), op.issuer());

    let tokens = login(&client).await.unwrap();
    assert_eq!(tokens.subject(), "user-1");
    assert_eq!(tokens.id_claims()["aud"], CLIENT_ID);
    assert!(!tokens.access_token().secret().is_empty());
    assert!(tokens.refresh_token().is_some());
    assert!(tokens.expires_at().is_some());
    assert_eq!(tokens.scope(), Some("openid profile email"));
    assert!(!format!("{tokens:?}").contains(tokens.access_token().secret()));
    let t = &op.token_requests()[0];
    assert!(t.basic_auth);
    assert_eq!(t.param("grant_type"), Some("authorization_code"));
}

#[tokio::test]
async fn flow_cb_02_unbound_callbacks_send_no_token_request() {
    let (op, client) = setup().await;
    let (tx, query) = until_callback(&client).await;

    let dup = format!("{query}&state=other");
    let err = AuthorizationResponse::from_query(&dup).unwrap_err();
    assert_flow_error!(
        err,
        FlowError::Unbound(_),
        FlowErrorKind::Unbound,
        "two states"
    );

    for (what, q) in [
        ("no state", replace_param(&query, "state", None)),
        ("other state", replace_param(&query, "state", Some("other"))),
        (
            "state of another length",
            replace_param(&query, "state", Some(&format!("{}x", tx.state()))),
        ),
    ] {
        let err = client
            .complete(&tx, AuthorizationResponse::from_query(&q).unwrap())
            .await
            .unwrap_err();
        assert_flow_error!(err, FlowError::Unbound(_), FlowErrorKind::Unbound, what);
    }
    assert!(op.token_requests().is_empty());
    // The genuine response still completes.
    client
        .complete(&tx, AuthorizationResponse::from_query(&query).unwrap())
        .await
        .unwrap();
}

#[tokio::test]
async fn flow_cb_04_error_response_is_rejected_without_echoing_the_description() {
    let (op, client) = setup().await;
    op.set_authorization_error(Some("access_denied"), Some("<script>alert(1)</script>"));
    let err = login(&client).await.unwrap_err();
    match &err {
        FlowError::AuthorizationDenied { error, description } => {
            assert_eq!(error, "access_denied");
            assert_eq!(description.as_deref(), Some("<script>alert(1)</script>"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(err.kind(), FlowErrorKind::Rejected);
    assert!(!err.to_string().contains("script"));
    assert!(op.token_requests().is_empty());
}

#[tokio::test]
async fn flow_cb_05_iss_parameter_is_checked_before_the_token_request() {
    for iss in [
        CallbackIss::Value("https://evil.example".to_owned()),
        CallbackIss::Omit,
    ] {
        let (op, client) = setup().await;
        op.set_callback_iss(iss.clone());
        let err = login(&client).await.unwrap_err();
        assert!(matches!(err, FlowError::Unbound(_)), "{iss:?}: {err:?}");
        assert!(op.token_requests().is_empty(), "{iss:?}");
    }
}

#[tokio::test]
async fn flow_cb_06_transaction_of_another_provider_is_unbound() {
    let (op_a, client_a) = setup().await;
    let (op_b, client_b) = setup().await;
    let (tx_a, query_a) = until_callback(&client_a).await;
    let err = client_b
        .complete(&tx_a, AuthorizationResponse::from_query(&query_a).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::Unbound(_)), "{err:?}");
    assert!(op_a.token_requests().is_empty());
    assert!(op_b.token_requests().is_empty());
}

#[tokio::test]
async fn flow_cb_10_token_endpoint_failures_map_to_their_kind() {
    // An OAuth error: 401, and `invalid_grant` says the grant is gone.
    let (op, client) = setup().await;
    op.set_code_lifetime(-1);
    let err = login(&client).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    assert_eq!(err.kind(), FlowErrorKind::Rejected);

    // An `error` member in a 200 response with tokens.
    let (op, client) = setup().await;
    op.mutate_token_response(|b| {
        b.insert("error".to_owned(), json!("server_error"));
    });
    let err = login(&client).await.unwrap_err();
    assert_flow_error!(
        err,
        FlowError::TokenEndpoint { error } if error == "server_error",
        FlowErrorKind::Rejected,
        "error member"
    );

    // Malformed: 502.
    for failure in [
        Failure::Garbage,
        Failure::Status(500),
        Failure::Redirect("http://127.0.0.1:9/".to_owned()),
        Failure::Huge(2 * 1024 * 1024),
    ] {
        let (op, client) = setup().await;
        op.fail_token(failure.clone());
        let err = login(&client).await.unwrap_err();
        assert_eq!(
            err.kind(),
            FlowErrorKind::ProviderFailure,
            "{failure:?}: {err:?}"
        );
    }
    let (op, client) = setup().await;
    op.mutate_token_response(|b| {
        b.insert("token_type".to_owned(), json!("mac"));
    });
    let err = login(&client).await.unwrap_err();
    assert!(matches!(err, FlowError::InvalidResponse(_)), "{err:?}");

    // Silent: 504.
    let (op, client) = setup_with(Some((
        Duration::from_millis(100),
        Duration::from_millis(500),
    )))
    .await;
    op.fail_token(Failure::Hang);
    let err = login(&client).await.unwrap_err();
    assert_flow_error!(
        err,
        FlowError::Http(HttpError::Timeout),
        FlowErrorKind::Timeout,
        "silent token endpoint"
    );
}

#[tokio::test]
async fn flow_idt_15_missing_id_token_is_rejected() {
    let (op, client) = setup().await;
    op.mutate_token_response(|b| {
        b.remove("id_token");
    });
    let err = login(&client).await.unwrap_err();
    assert_flow_error!(
        err,
        FlowError::MissingIdToken,
        FlowErrorKind::Rejected,
        "no id_token"
    );
}

#[tokio::test]
async fn flow_idt_14_refresh_keeps_the_identity() {
    let (op, client) = setup().await;
    let tokens = login(&client).await.unwrap();
    let refreshed = client.refresh(&tokens).await.unwrap();
    assert_eq!(refreshed.subject(), "user-1");
    assert_ne!(
        refreshed.refresh_token().unwrap().secret(),
        tokens.refresh_token().unwrap().secret(),
        "rotated"
    );
    assert_ne!(refreshed.id_token().secret(), tokens.id_token().secret());

    // A refresh response without an ID token keeps the previous one.
    op.mutate_token_response(|b| {
        b.remove("id_token");
    });
    let again = client.refresh(&refreshed).await.unwrap();
    assert_eq!(again.id_token().secret(), refreshed.id_token().secret());
    assert_eq!(again.id_claims(), refreshed.id_claims());
}

#[tokio::test]
async fn flow_idt_14_refresh_with_another_identity_is_a_mismatch() {
    type Change = fn(&mut serde_json::Map<String, serde_json::Value>);
    let cases: [(&str, Change); 4] = [
        ("sub", |c| {
            c.insert("sub".to_owned(), json!("attacker"));
        }),
        ("azp added", |c| {
            c.insert("azp".to_owned(), json!(CLIENT_ID));
        }),
        ("aud with a trusted extra", |c| {
            c.insert("aud".to_owned(), json!([CLIENT_ID, "extra"]));
            c.insert("azp".to_owned(), json!(CLIENT_ID));
        }),
        ("iss", |c| {
            c.insert("iss".to_owned(), json!("https://evil.example"));
        }),
    ];
    for (what, change) in cases {
        let (op, client) = setup().await;
        let client = client.add_trusted_audience("extra");
        let tokens = login(&client).await.unwrap();
        op.mutate_id_token(move |c, _| change(c));
        let err = client.refresh(&tokens).await.unwrap_err();
        assert_eq!(err.kind(), FlowErrorKind::Rejected, "{what}: {err:?}");
        if what != "iss" {
            assert!(matches!(err, FlowError::RefreshMismatch), "{what}: {err:?}");
        }
    }
}

#[tokio::test]
async fn flow_ses_05_refresh_of_a_revoked_grant_is_invalid_grant() {
    let (op, client) = setup().await;
    let tokens = login(&client).await.unwrap();
    op.revoke_user("user-1");
    let err = client.refresh(&tokens).await.unwrap_err();
    assert!(err.is_invalid_grant(), "{err:?}");
    let err = userinfo(&client, &tokens).await.unwrap_err();
    assert_flow_error!(
        err,
        FlowError::UserInfoRefused { status: 401 },
        FlowErrorKind::Rejected,
        "userinfo of a revoked grant"
    );
}

#[tokio::test]
async fn flow_idt_16_userinfo_subject_must_match() {
    let (op, client) = setup().await;
    let tokens = login(&client).await.unwrap();
    let info = userinfo(&client, &tokens).await.unwrap();
    assert_eq!(info["email"], "user-1@example.test");
    op.mutate_userinfo(|c| {
        c.insert("sub".to_owned(), json!("someone-else"));
    });
    let err = userinfo(&client, &tokens).await.unwrap_err();
    assert_flow_error!(
        err,
        FlowError::UserInfoSubjectMismatch,
        FlowErrorKind::Rejected,
        "other subject"
    );
}

#[tokio::test]
async fn flow_lo_01_end_session_url() {
    let (op, client) = setup().await;
    let tokens = login(&client).await.unwrap();
    let url = client
        .end_session_url(Some(tokens.id_token()), Some("http://127.0.0.1:3999/"))
        .await
        .unwrap()
        .unwrap();
    let parsed = url::Url::parse(&url).unwrap();
    assert_eq!(
        format!("{}{}", op.issuer(), parsed.path()),
        op.end_session_endpoint()
    );
    let params: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    let get = |n: &str| params.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(get("id_token_hint"), Some(tokens.id_token().secret()));
    assert_eq!(get("client_id"), Some(CLIENT_ID));
    assert_eq!(
        get("post_logout_redirect_uri"),
        Some("http://127.0.0.1:3999/")
    );
    let state = get("state").unwrap();
    assert!(state.len() >= 22);
    let other = client.end_session_url(None, None).await.unwrap().unwrap();
    assert!(!other.contains(state), "a fresh state each time");
}

#[tokio::test]
async fn flow_lo_03_no_end_session_endpoint_gives_none() {
    let (op, client) = setup().await;
    op.set_discovery_member("end_session_endpoint", None);
    assert!(client.end_session_url(None, None).await.unwrap().is_none());
}
