//! Helpers shared by the integration tests of `oidc-core`: access-token verifiers of an
//! in-process provider (`oidc-testing`), their outcomes, and a login through `OidcClient`.

// Each test crate uses a part of these helpers.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oidc_core::error::VerifyError;
use oidc_core::flow::{AuthorizeOptions, OidcClient, Transaction};
use oidc_core::http::{HttpClient as _, HttpResponse, ReqwestClient};
use oidc_core::{AccessTokenVerifier, AdditionalClaims, Claims, Provider, ProviderBuilder};
use oidc_testing::TestProvider;

/// The audience of `oidc-testing` access tokens by default.
pub(crate) const AUDIENCE: &str = "api://default";

/// A verifier of `provider`'s access tokens for [`AUDIENCE`].
pub(crate) fn verifier(provider: Provider) -> AccessTokenVerifier {
    AccessTokenVerifier::new(provider, AUDIENCE)
}

/// A verifier of `tp`'s access tokens, its `Provider` built by `configure` from the issuer's.
pub(crate) fn verifier_with(
    tp: &TestProvider,
    configure: impl FnOnce(ProviderBuilder) -> ProviderBuilder,
) -> AccessTokenVerifier {
    verifier(configure(Provider::builder(tp.issuer())).build().unwrap())
}

/// A verifier of `tp`'s access tokens with the default `Provider` settings.
pub(crate) fn verifier_for(tp: &TestProvider) -> AccessTokenVerifier {
    verifier_with(tp, |builder| builder)
}

/// Starts a provider and a verifier of its access tokens with the default settings.
pub(crate) async fn setup() -> (TestProvider, AccessTokenVerifier) {
    let tp = TestProvider::start().await;
    let v = verifier_for(&tp);
    (tp, v)
}

/// Starts a provider and a verifier of its access tokens, its `Provider` built by `configure`.
pub(crate) async fn setup_with(
    configure: impl FnOnce(ProviderBuilder) -> ProviderBuilder,
) -> (TestProvider, AccessTokenVerifier) {
    let tp = TestProvider::start().await;
    let v = verifier_with(&tp, configure);
    (tp, v)
}

/// Verifies `token` with the default claim type.
pub(crate) async fn verify(v: &AccessTokenVerifier, token: &str) -> Result<Claims, VerifyError> {
    v.verify::<AdditionalClaims>(token).await
}

/// Asserts that `token` verifies and returns its claims.
pub(crate) async fn accepted(v: &AccessTokenVerifier, token: &str, what: &str) -> Claims {
    match verify(v, token).await {
        Ok(claims) => claims,
        Err(e) => panic!("{what}: expected acceptance, got {e:?}"),
    }
}

/// Asserts that `token` is rejected with an error matching the pattern; evaluates to the error.
#[allow(unused_macros)]
macro_rules! assert_rejected {
    ($verifier:expr, $token:expr, $pattern:pat $(if $guard:expr)?, $what:expr) => {{
        let result = $crate::common::verify(&$verifier, &$token).await;
        assert!(
            matches!(result, Err($pattern) $(if $guard)?),
            "{}: expected {}, got {:?}",
            $what,
            stringify!($pattern),
            result
        );
        result.unwrap_err()
    }};
}
#[allow(unused_imports)]
pub(crate) use assert_rejected;

/// Seconds since the Unix epoch, now.
pub(crate) fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

/// A loopback listener that counts the connections it accepts.
pub(crate) async fn counting_listener() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((_stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    (addr, hits)
}

/// The redirect URI the `OidcClient`s of the tests register.
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:3999/auth/callback";

/// The builder of a `Provider` for `op`'s issuer, with a short retry backoff (50 to 100 ms).
pub(crate) fn client_provider(op: &TestProvider) -> ProviderBuilder {
    Provider::builder(op.issuer())
        .with_retry_backoff(Duration::from_millis(50), Duration::from_millis(100))
}

/// Starts a login with `client` and lets the provider (auto-login) answer it: the transaction
/// and the provider's `303` response, whose `location` is the callback.
pub(crate) async fn authorize_at_provider(client: &OidcClient) -> (Transaction, HttpResponse) {
    let (url, tx) = client.authorize(&AuthorizeOptions::new()).await.unwrap();
    let http = ReqwestClient::new().unwrap();
    let res = http
        .execute(http::Request::get(url).body(Vec::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    (tx, res)
}

/// The query of the callback the provider's `303` response redirects to.
pub(crate) fn callback_query(res: &HttpResponse) -> &str {
    let location = res.headers()["location"].to_str().unwrap();
    location.split_once('?').unwrap().1
}
