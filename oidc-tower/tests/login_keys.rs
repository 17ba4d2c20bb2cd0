//! Keys and key-bound tokens at the login layer, black-box: an axum app behind `LoginLayer` and
//! an `oidc-testing` provider. EdDSA (Ed25519) ID tokens log in with the default algorithms
//! when the provider advertises EdDSA; bearer tokens bound to a key (`cnf`) are refused on the
//! `accept_bearer` path as on `BearerAuthLayer`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod login_common;

use std::time::Duration;

use oidc_core::AccessTokenVerifier;
use oidc_testing::SigningAlg;
use serde_json::{Value, json};

use login_common::{App, Builder, Jar, param};

/// The JOSE header of a compact JWS.
fn jwt_header(token: &str) -> Value {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

/// Logs out with a copy of `jar` and returns the `id_token_hint` sent to the provider (the raw
/// ID token the session kept).
async fn id_token_of_session(app: &App, jar: &Jar) -> String {
    let mut jar = jar.clone();
    let res = app.logout(&mut jar).await;
    assert_eq!(res.status, 303);
    param(res.location().unwrap(), "id_token_hint").unwrap()
}

fn eddsa_client(builder: Builder) -> Builder {
    builder.registration(|r| r.with_id_token_alg(SigningAlg::EdDSA))
}

// ---------------------------------------------------------------------------------------------
// EdDSA ID tokens

/// The provider signs the client's ID tokens with Ed25519 and advertises EdDSA: the login, a
/// refresh (whose new ID token is EdDSA-signed too) and the session work with the client's
/// default algorithms.
#[tokio::test]
async fn idt_01_eddsa_id_token_logs_in_with_default_algorithms() {
    // A refresh margin longer than the access token's life: the next request refreshes.
    let app = eddsa_client(Builder::new())
        .layer(|l| l.with_refresh_margin(Duration::from_secs(24 * 3600)))
        .start()
        .await;
    let advertised = app.op.discovery_document()["id_token_signing_alg_values_supported"].clone();
    assert!(advertised.as_array().unwrap().contains(&json!("EdDSA")));

    let (jar, res) = app.login_to(Some("/app")).await;
    assert_eq!(res.location(), Some("/app"));
    let me = app.assert_logged_in(&jar).await;
    assert_eq!(me["iss"], app.op.issuer());
    assert!(
        app.token_request_count() >= 2,
        "the request after the login refreshed the tokens ({} token requests)",
        app.token_request_count()
    );
    app.assert_logged_in(&jar).await;

    let id_token = id_token_of_session(&app, &jar).await;
    let header = jwt_header(&id_token);
    assert_eq!(header["alg"], "EdDSA", "{header}");
    assert_eq!(header["kid"], app.op.kid(SigningAlg::EdDSA));
}

/// Without the provider's word (a list without EdDSA, or no list at all), the default
/// algorithms do not accept an EdDSA ID token: 401, no session.
#[tokio::test]
async fn idt_05_eddsa_id_token_refused_unless_advertised() {
    for (what, list) in [
        ("EdDSA not listed", Some(json!(["RS256", "ES256"]))),
        ("no list published", None),
    ] {
        let app = eddsa_client(Builder::new()).start().await;
        app.op
            .set_discovery_member("id_token_signing_alg_values_supported", list);
        app.expect_failed_login(what, 401).await;
        assert_eq!(
            app.token_request_count(),
            1,
            "{what}: the code was redeemed once"
        );
    }
}

/// A client that names its algorithms gets exactly those: RS256 only refuses an EdDSA ID token
/// even though the provider advertises EdDSA.
#[tokio::test]
async fn idt_05_eddsa_id_token_refused_when_the_client_allows_rs256_only() {
    let app = eddsa_client(Builder::new())
        .client(|c| {
            c.with_id_token_algorithms([oidc_core::Algorithm::RS256])
                .unwrap()
        })
        .start()
        .await;
    app.expect_failed_login("rs256 only", 401).await;
}

/// `cnf` in an ID token (OIDC Core §3.1.3.6 allows it for proof-of-possession) plays no role at
/// the login: the ID token is never presented as a bearer credential.
#[tokio::test]
async fn id_token_with_cnf_logs_in() {
    let app = App::start().await;
    app.op.mutate_id_token(|claims, _| {
        claims.insert(
            "cnf".to_owned(),
            json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        );
    });
    let jar = app.login().await;
    app.assert_logged_in(&jar).await;
}

// ---------------------------------------------------------------------------------------------
// accept_bearer

fn with_bearer(builder: Builder) -> Builder {
    builder.layer(|l| {
        let verifier = AccessTokenVerifier::new(l.client().provider().clone(), "api://default");
        l.accept_bearer(oidc_tower::BearerAuthLayer::new(verifier))
    })
}

async fn bearer_get(app: &App, path: &str, token: &str) -> login_common::Resp {
    let req = app
        .http
        .get(format!("{}{path}", app.url))
        .header("accept", "application/json")
        .header("authorization", format!("Bearer {token}"));
    app.send(req, &mut Jar::default()).await
}

/// A DPoP- or mTLS-bound access token (`cnf`) sent with the Bearer scheme is refused with 401
/// `invalid_token` (RFC 9449 §7.1, RFC 8705 §3), every time (never from the token cache), and
/// never redirected to a login; the same token without `cnf` passes.
#[tokio::test]
async fn accept_bearer_refuses_a_sender_constrained_token() {
    let app = with_bearer(Builder::new()).start().await;
    for (what, cnf) in [
        (
            "dpop",
            json!({ "jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I" }),
        ),
        (
            "mtls",
            json!({ "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" }),
        ),
    ] {
        let token = app
            .op
            .token()
            .claim("sub", "service-7")
            .claim("cnf", cnf)
            .sign();
        for round in 0..2 {
            let res = bearer_get(&app, "/whoami", &token).await;
            assert_eq!(res.status, 401, "{what} {round}: {}", res.body);
            let challenge = res.header("www-authenticate").unwrap_or_default();
            assert!(
                challenge.starts_with("Bearer ") && challenge.contains(r#"error="invalid_token""#),
                "{what}: {challenge}"
            );
            assert!(res.location().is_none(), "{what}: never a login redirect");
            assert!(res.set_cookies().is_empty(), "{what}: no session");
            assert!(!res.body.contains("service-7"), "{what}: the handler ran");
        }
    }
    let unbound = app.op.token().claim("sub", "service-7").sign();
    let res = bearer_get(&app, "/whoami", &unbound).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "service-7");
    assert!(app.op.authorization_requests().is_empty());
}

/// An EdDSA access token passes the `accept_bearer` path with the default algorithms.
#[tokio::test]
async fn accept_bearer_accepts_an_eddsa_token() {
    let app = with_bearer(Builder::new()).start().await;
    let token = app
        .op
        .token()
        .alg(SigningAlg::EdDSA)
        .claim("sub", "service-ed")
        .sign();
    let res = bearer_get(&app, "/whoami", &token).await;
    assert_eq!(res.status, 200, "{}", res.body);
    assert_eq!(res.body, "service-ed");
}
