//! The token-service example against the in-process provider of `oidc-testing`: a CLI logs in
//! through the server, the server mints tokens the connector accepts, and stops minting once
//! the provider refuses the user.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use oidc_core::Algorithm;
use oidc_core::Provider;
use oidc_core::flow::OidcClient;
use oidc_core::issue::{Revalidator, SigningKey, TokenIssuer};
use oidc_testing::{ClientRegistration, Failure, TestProvider};
use serde_json::{Value, json};

const CLIENT_ID: &str = "token-service";
const SECRET: &str = "token-service-secret";
const REDIRECT_URI: &str = "http://127.0.0.1:8976/callback";
const AUDIENCE: &str = "http://127.0.0.1:3001";
const USER: &str = "alice";

struct Fixture {
    op: TestProvider,
    server: String,
    connector: String,
    http: reqwest::Client,
    now: Arc<Mutex<SystemTime>>,
}

async fn listen() -> (tokio::net::TcpListener, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    (listener, url)
}

impl Fixture {
    async fn start() -> Self {
        let op = TestProvider::start().await;
        op.set_auto_login(Some(USER));
        op.register_client(ClientRegistration::confidential(
            CLIENT_ID,
            SECRET,
            REDIRECT_URI,
        ));
        let client = OidcClient::new(
            Provider::builder(op.issuer()).build().unwrap(),
            CLIENT_ID,
            REDIRECT_URI,
        )
        .unwrap()
        .with_client_secret(SECRET)
        .with_scopes(["openid", "offline_access"]);
        let now = Arc::new(Mutex::new(SystemTime::now()));
        let clock = {
            let now = Arc::clone(&now);
            Arc::new(move || *now.lock().unwrap())
        };
        let revalidator = Revalidator::builder(client.clone())
            .with_interval(Duration::from_secs(1))
            .with_clock(clock)
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
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Self {
            op,
            server,
            connector,
            http,
            now,
        }
    }

    async fn post(
        &self,
        path: &str,
        session: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.post(format!("{}{path}", self.server));
        if let Some(session) = session {
            req = req.bearer_auth(session);
        }
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            headers,
        )
    }

    /// The CLI's login: start at the server, let the provider answer (auto-login), hand the
    /// callback query to the server. Returns the login id and the session.
    async fn cli_login(&self) -> (String, String) {
        let (status, started, _) = self.post("/cli/login", None, None).await;
        assert_eq!(status, 200, "{started}");
        let authorize = started["authorize_url"].as_str().unwrap();
        assert!(authorize.contains("prompt=consent"), "{authorize}");
        let res = self.http.get(authorize).send().await.unwrap();
        assert_eq!(res.status(), 303);
        let callback = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
        assert!(callback.as_str().starts_with(REDIRECT_URI), "{callback}");
        let login_id = started["login_id"].as_str().unwrap().to_owned();
        let body = json!({ "login_id": login_id, "callback_query": callback.query().unwrap() });
        let (status, done, headers) = self.post("/cli/complete", None, Some(body)).await;
        assert_eq!(status, 200, "{done}");
        assert_eq!(headers["cache-control"], "no-store");
        (login_id, done["session"].as_str().unwrap().to_owned())
    }

    async fn mint(&self, session: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        self.post("/token", Some(session), None).await
    }

    async fn connector_status(&self, token: &str) -> (u16, Value) {
        let res = self
            .http
            .get(format!("{}/api/me", self.connector))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (
            status,
            serde_json::from_str(&res.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    fn advance(&self, by: Duration) {
        *self.now.lock().unwrap() += by;
    }

    fn refreshes(&self) -> usize {
        self.op
            .token_requests()
            .iter()
            .filter(|r| r.param("grant_type") == Some("refresh_token"))
            .count()
    }
}

#[tokio::test]
async fn minted_token_is_accepted_by_the_connector_until_the_provider_refuses_the_user() {
    let f = Fixture::start().await;
    let (_, session) = f.cli_login().await;
    let (status, minted, headers) = f.mint(&session).await;
    assert_eq!(status, 200, "{minted}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(minted["token_type"], "Bearer");
    assert_eq!(minted["expires_in"], 300);
    let token = minted["access_token"].as_str().unwrap().to_owned();
    let (status, me) = f.connector_status(&token).await;
    assert_eq!(status, 200);
    assert_eq!(me, json!({ "sub": USER, "iss": f.server }));

    // After the interval the provider is asked again; it still accepts the user.
    f.advance(Duration::from_secs(2));
    assert_eq!(f.mint(&session).await.0, 200);
    assert_eq!(f.refreshes(), 1);

    // The user is disabled at the provider; once the interval has passed, no more tokens.
    f.op.revoke_user(USER);
    f.advance(Duration::from_secs(2));
    for _ in 0..2 {
        let (status, body, headers) = f.mint(&session).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("login_required"))
        );
        assert_eq!(
            headers["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        f.advance(Duration::from_secs(2));
    }
    assert_eq!(f.refreshes(), 2, "refused once, not asked again");
    // The token minted before still works until its exp: the short lifetime is the bound.
    assert_eq!(f.connector_status(&token).await.0, 200);
}

#[tokio::test]
async fn token_requires_a_registered_session() {
    let f = Fixture::start().await;
    for session in [None, Some("not-a-session")] {
        let (status, body, headers) = f.post("/token", session, None).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("login_required"))
        );
        assert_eq!(
            headers["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
    }
    // A logged-out session gets no token either.
    let (_, session) = f.cli_login().await;
    assert_eq!(f.mint(&session).await.0, 200);
    assert_eq!(f.post("/cli/logout", Some(&session), None).await.0, 204);
    assert_eq!(f.mint(&session).await.0, 401);
}

#[tokio::test]
async fn a_login_id_is_single_use_and_unknown_ones_make_no_token_request() {
    let f = Fixture::start().await;
    let (login_id, _) = f.cli_login().await;
    let requests = f.op.token_requests().len();
    for id in [login_id.as_str(), "made-up"] {
        let body = json!({ "login_id": id, "callback_query": "code=x&state=y" });
        let (status, answer, _) = f.post("/cli/complete", None, Some(body)).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some("unknown_login"))
        );
    }
    assert_eq!(
        f.op.token_requests().len(),
        requests,
        "no code exchange attempted"
    );
}

#[tokio::test]
async fn provider_down_means_503_with_retry_after_not_a_token() {
    let f = Fixture::start().await;
    let (_, session) = f.cli_login().await;
    f.op.fail_token(Failure::Status(503));
    f.advance(Duration::from_secs(2));
    let (status, body, headers) = f.mint(&session).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (503, Some("provider_unavailable"))
    );
    assert_eq!(headers["retry-after"], "1");
    // Back up: minting resumes after the pause.
    f.op.fail_token(Failure::None);
    f.advance(Duration::from_secs(2));
    assert_eq!(f.mint(&session).await.0, 200);
}

// --- The device flow: `POST /cli/device`, `POST /cli/device/complete` ------------------------

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `POST <url>` with a JSON body, from a task of its own: the CLI waiting at
/// `/cli/device/complete` while the test acts as the user.
async fn post_json(http: reqwest::Client, url: String, body: Value) -> (u16, Value) {
    let res = http
        .post(url)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Fixture {
    /// `POST /cli/device`, which must succeed: the JSON answer.
    async fn device_start(&self) -> Value {
        let (status, started, headers) = self.post("/cli/device", None, None).await;
        assert_eq!(status, 200, "{started}");
        assert_eq!(headers["cache-control"], "no-store");
        started
    }

    async fn device_complete(&self, login_id: &str) -> (u16, Value) {
        let body = json!({ "login_id": login_id });
        let (status, answer, _) = self.post("/cli/device/complete", None, Some(body)).await;
        (status, answer)
    }

    fn device_grants(&self) -> Vec<oidc_testing::RecordedTokenRequest> {
        self.op
            .token_requests()
            .into_iter()
            .filter(|r| r.param("grant_type") == Some(DEVICE_CODE_GRANT))
            .collect()
    }
}

#[tokio::test]
async fn device_login_gives_a_session_whose_tokens_the_connector_accepts_until_the_user_is_refused()
{
    let f = Fixture::start().await;
    f.op.set_device_interval(0);
    let started = f.device_start().await;
    // What the CLI shows, and nothing it could poll the provider with.
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    assert!(!user_code.is_empty());
    assert_eq!(
        started["verification_uri"],
        format!("{}/device", f.op.issuer())
    );
    assert!(
        started["verification_uri_complete"]
            .as_str()
            .unwrap()
            .ends_with(&format!("user_code={user_code}")),
        "{started}"
    );
    let expires_in = started["expires_in"].as_u64().unwrap();
    assert!((598..=600).contains(&expires_in), "{started}");
    assert_eq!(started["interval"], 1, "0 is raised to the 1 s minimum");
    let login_id = started["login_id"].as_str().unwrap().to_owned();
    assert_eq!(login_id.len(), 43, "256 random bits, base64url");
    let mut fields: Vec<&str> = started
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        [
            "expires_in",
            "interval",
            "login_id",
            "user_code",
            "verification_uri",
            "verification_uri_complete"
        ],
        "no device_code for the CLI"
    );
    // The server asked with its own confidential client, for a refresh token.
    let asked = f.op.device_authorization_requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].basic_client_id.as_deref(), Some(CLIENT_ID));
    assert!(
        asked[0].param("scope").unwrap().contains("offline_access"),
        "{:?}",
        asked[0].params
    );

    assert!(f.op.approve_device(&user_code, USER));
    let (status, done, headers) = f
        .post(
            "/cli/device/complete",
            None,
            Some(json!({ "login_id": login_id })),
        )
        .await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(headers["cache-control"], "no-store");
    let session = done["session"].as_str().unwrap().to_owned();
    assert_eq!(done.as_object().unwrap().len(), 1, "{done}");
    // The server redeemed the device code with its own client (approved before the complete:
    // its first poll).
    let grants = f.device_grants();
    assert_eq!(grants.len(), 1);
    assert_eq!(grants[0].basic_client_id.as_deref(), Some(CLIENT_ID));

    let (status, minted, _) = f.mint(&session).await;
    assert_eq!(status, 200, "{minted}");
    let token = minted["access_token"].as_str().unwrap();
    assert_eq!(
        f.connector_status(token).await,
        (200, json!({ "sub": USER, "iss": f.server }))
    );
    // Registered with the revalidator like a code-flow login: refused once the provider
    // refuses the user.
    f.op.revoke_user(USER);
    f.advance(Duration::from_secs(2));
    let (status, body, _) = f.mint(&session).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("login_required"))
    );
    assert_eq!(f.refreshes(), 1);
}

#[tokio::test]
async fn device_login_id_is_single_use_during_and_after_the_wait_and_unknown_ids_poll_nothing() {
    let f = Fixture::start().await;
    f.op.set_device_interval(0);
    let (status, answer) = f.device_complete("made-up").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("unknown_login"))
    );
    assert_eq!(
        f.op.device_poll_count(),
        0,
        "nothing sent for an unknown id"
    );

    let started = f.device_start().await;
    let login_id = started["login_id"].as_str().unwrap().to_owned();
    let waiting = tokio::spawn(post_json(
        f.http.clone(),
        format!("{}/cli/device/complete", f.server),
        json!({ "login_id": login_id }),
    ));
    // The first complete polls (authorization_pending) ...
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while f.op.device_poll_count() == 0 {
        assert!(std::time::Instant::now() < deadline, "no poll");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // ... and a second one with the same id, during that wait, is refused at once.
    let (status, answer) =
        tokio::time::timeout(Duration::from_secs(5), f.device_complete(&login_id))
            .await
            .expect("refused at once, not a second wait");
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("unknown_login"))
    );
    assert!(f.op.approve_device(started["user_code"].as_str().unwrap(), USER));
    let (status, done) = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status, 200, "{done}");
    assert!(done["session"].is_string());

    // After it, too; and no further poll or token request is made for the used id.
    let (polls, requests) = (f.op.device_poll_count(), f.op.token_requests().len());
    let (status, answer) = f.device_complete(&login_id).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (404, Some("unknown_login"))
    );
    assert_eq!(f.op.device_poll_count(), polls);
    assert_eq!(f.op.token_requests().len(), requests);
}

#[tokio::test]
async fn device_login_refused_by_the_user_is_403_and_gives_no_session() {
    let f = Fixture::start().await;
    f.op.set_device_interval(0);
    let started = f.device_start().await;
    assert!(f.op.deny_device(started["user_code"].as_str().unwrap()));
    let login_id = started["login_id"].as_str().unwrap();
    let (status, answer) = f.device_complete(login_id).await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer, json!({ "error": "access_denied" }));
    // Used up by the refusal.
    assert_eq!(f.device_complete(login_id).await.0, 404);
}

#[tokio::test]
async fn device_code_expired_at_the_provider_is_410_and_gives_no_session() {
    let f = Fixture::start().await;
    f.op.set_device_interval(0);
    let started = f.device_start().await;
    assert!(f.op.expire_device(started["user_code"].as_str().unwrap()));
    let (status, answer) = f
        .device_complete(started["login_id"].as_str().unwrap())
        .await;
    assert_eq!(status, 410, "{answer}");
    assert_eq!(answer, json!({ "error": "expired_token" }));
}

#[tokio::test]
async fn device_wait_ends_with_410_when_the_code_expires_unapproved() {
    let f = Fixture::start().await;
    f.op.set_device_interval(0);
    f.op.set_device_expires_in(2);
    let started = f.device_start().await;
    let begun = std::time::Instant::now();
    let (status, answer) = tokio::time::timeout(
        Duration::from_secs(10),
        f.device_complete(started["login_id"].as_str().unwrap()),
    )
    .await
    .expect("the wait is bounded by the code's expiry");
    assert_eq!(
        (status, answer["error"].as_str()),
        (410, Some("expired_token"))
    );
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "{:?}",
        begun.elapsed()
    );
    assert!(f.op.device_poll_count() >= 1);
}

#[tokio::test]
async fn late_device_complete_is_410_and_sends_no_poll() {
    let f = Fixture::start().await;
    f.op.set_device_interval(0);
    f.op.set_device_expires_in(1);
    let started = f.device_start().await;
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let (status, answer) = f
        .device_complete(started["login_id"].as_str().unwrap())
        .await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (410, Some("expired_token"))
    );
    assert_eq!(f.op.device_poll_count(), 0);
}

#[tokio::test]
async fn hostile_device_authorization_is_refused_and_no_login_is_kept() {
    let f = Fixture::start().await;
    // A user code that would write escape sequences into the user's terminal.
    f.op.mutate_device_authorization(|body| {
        body.insert("user_code".to_owned(), json!("\u{1b}]0;owned\u{7}"));
    });
    let (status, answer, _) = f.post("/cli/device", None, None).await;
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer, json!({ "error": "provider_failure" }));
    assert_eq!(f.op.device_poll_count(), 0);
}
