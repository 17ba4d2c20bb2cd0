//! App-issued tokens verified by another service: the issuer's discovery document and JWKS
//! served by `IssuerDocuments` on 127.0.0.1, and a connector behind an unmodified
//! `BearerAuthLayer` whose `AccessTokenVerifier` has the app as issuer. Hostile tokens are
//! named after the case ids of `SECURITY-CASES.md`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::get;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use oidc_axum::Authenticated;
use oidc_core::error::VerifyError;
use oidc_core::issue::{MintRequest, SigningKey, TokenIssuer};
use oidc_core::verify::Clock;
use oidc_core::{AccessTokenVerifier, Algorithm, Provider};
use oidc_tower::BearerAuthLayer;
use oidc_tower::issue::IssuerDocuments;
use serde_json::{Value, json};

const AUDIENCE_A: &str = "https://connector-a.example.com";
const AUDIENCE_B: &str = "https://connector-b.example.com";
const ALGS: [Algorithm; 2] = [Algorithm::ES256, Algorithm::EdDSA];

/// The app: its token issuer, its documents served on 127.0.0.1.
struct App {
    issuer: TokenIssuer,
    url: String,
}

/// Serves `router` on a fresh 127.0.0.1 port; `build` gets the base URL first.
async fn serve<T>(build: impl FnOnce(&str) -> (T, Router)) -> (T, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (value, router) = build(&url);
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (value, url)
}

async fn app_with(
    path: &str,
    configure: impl FnOnce(oidc_core::issue::TokenIssuerBuilder) -> oidc_core::issue::TokenIssuerBuilder,
    alg: Algorithm,
) -> App {
    let path = path.to_owned();
    let (issuer, _) = serve(|base| {
        let issuer = configure(
            TokenIssuer::builder(format!("{base}{path}"), SigningKey::generate(alg).unwrap())
                .with_default_audience(AUDIENCE_A),
        )
        .build()
        .unwrap();
        let docs = IssuerDocuments::new(issuer.clone());
        let (d, j) = (
            docs.discovery_path().to_owned(),
            docs.jwks_path().to_owned(),
        );
        let router = Router::new()
            .route_service(&d, docs.clone())
            .route_service(&j, docs);
        (issuer, router)
    })
    .await;
    let url = issuer.issuer().to_owned();
    App { issuer, url }
}

async fn app(alg: Algorithm) -> App {
    app_with("", |b| b, alg).await
}

/// A connector: `GET /api/me` behind `BearerAuthLayer`, the app as issuer, for `audience`.
async fn connector(verifier: AccessTokenVerifier) -> String {
    let (_, url) = serve(|_| {
        let router = Router::new()
            .route(
                "/api/me",
                get(|user: Authenticated| async move { user.subject().to_owned() }),
            )
            .layer(BearerAuthLayer::new(verifier));
        ((), router)
    })
    .await;
    url
}

fn verifier(app: &App, audience: &str) -> AccessTokenVerifier {
    let provider = Provider::builder(app.url.as_str()).build().unwrap();
    AccessTokenVerifier::new(provider, audience).require_at_jwt(true)
}

/// `GET /api/me` with `token`: the status, `WWW-Authenticate` and body.
async fn call(connector: &str, token: &str) -> (u16, String, String) {
    let res = reqwest::Client::new()
        .get(format!("{connector}/api/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, res.text().await.unwrap())
}

fn assert_invalid_token((status, challenge, body): (u16, String, String), what: &str) {
    assert_eq!(status, 401, "{what}");
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{what}: {challenge}"
    );
    assert!(body.is_empty(), "{what}: {body}");
}

/// AT-01 for this issuer: a minted token (ES256 and EdDSA) is accepted by a connector that
/// knows nothing but the app's URL and its own audience: discovery, JWKS and the verifier's
/// default algorithms, `typ: at+jwt` required.
#[tokio::test]
async fn at_01_minted_token_is_accepted_by_bearer_auth_layer_pointed_at_the_app() {
    for alg in ALGS {
        let app = app(alg).await;
        let connector = connector(verifier(&app, AUDIENCE_A)).await;
        let minted = app.issuer.mint("user-1", &MintRequest::new()).unwrap();
        let (status, _, body) = call(&connector, minted.token().secret()).await;
        assert_eq!((status, body.as_str()), (200, "user-1"), "{alg}");
    }
}

#[tokio::test]
async fn issuer_under_a_path_is_discovered_there() {
    let app = app_with("/tenant/a", |b| b, Algorithm::EdDSA).await;
    assert!(app.url.ends_with("/tenant/a"));
    let connector = connector(verifier(&app, AUDIENCE_A)).await;
    let minted = app.issuer.mint("user-1", &MintRequest::new()).unwrap();
    assert_eq!(call(&connector, minted.token().secret()).await.0, 200);
}

/// AT-07 for this issuer: a token minted for connector A is refused by connector B.
#[tokio::test]
async fn at_07_token_for_audience_a_is_refused_by_the_connector_of_audience_b() {
    let app = app(Algorithm::ES256).await;
    let b = connector(verifier(&app, AUDIENCE_B)).await;
    let for_a = app.issuer.mint("user-1", &MintRequest::new()).unwrap();
    assert_invalid_token(call(&b, for_a.token().secret()).await, "aud A at B");
    let err = verifier(&app, AUDIENCE_B)
        .verify::<Value>(for_a.token().secret())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::InvalidAudience), "{err:?}");
    // The same issuer mints for B on request, and B accepts that one.
    let for_b = app
        .issuer
        .mint("user-1", &MintRequest::new().with_audience(AUDIENCE_B))
        .unwrap();
    assert_eq!(call(&b, for_b.token().secret()).await.0, 200);
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// AT-05 for this issuer: `alg: none` (any case) and HS256 tokens carrying the app's `kid`,
/// with the app's public key (JWK JSON, or its raw `x`) as the HMAC secret, and a token
/// signed by a foreign key under the app's `kid`, are refused by the connector.
#[tokio::test]
async fn at_05_alg_none_and_hs256_with_the_apps_kid_are_refused() {
    for alg in ALGS {
        let app = app(alg).await;
        let connector = connector(verifier(&app, AUDIENCE_A)).await;
        let genuine = app.issuer.mint("user-1", &MintRequest::new()).unwrap();
        let kid = app.issuer.signing_kid();
        let payload = genuine
            .token()
            .secret()
            .split('.')
            .nth(1)
            .unwrap()
            .to_owned();
        // The genuine token is accepted: the refusals below are the header's doing.
        assert_eq!(call(&connector, genuine.token().secret()).await.0, 200);

        for none in ["none", "None", "NONE"] {
            let header = json!({ "alg": none, "kid": kid, "typ": "at+jwt" });
            for signature in ["", "AAAA"] {
                let token = format!("{}.{payload}.{signature}", b64(&header));
                assert_invalid_token(call(&connector, &token).await, &format!("{alg} {none}"));
            }
        }

        let jwk = app.issuer.jwks()["keys"][0].clone();
        let x = URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap();
        for secret in [jwk.to_string().into_bytes(), x] {
            let header = json!({ "alg": "HS256", "kid": kid, "typ": "at+jwt" });
            let input = format!("{}.{payload}", b64(&header));
            let tag = aws_lc_rs::hmac::sign(
                &aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret),
                input.as_bytes(),
            );
            let token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()));
            assert_invalid_token(call(&connector, &token).await, &format!("{alg} hs256"));
        }

        // A foreign key of the same algorithm, header naming the app's kid.
        let foreign = TokenIssuer::builder(app.url.as_str(), SigningKey::generate(alg).unwrap())
            .with_default_audience(AUDIENCE_A)
            .build()
            .unwrap();
        let forged = foreign.mint("admin", &MintRequest::new()).unwrap();
        let mut parts: Vec<&str> = forged.token().secret().split('.').collect();
        let header = json!({ "alg": alg.as_str(), "kid": kid, "typ": "at+jwt" });
        let header = b64(&header);
        parts[0] = &header;
        assert_invalid_token(
            call(&connector, &parts.join(".")).await,
            &format!("{alg} foreign"),
        );
    }
}

/// A clock the test moves by hand, shared by the issuer and the verifiers.
#[derive(Clone)]
struct FakeClock(Arc<Mutex<SystemTime>>);

impl FakeClock {
    fn now() -> Self {
        Self(Arc::new(Mutex::new(SystemTime::now())))
    }
    fn clock(&self) -> Clock {
        let now = Arc::clone(&self.0);
        Arc::new(move || *now.lock().unwrap())
    }
    fn advance(&self, by: Duration) {
        *self.0.lock().unwrap() += by;
    }
}

/// KEY-03 for this issuer: after `rotate()` a connector accepts the old key's token (the
/// key is still published) and the new key's (fetched for its unknown `kid`); once the old
/// key's last token can have expired, the key is dropped from the JWKS and its tokens are
/// refused as signed by an unknown key.
#[tokio::test]
async fn key_03_old_key_token_verifies_after_rotation_until_the_key_is_dropped() {
    let clock = FakeClock::now();
    let app = app_with(
        "",
        |b| {
            b.with_lifetime(Duration::from_secs(120))
                .with_clock(clock.clock())
        },
        Algorithm::ES256,
    )
    .await;
    let fresh_verifier = || {
        verifier(&app, AUDIENCE_A)
            .with_clock(clock.clock())
            .without_token_cache()
    };
    let connector_verifier = fresh_verifier();
    let connector = connector(connector_verifier.clone()).await;
    let old = app.issuer.mint("user-1", &MintRequest::new()).unwrap();
    assert_eq!(call(&connector, old.token().secret()).await.0, 200);

    let new_kid = app.issuer.rotate().unwrap();
    let new = app.issuer.mint("user-2", &MintRequest::new()).unwrap();
    assert_eq!(new.kid(), new_kid);
    assert_eq!(
        call(&connector, new.token().secret()).await.0,
        200,
        "new kid fetched"
    );
    assert_eq!(
        call(&connector, old.token().secret()).await.0,
        200,
        "old key still published"
    );

    // Lifetime + leeway (60 s, the verifier's default) minus one second: still published, and
    // a verifier that loads the set now still accepts the old token.
    clock.advance(Duration::from_secs(179));
    let late = fresh_verifier();
    late.verify::<Value>(old.token().secret()).await.unwrap();

    // After: dropped. A verifier loading the set now refuses the token for its unknown key.
    clock.advance(Duration::from_secs(1));
    let kids: Vec<Value> = app.issuer.jwks()["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].clone())
        .collect();
    assert_eq!(kids, [Value::from(new_kid)]);
    let after = fresh_verifier();
    let err = after
        .verify::<Value>(old.token().secret())
        .await
        .unwrap_err();
    assert!(matches!(err, VerifyError::UnknownKey), "{err:?}");
    // The signer's tokens still verify.
    let newest = app.issuer.mint("user-3", &MintRequest::new()).unwrap();
    after
        .verify::<Value>(newest.token().secret())
        .await
        .unwrap();
}

#[tokio::test]
async fn documents_are_served_with_cache_control_and_nothing_else() {
    let app = app(Algorithm::EdDSA).await;
    let http = reqwest::Client::new();
    let discovery = http
        .get(format!("{}/.well-known/openid-configuration", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(discovery.status(), 200);
    assert_eq!(discovery.headers()["cache-control"], "public, max-age=60");
    assert_eq!(discovery.headers()["content-type"], "application/json");
    let doc: Value = serde_json::from_str(&discovery.text().await.unwrap()).unwrap();
    assert_eq!(doc["issuer"], app.url);
    assert_eq!(
        doc["jwks_uri"],
        format!("{}/.well-known/jwks.json", app.url)
    );

    let jwks = http
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(jwks.status(), 200);
    assert_eq!(jwks.headers()["content-type"], "application/jwk-set+json");
    assert_eq!(jwks.headers()["cache-control"], "public, max-age=60");
    let set: Value = serde_json::from_str(&jwks.text().await.unwrap()).unwrap();
    assert_eq!(set, app.issuer.jwks());
    for key in set["keys"].as_array().unwrap() {
        assert!(key.get("d").is_none());
    }

    let head = http
        .head(format!("{}/.well-known/jwks.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    let post = http
        .post(format!("{}/.well-known/jwks.json", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    let other = http
        .get(format!("{}/.well-known/other", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
}

#[tokio::test]
async fn max_age_is_configurable() {
    use tower::ServiceExt as _;
    let issuer = TokenIssuer::builder(
        "https://app.example.com/x",
        SigningKey::generate(Algorithm::ES256).unwrap(),
    )
    .build()
    .unwrap();
    let docs = IssuerDocuments::new(issuer).with_max_age(Duration::from_secs(5));
    assert_eq!(docs.discovery_path(), "/x/.well-known/openid-configuration");
    assert_eq!(docs.jwks_path(), "/x/.well-known/jwks.json");
    let res = docs
        .clone()
        .oneshot(
            http::Request::get("/x/.well-known/jwks.json")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "public, max-age=5");
    let root = docs
        .oneshot(
            http::Request::get("/.well-known/jwks.json")
                .body(())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(root.status(), 404, "only under the issuer's path");
}
