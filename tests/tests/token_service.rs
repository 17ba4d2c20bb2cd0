//! App-issued tokens against the real OpenID Provider (npm `oidc-provider`): the
//! token-service example's server logs a user in through a CLI with its own confidential
//! client `token-service`, either by the code flow (the CLI receives the code on its loopback
//! redirect URI and hands it to the server, which exchanges it) or by the device flow (the
//! server starts it at the provider and keeps the device code, the CLI shows the user code,
//! the user approves at the provider's `/device` pages, the server's poll redeems the code),
//! mints its own ES256 token, and the connector (an unmodified `BearerAuthLayer` pointed at
//! the server) accepts it. The user is then disabled at the provider
//! (`POST /test/accounts/<id>/disable` in `tests/op/server.mjs`): once the revalidation
//! interval (1 s here) has passed, the server's refresh is refused with `invalid_grant` and
//! minting stops, for good; the token minted before keeps working at the connector until its
//! `exp`, the short lifetime being the bound.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::Duration;

use oidc_core::flow::OidcClient;
use oidc_core::issue::{Revalidator, SigningKey, TokenIssuer};
use oidc_core::{Algorithm, Provider};
use oidc_e2e::user_agent::{UserAgent, approve_device_at_op};
use oidc_e2e::{OpLogsOnPanic, RealProvider, http_client, jwt_claims};
use reqwest::Url;
use serde_json::{Value, json};

/// Registered in `tests/op/server.mjs` (the app-issued tokens block).
const CLIENT: (&str, &str) = ("token-service", "token-service-secret");
const CLI_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";
const AUDIENCE: &str = "http://127.0.0.1/connector";
const INTERVAL: Duration = Duration::from_secs(1);
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

struct World {
    op: &'static RealProvider,
    server: String,
    connector: String,
    http: reqwest::Client,
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

impl World {
    async fn start() -> Self {
        let op = RealProvider::shared().await;
        let provider = Provider::builder(op.issuer()).build().unwrap();
        let client = OidcClient::new(provider, CLIENT.0, CLI_REDIRECT_URI)
            .unwrap()
            .with_client_secret(CLIENT.1)
            .with_scopes(["openid", "profile", "offline_access"]);
        let revalidator = Revalidator::builder(client.clone())
            .with_interval(INTERVAL)
            .build()
            .unwrap();
        let (listener, server) = listen().await;
        let issuer = TokenIssuer::builder(
            server.as_str(),
            SigningKey::generate(Algorithm::ES256).unwrap(),
        )
        .with_default_audience(AUDIENCE)
        .build()
        .unwrap();
        let app = token_service::server::app(client, issuer, revalidator);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let (listener, connector) = listen().await;
        let verifier = token_service::connector::verifier(&server, AUDIENCE).unwrap();
        let app = token_service::connector::app(verifier);
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            op,
            server,
            connector,
            http: http_client(),
        }
    }

    async fn post(&self, path: &str, session: Option<&str>, body: Option<Value>) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.server));
        if let Some(session) = session {
            req = req.bearer_auth(session);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The CLI: starts the login at the server, logs `account` in at the provider's own
    /// login and consent pages, and hands the callback query its redirect URI received to
    /// the server. Returns the session.
    async fn cli_login(&self, account: &str) -> String {
        let (status, started) = self.post("/cli/login", None, None).await;
        assert_eq!(status, 200, "{started}");
        let authorize = Url::parse(started["authorize_url"].as_str().unwrap()).unwrap();
        let mut ua = UserAgent::new();
        let (callback, prompts) = ua
            .log_in_through_op(&authorize, &self.op.host(), "127.0.0.1", account)
            .await;
        assert_eq!(prompts, ["login", "consent"]);
        assert!(
            callback.as_str().starts_with(CLI_REDIRECT_URI),
            "{callback}"
        );
        let body = json!({
            "login_id": started["login_id"],
            "callback_query": callback.query().unwrap(),
        });
        let (status, done) = self.post("/cli/complete", None, Some(body)).await;
        assert_eq!(status, 200, "{done}");
        done["session"].as_str().unwrap().to_owned()
    }

    /// The CLI's device login: starts it at the server (which holds the device code), shows
    /// the user code, and waits at `/cli/device/complete` while `account` approves (or, with
    /// `abort`, refuses) at the provider. Returns the answer of the complete.
    async fn cli_device_login(&self, account: &str, abort: bool) -> (u16, Value) {
        let (status, started) = self.post("/cli/device", None, None).await;
        assert_eq!(status, 200, "{started}");
        assert!(started.get("device_code").is_none(), "{started}");
        let user_code = started["user_code"].as_str().unwrap();
        assert!(
            started["verification_uri"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{}/device", self.op.issuer())),
            "{started}"
        );
        assert!(started["expires_in"].as_u64().unwrap() > 0, "{started}");
        // The CLI waits ...
        let waiting = tokio::spawn(post_json(
            self.http.clone(),
            format!("{}/cli/device/complete", self.server),
            json!({ "login_id": started["login_id"] }),
        ));
        // ... while the user confirms the code at the provider, logs in and consents.
        let uri = started["verification_uri_complete"]
            .as_str()
            .expect("oidc-provider sends verification_uri_complete");
        let page = approve_device_at_op(&self.op.host(), uri, user_code, account, abort).await;
        if !abort {
            assert!(page.contains("Sign-in Success"), "{page}");
        }
        // The server polls every `interval` (5 s at oidc-provider).
        tokio::time::timeout(Duration::from_secs(60), waiting)
            .await
            .expect("the wait ends once the user answered")
            .unwrap()
    }

    async fn mint(&self, session: &str) -> (u16, Value) {
        self.post("/token", Some(session), None).await
    }

    async fn connector(&self, token: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}/api/me", self.connector))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn disable(&self, account: &str) -> u16 {
        let url = format!("{}/test/accounts/{account}/disable", self.op.issuer());
        self.http.post(url).send().await.unwrap().status().as_u16()
    }
}

/// `POST <url>` with a JSON body, from a task of its own (the CLI's wait).
async fn post_json(http: reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let res = http.post(url).json(&body).send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn minted_token_accepted_by_connector_and_minting_refused_after_user_disabled_at_op() {
    let w = World::start().await;
    let _logs = OpLogsOnPanic(w.op);
    let account = "token-user-1";
    let session = w.cli_login(account).await;
    assert_eq!(w.op.grants("authorization_code", CLIENT.0, account), 1);
    minted_until_disabled(&w, &session, account).await;
}

/// The same, the CLI logging in by the device flow: the server redeems the device code with
/// its own client (no code handed over, no authorization_code grant).
#[tokio::test(flavor = "multi_thread")]
async fn device_flow_login_minted_token_accepted_by_connector_and_refused_after_user_disabled() {
    let w = World::start().await;
    let _logs = OpLogsOnPanic(w.op);
    let account = "token-device-user-1";
    let (status, done) = w.cli_device_login(account, false).await;
    assert_eq!(status, 200, "{done}");
    let session = done["session"].as_str().unwrap().to_owned();
    assert_eq!(
        w.op.wait_for_grants(DEVICE_CODE_GRANT, CLIENT.0, account, 1)
            .await,
        1
    );
    assert_eq!(w.op.grants("authorization_code", CLIENT.0, account), 0);
    minted_until_disabled(&w, &session, account).await;
}

/// The user aborts at the provider's confirmation page: the CLI's wait ends with 403
/// `access_denied`, no session, no token granted, and the login id is used up.
#[tokio::test(flavor = "multi_thread")]
async fn device_flow_login_aborted_at_op_is_403_and_gives_no_session() {
    let w = World::start().await;
    let _logs = OpLogsOnPanic(w.op);
    let account = "token-device-refuser";
    let (status, answer) = w.cli_device_login(account, true).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer, json!({ "error": "access_denied" }));
    assert_eq!(w.op.grants(DEVICE_CODE_GRANT, CLIENT.0, account), 0);
}

/// A session of `account` gets tokens the connector accepts while the provider accepts the
/// user, and none once the user is disabled there and the interval has passed.
async fn minted_until_disabled(w: &World, session: &str, account: &str) {
    // Minted, and accepted by the connector for the server's sub (the provider's).
    let (status, minted) = w.mint(session).await;
    assert_eq!(status, 200, "{minted}");
    let token = minted["access_token"].as_str().unwrap().to_owned();
    let claims = jwt_claims(&token);
    assert_eq!(claims["iss"], w.server);
    assert_eq!(claims["aud"], AUDIENCE);
    assert_eq!(claims["sub"], account);
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert_eq!(lifetime, 300);
    assert_eq!(
        w.connector(&token).await,
        (200, json!({ "sub": account, "iss": w.server }))
    );

    // The interval passes: the server revalidates with a refresh at the provider, accepted.
    tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
    let (status, again) = w.mint(session).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        w.op.wait_for_grants("refresh_token", CLIENT.0, account, 1)
            .await,
        1
    );

    // Disabled at the provider. Within the interval nothing changes at the server; after it,
    // the refresh is refused (invalid_grant) and no token is minted, also later.
    assert_eq!(w.disable(account).await, 204);
    tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
    for _ in 0..2 {
        let (status, body) = w.mint(session).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("login_required"))
        );
        tokio::time::sleep(INTERVAL + Duration::from_millis(100)).await;
    }
    assert_eq!(
        w.op.grants("refresh_token", CLIENT.0, account),
        1,
        "no refresh granted since"
    );

    // The tokens minted before stay valid at the connector until their exp (5 minutes):
    // the short lifetime bounds what a disabled user keeps.
    assert_eq!(w.connector(&token).await.0, 200);
    assert_eq!(
        w.connector(again["access_token"].as_str().unwrap()).await.0,
        200
    );
}

/// The admin route of `server.mjs` that disables accounts only takes `POST`.
#[tokio::test(flavor = "multi_thread")]
async fn disable_route_takes_post_only() {
    let op = RealProvider::shared().await;
    let res = http_client()
        .get(format!("{}/test/accounts/x/disable", op.issuer()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 405);
}
