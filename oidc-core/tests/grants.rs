//! The grants by name (`oidc_core::flow::Grant`) and the refused ones: the implicit flow and
//! the password grant, refused where they could be asked for (a configuration's grant name,
//! an authorization request's extra parameters, the callback) with an error naming the
//! alternative, and nothing sent to the provider.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider};
use oidc_core::Provider;
use oidc_core::error::{ConfigError, FlowError, FlowErrorKind};
use oidc_core::flow::{AuthorizationResponse, AuthorizeOptions, Grant, OidcClient, Transaction};
use oidc_testing::{ClientRegistration, TestProvider};

const CLIENT_ID: &str = "grants-app";
const SECRET: &str = "grants-secret";

#[test]
fn grant_names_as_configured_parse_to_their_grant() {
    for (name, grant) in [
        ("authorization_code", Grant::AuthorizationCode),
        ("code", Grant::AuthorizationCode),
        ("refresh_token", Grant::RefreshToken),
        ("client_credentials", Grant::ClientCredentials),
        (
            "urn:ietf:params:oauth:grant-type:device_code",
            Grant::DeviceCode,
        ),
        ("device_code", Grant::DeviceCode),
        (
            "urn:ietf:params:oauth:grant-type:token-exchange",
            Grant::TokenExchange,
        ),
        ("token_exchange", Grant::TokenExchange),
        ("token-exchange", Grant::TokenExchange),
    ] {
        assert_eq!(name.parse::<Grant>().unwrap(), grant, "{name}");
        // The canonical name parses back to the same grant.
        assert_eq!(grant.as_str().parse::<Grant>().unwrap(), grant);
        assert_eq!(grant.to_string(), grant.as_str());
    }
}

fn refused(name: &str) -> (String, String) {
    match name.parse::<Grant>() {
        Err(ConfigError::UnsupportedGrant { grant, advice }) => {
            let message = ConfigError::UnsupportedGrant {
                grant: grant.clone(),
                advice,
            }
            .to_string();
            (grant, message)
        }
        other => panic!("{name:?}: {other:?}"),
    }
}

#[test]
fn implicit_and_token_response_types_are_refused_naming_the_code_flow() {
    for name in [
        "implicit",
        "token",
        "id_token",
        "id_token token",
        "token id_token",
        "code token",
        "code id_token",
        "code id_token token",
    ] {
        let (grant, message) = refused(name);
        assert_eq!(grant, name);
        assert!(
            message.contains("implicit flow")
                && message.contains("authorization code flow with PKCE"),
            "{name}: {message}"
        );
    }
}

#[test]
fn password_grant_is_refused_naming_code_device_and_client_credentials() {
    let (grant, message) = refused("password");
    assert_eq!(grant, "password");
    for alternative in [
        "authorization_code",
        "urn:ietf:params:oauth:grant-type:device_code",
        "client_credentials",
        "password grant",
    ] {
        assert!(message.contains(alternative), "{alternative}: {message}");
    }
}

#[test]
fn unknown_or_misspelt_grant_is_refused_listing_the_supported_ones() {
    // An allow-list: near misses and other spellings are not guessed at.
    for name in [
        "",
        "Authorization_Code",
        " client_credentials",
        "client-credentials",
        "saml2-bearer",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let (_, message) = refused(name);
        assert!(
            message.contains("supported grants are authorization_code, refresh_token"),
            "{name:?}: {message}"
        );
    }
}

#[test]
fn refused_grant_name_is_cut_in_the_error() {
    // A secret pasted into the grant setting is not copied whole into the error (and logs).
    let pasted = "x".repeat(500);
    let (grant, message) = refused(&pasted);
    assert!(grant.chars().count() <= 65, "{}", grant.len());
    assert!(!message.contains(&pasted));
}

async fn setup() -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    op.register_client(ClientRegistration::confidential(
        CLIENT_ID,
        SECRET,
        REDIRECT_URI,
    ));
    op.set_auto_login(Some("user-1"));
    let client = OidcClient::new(
        client_provider(&op).build().unwrap(),
        CLIENT_ID,
        REDIRECT_URI,
    )
    .unwrap()
    .with_client_secret(SECRET);
    (op, client)
}

#[tokio::test]
async fn implicit_callback_with_tokens_and_no_code_is_refused_before_any_token_request() {
    let (op, client) = setup().await;
    let (tx, _) = authorize_at_provider(&client).await;
    let state = tx.state().to_owned();
    let iss = op.issuer();
    for query in [
        // response_type=token, its answer sent in the query instead of the fragment
        format!("access_token=leaked-at&token_type=Bearer&expires_in=3600&state={state}&iss={iss}"),
        // response_type=id_token token
        format!("id_token=leaked.id.token&access_token=leaked-at&token_type=Bearer&state={state}"),
        // response_type=id_token
        format!("id_token=leaked.id.token&state={state}"),
        format!("token_type=Bearer&state={state}"),
        format!("refresh_token=leaked-rt&state={state}"),
    ] {
        let err = callback(&client, &tx, &query).await;
        assert!(
            matches!(err, FlowError::ImplicitResponse),
            "{query}: {err:?}"
        );
        assert_eq!(err.kind(), FlowErrorKind::Unbound);
        let message = err.to_string();
        assert!(
            message.contains("implicit responses are not accepted")
                && message.contains("authorization code flow"),
            "{message}"
        );
        assert!(!message.contains("leaked"), "{message}");
        assert!(!format!("{err:?}").contains("leaked"));
    }
    assert_eq!(op.token_requests().len(), 0, "no token request was made");
}

#[tokio::test]
async fn hybrid_callback_with_a_code_and_tokens_is_refused_before_any_token_request() {
    let (op, client) = setup().await;
    let (tx, res) = authorize_at_provider(&client).await;
    // A real code and state, plus tokens from the authorization endpoint (`code id_token
    // token`): the code is not redeemed either.
    let query = format!(
        "{}&id_token=leaked.id.token&access_token=leaked-at&token_type=Bearer",
        callback_query(&res)
    );
    let err = callback(&client, &tx, &query).await;
    assert!(matches!(err, FlowError::ImplicitResponse), "{err:?}");
    assert_eq!(op.token_requests().len(), 0, "no token request was made");

    // The same callback without the tokens is an ordinary code response, redeemed.
    let plain = AuthorizationResponse::from_query(callback_query(&res)).unwrap();
    client.complete(&tx, plain).await.unwrap();
    assert_eq!(op.token_requests().len(), 1);
}

/// What an application's callback does: parse, then complete; the error it ends with.
async fn callback(client: &OidcClient, tx: &Transaction, query: &str) -> FlowError {
    let result = match AuthorizationResponse::from_query(query) {
        Ok(response) => client.complete(tx, response).await.map(|_| ()),
        Err(e) => Err(e),
    };
    result.unwrap_err()
}

/// A provider nobody listens on: any request to it fails, so an error other than
/// `UnsupportedGrant` would show that `authorize` tried to reach it.
fn unreachable_client() -> OidcClient {
    let provider = Provider::builder("http://127.0.0.1:9/unreachable")
        .build()
        .unwrap();
    OidcClient::new(provider, CLIENT_ID, REDIRECT_URI).unwrap()
}

#[tokio::test]
async fn extra_params_asking_for_another_grant_are_refused_before_any_request() {
    let client = unreachable_client();
    for (name, value, says) in [
        (
            "response_type",
            "token",
            "authorization code flow with PKCE",
        ),
        (
            "response_type",
            "id_token token",
            "authorization code flow with PKCE",
        ),
        ("response_type", "code id_token", "implicit flow"),
        ("response_type", "none", "response type code"),
        ("response_mode", "fragment", "response_mode query"),
        ("response_mode", "form_post", "response_mode query"),
        ("grant_type", "password", "grant_type is not a parameter"),
        (
            "grant_type",
            "client_credentials",
            "grant_type is not a parameter",
        ),
    ] {
        let options = AuthorizeOptions::new().add_param(name, value);
        let err = client.authorize(&options).await.unwrap_err();
        assert!(
            matches!(&err, FlowError::UnsupportedGrant(ConfigError::UnsupportedGrant { grant, .. }) if grant == value),
            "{name}={value}: {err:?}"
        );
        assert_eq!(err.kind(), FlowErrorKind::Misconfigured);
        assert!(err.to_string().contains(says), "{name}={value}: {err}");
    }
}

#[tokio::test]
async fn extra_params_of_the_code_flow_itself_are_accepted() {
    let (_op, client) = setup().await;
    let options = AuthorizeOptions::new()
        .add_param("response_type", "code")
        .add_param("response_mode", "query")
        .add_param("kc_idp_hint", "corp");
    let (url, _tx) = client.authorize(&options).await.unwrap();
    let url = url::Url::parse(&url).unwrap();
    let pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
    let response_types: Vec<&str> = pairs
        .iter()
        .filter(|(n, _)| n == "response_type")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(response_types, ["code"]);
    assert!(pairs.iter().any(|(n, v)| n == "kc_idp_hint" && v == "corp"));
    assert!(!pairs.iter().any(|(n, _)| n == "grant_type"));
}
