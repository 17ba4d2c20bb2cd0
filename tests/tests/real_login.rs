//! Browser login of the quickstart against a real OpenID Provider (npm `oidc-provider`),
//! driven over plain HTTP: every redirect is followed by hand, cookies are kept per host
//! (see [`oidc_e2e::user_agent`]), and the provider's own development login and consent pages
//! (`devInteractions`) are filled in from their HTML forms.
//!
//! The app runs as `http://127.0.0.1:<port>` and the provider as `http://localhost:<port>`:
//! different hosts, so two cookie jars, and different sites, so the callback is a cross-site
//! navigation as in production (SES-03). One provider serves all the tests of this file (one
//! registered redirect URI per test, see [`LoginProvider`]); each test has its own quickstart,
//! its own user agent and its own account (the login typed into the provider's form, which
//! becomes `sub`; `server.mjs` derives `email` = `<login>@example.com`), so the tests are
//! independent and run in parallel.
//!
//! The provider's access tokens for `web-app` live [`AT_TTL`] seconds, shorter than the login
//! layer's 60 s refresh margin: a session that has a refresh token refreshes on its next
//! request (SES-05). Only sessions that asked for `offline_access` get a refresh token.
//!
//! Test names carry the case ids of `SECURITY-CASES.md`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use oidc_e2e::user_agent::{Page, UserAgent, json_body, query};
use oidc_e2e::{LoginProvider, OpLogsOnPanic, Quickstart, RealProvider, jwt_claims};
use reqwest::Url;
use tokio::sync::OnceCell;

/// Lifetime of the provider's access tokens for `web-app`, in seconds.
const AT_TTL: u64 = 5;
/// The session cookie of the quickstart (its app URL is `http`, so no `__Host-` prefix).
const SESSION_COOKIE: &str = "oidc-session";
/// The app's host; the provider's is `localhost`.
const APP_HOST: &str = "127.0.0.1";
/// Quickstarts started by the tests of this file (at most).
const APPS: usize = 8;

/// The provider shared by the tests of this file.
async fn provider() -> &'static LoginProvider {
    static OP: OnceCell<LoginProvider> = OnceCell::const_new();
    LoginProvider::shared(&OP, APPS, AT_TTL).await
}

/// One test's world: the shared provider, a quickstart of its own and a fresh user agent.
struct World {
    op: &'static RealProvider,
    app: Quickstart,
    ua: UserAgent,
    op_host: String,
    _logs: OpLogsOnPanic<'static>,
}

impl World {
    async fn start(app_env: &[(&str, &str)]) -> Self {
        let login = provider().await;
        let op = login.op();
        let app = login.start_app(app_env).await;
        let op_host = op.host();
        assert_ne!(
            op_host, APP_HOST,
            "the provider and the app must be on different hosts"
        );
        Self {
            op,
            app,
            ua: UserAgent::new(),
            op_host,
            _logs: OpLogsOnPanic(op),
        }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }

    /// The app's session cookie in the user agent's jar.
    fn session_cookie(&self) -> Option<String> {
        self.ua.cookie(APP_HOST, SESSION_COOKIE).map(str::to_owned)
    }

    /// `GET path` on the app as a browser navigation.
    async fn navigate(&mut self, path: &str) -> Page {
        let url = self.url(path);
        self.ua.navigate(&url).await
    }

    /// `GET path` on the app as an API call (`Accept: application/json`).
    async fn get_json(&mut self, path: &str) -> Page {
        let url = self.url(path);
        self.ua.get(&url, &[("accept", "application/json")]).await
    }

    /// `GET login_path` on the app (e.g. `/auth/login?return_to=%2Fme`): asserts the 303 to
    /// the provider's authorization endpoint and returns its URL.
    async fn start_login(&mut self, login_path: &str) -> Url {
        let page = self.navigate(login_path).await;
        self.assert_redirect_to_authorize(&page).await
    }

    async fn assert_redirect_to_authorize(&self, page: &Page) -> Url {
        assert_eq!(page.status, 303, "login start: {page}");
        let authorize = page.location().unwrap();
        let endpoint = self.op.discovery().await["authorization_endpoint"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut bare = authorize.clone();
        bare.set_query(None);
        assert_eq!(bare.as_str(), endpoint, "login start: {page}");
        authorize
    }

    /// Drives the provider from the authorization request to the redirect back to the app
    /// (see [`UserAgent::log_in_through_op`]). Returns the callback URL (not requested) and
    /// the prompts shown (`login`, `consent`).
    async fn authorize_at_op(&mut self, authorize: &Url, account: &str) -> (Url, Vec<String>) {
        self.ua
            .log_in_through_op(authorize, &self.op_host, APP_HOST, account)
            .await
    }

    /// Requests the callback URL with the app's cookies.
    async fn callback(&mut self, callback: &Url) -> Page {
        self.ua.navigate(callback.as_str()).await
    }

    /// A whole login for `account` through `login_path`; asserts the callback's 303 and
    /// returns it.
    async fn log_in(&mut self, login_path: &str, account: &str) -> Page {
        let authorize = self.start_login(login_path).await;
        let (callback, _) = self.authorize_at_op(&authorize, account).await;
        let page = self.callback(&callback).await;
        assert_eq!(page.status, 303, "callback: {page}");
        page
    }

    /// Grants of `grant_type` the provider made to `web-app` for `account`.
    fn grants(&self, grant_type: &str, account: &str) -> usize {
        self.op.grants(grant_type, "web-app", account)
    }

    /// Waits up to 5 s until the provider logged `n` grants of `grant_type` for `account`.
    async fn wait_for_grants(&self, grant_type: &str, account: &str, n: usize) -> usize {
        self.op
            .wait_for_grants(grant_type, "web-app", account, n)
            .await
    }
}

fn is_base64url(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Asserts the answers to a request without a valid session: 303 to the login for a
/// navigation, 401 for an API call.
async fn assert_logged_out(w: &mut World, what: &str) {
    let page = w.navigate("/me").await;
    assert_eq!(page.status, 303, "{what}: navigation to /me: {page}");
    assert_eq!(
        page.raw_location(),
        Some("/auth/login?return_to=%2Fme"),
        "{what}: {page}"
    );
    let page = w.get_json("/me").await;
    assert_eq!(page.status, 401, "{what}: JSON /me: {page}");
    assert!(page.header("location").is_none(), "{what}: {page}");
}

/// IDT-01 / CB-01 / CB-12 / SES-01 / SES-02: the whole login against the real provider.
///
/// `/me` without a session → 303 to `/auth/login?return_to=%2Fme` → 303 to the provider with
/// a proper authorization request (CB-01) → login and consent pages → callback → bare 303 to
/// `/me` with `no-store` and `no-referrer` (CB-12) and a new session id (SES-01) in a cookie
/// with the right attributes (SES-02) → `/me` shows the user's claims (IDT-01). The provider
/// checks the PKCE `code_verifier` against the `code_challenge` it received (it does whenever a
/// challenge was sent), so the successful code redemption proves they match.
#[tokio::test(flavor = "multi_thread")]
async fn idt_01_cb_01_real_provider_login() {
    let mut w = World::start(&[]).await;
    let account = "idt01-alice";

    // A browser navigation without a session is sent to the login, which stores a
    // transaction (and so issues the pre-login session cookie) and redirects to the provider.
    let page = w.navigate("/me").await;
    assert_eq!(page.status, 303, "{page}");
    assert_eq!(
        page.raw_location(),
        Some("/auth/login?return_to=%2Fme"),
        "{page}"
    );
    let page = w.ua.follow(&page).await;
    let authorize = w.assert_redirect_to_authorize(&page).await;
    let pre_login = page
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("the login start sets the session cookie: {page}"));
    assert_eq!(
        w.session_cookie().as_deref(),
        Some(pre_login.value.as_str())
    );

    // CB-01: the authorization request.
    let params = query(&authorize);
    assert_eq!(params["response_type"], "code", "{authorize}");
    assert_eq!(params["client_id"], "web-app", "{authorize}");
    assert_eq!(
        params["redirect_uri"],
        w.url("/auth/callback"),
        "redirect_uri exactly as registered: {authorize}"
    );
    assert!(
        params["scope"].split(' ').any(|s| s == "openid"),
        "{authorize}"
    );
    assert_eq!(params["code_challenge_method"], "S256", "{authorize}");
    let challenge = &params["code_challenge"];
    assert_eq!(challenge.len(), 43, "base64url(SHA-256): {authorize}");
    assert!(is_base64url(challenge), "{authorize}");
    for name in ["state", "nonce"] {
        let value = params
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing: {authorize}"));
        // At least 128 bits: 22 base64url characters.
        assert!(value.len() >= 22, "{name} too short: {authorize}");
    }
    for name in ["code_verifier", "client_secret", "access_token", "id_token"] {
        assert!(
            !params.contains_key(name),
            "{name} in the front channel: {authorize}"
        );
    }

    // CB-01: state, nonce and code_challenge are fresh per transaction.
    let mut other = UserAgent::new();
    let second = other.navigate(&w.url("/auth/login?return_to=%2Fme")).await;
    let second = query(&w.assert_redirect_to_authorize(&second).await);
    for name in ["state", "nonce", "code_challenge"] {
        assert_ne!(
            second[name], params[name],
            "{name} reused across transactions"
        );
    }

    // The provider's login and consent pages.
    let (callback, prompts) = w.authorize_at_op(&authorize, account).await;
    assert_eq!(prompts, ["login", "consent"], "pages shown by the provider");
    let mut bare = callback.clone();
    bare.set_query(None);
    assert_eq!(bare.as_str(), w.url("/auth/callback"));

    let page = w.callback(&callback).await;
    // CB-12: a bare 303 to the clean return-to URL, not cached, no Referer.
    assert_eq!(page.status, 303, "callback: {page}");
    assert_eq!(page.raw_location(), Some("/me"), "{page}");
    assert_eq!(page.body, "", "bare redirect: {page}");
    assert_eq!(page.header("cache-control"), Some("no-store"), "{page}");
    assert_eq!(
        page.header("referrer-policy"),
        Some("no-referrer"),
        "{page}"
    );

    // SES-01: a new session id at login. SES-02: the cookie's attributes.
    let cookie = page
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("the callback sets the session cookie: {page}"));
    assert_ne!(
        cookie.value, pre_login.value,
        "session id not cycled at login"
    );
    assert!(cookie.has("httponly"), "{}", cookie.raw);
    assert_eq!(cookie.attr("samesite"), Some("Lax"), "{}", cookie.raw);
    assert_eq!(cookie.attr("path"), Some("/"), "{}", cookie.raw);
    assert!(!cookie.has("domain"), "{}", cookie.raw);
    assert!(!cookie.has("secure"), "http app: {}", cookie.raw);
    assert!(cookie.value.len() < 4096, "{}", cookie.raw);
    for leak in ["eyJ", account] {
        assert!(
            !cookie.value.contains(leak),
            "cookie carries {leak}: {}",
            cookie.raw
        );
    }
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);

    // IDT-01: the claims reach the handler.
    let page = w.ua.follow(&page).await;
    let me = json_body(&page);
    assert_eq!(me["sub"], account, "{me}");
    assert_eq!(me["email"], format!("{account}@example.com"), "{me}");
    assert_eq!(me["iss"], w.op.issuer(), "{me}");
    assert_eq!(me["claims"]["email_verified"], true, "{me}");
    assert!(
        !page.body.contains("eyJ"),
        "tokens must not reach the page: {page}"
    );

    let home = w.navigate("/").await;
    assert_eq!(home.status, 200, "{home}");
    assert!(home.body.contains("Signed in as"), "{home}");
    assert!(
        home.body.contains(&format!("{account}@example.com")),
        "{home}"
    );

    // SES-01: the pre-login session id is not authenticated.
    w.ua.set_cookie(APP_HOST, SESSION_COOKIE, &pre_login.value);
    assert_logged_out(&mut w, "pre-login session id").await;
}

/// CB-03: a callback URL is single-use. Replayed after the login (browser history, a second
/// tab), in the same browser, with the pre-login cookie, or in another browser: 400, and the
/// code is not redeemed again. The session of the first use is unaffected.
#[tokio::test(flavor = "multi_thread")]
async fn cb_03_callback_replay_400() {
    let mut w = World::start(&[]).await;
    let account = "cb03-bob";

    let authorize = w.start_login("/auth/login?return_to=%2Fme").await;
    let pre_login = w.session_cookie().unwrap();
    let (callback, _) = w.authorize_at_op(&authorize, account).await;
    let first = w.callback(&callback).await;
    assert_eq!(first.status, 303, "first use: {first}");
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);

    let session = w.session_cookie().unwrap();
    for (what, cookie) in [
        ("the logged-in session", Some(session.clone())),
        ("the pre-login session", Some(pre_login)),
        ("no cookie", None),
    ] {
        match &cookie {
            Some(value) => w.ua.set_cookie(APP_HOST, SESSION_COOKIE, value),
            None => w.ua.remove_cookie(APP_HOST, SESSION_COOKIE),
        }
        let replay = w.callback(&callback).await;
        assert_eq!(replay.status, 400, "replay with {what}: {replay}");
        assert!(replay.header("location").is_none(), "{replay}");
        assert_eq!(replay.header("cache-control"), Some("no-store"), "{replay}");
        assert!(
            replay.body.contains("/auth/login"),
            "a link to start again: {replay}"
        );
    }
    // No second token request for this code.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);

    w.ua.set_cookie(APP_HOST, SESSION_COOKIE, &session);
    let me = json_body(&w.get_json("/me").await);
    assert_eq!(me["sub"], account, "{me}");
}

/// CB-05 (RFC 9207): the real provider sends `iss` = its issuer on the callback, and
/// advertises it. A callback whose `iss` is another issuer, or lacks `iss`, is refused with
/// 400 and no token request, and its transaction is consumed.
#[tokio::test(flavor = "multi_thread")]
async fn cb_05_real_provider_sends_iss() {
    let mut w = World::start(&[]).await;
    let account = "cb05-carol";

    let discovery = w.op.discovery().await;
    assert_eq!(
        discovery["authorization_response_iss_parameter_supported"], true,
        "{discovery}"
    );

    let authorize = w.start_login("/auth/login?return_to=%2Fme").await;
    let (callback, _) = w.authorize_at_op(&authorize, account).await;
    let params = query(&callback);
    assert_eq!(params["iss"], w.op.issuer(), "{callback}");
    assert_eq!(params["state"], query(&authorize)["state"], "{callback}");
    assert!(params.contains_key("code"), "{callback}");
    let extra: Vec<&String> = params
        .keys()
        .filter(|k| !["code", "state", "iss"].contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "unexpected parameters {extra:?} in {callback}"
    );
    let page = w.callback(&callback).await;
    assert_eq!(page.status, 303, "{page}");
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);

    // The provider now has a session and a grant: a new login comes straight back.
    for (what, edit) in [
        ("another issuer", Some("http://evil.example")),
        ("no iss", None),
    ] {
        let authorize = w.start_login("/auth/login?return_to=%2F").await;
        let (callback, prompts) = w.authorize_at_op(&authorize, account).await;
        assert!(prompts.is_empty(), "no interaction expected: {prompts:?}");
        let mut tampered = callback.clone();
        let pairs: Vec<(String, String)> = query(&callback)
            .into_iter()
            .filter(|(k, _)| k != "iss")
            .collect();
        {
            let mut q = tampered.query_pairs_mut();
            q.clear().extend_pairs(&pairs);
            if let Some(iss) = edit {
                q.append_pair("iss", iss);
            }
        }
        let page = w.callback(&tampered).await;
        assert_eq!(page.status, 400, "{what}: {page}");
        // Consumed: the genuine response is refused too.
        let page = w.callback(&callback).await;
        assert_eq!(
            page.status, 400,
            "{what}, then the genuine callback: {page}"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        w.grants("authorization_code", account),
        1,
        "no token request for a refused callback"
    );
    // The session of the first login is still there.
    let me = json_body(&w.get_json("/me").await);
    assert_eq!(me["sub"], account, "{me}");
}

/// SES-05: the access token lives 5 s, less than the 60 s refresh margin, so the session
/// (which asked for `offline_access`, hence has a refresh token) is refreshed with the real
/// provider at its next request, and stays usable after the first access token expired.
#[tokio::test(flavor = "multi_thread")]
async fn ses_05_refresh_after_short_access_token_lifetime() {
    let mut w = World::start(&[("OIDC_SCOPES", "openid profile email offline_access")]).await;
    let account = "ses05-dave";

    // oidc-provider drops `offline_access` unless the request says prompt=consent.
    let authorize = w
        .start_login("/auth/login?return_to=%2Fme&prompt=consent")
        .await;
    let params = query(&authorize);
    assert_eq!(params["prompt"], "consent", "{authorize}");
    assert!(
        params["scope"].split(' ').any(|s| s == "offline_access"),
        "{authorize}"
    );
    let (callback, _) = w.authorize_at_op(&authorize, account).await;
    let page = w.callback(&callback).await;
    assert_eq!(page.status, 303, "{page}");
    let logged_in_at = Instant::now();
    let session = w.session_cookie().unwrap();
    assert_eq!(w.wait_for_grants("authorization_code", account, 1).await, 1);
    assert_eq!(w.grants("refresh_token", account), 0, "no refresh at login");

    // Refresh due (5 s token, 60 s margin): the next request refreshes, and succeeds.
    let page = w.get_json("/me").await;
    let me = json_body(&page);
    assert_eq!(me["sub"], account, "{me}");
    assert_eq!(
        w.wait_for_grants("refresh_token", account, 1).await,
        1,
        "the provider saw one refresh_token grant"
    );
    // A refresh keeps the session id.
    assert_eq!(w.session_cookie().as_deref(), Some(session.as_str()));

    // After the first access token has expired, the session still works.
    let expired = Duration::from_secs(AT_TTL + 1);
    tokio::time::sleep(expired.saturating_sub(logged_in_at.elapsed())).await;
    let me = json_body(&w.navigate("/me").await);
    assert_eq!(me["sub"], account, "{me}");
    assert_eq!(me["email"], format!("{account}@example.com"), "{me}");
    assert_eq!(w.session_cookie().as_deref(), Some(session.as_str()));
    assert!(w.grants("refresh_token", account) >= 1);
}

/// LO-01 / SES-06: logout destroys the server-side session and clears the cookie, sends the
/// browser to the provider's end-session endpoint with `id_token_hint`, `client_id`,
/// `post_logout_redirect_uri` and `state`; the provider's confirmation returns it to the app
/// with the same `state`. The old session cookie is then refused, and the provider's session
/// is gone too.
#[tokio::test(flavor = "multi_thread")]
async fn lo_01_ses_06_logout_then_old_cookie_refused() {
    let mut w = World::start(&[]).await;
    let account = "lo01-erin";

    w.log_in("/auth/login?return_to=%2F", account).await;
    let old_session = w.session_cookie().unwrap();
    let home = w.navigate("/").await;
    assert!(home.body.contains("Signed in as"), "{home}");
    let form = home.form_with_action_ending("/auth/logout");
    assert_eq!(form.method, "post");
    assert_eq!(form.origin, w.app.base_url());

    // The app: 303 to the provider's end-session endpoint, cookie cleared.
    let page = w.ua.submit(&form).await;
    assert_eq!(page.status, 303, "logout: {page}");
    let end_session = page.location().unwrap();
    let endpoint = w.op.discovery().await["end_session_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut bare = end_session.clone();
    bare.set_query(None);
    assert_eq!(bare.as_str(), endpoint, "{page}");
    let params = query(&end_session);
    assert_eq!(params["client_id"], "web-app", "{end_session}");
    assert_eq!(
        params["post_logout_redirect_uri"],
        w.url("/"),
        "{end_session}"
    );
    let state = params
        .get("state")
        .unwrap_or_else(|| panic!("state missing: {end_session}"));
    assert!(state.len() >= 22, "state too short: {end_session}");
    let hint = jwt_claims(&params["id_token_hint"]);
    assert_eq!(hint["sub"], account, "{hint}");
    assert_eq!(hint["aud"], "web-app", "{hint}");
    assert_eq!(hint["iss"], w.op.issuer(), "{hint}");
    let cleared = page
        .set_cookie(SESSION_COOKIE)
        .unwrap_or_else(|| panic!("logout clears the session cookie: {page}"));
    assert!(cleared.is_removal(), "{}", cleared.raw);
    assert_eq!(w.session_cookie(), None);

    // The provider asks for confirmation; "Yes, sign me out" posts xsrf + logout=yes.
    let confirm_page = w.ua.navigate(end_session.as_str()).await;
    assert_eq!(confirm_page.status, 200, "{confirm_page}");
    let mut confirm = confirm_page.form_with_action_ending("/confirm");
    assert!(confirm.get("xsrf").is_some(), "{confirm_page}");
    confirm.set("logout", "yes");
    let page = w.ua.submit(&confirm).await;
    assert_eq!(page.status, 303, "confirm: {page}");
    let back = page.location().unwrap();
    let mut bare = back.clone();
    bare.set_query(None);
    assert_eq!(bare.as_str(), w.url("/"), "{page}");
    assert_eq!(query(&back).get("state"), Some(state), "{page}");
    let page = w.ua.follow(&page).await;
    assert_eq!(page.status, 200, "{page}");
    assert!(page.body.contains("You are not signed in"), "{page}");

    // SES-06: the old cookie (replayed) is not a session any more.
    w.ua.set_cookie(APP_HOST, SESSION_COOKIE, &old_session);
    assert_logged_out(&mut w, "old session cookie after logout").await;

    // The provider's session ended too: a new login asks for the password again.
    let authorize = w.start_login("/auth/login?return_to=%2F").await;
    let page = w.ua.navigate(authorize.as_str()).await;
    let page = w.ua.follow_within(page, &w.op_host.clone()).await;
    assert_eq!(page.status, 200, "{page}");
    let form = page.form_with_action_ending(page.url.path());
    assert_eq!(form.get("prompt"), Some("login"), "{page}");
}

/// LO-02: logout is same-origin only. A cross-site POST (foreign or `null` `Origin`, or no
/// `Origin` and a cross-site `Sec-Fetch-Site`) gets 403, `GET /auth/logout` gets 405, and the
/// session survives all of them.
#[tokio::test(flavor = "multi_thread")]
async fn lo_02_cross_site_logout_refused() {
    let mut w = World::start(&[]).await;
    let account = "lo02-frank";
    w.log_in("/auth/login?return_to=%2F", account).await;
    let session = w.session_cookie().unwrap();
    let logout = w.url("/auth/logout");

    for (what, headers) in [
        ("foreign Origin", vec![("origin", "http://evil.example")]),
        ("Origin null", vec![("origin", "null")]),
        (
            "same host, other port",
            vec![("origin", "http://127.0.0.1:1")],
        ),
        (
            "no Origin, cross-site",
            vec![("sec-fetch-site", "cross-site")],
        ),
        ("no Origin, no Sec-Fetch-Site", vec![]),
    ] {
        let page = w.ua.post_form(&logout, &[], &headers).await;
        assert_eq!(page.status, 403, "{what}: {page}");
        assert!(page.header("location").is_none(), "{what}: {page}");
        assert!(
            page.set_cookie(SESSION_COOKIE).is_none(),
            "{what}: cookie touched: {page}"
        );
        assert_eq!(w.session_cookie().as_deref(), Some(session.as_str()));
        let me = json_body(&w.get_json("/me").await);
        assert_eq!(me["sub"], account, "{what}: session lost: {me}");
    }

    let page = w.ua.navigate(&logout).await;
    assert_eq!(page.status, 405, "GET logout: {page}");
    let me = json_body(&w.get_json("/me").await);
    assert_eq!(me["sub"], account, "after GET logout: {me}");
}

/// RED-01: `return_to` only accepts same-origin relative paths; anything else lands on `/`
/// after the login, and a relative path with a query is kept.
#[tokio::test(flavor = "multi_thread")]
async fn red_01_return_to_is_never_an_open_redirect() {
    let mut w = World::start(&[]).await;
    let account = "red01-grace";
    // Log in once: afterwards the provider answers at once (session and consent exist).
    let page = w.log_in("/auth/login?return_to=%2Fme", account).await;
    assert_eq!(page.raw_location(), Some("/me"));

    let cases = [
        ("https://evil.example/", "/"),
        ("//evil.example", "/"),
        ("/\\evil.example", "/"),
        ("\\\\evil", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("%2F%2Fevil", "/"),
        ("/\t/evil.example", "/"),
        ("https:evil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("data:text/html,<script>alert(1)</script>", "/"),
        ("http://trusted@evil.example", "/"),
        ("/me?x=1", "/me?x=1"),
        ("/me?x=1#y", "/me?x=1#y"),
    ];
    for (return_to, expected) in cases {
        let encoded = form_encode(return_to);
        let authorize = w
            .start_login(&format!("/auth/login?return_to={encoded}"))
            .await;
        let (callback, prompts) = w.authorize_at_op(&authorize, account).await;
        assert!(prompts.is_empty(), "{return_to:?}: {prompts:?}");
        let page = w.callback(&callback).await;
        assert_eq!(page.status, 303, "{return_to:?}: {page}");
        assert_eq!(
            page.raw_location(),
            Some(expected),
            "return_to {return_to:?}: {page}"
        );
    }
}

/// `s` encoded as a query parameter value.
fn form_encode(s: &str) -> String {
    let mut url = Url::parse("http://x/").unwrap();
    url.query_pairs_mut().append_pair("v", s);
    url.query().unwrap().trim_start_matches("v=").to_owned()
}
