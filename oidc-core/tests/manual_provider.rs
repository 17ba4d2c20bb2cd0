//! A provider configured entirely by hand (no discovery): login, refresh, UserInfo,
//! end-session, revocation and bearer keys work against `oidc-testing` while its discovery
//! answers 500, and discovery is never fetched. A hand-configured provider lacking an
//! endpoint a flow needs is refused with an error naming it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider};
use oidc_core::error::{ConfigError, FlowError};
use oidc_core::flow::{AuthorizationResponse, OidcClient, TokenRevoker};
use oidc_core::{AccessTokenVerifier, AdditionalClaims, Provider, ProviderBuilder};
use oidc_testing::{CallbackIss, ClientRegistration, Failure, TestProvider};

const CLIENT_ID: &str = "manual-app";
const SECRET: &str = "manual-secret";
const POST_LOGOUT: &str = "http://127.0.0.1:3999/";

/// A provider whose discovery fails (500), with the client registered and auto-login on.
async fn provider_without_discovery() -> TestProvider {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::confidential(CLIENT_ID, SECRET, REDIRECT_URI)
            .add_post_logout_redirect_uri(POST_LOGOUT),
    );
    op.set_auto_login(Some("user-1"));
    op.fail_discovery(Failure::Status(500));
    op
}

/// Every endpoint of `op`, set by hand.
fn by_hand(op: &TestProvider) -> ProviderBuilder {
    client_provider(op)
        .with_jwks_uri(op.jwks_uri())
        .with_authorization_endpoint(op.authorization_endpoint())
        .with_token_endpoint(op.token_endpoint())
        .with_userinfo_endpoint(op.userinfo_endpoint())
        .with_end_session_endpoint(op.end_session_endpoint())
        .with_revocation_endpoint(op.revocation_endpoint())
}

fn client(provider: Provider) -> OidcClient {
    OidcClient::new(provider, CLIENT_ID, REDIRECT_URI)
        .unwrap()
        .with_client_secret(SECRET)
}

#[tokio::test]
async fn manual_provider_logs_in_without_ever_fetching_discovery() {
    let op = provider_without_discovery().await;
    let provider = by_hand(&op).build().unwrap();
    assert!(provider.readiness().metadata, "metadata known without I/O");
    provider.check_login_endpoints().unwrap();
    let client = client(provider.clone());

    // Login: the authorization request goes to the hand-set endpoint, the code is redeemed at
    // the hand-set token endpoint and the ID token checked with keys from the hand-set JWKS.
    let (tx, res) = authorize_at_provider(&client).await;
    assert_eq!(op.authorization_requests().len(), 1);
    let query = callback_query(&res).to_owned();
    let tokens = client
        .complete(&tx, AuthorizationResponse::from_query(&query).unwrap())
        .await
        .unwrap();
    assert_eq!(tokens.subject(), "user-1");
    assert_eq!(op.token_requests().len(), 1);

    // UserInfo, refresh, end-session and revocation, all by hand.
    let info = client
        .userinfo(tokens.access_token(), tokens.subject())
        .await
        .unwrap();
    assert_eq!(info["sub"], "user-1");
    let refreshed = client.refresh(&tokens).await.unwrap();
    assert_eq!(refreshed.subject(), "user-1");
    let end = client
        .end_session_url(Some(refreshed.id_token()), Some(POST_LOGOUT))
        .await
        .unwrap()
        .expect("the hand-set end-session endpoint");
    assert!(end.starts_with(&op.end_session_endpoint()), "{end}");
    TokenRevoker::new(client.clone())
        .revoke_tokens(&refreshed)
        .await
        .unwrap();
    assert_eq!(op.revoked_tokens().len(), 2, "refresh and access token");

    // Bearer keys of the same provider.
    let verifier = AccessTokenVerifier::new(provider, common::AUDIENCE);
    let token = op.token().sign();
    verifier.verify::<AdditionalClaims>(&token).await.unwrap();

    assert_eq!(op.discovery_fetch_count(), 0, "discovery is never fetched");
}

#[tokio::test]
async fn manual_provider_requiring_iss_refuses_a_response_without_it() {
    let op = provider_without_discovery().await;
    let client = client(
        by_hand(&op)
            .require_authorization_response_iss(true)
            .build()
            .unwrap(),
    );
    op.set_callback_iss(CallbackIss::Omit);
    let (tx, res) = authorize_at_provider(&client).await;
    let query = callback_query(&res).to_owned();
    let err = client
        .complete(&tx, AuthorizationResponse::from_query(&query).unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::Unbound(_)), "{err:?}");
    assert!(op.token_requests().is_empty(), "no token request");
    assert_eq!(op.discovery_fetch_count(), 0);
}

#[tokio::test]
async fn manual_provider_without_an_endpoint_is_refused_naming_it() {
    let op = provider_without_discovery().await;

    // Endpoints by hand but no JWKS location: refused at build.
    let err = client_provider(&op)
        .with_authorization_endpoint(op.authorization_endpoint())
        .with_token_endpoint(op.token_endpoint())
        .build()
        .unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::MissingEndpoint {
                endpoint: "jwks_uri",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("jwks_uri"), "{err}");

    // No authorization endpoint, or no token endpoint: not usable for login.
    let no_auth = client_provider(&op)
        .with_jwks_uri(op.jwks_uri())
        .with_token_endpoint(op.token_endpoint())
        .build()
        .unwrap();
    let err = no_auth.check_login_endpoints().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::MissingEndpoint {
                endpoint: "authorization_endpoint",
                needed_for: "browser login"
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("authorization_endpoint"), "{err}");
    // At request time the flow fails without sending anything either.
    let err = client(no_auth)
        .authorize(&oidc_core::flow::AuthorizeOptions::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, FlowError::MissingEndpoint("authorization endpoint")),
        "{err:?}"
    );

    let no_token = client_provider(&op)
        .with_jwks_uri(op.jwks_uri())
        .with_authorization_endpoint(op.authorization_endpoint())
        .build()
        .unwrap();
    let err = no_token.check_login_endpoints().unwrap_err();
    assert!(
        matches!(
            err,
            ConfigError::MissingEndpoint {
                endpoint: "token_endpoint",
                ..
            }
        ),
        "{err:?}"
    );

    // Only a JWKS location (bearer keys only): fine to build, not for login.
    let keys_only = client_provider(&op)
        .with_jwks_uri(op.jwks_uri())
        .build()
        .unwrap();
    assert!(keys_only.check_login_endpoints().is_err());
    assert!(op.authorization_requests().is_empty());
    assert_eq!(op.discovery_fetch_count(), 0);
}

#[tokio::test]
async fn manual_endpoints_pass_the_url_policy() {
    let setters: [fn(ProviderBuilder, &str) -> ProviderBuilder; 7] = [
        |b, u| b.with_authorization_endpoint(u),
        |b, u| b.with_token_endpoint(u),
        |b, u| b.with_userinfo_endpoint(u),
        |b, u| b.with_end_session_endpoint(u),
        |b, u| b.with_revocation_endpoint(u),
        |b, u| b.with_introspection_endpoint(u),
        |b, u| b.with_device_authorization_endpoint(u),
    ];
    for (i, set) in setters.iter().enumerate() {
        for bad in [
            "http://id.example.com/x",
            "https://user:pw@id.example.com/x",
            "https://id.example.com/x#frag",
            "ftp://id.example.com/x",
            "not a url",
        ] {
            let builder = Provider::builder("https://id.example.com")
                .with_jwks_uri("https://id.example.com/keys");
            let result = set(builder, bad).build();
            assert!(result.is_err(), "setter {i}: {bad} must be refused");
        }
        let ok = set(
            Provider::builder("https://id.example.com")
                .with_jwks_uri("https://id.example.com/keys"),
            "https://id.example.com/x",
        )
        .build();
        assert!(ok.is_ok(), "setter {i}: https is fine");
    }
    // `insecure_allow_http` applies to hand-set endpoints as to discovered ones.
    assert!(
        Provider::builder("https://id.example.com")
            .with_jwks_uri("https://id.example.com/keys")
            .with_token_endpoint("http://id.example.com/token")
            .insecure_allow_http()
            .build()
            .is_ok()
    );
}
