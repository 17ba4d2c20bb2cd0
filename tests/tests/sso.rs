//! Single sign-on and single logout across two apps (issue #4), against a real OpenID Provider
//! (npm `oidc-provider`) with Back-Channel Logout 1.0.
//!
//! Two quickstarts are two relying parties with client ids of their own
//! ([`LoginProvider::start_sso`]): app one on `http://127.0.0.1:<port>`, app two on
//! `http://127.0.0.2:<port>`, the provider on `http://localhost:<port>`. Two loopback addresses
//! rather than two ports: cookies ignore ports, so two apps on one host would overwrite each
//! other's `oidc-session` cookie, in the scripted user agent as in Chromium.
//!
//! The journey: log in to app one (password at the provider), open app two (the provider's
//! session signs the user in without a password: only app two's consent is asked), log out from
//! app one (`POST /auth/logout`, then the provider's confirmation). The provider then POSTs a
//! logout token to the `backchannel_logout_uri` of both apps (`/auth/backchannel-logout`),
//! which `server.mjs` logs with the answer's status and `Cache-Control`; both apps end the
//! sessions of that user, so their old cookies are refused (SES-06), while another user's
//! session on app two survives.
//!
//! The Chromium test (see [`oidc_e2e::webdriver`]) saves a screenshot of every step in
//! `<target dir>/e2e-screenshots/sso_two_apps_single_logout_chromium/NN-step.png`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_e2e::user_agent::{Page, UserAgent, json_body, query};
use oidc_e2e::webdriver::{ChromeDriver, Screenshots};
use oidc_e2e::{
    BackchannelDelivery, LoginProvider, OpLogsOnPanic, Quickstart, RealProvider, jwt_claims,
};
use reqwest::Url;

/// The session cookie of the quickstart (its app URL is `http`, so no `__Host-` prefix).
const SESSION_COOKIE: &str = "oidc-session";

/// One relying party: its quickstart, client id and host.
struct App {
    app: Quickstart,
    client_id: String,
    host: String,
}

impl App {
    async fn start(login: &LoginProvider, client_id: &str) -> Self {
        let app = login.start_web_app(client_id, &[]).await;
        let host = host_of(app.base_url());
        Self {
            app,
            client_id: client_id.to_owned(),
            host,
        }
    }

    fn url(&self, path: &str) -> String {
        self.app.url(path)
    }
}

fn host_of(url: &str) -> String {
    Url::parse(url).unwrap().host_str().unwrap().to_owned()
}

/// `url` without its query.
fn bare(url: &Url) -> String {
    let mut bare = url.clone();
    bare.set_query(None);
    bare.to_string()
}

/// `GET /me` on `app` as an API call (`Accept: application/json`).
async fn me_json(ua: &mut UserAgent, app: &App) -> Page {
    ua.get(&app.url("/me"), &[("accept", "application/json")])
        .await
}

/// A browser navigation to `/me` on `app` without a session there: 303 to the app's login,
/// which sends it to the provider's authorization endpoint for `app`'s client. Then the
/// provider's pages, and the callback's 303 back to `/me`, which shows `account`'s claims.
/// Returns the prompts the provider showed.
async fn log_in_through_me(
    ua: &mut UserAgent,
    op: &RealProvider,
    app: &App,
    account: &str,
) -> Vec<String> {
    let page = ua.navigate(&app.url("/me")).await;
    assert_eq!(
        page.status, 303,
        "{}: /me without a session: {page}",
        app.host
    );
    assert_eq!(
        page.raw_location(),
        Some("/auth/login?return_to=%2Fme"),
        "{page}"
    );
    let page = ua.follow(&page).await;
    assert_eq!(page.status, 303, "login start: {page}");
    let authorize = page.location().unwrap();
    let endpoint = op.discovery().await["authorization_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(bare(&authorize), endpoint, "{page}");
    let params = query(&authorize);
    assert_eq!(params["client_id"], app.client_id, "{authorize}");
    assert_eq!(
        params["redirect_uri"],
        app.url("/auth/callback"),
        "{authorize}"
    );

    let (callback, prompts) = ua
        .log_in_through_op(&authorize, &op.host(), &app.host, account)
        .await;
    assert_eq!(bare(&callback), app.url("/auth/callback"));
    let page = ua.navigate(callback.as_str()).await;
    assert_eq!(page.status, 303, "callback: {page}");
    assert_eq!(page.raw_location(), Some("/me"), "{page}");
    assert!(
        page.set_cookie(SESSION_COOKIE).is_some(),
        "the callback sets the session cookie: {page}"
    );
    let me = json_body(&ua.follow(&page).await);
    assert_eq!(me["sub"], account, "{me}");
    assert_eq!(me["iss"], op.issuer(), "{me}");
    prompts
}

/// SES-06 on `app`: with the old session cookie `cookie` (set again before each request, in
/// case an answer clears it), a navigation to `/me` is sent to the login and an API call gets
/// 401; the home page says the user is not signed in.
async fn assert_old_cookie_refused(ua: &mut UserAgent, app: &App, cookie: &str, what: &str) {
    ua.set_cookie(&app.host, SESSION_COOKIE, cookie);
    let page = ua.navigate(&app.url("/me")).await;
    assert_eq!(page.status, 303, "{what}: navigation to /me: {page}");
    assert_eq!(
        page.raw_location(),
        Some("/auth/login?return_to=%2Fme"),
        "{what}: {page}"
    );
    ua.set_cookie(&app.host, SESSION_COOKIE, cookie);
    let page = me_json(ua, app).await;
    assert_eq!(page.status, 401, "{what}: JSON /me: {page}");
    assert!(page.header("location").is_none(), "{what}: {page}");
    ua.set_cookie(&app.host, SESSION_COOKIE, cookie);
    let page = ua.navigate(&app.url("/")).await;
    assert_eq!(page.status, 200, "{what}: home: {page}");
    assert!(
        page.body.contains("You are not signed in"),
        "{what}: home: {page}"
    );
}

/// Asserts that the provider delivered exactly one logout token to `client_id` and that the
/// app answered 200 with `Cache-Control: no-store` (Back-Channel Logout 1.0, 2.8).
async fn assert_one_delivery_ok(op: &RealProvider, client_id: &str) -> BackchannelDelivery {
    let deliveries = op.wait_for_backchannel_deliveries(client_id, 1).await;
    assert_eq!(
        deliveries.len(),
        1,
        "one back-channel logout delivery to {client_id}: {deliveries:#?}"
    );
    let delivery = deliveries.into_iter().next().unwrap();
    assert_eq!(
        delivery.status,
        Some(200),
        "the app answered the logout token with 200: {delivery:?}"
    );
    let cache_control = delivery.cache_control().unwrap_or_default();
    assert!(
        cache_control
            .split(',')
            .any(|d| d.trim().eq_ignore_ascii_case("no-store")),
        "Cache-Control: no-store on the back-channel logout answer: {delivery:?}"
    );
    delivery
}

/// BCL-01 / SES-06 over HTTP: single sign-on from app one to app two, then a logout from app
/// one ends both apps' sessions through the real provider's back-channel logout deliveries
/// (each answered 200 with `Cache-Control: no-store`); the old cookies of both apps are
/// refused afterwards, another user's session on app two survives, and the provider's session
/// is gone (a new login asks for the password).
#[tokio::test(flavor = "multi_thread")]
async fn sso_bcl_01_two_apps_single_logout_http() {
    let login = LoginProvider::start_sso(&["sso-app-one", "sso-app-two"], &[]).await;
    let op = login.op();
    let _logs = OpLogsOnPanic(op);
    let discovery = op.discovery().await;
    assert_eq!(
        discovery["backchannel_logout_supported"], true,
        "{discovery}"
    );
    assert_eq!(
        discovery["backchannel_logout_session_supported"], true,
        "{discovery}"
    );
    let one = App::start(&login, "sso-app-one").await;
    let two = App::start(&login, "sso-app-two").await;
    let op_host = op.host();
    assert_eq!(one.host, "127.0.0.1");
    assert_eq!(two.host, "127.0.0.2");
    assert_eq!(op_host, "localhost");
    let account = "sso-alice";
    let bystander = "sso-bob";

    // Another user, signed in to app two only, in another browser.
    let mut other = UserAgent::new();
    let prompts = log_in_through_me(&mut other, op, &two, bystander).await;
    assert_eq!(prompts, ["login", "consent"]);

    // Log in to app one: the provider asks for the password (and consent).
    let mut ua = UserAgent::new();
    let prompts = log_in_through_me(&mut ua, op, &one, account).await;
    assert_eq!(prompts, ["login", "consent"], "pages shown for app one");
    let cookie_one = ua.cookie(&one.host, SESSION_COOKIE).unwrap().to_owned();

    // Open app two: signed in through the provider's session, without any password form; the
    // provider only asks for app two's consent (another client).
    let prompts = log_in_through_me(&mut ua, op, &two, account).await;
    assert_eq!(
        prompts,
        ["consent"],
        "single sign-on: no login form for app two"
    );
    let cookie_two = ua.cookie(&two.host, SESSION_COOKIE).unwrap().to_owned();
    for (client_id, who) in [
        ("sso-app-one", account),
        ("sso-app-two", account),
        ("sso-app-two", bystander),
    ] {
        assert_eq!(
            op.count_lines(&format!("GRANT authorization_code {client_id} {who}")),
            1,
            "one code redeemed by {client_id} for {who}"
        );
    }
    // Both sessions are live, each app with its own cookie.
    for app in [&one, &two] {
        let me = json_body(&me_json(&mut ua, app).await);
        assert_eq!(me["sub"], account, "{}: {me}", app.host);
    }
    assert_eq!(
        ua.cookie(&one.host, SESSION_COOKIE),
        Some(cookie_one.as_str())
    );
    assert!(
        op.lines_starting_with("BACKCHANNEL ").is_empty(),
        "no logout yet"
    );

    // Log out from app one: same-origin POST from its home page.
    let home = ua.navigate(&one.url("/")).await;
    assert!(home.body.contains("Signed in as"), "{home}");
    let form = home.form_with_action_ending("/auth/logout");
    assert_eq!(form.method, "post");
    let page = ua.submit(&form).await;
    assert_eq!(page.status, 303, "logout: {page}");
    let end_session = page.location().unwrap();
    let endpoint = op.discovery().await["end_session_endpoint"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(bare(&end_session), endpoint, "{page}");
    let params = query(&end_session);
    assert_eq!(params["client_id"], "sso-app-one", "{end_session}");
    assert_eq!(
        params["post_logout_redirect_uri"],
        one.url("/"),
        "{end_session}"
    );
    // The ID token carries the provider's session id (backchannel_logout_session_required).
    let hint = jwt_claims(&params["id_token_hint"]);
    assert_eq!(hint["sub"], account, "{hint}");
    assert_eq!(hint["aud"], "sso-app-one", "{hint}");
    assert!(
        hint["sid"].as_str().is_some_and(|sid| !sid.is_empty()),
        "sid in the ID token: {hint}"
    );
    let state = params["state"].clone();
    assert_eq!(ua.cookie(&one.host, SESSION_COOKIE), None, "cookie cleared");

    // The provider asks for confirmation; "Yes, sign me out" posts xsrf + logout=yes, and the
    // provider delivers the logout tokens before it redirects.
    let confirm_page = ua.navigate(end_session.as_str()).await;
    assert_eq!(confirm_page.status, 200, "{confirm_page}");
    let mut confirm = confirm_page.form_with_action_ending("/confirm");
    assert!(confirm.get("xsrf").is_some(), "{confirm_page}");
    confirm.set("logout", "yes");
    let page = ua.submit(&confirm).await;
    assert_eq!(page.status, 303, "confirm: {page}");
    let back = page.location().unwrap();
    assert_eq!(bare(&back), one.url("/"), "{page}");
    assert_eq!(query(&back).get("state"), Some(&state), "{page}");
    let page = ua.follow(&page).await;
    assert!(page.body.contains("You are not signed in"), "{page}");

    // BCL-01: one delivery per app of the ended provider session, each answered 200 no-store;
    // none for the other user's provider session.
    assert_one_delivery_ok(op, "sso-app-one").await;
    assert_one_delivery_ok(op, "sso-app-two").await;
    let all = op.lines_starting_with("BACKCHANNEL ");
    assert_eq!(all.len(), 2, "{all:#?}");

    // SES-06 on both apps. App two's cookie is still in the jar: nothing in the browser
    // touched it; only the back-channel logout ended its session.
    assert_eq!(
        ua.cookie(&two.host, SESSION_COOKIE),
        Some(cookie_two.as_str())
    );
    assert_old_cookie_refused(&mut ua, &one, &cookie_one, "app one after logout").await;
    assert_old_cookie_refused(&mut ua, &two, &cookie_two, "app two after single logout").await;

    // Only that user's sessions ended: the other user is still signed in to app two.
    let me = json_body(&me_json(&mut other, &two).await);
    assert_eq!(me["sub"], bystander, "{me}");

    // The provider's session ended too: app two's login asks for the password again.
    ua.remove_cookie(&two.host, SESSION_COOKIE);
    let page = ua.navigate(&two.url("/auth/login?return_to=%2Fme")).await;
    assert_eq!(page.status, 303, "{page}");
    let page = ua.follow(&page).await;
    let page = ua.follow_within(page, &op_host).await;
    assert_eq!(page.status, 200, "{page}");
    let form = page.form_with_action_ending(page.url.path());
    assert_eq!(form.get("prompt"), Some("login"), "{page}");

    // No further delivery happened meanwhile.
    assert_eq!(op.lines_starting_with("BACKCHANNEL ").len(), 2);
}

/// The same journey in a real headless Chromium, by clicking: log in to app one, open app two
/// (no password: the provider only asks for app two's consent), log out from app one's logout
/// button and confirm at the provider; app two's home page then says "not signed in" (the
/// browser still sends its old cookie) and its `/me` leads to the provider's login form.
#[tokio::test(flavor = "multi_thread")]
async fn sso_two_apps_single_logout_chromium() {
    let login = LoginProvider::start_sso(&["sso-web-one", "sso-web-two"], &[]).await;
    let op = login.op();
    let _logs = OpLogsOnPanic(op);
    let one = App::start(&login, "sso-web-one").await;
    let two = App::start(&login, "sso-web-two").await;
    let issuer = op.issuer().to_owned();
    let account = "sso-browser-carol";
    let email = format!("{account}@example.com");

    let driver = ChromeDriver::start().await;
    let browser = driver.new_session().await;
    let mut shots = Screenshots::new("sso_two_apps_single_logout_chromium");

    // App one: "Log in" → the provider's login and consent pages → /me.
    browser.goto(&one.url("/")).await;
    let login_link = browser.wait_for("#login").await;
    browser.wait_for_text("You are not signed in").await;
    browser.click(&login_link).await;
    browser
        .log_in_at_op(&issuer, account, &one.url("/me"), async |step: &str| {
            if step == "op-login-filled" {
                shots.take(&browser, "app-one-op-login").await;
            }
        })
        .await;
    shots.take(&browser, "app-one-me").await;

    // App two: not signed in there yet; "Log in" → the provider knows the user and only asks
    // for app two's consent: no password form.
    browser.goto(&two.url("/")).await;
    let login_link = browser.wait_for("#login").await;
    browser.wait_for_text("You are not signed in").await;
    shots.take(&browser, "app-two-home").await;
    browser.click(&login_link).await;
    browser
        .wait_for_op_interaction("the provider's consent page", &issuer)
        .await;
    browser.wait_for("input[name=prompt][value=consent]").await;
    assert!(
        browser.find("input[name=password]").await.is_none(),
        "single sign-on: no password form for app two; page:\n{}",
        browser.source().await
    );
    shots.take(&browser, "app-two-op-consent-only").await;
    browser.submit_op_page().await;
    browser.wait_for_me(&two.url("/me"), account).await;
    shots.take(&browser, "app-two-me").await;
    let cookie_two = browser
        .cookie(SESSION_COOKIE)
        .await
        .expect("app two's session cookie");
    assert_eq!(cookie_two["domain"], "127.0.0.2", "{cookie_two}");

    // Both apps know the user.
    browser.goto(&two.url("/")).await;
    let text = browser.wait_for_text("Signed in as").await;
    assert!(text.contains(&email), "{text}");
    browser.goto(&one.url("/")).await;
    let text = browser.wait_for_text("Signed in as").await;
    assert!(text.contains(&email), "{text}");
    shots.take(&browser, "app-one-signed-in").await;
    assert!(op.lines_starting_with("BACKCHANNEL ").is_empty());

    // Log out from app one → the provider's prompt → "Yes, sign me out".
    browser
        .log_out_at_op(&issuer, &one.url("/"), &mut shots)
        .await;
    browser.wait_for_text("You are not signed in").await;
    shots.take(&browser, "app-one-logged-out").await;

    // The provider told both apps.
    assert_one_delivery_ok(op, "sso-web-one").await;
    assert_one_delivery_ok(op, "sso-web-two").await;

    // App two: nothing in the browser logged out of app two (it still holds app two's cookie);
    // only the provider's back-channel logout ended that session.
    browser.goto(&two.url("/")).await;
    let text = browser.wait_for_text("You are not signed in").await;
    assert!(!text.contains("Signed in as"), "{text}");
    shots.take(&browser, "app-two-logged-out").await;

    // App two's /me asks for a login again, with the password (the provider's session is gone).
    browser.goto(&two.url("/me")).await;
    browser
        .wait_for_op_interaction("the provider's login page", &issuer)
        .await;
    browser.wait_for("input[name=login]").await;
    browser.wait_for("input[name=password]").await;
    shots.take(&browser, "app-two-me-needs-login").await;
    assert_eq!(op.lines_starting_with("BACKCHANNEL ").len(), 2);

    driver.quit_and_shutdown(browser).await;
    let dir = shots.dir().display();
    assert_eq!(shots.count(), 10, "screenshots in {dir}");
    eprintln!("screenshots: {dir}");
}
