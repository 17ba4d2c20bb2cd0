//! Token revocation (RFC 7009) against the in-process provider: what is sent, the revoked
//! grant, client authentication, a provider without the endpoint, refusals and failures.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use oidc_core::error::FlowError;
use oidc_core::flow::{AuthorizationResponse, OidcClient, TokenRevoker, TokenSet, TokenTypeHint};
use oidc_testing::{ClientRegistration, TestProvider};

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider};

async fn login(op: &TestProvider, client: &OidcClient) -> TokenSet {
    op.set_auto_login(Some("ada"));
    let (tx, res) = authorize_at_provider(client).await;
    let response = AuthorizationResponse::from_query(callback_query(&res)).unwrap();
    client.complete(&tx, response).await.unwrap()
}

async fn public_client(op: &TestProvider) -> OidcClient {
    op.register_client(ClientRegistration::public("cli", REDIRECT_URI));
    OidcClient::new(client_provider(op).build().unwrap(), "cli", REDIRECT_URI).unwrap()
}

#[tokio::test]
async fn revoke_tokens_sends_the_refresh_token_then_the_access_token_with_hints() {
    let op = TestProvider::start().await;
    let client = public_client(&op).await;
    let tokens = login(&op, &client).await;
    let refresh = tokens.refresh_token().unwrap().secret().to_owned();
    TokenRevoker::new(client.clone())
        .revoke_tokens(&tokens)
        .await
        .unwrap();
    let requests = op.revocation_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].param("token"), Some(refresh.as_str()));
    assert_eq!(requests[0].param("token_type_hint"), Some("refresh_token"));
    assert_eq!(
        requests[1].param("token"),
        Some(tokens.access_token().secret())
    );
    assert_eq!(requests[1].param("token_type_hint"), Some("access_token"));
    for request in &requests {
        assert_eq!(request.param("client_id"), Some("cli"));
        assert!(!request.basic_auth);
    }
    // On the wire: the provider refuses the revoked refresh token and access token.
    assert!(
        client
            .refresh(&tokens)
            .await
            .unwrap_err()
            .is_invalid_grant()
    );
    assert!(matches!(
        client
            .userinfo(tokens.access_token(), tokens.subject())
            .await,
        Err(FlowError::UserInfoRefused { status: 401 })
    ));
}

#[tokio::test]
async fn a_confidential_client_authenticates_at_the_revocation_endpoint() {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        "web",
        "s3cret",
        REDIRECT_URI,
    ));
    let client = OidcClient::new(client_provider(&op).build().unwrap(), "web", REDIRECT_URI)
        .unwrap()
        .with_client_secret("s3cret");
    let tokens = login(&op, &client).await;
    client
        .revoke(tokens.refresh_token().unwrap(), TokenTypeHint::RefreshToken)
        .await
        .unwrap();
    let request = &op.revocation_requests()[0];
    assert_eq!(request.basic_client_id.as_deref(), Some("web"));
    assert_eq!(request.basic_client_secret.as_deref(), Some("s3cret"));
    assert!(request.param("client_secret").is_none());
    assert_eq!(op.revoked_tokens().len(), 1);

    // A wrong secret is refused by the provider, and said so.
    let wrong = OidcClient::new(client_provider(&op).build().unwrap(), "web", REDIRECT_URI)
        .unwrap()
        .with_client_secret("wrong");
    let err = wrong
        .revoke(tokens.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FlowError::RevocationRefused { error } if error == "invalid_client"),
        "{err:?}"
    );
    assert_eq!(op.revoked_tokens().len(), 1);
}

#[tokio::test]
async fn a_provider_without_a_revocation_endpoint_gives_a_clear_error_and_nothing_is_sent() {
    let op = TestProvider::start().await;
    op.set_discovery_member("revocation_endpoint", None);
    let client = public_client(&op).await;
    let tokens = login(&op, &client).await;
    let revoker = TokenRevoker::new(client.clone());
    assert_eq!(revoker.endpoint().await.unwrap(), None);
    let err = revoker.revoke_tokens(&tokens).await.unwrap_err();
    assert!(
        matches!(err, FlowError::MissingEndpoint("revocation endpoint")),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "the provider has no revocation endpoint");
    assert!(op.revocation_requests().is_empty());

    // Set by hand, the endpoint is used.
    let revoker = revoker.with_endpoint(op.revocation_endpoint()).unwrap();
    revoker.revoke_tokens(&tokens).await.unwrap();
    assert_eq!(op.revocation_requests().len(), 2);
}

#[tokio::test]
async fn an_endpoint_set_by_hand_must_be_https_or_loopback() {
    let op = TestProvider::start().await;
    let client = public_client(&op).await;
    assert!(
        TokenRevoker::new(client)
            .with_endpoint("http://id.example.com/revoke")
            .is_err()
    );
}

#[tokio::test]
async fn a_refusal_names_the_oauth_error_without_the_token() {
    let op = TestProvider::start().await;
    let client = public_client(&op).await;
    let tokens = login(&op, &client).await;
    op.refuse_revocation(Some("unsupported_token_type"));
    let err = client
        .revoke(tokens.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FlowError::RevocationRefused { error } if error == "unsupported_token_type"),
        "{err:?}"
    );
    let shown = format!("{err} {err:?}");
    assert!(!shown.contains(tokens.access_token().secret()));

    op.refuse_revocation(None);
    op.fail_revocation(Some(503));
    let err = client
        .revoke(tokens.access_token(), TokenTypeHint::AccessToken)
        .await
        .unwrap_err();
    assert!(matches!(err, FlowError::InvalidResponse(_)), "{err:?}");
}

#[tokio::test]
async fn revoke_tokens_tries_the_access_token_even_when_the_refresh_token_fails() {
    let op = TestProvider::start().await;
    let client = public_client(&op).await;
    let tokens = login(&op, &client).await;
    op.fail_revocation(Some(500));
    assert!(
        TokenRevoker::new(client)
            .revoke_tokens(&tokens)
            .await
            .is_err()
    );
    assert_eq!(op.revocation_requests().len(), 2);
}

#[tokio::test]
async fn revocation_runs_in_a_spawned_task_borrowing_its_locals() {
    // Compiles only while `revoke`'s future is `Send` for any lifetime (a closure borrowing
    // the revoker inside it once made it `Send` for one lifetime only).
    let op = TestProvider::start().await;
    let client = public_client(&op).await;
    let tokens = login(&op, &client).await;
    tokio::spawn(async move {
        let revoker = TokenRevoker::new(client);
        revoker.revoke_tokens(&tokens).await
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(op.revoked_tokens().len(), 2);
}

#[tokio::test]
async fn an_access_token_the_provider_cannot_revoke_is_not_a_logout_failure() {
    let op = TestProvider::start().await;
    let client = public_client(&op).await;
    let tokens = login(&op, &client).await;
    op.set_revocation_access_tokens_unsupported(true);
    let revoker = TokenRevoker::new(client.clone());
    // Asked alone, the refusal is reported.
    assert!(matches!(
        revoker
            .revoke(tokens.access_token(), TokenTypeHint::AccessToken)
            .await,
        Err(FlowError::RevocationRefused { error }) if error == "unsupported_token_type"
    ));
    // Revoking both: the refresh token is revoked, the access token's refusal is no failure.
    revoker.revoke_tokens(&tokens).await.unwrap();
    assert_eq!(
        op.revoked_tokens(),
        [tokens.refresh_token().unwrap().secret().to_owned()]
    );
    // Any other refusal of the access token still is one.
    op.set_revocation_access_tokens_unsupported(false);
    op.refuse_revocation(Some("invalid_client"));
    assert!(revoker.revoke_tokens(&tokens).await.is_err());
}
