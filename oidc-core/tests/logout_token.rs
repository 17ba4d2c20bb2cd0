//! `OidcClient::verify_logout_token` against an in-process provider (`oidc-testing`): OpenID
//! Connect Back-Channel Logout 1.0 §2.4/§2.6. Tests are named after the BCL case ids of
//! `SECURITY-CASES.md`; each asserts the exact outcome (the accepted token's fields, or the
//! `VerifyError` and the `Rejected` kind). The HTTP endpoint (status codes, BCL-08) is tested
//! through `LoginLayer` in `oidc-tower`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider, now};
use oidc_core::error::{FlowError, FlowErrorKind, VerifyError};
use oidc_core::flow::{AuthorizationResponse, LogoutToken, OidcClient};
use oidc_core::http::{HttpClient as _, ReqwestClient};
use oidc_testing::{ClientRegistration, Failure, SigningAlg, TestProvider, TokenBuilder};
use serde_json::{Value, json};

const CLIENT_ID: &str = "bcl-app";
/// Nothing listens there: the provider's deliveries fail, but are recorded with their token.
const DEAD_BACKCHANNEL_URI: &str = "http://127.0.0.1:9/auth/backchannel-logout";
const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

async fn setup() -> (TestProvider, OidcClient) {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::public(CLIENT_ID, REDIRECT_URI)
            .with_backchannel_logout_uri(DEAD_BACKCHANNEL_URI),
    );
    let client = client_for(&op);
    (op, client)
}

fn client_for(op: &TestProvider) -> OidcClient {
    OidcClient::new(
        client_provider(op).build().unwrap(),
        CLIENT_ID,
        REDIRECT_URI,
    )
    .unwrap()
}

/// A valid logout token for the client, naming `alice` and session `sid-1`.
fn valid(op: &TestProvider) -> TokenBuilder {
    op.logout_token(CLIENT_ID, Some("alice"), Some("sid-1"))
}

async fn accepted(client: &OidcClient, token: &str, what: &str) -> LogoutToken {
    match client.verify_logout_token(token).await {
        Ok(logout) => logout,
        Err(e) => panic!("{what}: expected acceptance, got {e:?}"),
    }
}

/// The `VerifyError` of a refused token, after checking that the refusal is of kind
/// `Rejected` and that neither the message nor the debug form carries the token.
async fn refusal(client: &OidcClient, token: &str, what: &str) -> VerifyError {
    let err = match client.verify_logout_token(token).await {
        Ok(logout) => panic!("{what}: expected a refusal, got {logout:?}"),
        Err(err) => err,
    };
    assert_eq!(err.kind(), FlowErrorKind::Rejected, "{what}: {err:?}");
    if token.len() > 8 {
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(
                !shown.contains(token),
                "{what}: the error carries the token"
            );
        }
    }
    match err {
        FlowError::LogoutToken(e) => e,
        other => panic!("{what}: unexpected error {other:?}"),
    }
}

/// Asserts that `token` is refused with a `VerifyError` matching the pattern.
macro_rules! assert_refused {
    ($client:expr, $token:expr, $pattern:pat $(if $guard:expr)?, $what:expr) => {{
        let e = refusal(&$client, &$token, &$what).await;
        assert!(
            matches!(e, $pattern $(if $guard)?),
            "{}: expected {}, got {:?}",
            $what,
            stringify!($pattern),
            e
        );
    }};
}

/// Asserts that a valid token with claim `$name` set to each of `$values` is refused with a
/// `VerifyError` matching the pattern (by default `InvalidClaim($name)`).
macro_rules! assert_claim_refused {
    ($op:expr, $client:expr, $name:literal, $values:expr) => {
        assert_claim_refused!(
            $op,
            $client,
            $name,
            $values,
            VerifyError::InvalidClaim($name)
        )
    };
    ($op:expr, $client:expr, $name:literal, $values:expr, $pattern:pat) => {{
        for value in $values {
            let value: Value = value;
            let token = valid(&$op).claim($name, value.clone()).sign();
            assert_refused!($client, token, $pattern, format!("{} {value}", $name));
        }
    }};
}

/// Asserts that a valid token without the claim `name` is refused as `MissingClaim(name)`.
async fn assert_missing_refused(op: &TestProvider, client: &OidcClient, name: &'static str) {
    let token = valid(op).without_claim(name).sign();
    assert_refused!(
        client,
        token,
        VerifyError::MissingClaim(missing) if missing == name,
        format!("no {name}")
    );
}

/// Logs in with `OidcClient` (auto-login at the provider): the provider's `op_session`
/// cookie and the verified token set.
async fn login(op: &TestProvider, client: &OidcClient) -> (String, oidc_core::flow::TokenSet) {
    op.set_auto_login(Some("user-1"));
    let (tx, res) = authorize_at_provider(client).await;
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .find_map(|v| v.to_str().unwrap().strip_prefix("op_session="))
        .map(|v| v.split(';').next().unwrap().to_owned())
        .unwrap();
    let tokens = client
        .complete(
            &tx,
            AuthorizationResponse::from_query(callback_query(&res)).unwrap(),
        )
        .await
        .unwrap();
    (cookie, tokens)
}

// ---------------------------------------------------------------------------------------------
// BCL-01 positive
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_01_valid_token_with_sid_accepted() {
    let (op, client) = setup().await;
    let builder = valid(&op);
    let claims = builder.claims_json();
    let logout = accepted(&client, &builder.sign(), "sub and sid").await;
    assert_eq!(logout.issuer(), op.issuer());
    assert_eq!(logout.subject(), Some("alice"));
    assert_eq!(logout.session_id(), Some("sid-1"));
    assert_eq!(logout.jti(), claims["jti"].as_str().unwrap());
    assert_eq!(logout.issued_at(), claims["iat"].as_i64().unwrap());
    assert_eq!(logout.expires_at(), claims["exp"].as_i64().unwrap());

    let sid_only = op.logout_token(CLIENT_ID, None, Some("sid-2")).sign();
    let logout = accepted(&client, &sid_only, "sid only").await;
    assert_eq!(
        (logout.subject(), logout.session_id()),
        (None, Some("sid-2"))
    );
}

#[tokio::test]
async fn bcl_01_valid_token_with_sub_only_accepted() {
    let (op, client) = setup().await;
    let token = op.logout_token(CLIENT_ID, Some("alice"), None).sign();
    let logout = accepted(&client, &token, "sub only").await;
    assert_eq!(
        (logout.subject(), logout.session_id()),
        (Some("alice"), None)
    );
    assert_eq!(logout.issuer(), op.issuer());
}

#[tokio::test]
async fn bcl_01_unknown_claims_ignored() {
    let (op, client) = setup().await;
    let token = valid(&op)
        .claim("ignored_claim", "ignored")
        .claim("nested", json!({"a": [1, 2, {"b": null}]}))
        .claim(
            "events",
            json!({ EVENT: {"reason": "user"}, "https://example.com/other-event": {} }),
        )
        .claim("nbf", now() - 10)
        .header("x-unknown", "ignored")
        .sign();
    let logout = accepted(&client, &token, "unknown claims").await;
    assert_eq!(logout.session_id(), Some("sid-1"));
}

#[tokio::test]
async fn bcl_01_typ_absent_jwt_or_logout_jwt_accepted() {
    let (op, client) = setup().await;
    accepted(&client, &valid(&op).without_header("typ").sign(), "no typ").await;
    for typ in [
        "JWT",
        "jwt",
        "application/jwt",
        "logout+jwt",
        "LOGOUT+JWT",
        "application/logout+jwt",
        "Application/Logout+JWT",
    ] {
        accepted(&client, &valid(&op).header("typ", typ).sign(), typ).await;
    }
}

#[tokio::test]
async fn bcl_01_every_provider_algorithm_the_client_allows_accepted() {
    let (op, client) = setup().await;
    let token = valid(&op).alg(SigningAlg::ES256).sign();
    accepted(&client, &token, "ES256 is allowed by default").await;

    let client = client
        .with_id_token_algorithms([oidc_core::Algorithm::EdDSA, oidc_core::Algorithm::PS384])
        .unwrap();
    for alg in [SigningAlg::EdDSA, SigningAlg::PS384] {
        let token = valid(&op).alg(alg).sign();
        accepted(&client, &token, alg.as_str()).await;
    }
}

#[tokio::test]
async fn bcl_01_token_delivered_by_the_provider_accepted_with_the_id_token_sid() {
    let (op, client) = setup().await;
    let (cookie, tokens) = login(&op, &client).await;
    let sid = tokens.id_claims()["sid"].as_str().unwrap().to_owned();

    // RP-initiated logout ends the provider session: the provider delivers a logout token.
    let end_session = client.end_session_url(None, None).await.unwrap().unwrap();
    let res = ReqwestClient::new()
        .unwrap()
        .execute(
            http::Request::get(end_session)
                .header("cookie", format!("op_session={cookie}"))
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let deliveries = op.backchannel_deliveries();
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0].client_id, CLIENT_ID);
    assert!(deliveries[0].error.is_some(), "nothing listens at the uri");

    let logout = accepted(&client, &deliveries[0].logout_token, "delivered").await;
    assert_eq!(logout.session_id(), Some(sid.as_str()));
    assert_eq!(logout.subject(), Some(tokens.subject()));
    assert_eq!(logout.issuer(), op.issuer());

    // The ID token of that login is no logout token (BCL-05).
    assert_refused!(
        client,
        tokens.id_token().secret(),
        VerifyError::MissingClaim("events"),
        "the id token"
    );
}

#[tokio::test]
async fn bcl_01_time_boundaries_with_a_fixed_clock() {
    let (op, client) = setup().await;
    let t = now();
    let at = move || UNIX_EPOCH + Duration::from_secs(u64::try_from(t).unwrap());
    let client = client.with_clock(Arc::new(at));
    let token = |iat: i64, exp: i64| valid(&op).claim("iat", iat).claim("exp", exp).sign();

    // exp: refused once now - leeway (60 s) reaches it.
    accepted(&client, &token(t - 100, t - 59), "exp 59 s ago").await;
    assert_refused!(
        client,
        token(t - 100, t - 60),
        VerifyError::Expired,
        "exp 60 s ago"
    );
    // iat: refused beyond now + leeway.
    accepted(&client, &token(t + 60, t + 120), "iat 60 s ahead").await;
    assert_refused!(
        client,
        token(t + 61, t + 120),
        VerifyError::IssuedInFuture,
        "iat 61 s ahead"
    );
}

// ---------------------------------------------------------------------------------------------
// BCL-02 signature and algorithm
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_02_alg_none_refused() {
    let (op, client) = setup().await;
    let builder = valid(&op);
    let signature = builder.sign().rsplit('.').next().unwrap().to_owned();
    for name in ["none", "None", "NONE", "nOnE"] {
        for sig in ["", signature.as_str()] {
            let token = builder.sign_none(name, sig);
            if sig.is_empty() {
                // No signature segment: not even a compact JWS.
                assert_refused!(client, token, VerifyError::Malformed, name);
            } else {
                assert_refused!(client, token, VerifyError::DisallowedAlgorithm, name);
            }
        }
    }
    assert_eq!(
        op.jwks_fetch_count(),
        0,
        "refused before any key was needed"
    );
}

#[tokio::test]
async fn bcl_02_hmac_refused() {
    let (op, client) = setup().await;
    let builder = valid(&op);
    for secret in [op.rsa_public_key_pem(), b"client-secret".to_vec()] {
        let token = builder.sign_hs256(&secret);
        assert_refused!(client, token, VerifyError::DisallowedAlgorithm, "HS256");
    }
}

#[tokio::test]
async fn bcl_02_wrong_alg_refused() {
    let (op, client) = setup().await;
    // The client expects RS256 only; the provider signs validly with its ES256 key (OIDF
    // rp-backchannel-rpinitlogout-lt-wrong-alg).
    let rs256_only = client
        .clone()
        .with_id_token_algorithms([oidc_core::Algorithm::RS256])
        .unwrap();
    let es256 = valid(&op).alg(SigningAlg::ES256).sign();
    assert_refused!(
        rs256_only,
        es256,
        VerifyError::DisallowedAlgorithm,
        "ES256 when RS256 is expected"
    );
    accepted(&rs256_only, &valid(&op).sign(), "RS256").await;

    // The header names ES256 but the RSA key signed: the key does not fit the algorithm.
    let swapped = valid(&op).header("alg", "ES256").sign();
    assert_refused!(
        client,
        swapped,
        VerifyError::KeyAlgorithmMismatch,
        "alg swapped in the header"
    );

    // An algorithm the client allows but the provider does not publish.
    op.set_discovery_member(
        "id_token_signing_alg_values_supported",
        Some(json!(["RS256"])),
    );
    let client = client_for(&op);
    assert_refused!(
        client,
        es256,
        VerifyError::DisallowedAlgorithm,
        "ES256 not in the provider's list"
    );
}

#[tokio::test]
async fn bcl_02_bad_signature_refused() {
    let (op, client) = setup().await;
    let builder = valid(&op);
    for (token, what) in [
        (builder.sign_tampered_signature(), "tampered signature"),
        (builder.sign_with_foreign_key(), "foreign key"),
        (
            builder.sign_then_replace_claim("sid", "someone-else"),
            "replaced claim",
        ),
        (
            builder.sign_then_replace_claim("aud", "other-app"),
            "replaced aud",
        ),
    ] {
        assert_refused!(client, token, VerifyError::InvalidSignature, what);
    }
}

#[tokio::test]
async fn bcl_02_unknown_kid_refused_with_one_refetch() {
    let (op, client) = setup().await;
    accepted(&client, &valid(&op).sign(), "loads the keys").await;
    assert_eq!(op.jwks_fetch_count(), 1);

    let unknown = valid(&op).header("kid", "no-such-kid").sign();
    assert_refused!(client, unknown, VerifyError::UnknownKey, "unknown kid");
    assert_eq!(op.jwks_fetch_count(), 2, "one forced refetch");
    let other = valid(&op).header("kid", "another-kid").sign();
    assert_refused!(
        client,
        other,
        VerifyError::UnknownKey,
        "within the cooldown"
    );
    assert_eq!(op.jwks_fetch_count(), 2, "no refetch within the cooldown");

    // A key of the provider's not yet published: unknown too.
    let unpublished = valid(&op).signing_kid("rsa3-RS256").sign();
    assert_refused!(
        client,
        unpublished,
        VerifyError::UnknownKey,
        "unpublished key"
    );
}

#[tokio::test]
async fn bcl_02_rotated_key_found_by_refetch() {
    let (op, client) = setup().await;
    accepted(&client, &valid(&op).sign(), "loads the keys").await;
    let new_kid = op.rotate_key(SigningAlg::RS256);
    let token = valid(&op).sign();
    assert_eq!(
        oidc_testing_kid(&token),
        new_kid,
        "signed with the rotated key"
    );
    accepted(&client, &token, "rotated key").await;
    assert_eq!(op.jwks_fetch_count(), 2);
}

fn oidc_testing_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn bcl_02_keys_unavailable_is_a_provider_failure() {
    let (op, client) = setup().await;
    op.fail_jwks(Failure::Status(503));
    let err = client
        .verify_logout_token(&valid(&op).sign())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), FlowErrorKind::ProviderFailure, "{err:?}");
    assert!(
        matches!(err, FlowError::LogoutToken(VerifyError::KeysUnavailable(_))),
        "{err:?}"
    );
}

#[tokio::test]
async fn bcl_02_crit_and_jku_headers() {
    let (op, client) = setup().await;
    let crit = valid(&op).header("crit", json!(["exp"])).sign();
    assert_refused!(client, crit, VerifyError::CriticalHeader, "crit");
    // jku/x5u are never followed: the token verifies with the provider's own key.
    let jku = valid(&op)
        .header("jku", "http://127.0.0.1:9/evil-jwks")
        .header("x5u", "http://127.0.0.1:9/evil.pem")
        .sign();
    accepted(&client, &jku, "jku and x5u ignored").await;
}

// ---------------------------------------------------------------------------------------------
// BCL-03 issuer and audience
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_03_wrong_iss_refused() {
    let (op, client) = setup().await;
    let issuer = op.issuer();
    let wrong = [
        json!("https://evil.example"),
        json!(format!("{issuer}/")),
        json!(issuer.to_uppercase()),
        json!([issuer]),
    ];
    assert_claim_refused!(op, client, "iss", wrong, VerifyError::InvalidIssuer);
    assert_missing_refused(&op, &client, "iss").await;
}

#[tokio::test]
async fn bcl_03_wrong_aud_refused() {
    let (op, client) = setup().await;
    let wrong = [
        json!("other-app"),
        json!(["other-app"]),
        json!([]),
        json!([CLIENT_ID, "untrusted-app"]),
        json!(""),
    ];
    assert_claim_refused!(op, client, "aud", wrong, VerifyError::InvalidAudience);
    let invalid = [json!(42), json!([CLIENT_ID, 42])];
    assert_claim_refused!(op, client, "aud", invalid);
    assert_missing_refused(&op, &client, "aud").await;
}

#[tokio::test]
async fn bcl_03_audience_array_with_trusted_audiences_accepted() {
    let (op, client) = setup().await;
    accepted(
        &client,
        &valid(&op).audience(json!([CLIENT_ID])).sign(),
        "array of one",
    )
    .await;
    let client = client.add_trusted_audience("sibling-app");
    let token = valid(&op)
        .audience(json!(["sibling-app", CLIENT_ID]))
        .sign();
    let logout = accepted(&client, &token, "trusted second audience, no azp").await;
    assert_eq!(logout.session_id(), Some("sid-1"));
}

// ---------------------------------------------------------------------------------------------
// BCL-04 events
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_04_events_missing_refused() {
    let (op, client) = setup().await;
    assert_missing_refused(&op, &client, "events").await;
}

#[tokio::test]
async fn bcl_04_wrong_event_refused() {
    let (op, client) = setup().await;
    let wrong = [
        json!({"http://schemas.openid.net/event/foobar": {}}),
        json!({}),
        json!({"http://schemas.openid.net/event/backchannel-logout/": {}}),
        json!({"HTTP://SCHEMAS.OPENID.NET/EVENT/BACKCHANNEL-LOGOUT": {}}),
    ];
    assert_claim_refused!(op, client, "events", wrong);
}

#[tokio::test]
async fn bcl_04_events_not_an_object_refused() {
    let (op, client) = setup().await;
    let not_objects = [
        json!(EVENT),
        json!([EVENT]),
        json!([{ EVENT: {} }]),
        json!(null),
        json!(true),
    ];
    assert_claim_refused!(op, client, "events", not_objects);
}

#[tokio::test]
async fn bcl_04_event_member_not_an_object_refused() {
    let (op, client) = setup().await;
    let members = [json!(null), json!(true), json!("{}"), json!([]), json!(1)];
    let events = members.map(|member| json!({ EVENT: member }));
    assert_claim_refused!(op, client, "events", events);
}

// ---------------------------------------------------------------------------------------------
// BCL-05 cross-JWT confusion
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_05_nonce_present_refused() {
    let (op, client) = setup().await;
    let nonces = [json!("n-1"), json!(""), json!(null)];
    assert_claim_refused!(op, client, "nonce", nonces);
}

#[tokio::test]
async fn bcl_05_id_token_posted_as_logout_token_refused() {
    let (op, client) = setup().await;
    // An ID token as the provider issues it to this client (typ JWT, nonce, no events).
    let id_token = op
        .token()
        .header("typ", "JWT")
        .audience(CLIENT_ID)
        .without_claim("scope")
        .without_claim("client_id")
        .claim("nonce", "n-1")
        .claim("sid", "sid-1")
        .claim("auth_time", now())
        .sign();
    assert_refused!(
        client,
        id_token,
        VerifyError::MissingClaim("events"),
        "id token"
    );
    // Even with the logout event added, its nonce gives it away.
    let with_events = op
        .token()
        .header("typ", "JWT")
        .audience(CLIENT_ID)
        .claim("nonce", "n-1")
        .claim("sid", "sid-1")
        .claim("events", json!({ EVENT: {} }))
        .sign();
    assert_refused!(
        client,
        with_events,
        VerifyError::InvalidClaim("nonce"),
        "id token with events"
    );
}

#[tokio::test]
async fn bcl_05_typ_at_jwt_refused() {
    let (op, client) = setup().await;
    for typ in [
        json!("at+jwt"),
        json!("application/at+jwt"),
        json!("AT+JWT"),
        json!("id_token+jwt"),
        json!("secevent+jwt"),
        json!("logout"),
        json!(""),
    ] {
        let token = valid(&op).header("typ", typ.clone()).sign();
        assert_refused!(client, token, VerifyError::WrongTokenType, typ.to_string());
    }
    // A typ that is not a string is a malformed header.
    let token = valid(&op).header("typ", 5).sign();
    assert_refused!(client, token, VerifyError::InvalidHeader, "typ 5");
    // An access token of this provider (typ at+jwt) for the client id as audience.
    let access_token = op.token().audience(CLIENT_ID).sign();
    assert_refused!(
        client,
        access_token,
        VerifyError::WrongTokenType,
        "access token"
    );
}

// ---------------------------------------------------------------------------------------------
// BCL-06 sub and sid
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_06_neither_sub_nor_sid_refused() {
    let (op, client) = setup().await;
    let token = op.logout_token(CLIENT_ID, None, None).sign();
    assert_refused!(
        client,
        token,
        VerifyError::MissingClaim("sub or sid"),
        "neither"
    );
}

#[tokio::test]
async fn bcl_06_malformed_sub_or_sid_refused() {
    let (op, client) = setup().await;
    let sids = [json!(""), json!(42), json!(null), json!(["sid-1"])];
    assert_claim_refused!(op, client, "sid", sids);
    let subs = [json!(""), json!(42), json!(null), json!("x".repeat(256))];
    assert_claim_refused!(op, client, "sub", subs);
}

// ---------------------------------------------------------------------------------------------
// exp, iat, jti, size
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bcl_exp_missing_or_expired_refused() {
    let (op, client) = setup().await;
    assert_missing_refused(&op, &client, "exp").await;
    let token = valid(&op).expires_in(-120).sign();
    assert_refused!(client, token, VerifyError::Expired, "expired 2 min ago");
    let exps = [json!("9999999999"), json!(1.5e10), json!(null)];
    assert_claim_refused!(op, client, "exp", exps);
    let token = valid(&op).expires_in(-30).sign();
    accepted(&client, &token, "expired within the leeway").await;
}

#[tokio::test]
async fn bcl_iat_missing_or_in_the_future_refused() {
    let (op, client) = setup().await;
    assert_missing_refused(&op, &client, "iat").await;
    let token = valid(&op)
        .claim("iat", now() + 600)
        .claim("exp", now() + 900)
        .sign();
    assert_refused!(client, token, VerifyError::IssuedInFuture, "iat in 10 min");
    let strings = [json!("now")];
    assert_claim_refused!(op, client, "iat", strings);
    let token = valid(&op).claim("nbf", now() + 600).sign();
    assert_refused!(client, token, VerifyError::NotYetValid, "nbf in 10 min");
}

#[tokio::test]
async fn bcl_jti_missing_refused() {
    let (op, client) = setup().await;
    assert_missing_refused(&op, &client, "jti").await;
    let jtis = [json!(""), json!(42), json!(null), json!({"id": 1})];
    assert_claim_refused!(op, client, "jti", jtis);
}

#[tokio::test]
async fn bcl_oversize_token_refused_before_decoding() {
    let (op, client) = setup().await;
    let token = valid(&op).claim("pad", "x".repeat(16 * 1024)).sign();
    assert!(token.len() > 16 * 1024);
    assert_refused!(
        client,
        token,
        VerifyError::TooLarge { limit: 16384 },
        "oversize"
    );
    let garbage = "A".repeat(1024 * 1024);
    assert_refused!(
        client,
        garbage,
        VerifyError::TooLarge { limit: 16384 },
        "1 MiB of garbage"
    );
    assert_eq!(op.jwks_fetch_count(), 0, "no key was needed");
    assert_eq!(op.discovery_fetch_count(), 0, "no provider metadata either");
}

#[tokio::test]
async fn bcl_malformed_tokens_refused() {
    let (op, client) = setup().await;
    for (token, what) in [
        (String::new(), "empty"),
        ("a.b".to_owned(), "two segments"),
        ("a.b.c.d".to_owned(), "four segments"),
        ("not a jwt & = +".to_owned(), "form garbage"),
    ] {
        assert_refused!(client, token, VerifyError::Malformed, what);
    }
    assert_eq!(op.jwks_fetch_count(), 0);
}

#[tokio::test]
async fn bcl_logout_token_debug_shows_no_token() {
    let (op, client) = setup().await;
    let token = valid(&op).sign();
    let logout = accepted(&client, &token, "valid").await;
    let shown = format!("{logout:?}");
    assert!(!shown.contains(&token));
    assert!(
        shown.contains("sid-1") && shown.contains("alice"),
        "{shown}"
    );
    let copy = logout.clone();
    assert_eq!(copy, logout);
}
