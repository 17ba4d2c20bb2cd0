//! A real headless Chromium, driven through chromedriver with the W3C WebDriver protocol
//! spoken over `reqwest` (no WebDriver crate: this is the dozen commands the tests use).
//!
//! [`ChromeDriver::start`] runs `chromedriver` on a loopback port in a process group of its
//! own, under a `/bin/sh` supervisor that kills the whole group (chromedriver and every
//! Chromium process it started) when the test process closes the supervisor's stdin, which
//! also happens when the test process dies. [`ChromeDriver::shutdown`] does it explicitly and
//! reports any process that survived.
//!
//! | env | default |
//! | --- | --- |
//! | `CHROMEDRIVER` | `/usr/bin/chromedriver` |
//! | `CHROMIUM` | `/usr/bin/chromium` |
//!
//! Both are required: when one is missing, [`ChromeDriver::start`] panics with the command
//! that installs them (Debian: `apt-get install chromium chromium-driver`, as `.ci/run` does).

use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Logs, drain};

/// The default chromedriver binary (Debian package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// The default Chromium binary (Debian package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// How long each wait of the browser tests may take.
pub const WAIT: Duration = Duration::from_secs(20);

/// The environment variable that marks chromedriver and its descendants.
const MARKER_VAR: &str = "OIDC_E2E_BROWSER";

/// The key of a web element reference in W3C WebDriver JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

fn binary(var: &str, default: &str) -> PathBuf {
    std::env::var_os(var).map_or_else(|| PathBuf::from(default), PathBuf::from)
}

/// A running chromedriver (and the browsers it starts), killed with its whole process group on
/// drop.
pub struct ChromeDriver {
    child: Child,
    /// The supervisor's stdin: closing it kills the process group.
    stdin: Option<ChildStdin>,
    pgid: u32,
    /// The value of [`MARKER_VAR`] in the environment of every process started here.
    marker: String,
    url: String,
    user_data_dir: PathBuf,
    logs: Logs,
    http: reqwest::Client,
}

impl ChromeDriver {
    /// Starts chromedriver on a free loopback port and waits until `GET /status` says it is
    /// ready.
    ///
    /// # Panics
    ///
    /// When chromedriver or Chromium is missing (with the command that installs them), or when
    /// chromedriver does not get ready within 20 s.
    pub async fn start() -> Self {
        let driver = binary("CHROMEDRIVER", CHROMEDRIVER);
        let chromium = binary("CHROMIUM", CHROMIUM);
        for (what, path) in [("chromedriver", &driver), ("Chromium", &chromium)] {
            assert!(
                path.is_file(),
                "{what} not found at {}: the browser tests need Chromium and chromedriver \
                 (Debian: `apt-get install chromium chromium-driver`, which .ci/run does; or set \
                 CHROMEDRIVER / CHROMIUM)",
                path.display()
            );
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let marker = format!(
            "oidc-e2e-chromium-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let user_data_dir = std::env::temp_dir().join(&marker);
        let _ = std::fs::remove_dir_all(&user_data_dir);
        std::fs::create_dir_all(&user_data_dir)
            .unwrap_or_else(|e| panic!("create {}: {e}", user_data_dir.display()));

        let port = super::ReservedPort::new().release();
        // The supervisor leads a new process group; chromedriver and the browsers inherit it.
        // When its stdin reaches EOF (closed by `shutdown`/`Drop`, or by the death of the test
        // process), it kills the whole group. Background jobs of a non-interactive shell get
        // stdin from /dev/null, hence fd 3.
        const SCRIPT: &str = r#"exec 3<&0
"$@" </dev/null 3<&- & child=$!
(cat <&3 >/dev/null; kill -KILL 0) >/dev/null 2>&1 &
exec 3<&-
wait "$child""#;
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(SCRIPT)
            .arg("chromedriver-supervisor")
            .arg(&driver)
            .arg(format!("--port={port}"))
            .process_group(0)
            // Inherited by chromedriver and Chromium, including the crash handlers that leave
            // the process group (they start sessions of their own): see `survivors`.
            .env(MARKER_VAR, &marker)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", driver.display()));
        let logs = Logs::default();
        drain(
            "chromedriver",
            child.stdout.take().expect("piped stdout"),
            logs.clone(),
            None,
        );
        drain(
            "chromedriver",
            child.stderr.take().expect("piped stderr"),
            logs.clone(),
            None,
        );
        let pgid = child.id();
        let mut driver = Self {
            stdin: child.stdin.take(),
            child,
            pgid,
            marker,
            url: format!("http://127.0.0.1:{port}"),
            user_data_dir,
            logs,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .no_proxy()
                .build()
                .expect("build reqwest client"),
        };
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = driver.child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                panic!(
                    "chromedriver exited early ({status}); output:\n{}",
                    driver.logs.snapshot()
                );
            }
            if let Ok(res) = driver
                .http
                .get(format!("{}/status", driver.url))
                .send()
                .await
                && let Ok(body) = res.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return driver;
            }
            if Instant::now() > deadline {
                driver.kill();
                panic!(
                    "chromedriver did not get ready within {WAIT:?}; output:\n{}",
                    driver.logs.snapshot()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Opens a headless Chromium with a fresh profile (`--user-data-dir` in a new temporary
    /// directory).
    pub async fn new_session(&self) -> Session {
        let chromium = binary("CHROMIUM", CHROMIUM);
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1024,768".to_owned(),
            format!("--user-data-dir={}", self.user_data_dir.display()),
        ];
        let caps = json!({
            "capabilities": {
                "alwaysMatch": {
                    "browserName": "chrome",
                    "pageLoadStrategy": "normal",
                    "timeouts": { "pageLoad": WAIT.as_millis() as u64, "script": 10_000, "implicit": 0 },
                    "goog:chromeOptions": {
                        "binary": chromium,
                        "args": args,
                    }
                }
            }
        });
        let res = self
            .http
            .post(format!("{}/session", self.url))
            .json(&caps)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST /session: {e}"));
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        let id = body["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| {
                panic!(
                    "cannot start Chromium ({status}): {body}\nchromedriver output:\n{}",
                    self.logs.snapshot()
                )
            })
            .to_owned();
        Session {
            http: self.http.clone(),
            base: format!("{}/session/{id}", self.url),
        }
    }

    /// Output of chromedriver so far.
    pub fn logs(&self) -> String {
        self.logs.snapshot()
    }

    /// The Chromium profile directory (unique to this driver).
    pub fn user_data_dir(&self) -> &Path {
        &self.user_data_dir
    }

    /// Closes `browser`, then [`shutdown`](Self::shutdown), asserting that no process survived.
    pub async fn quit_and_shutdown(self, browser: Session) {
        browser.quit().await;
        let survivors = self.shutdown();
        assert!(
            survivors.is_empty(),
            "processes left after the browser was shut down: {survivors:#?}"
        );
    }

    /// Kills chromedriver and every browser process, waits until none is left (at most 5 s),
    /// removes the profile directory, and returns the processes that survived (pid and
    /// command line): processes of the group, processes using the profile directory, and
    /// processes that inherited the driver's environment marker.
    pub fn shutdown(mut self) -> Vec<String> {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let left = self.survivors();
            if left.is_empty() || Instant::now() > deadline {
                let _ = std::fs::remove_dir_all(&self.user_data_dir);
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill(&mut self) {
        drop(self.stdin.take());
        // The supervisor's watcher kills the group on EOF; this covers a supervisor that is
        // already gone.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.pgid)])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Processes that left the group (Chromium's crash handlers).
        let pids: Vec<String> = self
            .survivors()
            .iter()
            .filter_map(|p| p.split(' ').next().map(str::to_owned))
            .collect();
        if !pids.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg("--")
                .args(&pids)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Live processes (not zombies) in the driver's process group, whose command line names
    /// the profile directory, or whose environment holds this driver's marker.
    fn survivors(&self) -> Vec<String> {
        let profile = self.user_data_dir.to_string_lossy().into_owned();
        let marker = format!("{MARKER_VAR}={}", self.marker);
        let mut left = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return left;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp …; comm may contain spaces and parentheses.
            let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
                continue;
            };
            let fields: Vec<&str> = after.split_whitespace().collect();
            let (Some(state), Some(pgrp)) = (fields.first(), fields.get(2)) else {
                continue;
            };
            if *state == "Z" || *state == "X" {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let marked = || {
                std::fs::read(entry.path().join("environ"))
                    .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == marker.as_bytes()))
            };
            if pgrp.parse::<u32>().ok() == Some(self.pgid) || cmdline.contains(&profile) || marked()
            {
                left.push(format!("{pid} {}", cmdline.trim()));
            }
        }
        left
    }
}

impl std::fmt::Debug for ChromeDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromeDriver")
            .field("pid", &self.child.id())
            .field("url", &self.url)
            .field("user_data_dir", &self.user_data_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.user_data_dir);
        if std::thread::panicking() {
            eprintln!(
                "----- output of chromedriver -----\n{}",
                self.logs.snapshot()
            );
        }
    }
}

/// A WebDriver error: the HTTP status and the `value` of the answer.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// The HTTP status.
    pub status: u16,
    /// The W3C error code (`no such element`, …).
    pub error: String,
    /// The message.
    pub message: String,
}

/// A browser session.
#[derive(Debug, Clone)]
pub struct Session {
    http: reqwest::Client,
    base: String,
}

/// An element reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element(String);

impl Session {
    /// Sends a WebDriver command (`path` relative to the session) and returns its `value`.
    pub async fn command(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method.clone(), &url);
        if let Some(body) = body {
            req = req.json(&body);
        } else if method == Method::POST {
            req = req.json(&json!({}));
        }
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"));
        let status = res.status();
        let body: Value = res
            .json()
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path}: answer is not JSON: {e}"));
        let value = body.get("value").cloned().unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            Err(WebDriverError {
                status: status.as_u16(),
                error: value["error"].as_str().unwrap_or_default().to_owned(),
                message: value["message"].as_str().unwrap_or_default().to_owned(),
            })
        }
    }

    async fn must(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        self.command(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e:?}"))
    }

    /// Navigates to `url` and waits for the page to load.
    pub async fn goto(&self, url: &str) {
        self.must(Method::POST, "/url", Some(json!({ "url": url })))
            .await;
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> String {
        self.must(Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The HTML of the current page (the first 4000 characters), for failure messages.
    pub async fn source(&self) -> String {
        match self.command(Method::GET, "/source", None).await {
            Ok(v) => v.as_str().unwrap_or_default().chars().take(4000).collect(),
            Err(e) => format!("<no source: {e:?}>"),
        }
    }

    /// The visible text of the page (`document.body.innerText`).
    pub async fn page_text(&self) -> String {
        match self.find("body").await {
            Some(body) => self.text(&body).await.unwrap_or_default(),
            None => String::new(),
        }
    }

    /// The element matched by the CSS selector, if any.
    pub async fn find(&self, css: &str) -> Option<Element> {
        match self
            .command(
                Method::POST,
                "/element",
                Some(json!({ "using": "css selector", "value": css })),
            )
            .await
        {
            Ok(value) => value[ELEMENT_KEY].as_str().map(|id| Element(id.to_owned())),
            Err(e) if e.error == "no such element" => None,
            Err(e) => panic!("WebDriver find {css:?} failed: {e:?}"),
        }
    }

    /// Waits (up to [`WAIT`]) for an element matching the CSS selector.
    pub async fn wait_for(&self, css: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            if Instant::now() > deadline {
                panic!(
                    "no element {css:?} within {WAIT:?} on {}; page source:\n{}",
                    self.current_url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to [`WAIT`]) until the current URL satisfies `accept`, and returns it.
    pub async fn wait_for_url(&self, what: &str, accept: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let url = self.current_url().await;
            if accept(&url) {
                return url;
            }
            if Instant::now() > deadline {
                panic!(
                    "the browser did not reach {what} within {WAIT:?}; it is at {url}; page source:\n{}",
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (up to [`WAIT`]) until the page text contains `needle`, and returns the text.
    pub async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let text = self.page_text().await;
            if text.contains(needle) {
                return text;
            }
            if Instant::now() > deadline {
                panic!(
                    "the page at {} did not show {needle:?} within {WAIT:?}; page text:\n{text}\nsource:\n{}",
                    self.current_url().await,
                    self.source().await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The element's visible text.
    pub async fn text(&self, element: &Element) -> Result<String, WebDriverError> {
        self.command(Method::GET, &format!("/element/{}/text", element.0), None)
            .await
            .map(|v| v.as_str().unwrap_or_default().to_owned())
    }

    /// Clicks the element.
    pub async fn click(&self, element: &Element) {
        self.must(Method::POST, &format!("/element/{}/click", element.0), None)
            .await;
    }

    /// Types `text` into the element.
    pub async fn send_keys(&self, element: &Element, text: &str) {
        self.must(
            Method::POST,
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        )
        .await;
    }

    /// The cookie `name` of the current page's host, as WebDriver describes it (`value`,
    /// `path`, `domain`, `secure`, `httpOnly`, `sameSite`, `expiry`), if set.
    pub async fn cookie(&self, name: &str) -> Option<Value> {
        match self
            .command(Method::GET, &format!("/cookie/{name}"), None)
            .await
        {
            Ok(value) => Some(value),
            Err(e) if e.error == "no such cookie" => None,
            Err(e) => panic!("WebDriver get cookie {name:?} failed: {e:?}"),
        }
    }

    /// A PNG screenshot of the viewport.
    pub async fn screenshot(&self) -> Vec<u8> {
        let value = self.must(Method::GET, "/screenshot", None).await;
        STANDARD
            .decode(value.as_str().expect("screenshot is a base64 string"))
            .expect("screenshot is base64")
    }

    /// Closes the browser (best effort).
    pub async fn quit(self) {
        let _ = self.command(Method::DELETE, "", None).await;
    }
}

/// The pages of the real provider (`oidc-provider`'s development login, consent and logout
/// pages) and the app's login and logout links, as the browser tests click through them.
impl Session {
    /// Waits until the browser is on an interaction page (login or consent) of the provider
    /// `issuer`, and returns its URL; `what` names the page in the failure message.
    pub async fn wait_for_op_interaction(&self, what: &str, issuer: &str) -> String {
        let prefix = format!("{issuer}/interaction/");
        self.wait_for_url(what, |u| u.starts_with(&prefix)).await
    }

    /// Clicks the submit button of the provider's page.
    pub async fn submit_op_page(&self) {
        let submit = self.wait_for("button[type=submit]").await;
        self.click(&submit).await;
    }

    /// After a click on the app's "Log in": fills in the provider's login form (`account`, any
    /// password), submits it and its consent form, and waits until the app shows `account` at
    /// `me_url` ([`wait_for_me`](Self::wait_for_me)); returns that page's text. `shot` is
    /// called with `op-login`, `op-login-filled` and `op-consent` on those pages (for
    /// screenshots).
    pub async fn log_in_at_op(
        &self,
        issuer: &str,
        account: &str,
        me_url: &str,
        mut shot: impl AsyncFnMut(&str),
    ) -> String {
        self.wait_for_op_interaction("the provider's login page", issuer)
            .await;
        let user = self.wait_for("input[name=login]").await;
        let password = self.wait_for("input[name=password]").await;
        shot("op-login").await;
        self.send_keys(&user, account).await;
        self.send_keys(&password, "any password").await;
        shot("op-login-filled").await;
        self.submit_op_page().await;
        self.wait_for("input[name=prompt][value=consent]").await;
        shot("op-consent").await;
        self.submit_op_page().await;
        self.wait_for_me(me_url, account).await
    }

    /// Waits until the browser is at `me_url` and shows `account`, asserts that it is the
    /// `sub` there, and returns the page text.
    pub async fn wait_for_me(&self, me_url: &str, account: &str) -> String {
        self.wait_for_url(me_url, |u| u == me_url).await;
        let text = self.wait_for_text(account).await;
        assert!(text.contains(&format!("\"sub\":\"{account}\"")), "{text}");
        text
    }

    /// Clicks the app's "Log out", then "Yes, sign me out" on the provider's (`issuer`) logout
    /// prompt (saved in `shots` as `op-logout-prompt`); returns the URL once the browser is
    /// back at `home`.
    pub async fn log_out_at_op(&self, issuer: &str, home: &str, shots: &mut Screenshots) -> String {
        let logout = self.wait_for("#logout").await;
        self.click(&logout).await;
        let end_session = format!("{issuer}/session/end");
        self.wait_for_url("the provider's logout prompt", |u| {
            u.starts_with(&end_session)
        })
        .await;
        let yes = self.wait_for("button[name=logout][value=yes]").await;
        shots.take(self, "op-logout-prompt").await;
        self.click(&yes).await;
        self.wait_for_url(home, |u| u.starts_with(home)).await
    }
}

/// Numbered screenshots of one test, in `<target dir>/e2e-screenshots/<test>/NN-<step>.png`.
#[derive(Debug)]
pub struct Screenshots {
    dir: PathBuf,
    next: usize,
}

impl Screenshots {
    /// Empties (or creates) the screenshot directory of `test`.
    pub fn new(test: &str) -> Self {
        let dir = super::target_dir().join("e2e-screenshots").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        Self { dir, next: 1 }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many files the directory holds.
    pub fn count(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .unwrap_or_else(|e| panic!("read {}: {e}", self.dir.display()))
            .count()
    }

    /// Saves a screenshot of `session` as the next step, named `step`, and returns its path.
    pub async fn take(&mut self, session: &Session, step: &str) -> PathBuf {
        let png = session.screenshot().await;
        assert!(
            png.starts_with(b"\x89PNG\r\n\x1a\n"),
            "screenshot {step} is not a PNG"
        );
        let path = self.dir.join(format!("{:02}-{step}.png", self.next));
        self.next += 1;
        std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }
}
