//! Browser login of the quickstart in a real headless Chromium, against a real OpenID Provider
//! (npm `oidc-provider`), driven through chromedriver (W3C WebDriver, see
//! [`oidc_e2e::webdriver`]).
//!
//! The app runs as `http://127.0.0.1:<port>` and the provider as `http://localhost:<port>`,
//! two different sites: Chromium applies its real cookie rules (`SameSite=Lax` cookies travel
//! on the cross-site top-level redirect back to the callback, SES-03) and sends its own
//! `Origin` on the logout form (LO-01).
//!
//! Needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian `chromium`,
//! `chromium-driver`; `.ci/run` installs them). Without them the test fails; it is never
//! skipped. A screenshot of every step is saved in
//! `<target dir>/e2e-screenshots/browser_login_and_logout/NN-step.png`.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use oidc_e2e::LoginProvider;
use oidc_e2e::webdriver::{ChromeDriver, Screenshots};

/// The whole journey in a real browser: home page → "Log in" → the provider's login and
/// consent pages → `/me` with the user's claims → home page "Signed in as" → "Log out" → the
/// provider's logout prompt → back on the home page, signed out; `/me` then needs a new login.
#[tokio::test(flavor = "multi_thread")]
async fn browser_login_and_logout() {
    let login = LoginProvider::start(1, &[]).await;
    let op = login.op();
    let app = login.start_app(&[]).await;
    let account = "browser-heidi";
    let email = format!("{account}@example.com");
    let issuer = op.issuer().to_owned();
    assert!(issuer.starts_with("http://localhost:"), "{issuer}");
    assert!(app.base_url().starts_with("http://127.0.0.1:"));

    let driver = ChromeDriver::start().await;
    let browser = driver.new_session().await;
    let mut shots = Screenshots::new("browser_login_and_logout");

    // The public home page.
    browser.goto(&app.url("/")).await;
    let login_link = browser.wait_for("#login").await;
    let text = browser.wait_for_text("You are not signed in").await;
    assert!(!text.contains("Signed in as"), "{text}");
    shots.take(&browser, "home").await;

    // "Log in" → the provider's login form.
    browser.click(&login_link).await;
    browser
        .wait_for_url("the provider's login page", |u| {
            u.starts_with(&format!("{issuer}/interaction/"))
        })
        .await;
    let user = browser.wait_for("input[name=login]").await;
    let password = browser.wait_for("input[name=password]").await;
    shots.take(&browser, "op-login").await;
    browser.send_keys(&user, account).await;
    browser.send_keys(&password, "any password").await;
    shots.take(&browser, "op-login-filled").await;
    let submit = browser.wait_for("button[type=submit]").await;
    browser.click(&submit).await;

    // The consent page.
    let consent = browser.wait_for("input[name=prompt][value=consent]").await;
    drop(consent);
    shots.take(&browser, "op-consent").await;
    let submit = browser.wait_for("button[type=submit]").await;
    browser.click(&submit).await;

    // Back on the app, at the return-to path, logged in.
    let me_url = app.url("/me");
    browser
        .wait_for_url("/me on the app", |u| u == me_url)
        .await;
    let text = browser.wait_for_text(account).await;
    assert!(text.contains(&format!("\"sub\":\"{account}\"")), "{text}");
    assert!(text.contains(&format!("\"email\":\"{email}\"")), "{text}");
    assert!(text.contains(&format!("\"iss\":\"{issuer}\"")), "{text}");
    shots.take(&browser, "me").await;

    // SES-02 as Chromium stored it.
    let cookie = browser
        .cookie("oidc-session")
        .await
        .expect("the session cookie is set");
    assert_eq!(cookie["httpOnly"], true, "{cookie}");
    assert_eq!(cookie["sameSite"], "Lax", "{cookie}");
    assert_eq!(cookie["path"], "/", "{cookie}");
    assert_eq!(cookie["secure"], false, "{cookie}");
    assert_eq!(cookie["domain"], "127.0.0.1", "host-only cookie: {cookie}");

    // The home page knows the user.
    browser.goto(&app.url("/")).await;
    let text = browser.wait_for_text("Signed in as").await;
    assert!(text.contains(&email), "{text}");
    assert!(browser.find("#login").await.is_none(), "{text}");
    shots.take(&browser, "home-signed-in").await;

    // "Log out" → the provider asks for confirmation.
    let logout = browser.wait_for("#logout").await;
    browser.click(&logout).await;
    browser
        .wait_for_url("the provider's logout prompt", |u| {
            u.starts_with(&format!("{issuer}/session/end"))
        })
        .await;
    let yes = browser.wait_for("button[name=logout][value=yes]").await;
    shots.take(&browser, "op-logout-prompt").await;
    browser.click(&yes).await;

    // Back on the app's home page, signed out.
    let home = app.url("/");
    let back = browser
        .wait_for_url("the app's home page", |u| u.starts_with(&home))
        .await;
    assert!(
        back.contains("state="),
        "the provider returns the state: {back}"
    );
    let text = browser.wait_for_text("You are not signed in").await;
    assert!(!text.contains("Signed in as"), "{text}");
    browser.wait_for("#login").await;
    assert!(browser.cookie("oidc-session").await.is_none());
    shots.take(&browser, "logged-out").await;

    // The provider's session ended too: /me leads to its login form again.
    browser.goto(&app.url("/me")).await;
    browser
        .wait_for_url("the provider's login page", |u| {
            u.starts_with(&format!("{issuer}/interaction/"))
        })
        .await;
    browser.wait_for("input[name=login]").await;
    shots.take(&browser, "me-needs-login-again").await;

    let dir = shots.dir().to_owned();
    browser.quit().await;
    let survivors = driver.shutdown();
    assert!(
        survivors.is_empty(),
        "processes left after the browser was shut down: {survivors:#?}"
    );
    let pngs = std::fs::read_dir(&dir).unwrap().count();
    assert_eq!(pngs, 9, "screenshots in {}", dir.display());
    eprintln!("screenshots: {}", dir.display());
}
