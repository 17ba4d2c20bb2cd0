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

    // "Log in" → the provider's login form, then its consent page; back on the app, at the
    // return-to path, logged in.
    browser.click(&login_link).await;
    let text = browser
        .log_in_at_op(&issuer, account, &app.url("/me"), async |step: &str| {
            shots.take(&browser, step).await;
        })
        .await;
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

    // "Log out" → the provider asks for confirmation → back on the app's home page, signed
    // out.
    let back = browser
        .log_out_at_op(&issuer, &app.url("/"), &mut shots)
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
        .wait_for_op_interaction("the provider's login page", &issuer)
        .await;
    browser.wait_for("input[name=login]").await;
    shots.take(&browser, "me-needs-login-again").await;

    driver.quit_and_shutdown(browser).await;
    let dir = shots.dir().display();
    assert_eq!(shots.count(), 9, "screenshots in {dir}");
    eprintln!("screenshots: {dir}");
}
