//! The command-line login of `oidc_core::cli` against the in-process provider: the loopback
//! redirect (state, PKCE, refused requests, deadlines, the listener closed after), and the
//! token file (mode 0600, refusal of readable files, refresh with rotation saved first,
//! logout with revocation).

#![cfg(feature = "cli")]
// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod common;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::Duration;

use oidc_core::cli::{CliError, LoopbackLogin, TokenFile};
use oidc_core::error::FlowError;
use oidc_core::flow::{AuthorizationResponse, OidcClient, TokenSet};
use oidc_testing::{ClientRegistration, TestProvider};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use common::{REDIRECT_URI, authorize_at_provider, callback_query, client_provider};

/// The redirect URI registered for the CLI: any loopback port is allowed.
const CLI_REDIRECT: &str = "http://127.0.0.1/callback";

fn cli_client(op: &TestProvider) -> OidcClient {
    op.register_client(
        ClientRegistration::public("cli", CLI_REDIRECT).allow_any_loopback_redirect(true),
    );
    op.set_auto_login(Some("ada"));
    OidcClient::new(client_provider(op).build().unwrap(), "cli", CLI_REDIRECT).unwrap()
}

/// A loopback login whose "browser" hands the login URL to the test.
fn loopback(client: OidcClient) -> (LoopbackLogin, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let login = LoopbackLogin::new(client)
        .with_opener(move |url: &str| tx.send(url.to_owned()).map_err(std::io::Error::other));
    (login, rx)
}

/// What the provider answers the login URL with (auto-login): the callback URL.
async fn callback_url(url: &str) -> url::Url {
    let http = oidc_core::http::ReqwestClient::new().unwrap();
    let res = oidc_core::http::HttpClient::execute(
        &http,
        http::Request::get(url).body(Vec::new()).unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 303);
    url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap()
}

/// A raw `GET target` to `addr` with `host`: the status code and the body.
async fn get(addr: &str, target: &str, host: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn host_and_target(url: &url::Url) -> (String, String) {
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let target = format!("{}?{}", url.path(), url.query().unwrap_or_default());
    (host, target)
}

#[tokio::test]
async fn loopback_login_redeems_the_code_with_pkce_and_closes_the_listener() {
    let op = TestProvider::start().await;
    let (login, mut urls) = loopback(cli_client(&op));
    let run = tokio::spawn(async move { login.run().await });
    let url = urls.recv().await.unwrap();
    let callback = callback_url(&url).await;
    assert_eq!(callback.host_str(), Some("127.0.0.1"));
    assert_eq!(callback.path(), "/callback");
    let (host, target) = host_and_target(&callback);
    let (status, body) = get(&host, &target, &host).await;
    assert_eq!(status, 200);
    assert!(body.contains("You are logged in"));
    let tokens = run.await.unwrap().unwrap();
    assert_eq!(tokens.subject(), "ada");
    // The authorization request: PKCE S256 and the loopback redirect URI with its port.
    let authorization = &op.authorization_requests()[0];
    let param = |name: &str| {
        authorization
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(param("code_challenge_method").as_deref(), Some("S256"));
    assert_eq!(
        param("redirect_uri").as_deref(),
        Some(format!("http://{host}/callback").as_str())
    );
    let token_request = &op.token_requests()[0];
    assert!(token_request.param("code_verifier").is_some());
    assert_eq!(
        token_request.param("redirect_uri"),
        Some(format!("http://{host}/callback").as_str())
    );
    // The listener is gone.
    assert!(TcpStream::connect(&host).await.is_err());
}

#[tokio::test]
async fn cb_02_loopback_callback_with_a_wrong_state_exchanges_nothing() {
    let op = TestProvider::start().await;
    let (login, mut urls) = loopback(cli_client(&op));
    let run = tokio::spawn(async move { login.run().await });
    let callback = callback_url(&urls.recv().await.unwrap()).await;
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .into_owned()
        .map(|(k, v)| {
            if k == "state" {
                (k, "attacker".to_owned())
            } else {
                (k, v)
            }
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(pairs);
    let (host, target) = host_and_target(&forged);
    let (status, body) = get(&host, &target, &host).await;
    assert_eq!(status, 400);
    assert!(!body.contains("attacker"));
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            CliError::Flow(FlowError::Unbound("state does not match"))
        ),
        "{err:?}"
    );
    assert!(op.token_requests().is_empty(), "no token request was made");
    assert!(TcpStream::connect(&host).await.is_err());
}

#[tokio::test]
async fn cb_02_loopback_callback_without_state_or_with_duplicates_exchanges_nothing() {
    for strip in [true, false] {
        let op = TestProvider::start().await;
        let (login, mut urls) = loopback(cli_client(&op));
        let run = tokio::spawn(async move { login.run().await });
        let callback = callback_url(&urls.recv().await.unwrap()).await;
        let (host, target) = host_and_target(&callback);
        let target = if strip {
            target.replace("state=", "x=")
        } else {
            format!("{target}&code=second")
        };
        assert_eq!(get(&host, &target, &host).await.0, 400);
        let err = run.await.unwrap().unwrap_err();
        assert!(
            matches!(err, CliError::Flow(FlowError::Unbound(_))),
            "{err:?}"
        );
        assert!(op.token_requests().is_empty());
    }
}

#[tokio::test]
async fn cb_04_loopback_error_response_ends_the_login_without_a_token_request() {
    let op = TestProvider::start().await;
    op.set_authorization_error(Some("access_denied"), Some("<script>x</script>"));
    let (login, mut urls) = loopback(cli_client(&op));
    let run = tokio::spawn(async move { login.run().await });
    let callback = callback_url(&urls.recv().await.unwrap()).await;
    let (host, target) = host_and_target(&callback);
    let (status, body) = get(&host, &target, &host).await;
    assert_eq!(status, 401);
    assert!(!body.contains("script"));
    let err = run.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, CliError::Flow(FlowError::AuthorizationDenied { error, .. }) if error == "access_denied"),
        "{err:?}"
    );
    assert!(op.token_requests().is_empty());
}

#[tokio::test]
async fn other_paths_methods_and_hosts_are_refused_and_the_login_goes_on() {
    let op = TestProvider::start().await;
    let (login, mut urls) = loopback(cli_client(&op));
    let run = tokio::spawn(async move { login.run().await });
    let callback = callback_url(&urls.recv().await.unwrap()).await;
    let (host, target) = host_and_target(&callback);
    assert_eq!(get(&host, "/favicon.ico", &host).await.0, 404);
    assert_eq!(
        get(&host, &target.replacen("/callback", "/callback/", 1), &host)
            .await
            .0,
        404
    );
    // DNS rebinding: a page of evil.example resolved to 127.0.0.1.
    assert_eq!(get(&host, &target, "evil.example").await.0, 400);
    let mut stream = TcpStream::connect(&host).await.unwrap();
    stream
        .write_all(format!("POST {target} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(op.token_requests().is_empty());
    // The real callback still completes the login.
    assert_eq!(get(&host, &target, &host).await.0, 200);
    assert_eq!(run.await.unwrap().unwrap().subject(), "ada");
}

#[tokio::test]
async fn an_idle_connection_gets_the_read_deadline_and_does_not_block_the_callback() {
    let op = TestProvider::start().await;
    let (login, mut urls) = loopback(cli_client(&op));
    let login = login.with_read_timeout(Duration::from_millis(300));
    let run = tokio::spawn(async move { login.run().await });
    let callback = callback_url(&urls.recv().await.unwrap()).await;
    let (host, target) = host_and_target(&callback);
    // Connected, sends nothing (a browser's speculative connection, or a slow client).
    let mut idle = TcpStream::connect(&host).await.unwrap();
    let started = std::time::Instant::now();
    let mut answer = String::new();
    idle.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // A second idle connection does not hold up the callback.
    let _idle = TcpStream::connect(&host).await.unwrap();
    assert_eq!(get(&host, &target, &host).await.0, 200);
    run.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_login_times_out_and_closes_the_listener() {
    let op = TestProvider::start().await;
    let (login, mut urls) = loopback(cli_client(&op));
    let login = login.with_timeout(Duration::from_millis(300));
    let run = tokio::spawn(async move { login.run().await });
    let callback = callback_url(&urls.recv().await.unwrap()).await;
    let err = run.await.unwrap().unwrap_err();
    assert!(matches!(err, CliError::Timeout), "{err:?}");
    let (host, _) = host_and_target(&callback);
    assert!(TcpStream::connect(&host).await.is_err());
    assert!(op.token_requests().is_empty());
}

// ---- the token file ----

async fn web_login(op: &TestProvider) -> (OidcClient, TokenSet) {
    op.register_client(ClientRegistration::public("cli", REDIRECT_URI));
    op.set_auto_login(Some("ada"));
    let client =
        OidcClient::new(client_provider(op).build().unwrap(), "cli", REDIRECT_URI).unwrap();
    let (tx, res) = authorize_at_provider(&client).await;
    let response = AuthorizationResponse::from_query(callback_query(&res)).unwrap();
    let tokens = client.complete(&tx, response).await.unwrap();
    (client, tokens)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> TempDir {
    let mut bytes = [0u8; 8];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let name: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let path = std::env::temp_dir().join(format!("oidc-cli-test-{name}"));
    std::fs::create_dir_all(&path).unwrap();
    TempDir(path)
}

#[tokio::test]
async fn the_token_file_is_written_with_mode_0600_in_a_0700_directory() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let path = dir.path().join("new").join("tokens.json");
    let file = TokenFile::new(&path);
    file.save(&client, &tokens).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(path.parent().unwrap()), 0o700);
    let stored = file.load().unwrap().unwrap();
    assert_eq!(stored.issuer(), op.issuer());
    assert_eq!(stored.tokens().access_token(), tokens.access_token());
    // No temporary file is left behind.
    assert_eq!(
        std::fs::read_dir(path.parent().unwrap()).unwrap().count(),
        1
    );
}

#[tokio::test]
async fn saving_replaces_a_readable_file_with_a_private_one() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let path = dir.path().join("tokens.json");
    std::fs::write(&path, "old").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    TokenFile::new(&path).save(&client, &tokens).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert!(TokenFile::new(&path).load().unwrap().is_some());
}

#[tokio::test]
async fn a_token_file_readable_by_others_is_refused() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let path = dir.path().join("tokens.json");
    let file = TokenFile::new(&path);
    file.save(&client, &tokens).unwrap();
    for bad in [0o644, 0o640, 0o604, 0o660] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(bad)).unwrap();
        let err = file.load().unwrap_err();
        assert!(
            matches!(err, CliError::InsecurePermissions { mode, .. } if mode == bad),
            "{bad:o}: {err:?}"
        );
        assert!(err.to_string().contains(&format!("{bad:04o}")), "{err}");
        assert!(!err.to_string().contains(tokens.access_token().secret()));
        let err = file.tokens(&client).await.unwrap_err();
        assert!(matches!(err, CliError::InsecurePermissions { .. }));
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(file.load().unwrap().is_some());
}

#[tokio::test]
async fn a_symbolic_link_is_not_followed() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let target = dir.path().join("real.json");
    TokenFile::new(&target).save(&client, &tokens).unwrap();
    let link = dir.path().join("tokens.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    assert!(matches!(
        TokenFile::new(&link).load(),
        Err(CliError::InvalidFile(_))
    ));
}

#[tokio::test]
async fn an_expiring_token_is_refreshed_and_the_rotated_refresh_token_saved_first() {
    let op = TestProvider::start().await;
    op.set_access_token_lifetime(10); // within the 30 s margin: refreshed on next use
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let file = TokenFile::new(dir.path().join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    op.set_access_token_lifetime(300);
    let fresh = file.tokens(&client).await.unwrap();
    assert_ne!(fresh.access_token(), tokens.access_token());
    let rotated = fresh.refresh_token().unwrap();
    assert_ne!(rotated, tokens.refresh_token().unwrap());
    // The file holds the rotated refresh token, still mode 0600.
    let stored = file.load().unwrap().unwrap();
    assert_eq!(stored.tokens().refresh_token(), Some(rotated));
    assert_eq!(stored.tokens().access_token(), fresh.access_token());
    assert_eq!(mode(file.path()), 0o600);
    // A fresh token is used as it is: no second refresh.
    let requests = op.token_requests().len();
    assert_eq!(
        file.tokens(&client).await.unwrap().access_token(),
        fresh.access_token()
    );
    assert_eq!(op.token_requests().len(), requests);
}

#[tokio::test]
async fn a_refused_refresh_token_asks_for_a_new_login_and_deletes_the_file() {
    let op = TestProvider::start().await;
    op.set_access_token_lifetime(10);
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let file = TokenFile::new(dir.path().join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    op.revoke_user("ada");
    let err = file.tokens(&client).await.unwrap_err();
    assert!(matches!(err, CliError::LoginRequired(_)), "{err:?}");
    assert!(!file.path().exists());
}

#[tokio::test]
async fn tokens_of_another_client_are_not_used() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let file = TokenFile::new(dir.path().join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    op.register_client(ClientRegistration::public("other", REDIRECT_URI));
    let other =
        OidcClient::new(client_provider(&op).build().unwrap(), "other", REDIRECT_URI).unwrap();
    assert!(matches!(
        file.tokens(&other).await,
        Err(CliError::LoginRequired(_))
    ));
}

#[tokio::test]
async fn logout_revokes_the_refresh_token_then_the_access_token_and_deletes_the_file() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let file = TokenFile::new(dir.path().join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    let outcome = file.logout(&client).await.unwrap();
    assert!(outcome.was_logged_in && outcome.revocation_offered);
    assert!(outcome.revocation_error.is_none());
    assert!(!file.path().exists());
    let revoked = op.revoked_tokens();
    assert_eq!(
        revoked,
        [
            tokens.refresh_token().unwrap().secret().to_owned(),
            tokens.access_token().secret().to_owned()
        ]
    );
    assert!(
        client
            .refresh(&tokens)
            .await
            .unwrap_err()
            .is_invalid_grant()
    );
    // Logged out already: nothing to do, nothing sent.
    let again = file.logout(&client).await.unwrap();
    assert!(!again.was_logged_in);
    assert_eq!(op.revocation_requests().len(), 2);
}

#[tokio::test]
async fn a_failed_revocation_is_reported_and_the_file_still_deleted() {
    let op = TestProvider::start().await;
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let file = TokenFile::new(dir.path().join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    op.fail_revocation(Some(503));
    let outcome = file.logout(&client).await.unwrap();
    assert!(outcome.revocation_error.is_some());
    assert!(!file.path().exists());
}

#[tokio::test]
async fn logout_without_a_revocation_endpoint_deletes_the_file_and_sends_nothing() {
    let op = TestProvider::start().await;
    op.set_discovery_member("revocation_endpoint", None);
    let (client, tokens) = web_login(&op).await;
    let dir = temp_dir();
    let file = TokenFile::new(dir.path().join("tokens.json"));
    file.save(&client, &tokens).unwrap();
    let outcome = file.logout(&client).await.unwrap();
    assert!(outcome.was_logged_in && !outcome.revocation_offered);
    assert!(outcome.revocation_error.is_none());
    assert!(!file.path().exists());
    assert!(op.revocation_requests().is_empty());
}
