//! App-issued tokens against the real OpenID Provider (npm `oidc-provider`): the
//! token-service example's server logs a user in through a CLI (code flow: the CLI receives
//! the code on its loopback redirect URI and hands it to the server, which exchanges it with
//! its own confidential client `token-service`), mints its own ES256 token, and the connector
//! (an unmodified `BearerAuthLayer` pointed at the server) accepts it. The user is then
//! disabled at the provider (`POST /test/accounts/<id>/disable` in `tests/op/server.mjs`):
//! once the revalidation interval (1 s here) has passed, the server's refresh is refused with
//! `invalid_grant` and minting stops, for good; the token minted before keeps working at the
//! connector until its `exp`, the short lifetime being the bound.

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
use oidc_e2e::user_agent::UserAgent;
use oidc_e2e::{OpLogsOnPanic, RealProvider, http_client, jwt_claims};
use reqwest::Url;
use serde_json::{Value, json};

/// Registered in `tests/op/server.mjs` (the app-issued tokens block).
const CLIENT: (&str, &str) = ("token-service", "token-service-secret");
const CLI_REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";
const AUDIENCE: &str = "http://127.0.0.1/connector";
const INTERVAL: Duration = Duration::from_secs(1);

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

#[tokio::test(flavor = "multi_thread")]
async fn minted_token_accepted_by_connector_and_minting_refused_after_user_disabled_at_op() {
    let w = World::start().await;
    let _logs = OpLogsOnPanic(w.op);
    let account = "token-user-1";
    let session = w.cli_login(account).await;
    assert_eq!(w.op.grants("authorization_code", CLIENT.0, account), 1);

    // Minted, and accepted by the connector for the server's sub (the provider's).
    let (status, minted) = w.mint(&session).await;
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
    let (status, again) = w.mint(&session).await;
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
        let (status, body) = w.mint(&session).await;
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
