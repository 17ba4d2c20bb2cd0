//! Browser login through `LoginLayer` with a provider configured entirely by hand (no
//! discovery), against an `oidc-testing` provider whose discovery answers 500: login,
//! logout to the hand-set end-session endpoint, revocation at the hand-set endpoint, and no
//! discovery fetch at all. A hand-configured provider without the endpoints login needs is
//! refused at startup.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::time::{Duration, Instant};

use login_common::{Builder, CLIENT_ID, Jar, USER};
use oidc_core::Provider;
use oidc_core::error::ConfigError;
use oidc_core::flow::OidcClient;
use oidc_testing::{Failure, TestProvider};
use oidc_tower::login::LoginLayer;

#[tokio::test]
async fn manual_provider_logs_in_and_out_without_discovery() {
    let op = TestProvider::start().await;
    op.fail_discovery(Failure::Status(500));
    let (jwks, auth, token, userinfo, end, revoke) = (
        op.jwks_uri(),
        op.authorization_endpoint(),
        op.token_endpoint(),
        op.userinfo_endpoint(),
        op.end_session_endpoint(),
        op.revocation_endpoint(),
    );
    let app = Builder::new()
        .op(&op)
        .provider(move |b| {
            b.with_jwks_uri(jwks)
                .with_authorization_endpoint(auth)
                .with_token_endpoint(token)
                .with_userinfo_endpoint(userinfo)
                .with_end_session_endpoint(end)
                .with_revocation_endpoint(revoke)
        })
        .start()
        .await;

    let mut jar = app.login().await;
    let me = app.assert_logged_in(&jar).await;
    assert_eq!(me["sub"], USER);
    let cookie = jar.session().unwrap().to_owned();

    let res = app.logout(&mut jar).await;
    assert_eq!(res.status, 303, "{}", res.body);
    assert!(
        res.location()
            .unwrap()
            .starts_with(&format!("{}?", op.end_session_endpoint())),
        "{:?}",
        res.location()
    );
    app.assert_not_logged_in(&Jar::with_session(&cookie)).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while op.revocation_requests().len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        op.revocation_requests().len(),
        2,
        "revoked at the hand-set endpoint"
    );
    assert_eq!(op.discovery_fetch_count(), 0, "discovery is never fetched");
}

#[tokio::test]
async fn login_layer_refuses_a_manual_provider_without_login_endpoints() {
    let op = TestProvider::start().await;
    let redirect = "http://127.0.0.1:3999/auth/callback";
    let cases = [
        (
            "token_endpoint",
            Provider::builder(op.issuer())
                .with_jwks_uri(op.jwks_uri())
                .with_authorization_endpoint(op.authorization_endpoint()),
        ),
        (
            "authorization_endpoint",
            Provider::builder(op.issuer())
                .with_jwks_uri(op.jwks_uri())
                .with_token_endpoint(op.token_endpoint()),
        ),
        (
            "authorization_endpoint",
            Provider::builder(op.issuer()).with_jwks_uri(op.jwks_uri()),
        ),
    ];
    for (missing, builder) in cases {
        let client = OidcClient::new(builder.build().unwrap(), CLIENT_ID, redirect).unwrap();
        let err = LoginLayer::new(client, "http://127.0.0.1:3999").unwrap_err();
        assert!(
            matches!(err, ConfigError::MissingEndpoint { endpoint, .. } if endpoint == missing),
            "{missing}: {err:?}"
        );
        assert!(err.to_string().contains(missing), "{err}");
    }
    assert!(op.authorization_requests().is_empty());
    assert_eq!(op.discovery_fetch_count(), 0);
}
