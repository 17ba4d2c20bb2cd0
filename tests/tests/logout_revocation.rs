//! Logout revokes the session's refresh token at a real OpenID Provider (npm `oidc-provider`,
//! RFC 7009 revocation on): after `POST /auth/logout`, the refresh token the login got is
//! refused by the provider (`invalid_grant`). The end-session redirect is *not* followed,
//! because `oidc-provider` ends the grant there itself: what is tested is the revocation the
//! login layer does on its own. A control app with `revoke_on_logout(false)` shows that the
//! refresh token survives a logout without it.
//!
//! The app is an in-process `LoginLayer` (client `web-app`, `offline_access`, so the login
//! gets a refresh token) whose provider HTTP client records the token responses, which is how
//! the test learns the refresh token without the app ever exposing it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::get;
use oidc_axum::User;
use oidc_core::Provider;
use oidc_core::error::HttpError;
use oidc_core::flow::OidcClient;
use oidc_core::http::{HttpClient, HttpRequest, HttpResponse, ReqwestClient};
use oidc_e2e::user_agent::UserAgent;
use oidc_e2e::{OpLogsOnPanic, RealProvider, ReservedPort, SHARED_API_RESOURCE, clients};
use oidc_tower::login::LoginLayer;
use serde_json::Value;

/// The app's host; the provider's is `localhost`.
const APP_HOST: &str = "127.0.0.1";

/// What the app's provider client saw.
#[derive(Debug, Default)]
struct Wire {
    /// The refresh tokens of the token responses.
    refresh_tokens: Vec<String>,
    /// The revocation requests: their `token_type_hint` and the provider's status.
    revocations: Vec<(String, u16)>,
}

type Seen = Arc<Mutex<Wire>>;

/// The default HTTP client, recording the refresh tokens the app got and its revocations.
#[derive(Debug)]
struct Recording {
    inner: Arc<ReqwestClient>,
    seen: Seen,
}

impl HttpClient for Recording {
    fn execute<'life0, 'async_trait>(
        &'life0 self,
        request: HttpRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpResponse, HttpError>> + Send + 'async_trait>>
    where
        'life0: 'async_trait,
        Self: 'async_trait,
    {
        let inner = Arc::clone(&self.inner);
        let seen = Arc::clone(&self.seen);
        let hint = request.uri().path().ends_with("/revocation").then(|| {
            // The hint is a plain word: no form decoding needed.
            String::from_utf8_lossy(request.body())
                .split('&')
                .find_map(|pair| pair.strip_prefix("token_type_hint="))
                .unwrap_or_default()
                .to_owned()
        });
        Box::pin(async move {
            let response = inner.execute(request).await?;
            let mut seen = seen.lock().unwrap();
            if let Some(hint) = hint {
                seen.revocations.push((hint, response.status().as_u16()));
            } else if let Ok(body) = serde_json::from_slice::<Value>(response.body())
                && let Some(rt) = body["refresh_token"].as_str()
            {
                seen.refresh_tokens.push(rt.to_owned());
            }
            drop(seen);
            Ok(response)
        })
    }
}

/// An in-process app behind `LoginLayer` on `port`, for `op`'s `web-app` client.
async fn start_app(op: &RealProvider, port: ReservedPort, revoke: bool) -> (String, Seen) {
    let app_url = port.app_url();
    let seen = Seen::default();
    let http = Recording {
        inner: Arc::new(ReqwestClient::new().unwrap()),
        seen: Arc::clone(&seen),
    };
    let provider = Provider::builder(op.issuer())
        .with_http_client(Arc::new(http))
        .build()
        .unwrap();
    let (client_id, secret) = clients::WEB_APP;
    let client = OidcClient::new(provider, client_id, format!("{app_url}/auth/callback"))
        .unwrap()
        .with_client_secret(secret)
        .with_scopes(["openid", "profile", "email", "offline_access"]);
    let layer = LoginLayer::new(client, &app_url)
        .unwrap()
        .revoke_on_logout(revoke);
    let router = Router::new()
        .route(
            "/me",
            get(|user: User| async move { user.subject().to_owned() }),
        )
        .layer(layer);
    let listener = tokio::net::TcpListener::bind((port.ip(), port.release()))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (app_url, seen)
}

/// Logs `account` in at the app (asking for consent, which `oidc-provider` needs to grant
/// `offline_access`); returns the refresh token the login got.
async fn log_in(ua: &mut UserAgent, op: &RealProvider, app_url: &str, seen: &Seen) -> String {
    let page = ua
        .navigate(&format!("{app_url}/auth/login?prompt=consent"))
        .await;
    assert_eq!(page.status, 303, "login start: {page}");
    let authorize = page.location().unwrap();
    let (callback, _) = ua
        .log_in_through_op(&authorize, &op.host(), APP_HOST, "revoke-user")
        .await;
    let page = ua.navigate(callback.as_str()).await;
    assert_eq!(page.status, 303, "callback: {page}");
    let me = ua
        .get(&format!("{app_url}/me"), &[("accept", "application/json")])
        .await;
    assert_eq!(me.status, 200, "logged in: {me}");
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.refresh_tokens.len(),
        1,
        "one token response with a refresh token"
    );
    seen.refresh_tokens[0].clone()
}

/// `POST /auth/logout` from the app's origin; the end-session redirect is not followed.
async fn log_out(ua: &mut UserAgent, app_url: &str) {
    let page = ua
        .post_form(
            &format!("{app_url}/auth/logout"),
            &[],
            &[("origin", app_url)],
        )
        .await;
    assert_eq!(page.status, 303, "logout: {page}");
    let me = ua
        .get(&format!("{app_url}/me"), &[("accept", "application/json")])
        .await;
    assert_eq!(me.status, 401, "logged out: {me}");
}

/// A refresh grant with `refresh_token` as `web-app`: the status and the JSON body.
async fn refresh(op: &RealProvider, refresh_token: &str) -> (u16, Value) {
    let token_endpoint = op.discovery().await["token_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (client_id, secret) = clients::WEB_APP;
    let res = oidc_e2e::http_client()
        .post(&token_endpoint)
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_revokes_the_refresh_token_at_the_real_provider() {
    let (on, off) = (ReservedPort::new(), ReservedPort::new());
    let urls = format!("{} {}", on.app_url(), off.app_url());
    let op = RealProvider::start_with_env(SHARED_API_RESOURCE, &urls, &[]).await;
    let _logs = OpLogsOnPanic(&op);

    // With revocation (the default): the refresh token is refused after logout.
    let (app_url, seen) = start_app(&op, on, true).await;
    let mut ua = UserAgent::new();
    let refresh_token = log_in(&mut ua, &op, &app_url, &seen).await;
    log_out(&mut ua, &app_url).await;
    // The revocation runs after the logout answer: wait (bounded) until the app's client
    // got both answers, then spend the refresh token once (refresh tokens rotate: a second
    // use would end the grant whatever the logout did).
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.lock().unwrap().revocations.len() < 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let revocations = seen.lock().unwrap().revocations.clone();
    assert_eq!(
        revocations.first(),
        Some(&("refresh_token".to_owned(), 200)),
        "the refresh token is revoked first: {revocations:?}"
    );
    assert_eq!(
        revocations.len(),
        2,
        "then the access token: {revocations:?}"
    );
    let (status, body) = refresh(&op, &refresh_token).await;
    assert_eq!(status, 400, "refresh after logout: {body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");

    // Control, without revocation: the same logout leaves the refresh token usable.
    let (app_url, seen) = start_app(&op, off, false).await;
    let mut ua = UserAgent::new();
    let refresh_token = log_in(&mut ua, &op, &app_url, &seen).await;
    log_out(&mut ua, &app_url).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(seen.lock().unwrap().revocations.is_empty());
    let (status, body) = refresh(&op, &refresh_token).await;
    assert_eq!(status, 200, "without revocation the grant survives: {body}");
}
