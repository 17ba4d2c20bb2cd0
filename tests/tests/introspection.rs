//! Opaque access tokens validated by introspection (RFC 7662) at the real OpenID Provider (npm
//! `oidc-provider`, `features.introspection` on in `tests/op/server.mjs`): a token the
//! provider issued to `svc-opaque` for its opaque resource is accepted, a random string is
//! refused, and the resource server authenticates as its own client `api-introspect`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_core::error::VerifyError;
use oidc_core::flow::{ClientAuth, ServiceClient, ServiceTokenRequest};
use oidc_core::verify::Introspector;
use oidc_core::{AccessTokenVerifier, Claims, Provider};
use oidc_e2e::{RealProvider, clients};

/// The resource server whose tokens the provider issues opaque (`server.mjs` default).
const OPAQUE_RESOURCE: &str = "http://localhost:3998/opaque-api";
/// The resource server's own client at the provider, the only one allowed to introspect.
const INTROSPECTOR: (&str, &str) = ("api-introspect", "introspect-secret");

fn verifier(op: &RealProvider, introspector: Introspector) -> AccessTokenVerifier {
    let provider = Provider::builder(op.issuer()).build().unwrap();
    AccessTokenVerifier::new(provider, OPAQUE_RESOURCE).with_introspection(introspector)
}

async fn opaque_token(op: &RealProvider) -> String {
    let provider = Provider::builder(op.issuer()).build().unwrap();
    let (id, secret) = clients::OPAQUE;
    let request = ServiceTokenRequest::new()
        .with_scopes(["api:read"])
        .with_resource(OPAQUE_RESOURCE);
    let token = ServiceClient::new(provider, id, secret)
        .token(&request)
        .await
        .unwrap();
    let token = token.access_token().secret().to_owned();
    assert!(
        !token.contains('.'),
        "the provider should issue an opaque token here"
    );
    token
}

#[tokio::test(flavor = "multi_thread")]
async fn opaque_service_token_is_accepted_by_introspection() {
    let op = RealProvider::shared().await;
    let token = opaque_token(op).await;
    for auth in [ClientAuth::ClientSecretBasic, ClientAuth::ClientSecretPost] {
        let (id, secret) = INTROSPECTOR;
        let v = verifier(op, Introspector::new(id, secret).with_auth_method(auth));
        let claims: Claims = v.verify(&token).await.unwrap();
        assert_eq!(claims.subject(), clients::OPAQUE.0, "{auth:?}");
        assert_eq!(claims.client_id(), Some(clients::OPAQUE.0));
        assert_eq!(claims.issuer(), op.issuer());
        assert!(
            claims.scopes().contains("api:read"),
            "{:?}",
            claims.scopes()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn random_string_is_refused_as_inactive() {
    let op = RealProvider::shared().await;
    let (id, secret) = INTROSPECTOR;
    let v = verifier(op, Introspector::new(id, secret));
    let random = "Jm9yZ2VkLW9wYXF1ZS10b2tlbi1vZi00Mi1ieXRlcw";
    let error = v
        .verify::<oidc_core::AdditionalClaims>(random)
        .await
        .unwrap_err();
    assert!(matches!(error, VerifyError::Inactive), "{error:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn client_not_allowed_to_introspect_gets_inactive() {
    // `allowedPolicy` is an allow-list: the token's own client may not introspect it.
    let op = RealProvider::shared().await;
    let token = opaque_token(op).await;
    let (id, secret) = clients::OPAQUE;
    let v = verifier(op, Introspector::new(id, secret));
    let error = v
        .verify::<oidc_core::AdditionalClaims>(&token)
        .await
        .unwrap_err();
    assert!(matches!(error, VerifyError::Inactive), "{error:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_introspection_secret_is_unavailable_not_accepted() {
    let op = RealProvider::shared().await;
    let token = opaque_token(op).await;
    let v = verifier(op, Introspector::new(INTROSPECTOR.0, "wrong-secret"));
    let error = v
        .verify::<oidc_core::AdditionalClaims>(&token)
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(!format!("{error} {error:?}").contains(&token));
}
