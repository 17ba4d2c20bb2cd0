//! The `cli-login` commands against the in-process provider: device and loopback login, the
//! token shown only when asked, refresh, logout with revocation.

// Test code: panicking with a message is how a test fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cli_login::{Command, Output, REDIRECT_URI, Settings, format_time, run};
use oidc_testing::{ClientRegistration, TestProvider};

/// A buffer the commands write to, readable by the test while they run.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buffer {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }

    fn output(&self) -> Output {
        Arc::new(Mutex::new(self.clone()))
    }

    /// Waits until the text contains `needle`.
    async fn wait_for(&self, needle: &str) -> String {
        for _ in 0..200 {
            let text = self.text();
            if text.contains(needle) {
                return text;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("{needle:?} never appeared in {:?}", self.text());
    }
}

struct Setup {
    op: TestProvider,
    settings: Settings,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn setup() -> Setup {
    let op = TestProvider::start().await;
    op.register_client(
        ClientRegistration::public("cli", REDIRECT_URI).allow_any_loopback_redirect(true),
    );
    op.set_auto_login(Some("ada"));
    op.set_device_interval(1);
    let dir = std::env::temp_dir().join(format!(
        "cli-login-test-{}-{}",
        std::process::id(),
        op.issuer().rsplit(':').next().unwrap()
    ));
    let settings = Settings {
        issuer: op.issuer(),
        client_id: "cli".to_owned(),
        scopes: vec!["openid".to_owned(), "offline_access".to_owned()],
        token_file: dir.join("tokens.json"),
    };
    Setup {
        op,
        settings,
        _dir: TempDir(dir),
    }
}

async fn device_login(s: &Setup) {
    let messages = Buffer::default();
    let settings = s.settings.clone();
    let out = messages.output();
    let login = tokio::spawn(async move {
        run(
            &settings,
            Command::Login {
                device: true,
                open: false,
            },
            &out,
            &out,
        )
        .await
        .map_err(|e| e.to_string())
    });
    let text = messages.wait_for("enter the code ").await;
    let code = text
        .split("enter the code ")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(
        text.contains(&format!("open {}/device", s.op.issuer())),
        "{text}"
    );
    assert!(s.op.approve_device(&code, "ada"));
    login.await.unwrap().unwrap();
    assert!(messages.text().contains("Logged in as ada."));
}

#[test]
fn commands_parse_and_unknown_ones_are_refused() {
    let parse = |args: &[&str]| Command::parse(args.iter().map(|a| (*a).to_owned()));
    assert_eq!(
        parse(&[]),
        Ok(Command::Login {
            device: false,
            open: false
        })
    );
    assert_eq!(
        parse(&["login", "--device"]),
        Ok(Command::Login {
            device: true,
            open: false
        })
    );
    assert_eq!(parse(&["token"]), Ok(Command::Token { print: false }));
    assert_eq!(
        parse(&["token", "--print"]),
        Ok(Command::Token { print: true })
    );
    assert_eq!(parse(&["logout"]), Ok(Command::Logout));
    for bad in [
        &["token", "--device"][..],
        &["logout", "--print"],
        &["whoami"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn times_are_shown_in_utc() {
    assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(format_time(1_700_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(format_time(951_782_400), "2000-02-29 00:00:00 UTC");
}

#[tokio::test]
async fn device_login_then_token_shows_the_token_only_with_print() {
    let s = setup().await;
    device_login(&s).await;
    let mode = std::fs::metadata(&s.settings.token_file)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let (output, messages) = (Buffer::default(), Buffer::default());
    let command = Command::Token { print: false };
    run(&s.settings, command, &output.output(), &messages.output())
        .await
        .unwrap();
    let shown = messages.text();
    assert!(shown.contains("Logged in as ada."), "{shown}");
    assert!(shown.contains("valid until "), "{shown}");
    assert!(output.text().is_empty());
    let stored = std::fs::read_to_string(&s.settings.token_file).unwrap();
    let token: serde_like::Stored = serde_like::parse(&stored);
    assert!(!shown.contains(&token.access_token));

    let command = Command::Token { print: true };
    run(&s.settings, command, &output.output(), &messages.output())
        .await
        .unwrap();
    assert_eq!(output.text().trim(), token.access_token);
}

#[tokio::test]
async fn loopback_login_follows_the_printed_url() {
    let s = setup().await;
    let messages = Buffer::default();
    let settings = s.settings.clone();
    let out = messages.output();
    let login = tokio::spawn(async move {
        let command = Command::Login {
            device: false,
            open: false,
        };
        run(&settings, command, &out, &out)
            .await
            .map_err(|e| e.to_string())
    });
    let text = messages.wait_for("/authorize?").await;
    let url = text
        .split_whitespace()
        .find(|w| w.contains("/authorize?"))
        .unwrap()
        .to_owned();
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = browser.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 303);
    let callback = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with("http://127.0.0.1:"), "{callback}");
    let page = browser.get(&callback).send().await.unwrap();
    assert_eq!(page.status(), 200);
    login.await.unwrap().unwrap();
    assert!(messages.text().contains("Logged in as ada."));
    assert!(s.settings.token_file.exists());
}

#[tokio::test]
async fn logout_revokes_and_deletes_then_token_asks_for_a_login() {
    let s = setup().await;
    device_login(&s).await;
    let messages = Buffer::default();
    run(
        &s.settings,
        Command::Logout,
        &messages.output(),
        &messages.output(),
    )
    .await
    .unwrap();
    assert!(
        messages.text().contains("the tokens are revoked"),
        "{}",
        messages.text()
    );
    assert!(!s.settings.token_file.exists());
    assert_eq!(s.op.revoked_tokens().len(), 2);
    let err = run(
        &s.settings,
        Command::Token { print: false },
        &messages.output(),
        &messages.output(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().starts_with("not logged in"), "{err}");
}

/// Reads the access token out of the token file, for the assertions.
mod serde_like {
    pub(crate) struct Stored {
        pub(crate) access_token: String,
    }

    pub(crate) fn parse(text: &str) -> Stored {
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        Stored {
            access_token: value["tokens"]["access_token"].as_str().unwrap().to_owned(),
        }
    }
}
