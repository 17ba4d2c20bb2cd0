//! Harness for end-to-end tests against a real, independently written OpenID Provider.
//!
//! # Overview
//!
//! The tests in `tests/tests/` run the workspace's example applications against
//! [`oidc-provider`](https://github.com/panva/node-oidc-provider) (npm, pinned in
//! `tests/op/package-lock.json`), started on loopback by this harness:
//!
//! * [`RealProvider`] runs `node tests/op/server.mjs` on a port chosen by the OS and waits for
//!   its `READY <issuer>` line. Its issuer is `http://localhost:<port>`.
//!   [`RealProvider::shared`] is one provider per test binary, for tests that only need
//!   tokens; [`RealProvider::start`] gives a test its own (to restart it, for example).
//! * [`Quickstart`] runs the `quickstart` example binary (built once per test process with
//!   `cargo build -p quickstart`) against a provider and waits for `GET /healthz` → 200.
//! * [`Stack`] is a fresh quickstart wired to the shared provider, its audience being the
//!   provider's API resource indicator ([`SHARED_API_RESOURCE`]).
//! * [`LoginProvider`] is a provider for browser-login tests: it reserves the app ports first
//!   ([`ReservedPort`]), registers `http://127.0.0.1:<port>/auth/callback` for each, and
//!   [`LoginProvider::start_app`] runs a quickstart ([`Quickstart::start_login`]) on one of
//!   them, so that the app (`127.0.0.1`) and the provider (`localhost`) are different sites.
//!   [`LoginProvider::start_sso`] registers several apps as clients of their own, each on its
//!   own loopback address, for single sign-on and single logout across apps
//!   ([`LoginProvider::start_web_app`]).
//! * [`user_agent`] is a scripted browser over HTTP (manual redirects, a cookie jar per host,
//!   HTML forms); [`webdriver`] drives a real headless Chromium through chromedriver.
//!
//! Servers are stopped when their handle is dropped, and also when the test process exits
//! abnormally (each server treats the end of its stdin as a stop signal). Each test owns its
//! quickstart, so the tests run in parallel. When a test panics, the captured output of its
//! servers is printed (the test runner shows it next to the failure).
//!
//! ```no_run
//! # async fn demo() {
//! use oidc_e2e::{Stack, clients};
//!
//! let stack = Stack::start().await;
//! let (id, secret) = clients::READER;
//! let token = stack
//!     .op
//!     .client_credentials_token(id, secret, "api:read", Some(stack.op.api_resource()))
//!     .await;
//! let res = stack.app.get("/api/me", Some(&token)).await;
//! assert_eq!(res.status(), 200);
//! # }
//! ```
//!
//! # Environment
//!
//! | variable | effect |
//! | --- | --- |
//! | `QUICKSTART_BIN` | use this binary instead of building `quickstart` |
//! | `CARGO_TARGET_DIR` | where `cargo build -p quickstart` puts the binary (default `<workspace>/target`) |
//! | `E2E_VERBOSE=1` | echo server output to stderr while the tests run |
//! | `RUST_LOG` | passed to the quickstart (default: debug for the `oidc_*` crates) |
//! | `CHROMEDRIVER`, `CHROMIUM` | the browser test's binaries (default `/usr/bin/chromedriver`, `/usr/bin/chromium`) |
//!
//! The first use runs `npm ci` in `tests/op` when `tests/op/node_modules` is missing or holds
//! another `oidc-provider` version than the pinned one, so a fresh machine needs `node` (20 or
//! newer) and `npm` on `PATH`, and access to the npm registry once.

// This crate only exists to run tests: failing loudly (unwrap, expect, panic) with a clear
// message is the desired behaviour, as in `#[test]` functions.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub mod faults;
pub mod load;
pub mod proxy;
pub mod servers;
pub mod user_agent;
pub mod webdriver;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;
use tokio::sync::OnceCell;

/// How long a server may take to become ready.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// A second resource server known to the provider; tokens for it have the wrong `aud` for the
/// quickstart API.
pub const OTHER_RESOURCE: &str = "https://other-api.example.com/api";

/// Client credentials of the provider's clients (see `tests/op/server.mjs`).
pub mod clients {
    /// `client_credentials` client allowed only `api:read`.
    pub const READER: (&str, &str) = ("svc-reader", "reader-secret");
    /// `client_credentials` client allowed `api:read api:write`.
    pub const WRITER: (&str, &str) = ("svc-writer", "writer-secret");
    /// `client_credentials` client without a default resource: it gets opaque access tokens.
    pub const OPAQUE: (&str, &str) = ("svc-opaque", "opaque-secret");
    /// Confidential authorization-code client used by the quickstart.
    pub const WEB_APP: (&str, &str) = ("web-app", "web-secret");
}

/// The workspace root (the parent of this crate's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent directory")
        .to_path_buf()
}

/// The directory holding the provider's `server.mjs` and `package-lock.json`.
pub fn op_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("op")
}

/// Makes sure `node` is available and the provider's npm dependencies are installed.
///
/// Runs `npm ci` in `tests/op` when `node_modules` lacks the `oidc-provider` version pinned in
/// `package.json`, at most once per process.
///
/// # Panics
///
/// If `node` or `npm` is missing or `npm ci` fails, with a message saying what to install.
pub fn ensure_node_modules() {
    static ONCE: OnceLock<Result<(), String>> = OnceLock::new();
    let result = ONCE.get_or_init(|| {
        let version = Command::new("node")
            .arg("--version")
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `node` ({e}): the end-to-end tests need Node.js 20+ and npm on PATH"
                )
            })?;
        if !version.status.success() {
            return Err("`node --version` failed: install Node.js 20+".to_owned());
        }
        let dir = op_dir();
        let pinned = read_version(
            &dir.join("package.json"),
            &["dependencies", "oidc-provider"],
        );
        let installed = read_version(
            &dir.join("node_modules/oidc-provider/package.json"),
            &["version"],
        );
        if installed.is_some() && installed == pinned {
            return Ok(());
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `npm ci` in {} ({e}): the end-to-end tests need npm on PATH",
                    dir.display()
                )
            })?;
        if !out.status.success() {
            return Err(format!(
                "`npm ci` in {} failed ({}); it needs access to the npm registry once:\n{}",
                dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    });
    if let Err(message) = result {
        panic!("{message}");
    }
}

/// Reads the string at `path` (object keys) in the JSON file `file`, if any.
fn read_version(file: &Path, path: &[&str]) -> Option<String> {
    let json: Value = serde_json::from_slice(&std::fs::read(file).ok()?).ok()?;
    path.iter()
        .try_fold(&json, |v, key| v.get(key))?
        .as_str()
        .map(str::to_owned)
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago.
///
/// The port is found by binding `127.0.0.1:0` and releasing it, so another process may take
/// it in between; prefer letting a server pick its own port where possible.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A fresh, empty directory under the system's temporary directory.
fn temp_dir(kind: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "oidc-e2e-{kind}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// An HTTP client for the tests: no redirects followed, short timeouts.
pub fn http_client() -> reqwest::Client {
    http_client_with_timeout(Duration::from_secs(10))
}

/// An HTTP client that follows no redirects, uses no proxy and gives up after `timeout`.
pub fn http_client_with_timeout(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .no_proxy()
        .build()
        .expect("build reqwest client")
}

/// The `Content-Type` of `res` (empty when missing or not text).
pub fn content_type(res: &reqwest::Response) -> String {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The value `res` sets for the cookie `name` (`Some("")` when it removes it with `Max-Age=0`).
pub fn set_cookie_value(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with(&format!("{name}=")))
        .map(|c| {
            let value = c[name.len() + 1..].split(';').next().unwrap().to_owned();
            if c.to_ascii_lowercase().contains("max-age=0") {
                String::new()
            } else {
                value
            }
        })
}

fn verbose() -> bool {
    std::env::var_os("E2E_VERBOSE").is_some_and(|v| v == "1")
}

/// Output captured from a child process.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<String>>);

impl Logs {
    fn push(&self, name: &str, line: &str) {
        if verbose() {
            eprintln!("[{name}] {line}");
        }
        let mut logs = self.0.lock().unwrap_or_else(|e| e.into_inner());
        logs.push_str(line);
        logs.push('\n');
    }

    fn snapshot(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Copies lines from `reader` into `logs` on a thread of its own. The first line starting with
/// `READY ` is also sent through `ready`; dropping `ready` at end of output signals an exit.
fn drain(
    name: &'static str,
    reader: impl Read + Send + 'static,
    logs: Logs,
    mut ready: Option<tokio::sync::oneshot::Sender<String>>,
) {
    std::thread::spawn(move || {
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("READY ")
                && let Some(tx) = ready.take()
            {
                let _ = tx.send(rest.trim().to_owned());
            }
            logs.push(name, &line);
        }
    });
}

/// A child process with captured output, stopped and reaped on drop.
///
/// The child's stdin is a pipe that only this process writes to. Both servers treat the end
/// of their stdin as "stop" (`server.mjs` with `EXIT_ON_STDIN_EOF=1`, the quickstart through
/// [`supervised`]), so they also go away when the test process dies without running
/// destructors (a shared fixture in a `static`, Ctrl-C, a CI timeout).
struct Proc {
    name: &'static str,
    child: Child,
    stdin: Option<ChildStdin>,
    logs: Logs,
}

impl Proc {
    /// Spawns `cmd` with stdin piped and stdout and stderr captured.
    fn spawn(
        name: &'static str,
        mut cmd: Command,
        ready: Option<tokio::sync::oneshot::Sender<String>>,
    ) -> Self {
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({cmd:?}): {e}"));
        let logs = Logs::default();
        drain(name, child.stdout.take().unwrap(), logs.clone(), ready);
        drain(name, child.stderr.take().unwrap(), logs.clone(), None);
        let stdin = child.stdin.take();
        Self {
            name,
            child,
            stdin,
            logs,
        }
    }

    /// Panics with the captured output if the process has exited.
    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            // Give the drain threads a moment to collect the last lines.
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "{} exited early ({status}); output:\n{}",
                self.name,
                self.logs.snapshot()
            );
        }
    }

    fn fail(&mut self, what: &str) -> ! {
        self.stop();
        std::thread::sleep(Duration::from_millis(100));
        panic!("{} {what}; output:\n{}", self.name, self.logs.snapshot());
    }

    /// Closes stdin (the polite stop), waits up to 2 s, then kills; always reaps.
    fn stop(&mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "----- output of {} (pid {}) -----\n{}",
                self.name,
                self.child.id(),
                self.logs.snapshot()
            );
        }
    }
}

/// Wraps `program` in a `/bin/sh` supervisor that runs it in the background and kills it
/// (SIGKILL) as soon as the supervisor's stdin reaches end of file, i.e. when [`Proc`] closes
/// it or the test process exits. The supervisor exits with the program's status.
fn supervised(program: &Path) -> Command {
    // Background jobs of a non-interactive shell get stdin from /dev/null, hence fd 3.
    const SCRIPT: &str = r#"exec 3<&0
"$0" </dev/null 3<&- & child=$!
(cat <&3 >/dev/null; kill -9 "$child" 2>/dev/null) >/dev/null 2>&1 &
exec 3<&-
wait "$child""#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(SCRIPT).arg(program);
    cmd
}

impl fmt::Debug for Proc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proc")
            .field("name", &self.name)
            .field("pid", &self.child.id())
            .finish_non_exhaustive()
    }
}

/// The API resource indicator of the [shared](RealProvider::shared) provider.
pub const SHARED_API_RESOURCE: &str = "http://localhost:3000/api";

/// Prints the provider's output when the test fails (a provider shared by the tests of a file
/// outlives the test, so its own output on drop would come too late or never).
#[derive(Debug)]
pub struct OpLogsOnPanic<'a>(pub &'a RealProvider);

impl Drop for OpLogsOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("----- output of oidc-provider -----\n{}", self.0.logs());
        }
    }
}

/// A running `oidc-provider` instance (`tests/op/server.mjs`), stopped on drop.
///
/// Its signing keys live in a private JWKS file in the temporary directory, so that
/// [`restart_rotating_keys`](Self::restart_rotating_keys) can keep the old key published
/// next to the new one.
#[derive(Debug)]
pub struct RealProvider {
    proc: Proc,
    issuer: String,
    port: u16,
    api_resource: String,
    app_url: String,
    /// Private JWKS kept across restarts; `None` for the shared provider.
    jwks_file: Option<PathBuf>,
    /// Extra environment of `server.mjs` (`AT_TTL`, …), kept across restarts.
    env: Vec<(String, String)>,
}

impl RealProvider {
    /// Starts a provider on a free port whose API resource indicator is `api_resource` and
    /// whose code-flow client `web-app` redirects to `<app_url>/auth/callback`.
    pub async fn start(api_resource: &str, app_url: &str) -> Self {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let jwks_file = std::env::temp_dir().join(format!(
            "oidc-e2e-jwks-{}-{}.json",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&jwks_file);
        Self::start_inner(api_resource, app_url, Some(jwks_file), &[]).await
    }

    /// Like [`start`](Self::start), with extra environment variables for `server.mjs` (for
    /// example `AT_TTL`, the lifetime in seconds of the access tokens of `web-app`).
    ///
    /// `app_url` may hold several URLs separated by spaces: `web-app` may then redirect to
    /// each of them (see [`LoginProvider`]).
    pub async fn start_with_env(api_resource: &str, app_url: &str, env: &[(&str, &str)]) -> Self {
        Self::start_inner(api_resource, app_url, None, env).await
    }

    async fn start_inner(
        api_resource: &str,
        app_url: &str,
        jwks_file: Option<PathBuf>,
        env: &[(&str, &str)],
    ) -> Self {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let (proc, issuer) =
            Self::spawn(0, api_resource, app_url, jwks_file.as_deref(), false, &env).await;
        let port = issuer
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot read the port of issuer {issuer:?}"));
        Self {
            proc,
            issuer,
            port,
            api_resource: api_resource.to_owned(),
            app_url: app_url.to_owned(),
            jwks_file,
            env,
        }
    }

    /// A provider shared by all tests of the current test binary, started on first use, with
    /// the API resource [`SHARED_API_RESOURCE`] and `APP_URL` `http://localhost:3000`.
    ///
    /// It is never dropped: it exits when the test process exits (its stdin closes). Don't
    /// use it for tests that restart or reconfigure the provider.
    pub async fn shared() -> &'static Self {
        static SHARED: tokio::sync::OnceCell<RealProvider> = tokio::sync::OnceCell::const_new();
        SHARED
            .get_or_init(|| {
                Self::start_inner(SHARED_API_RESOURCE, "http://localhost:3000", None, &[])
            })
            .await
    }

    async fn spawn(
        port: u16,
        api_resource: &str,
        app_url: &str,
        jwks_file: Option<&Path>,
        rotate_keys: bool,
        env: &[(String, String)],
    ) -> (Proc, String) {
        ensure_node_modules();
        let mut cmd = Command::new("node");
        cmd.arg("server.mjs")
            .current_dir(op_dir())
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("API_RESOURCE", api_resource)
            .env("OTHER_RESOURCE", OTHER_RESOURCE)
            .env("APP_URL", app_url)
            .env("ROTATE_KEYS", if rotate_keys { "1" } else { "0" })
            .env("EXIT_ON_STDIN_EOF", "1")
            .env_remove("AT_TTL")
            .env_remove("WEB_APPS")
            .envs(env.iter().map(|(k, v)| (k, v)));
        match jwks_file {
            Some(file) => cmd.env("JWKS_FILE", file),
            None => cmd.env_remove("JWKS_FILE"),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut proc = Proc::spawn("oidc-provider", cmd, Some(tx));
        match tokio::time::timeout(STARTUP_TIMEOUT, rx).await {
            Ok(Ok(issuer)) => (proc, issuer),
            Ok(Err(_)) => proc.fail("exited before printing READY"),
            Err(_) => proc.fail(&format!("did not print READY within {STARTUP_TIMEOUT:?}")),
        }
    }

    /// Stops the provider and starts it again on the same port (same issuer) with a newly
    /// generated signing key in front of the previous ones (`ROTATE_KEYS=1`): new tokens carry
    /// the new `kid`, tokens issued before stay verifiable.
    ///
    /// # Panics
    ///
    /// On the [shared](Self::shared) provider, which has no key file.
    pub async fn restart_rotating_keys(&mut self) {
        let jwks_file = self
            .jwks_file
            .clone()
            .expect("the shared provider cannot rotate its keys");
        self.proc.stop();
        let (proc, issuer) = Self::spawn(
            self.port,
            &self.api_resource,
            &self.app_url,
            Some(&jwks_file),
            true,
            &self.env,
        )
        .await;
        assert_eq!(issuer, self.issuer, "issuer changed across restart");
        // Replacing the old handle drops it; it is already stopped.
        self.proc = proc;
    }

    /// The issuer, `http://localhost:<port>`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The host of the issuer, `localhost`.
    pub fn host(&self) -> String {
        let issuer = reqwest::Url::parse(&self.issuer).expect("the issuer is a URL");
        issuer.host_str().expect("the issuer has a host").to_owned()
    }

    /// Output of the provider so far (stdout and stderr, interleaved by line).
    pub fn logs(&self) -> String {
        self.proc.logs.snapshot()
    }

    /// How many lines of the provider's output are exactly `line` (after trimming).
    ///
    /// `server.mjs` prints `GRANT <grant_type> <client_id> <account>` for each successful
    /// token request, so `op.count_lines("GRANT refresh_token web-app alice")` counts the
    /// refreshes of alice's `web-app` tokens.
    pub fn count_lines(&self, line: &str) -> usize {
        self.logs().lines().filter(|l| l.trim() == line).count()
    }

    /// The lines of the provider's output that start with `prefix` (trimmed), in order.
    pub fn lines_starting_with(&self, prefix: &str) -> Vec<String> {
        self.logs()
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(prefix))
            .map(str::to_owned)
            .collect()
    }

    /// Waits up to 5 s until at least `n` lines of the provider's output start with `prefix`
    /// (its output reaches the harness through a pipe), and returns those lines (fewer than
    /// `n` on timeout).
    pub async fn wait_for_lines(&self, prefix: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let lines = self.lines_starting_with(prefix);
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// How many tokens the provider granted by `grant_type` to `client_id` for `account`: its
    /// `GRANT <grant_type> <client_id> <account>` lines (see [`count_lines`](Self::count_lines)).
    pub fn grants(&self, grant_type: &str, client_id: &str, account: &str) -> usize {
        self.count_lines(&format!("GRANT {grant_type} {client_id} {account}"))
    }

    /// Waits up to 5 s until [`grants`](Self::grants) reaches `n` (the provider's output
    /// reaches the harness through a pipe), and returns the count (less than `n` on timeout).
    pub async fn wait_for_grants(
        &self,
        grant_type: &str,
        client_id: &str,
        account: &str,
        n: usize,
    ) -> usize {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let count = self.grants(grant_type, client_id, account);
            if count >= n || Instant::now() > deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The back-channel logout deliveries of the provider to `client_id` so far, from the
    /// `BACKCHANNEL <client_id> …` lines of `server.mjs`.
    pub fn backchannel_deliveries(&self, client_id: &str) -> Vec<BackchannelDelivery> {
        self.lines_starting_with(&format!("BACKCHANNEL {client_id} "))
            .iter()
            .map(|line| BackchannelDelivery::parse(line))
            .collect()
    }

    /// Waits up to 5 s until the provider logged at least `n` back-channel logout deliveries to
    /// `client_id`, and returns them (fewer than `n` on timeout).
    pub async fn wait_for_backchannel_deliveries(
        &self,
        client_id: &str,
        n: usize,
    ) -> Vec<BackchannelDelivery> {
        self.wait_for_lines(&format!("BACKCHANNEL {client_id} "), n)
            .await
            .iter()
            .map(|line| BackchannelDelivery::parse(line))
            .collect()
    }

    /// The resource indicator of the quickstart API (the `aud` of its access tokens).
    pub fn api_resource(&self) -> &str {
        &self.api_resource
    }

    /// Fetches and returns the discovery document.
    pub async fn discovery(&self) -> Value {
        get_json(&format!("{}/.well-known/openid-configuration", self.issuer)).await
    }

    /// Fetches and returns the public JWKS.
    pub async fn jwks(&self) -> Value {
        let uri = self.discovery().await["jwks_uri"]
            .as_str()
            .expect("jwks_uri in discovery")
            .to_owned();
        get_json(&uri).await
    }

    /// Performs a `client_credentials` grant and returns the whole token response.
    ///
    /// `scope` is omitted when empty, `resource` when `None`.
    ///
    /// # Panics
    ///
    /// If the token endpoint does not answer 200.
    pub async fn token_response(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> Value {
        let token_endpoint = self.discovery().await["token_endpoint"]
            .as_str()
            .expect("token_endpoint in discovery")
            .to_owned();
        let mut form = vec![("grant_type", "client_credentials")];
        if !scope.is_empty() {
            form.push(("scope", scope));
        }
        if let Some(resource) = resource {
            form.push(("resource", resource));
        }
        // A fresh client per call: a shared provider outlives the runtime of any one test.
        let res = http_client()
            .post(&token_endpoint)
            .basic_auth(client_id, Some(secret))
            .form(&form)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {token_endpoint}: {e}"));
        let status = res.status();
        let body: Value = res.json().await.expect("token response is JSON");
        assert_eq!(status, 200, "token request for {client_id} failed: {body}");
        body
    }

    /// Performs a `client_credentials` grant and returns the access token.
    ///
    /// With `resource: Some(..)` the provider issues an RFC 9068 JWT for that resource
    /// (`svc-reader` and `svc-writer` default to the API resource); the `svc-opaque` client
    /// without a resource gets an opaque token.
    pub async fn client_credentials_token(
        &self,
        client_id: &str,
        secret: &str,
        scope: &str,
        resource: Option<&str>,
    ) -> String {
        self.token_response(client_id, secret, scope, resource)
            .await["access_token"]
            .as_str()
            .expect("access_token in token response")
            .to_owned()
    }
}

/// One back-channel logout delivery of the provider, as `server.mjs` logs it:
/// `BACKCHANNEL <client_id> <status> <Cache-Control or ->`, or
/// `BACKCHANNEL <client_id> error <reason>` when the relying party did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackchannelDelivery {
    /// The client the logout token was for.
    pub client_id: String,
    /// The HTTP status of the relying party's answer; `None` when there was no answer.
    pub status: Option<u16>,
    /// The answer's `Cache-Control` header, if any; the reason of the failure when there was
    /// no answer.
    pub detail: Option<String>,
    /// The log line.
    pub line: String,
}

impl BackchannelDelivery {
    /// Parses a `BACKCHANNEL …` line.
    ///
    /// # Panics
    ///
    /// If the line does not have that shape.
    pub fn parse(line: &str) -> Self {
        let mut parts = line.trim().splitn(4, ' ');
        let (Some("BACKCHANNEL"), Some(client_id), Some(status)) =
            (parts.next(), parts.next(), parts.next())
        else {
            panic!("not a BACKCHANNEL line: {line:?}");
        };
        let status = match status {
            "error" => None,
            code => Some(
                code.parse()
                    .unwrap_or_else(|_| panic!("bad status in {line:?}")),
            ),
        };
        let detail = parts
            .next()
            .map(str::trim)
            .filter(|d| !d.is_empty() && *d != "-")
            .map(str::to_owned);
        Self {
            client_id: client_id.to_owned(),
            status,
            detail,
            line: line.trim().to_owned(),
        }
    }

    /// The `Cache-Control` of the relying party's answer (`None` without an answer).
    pub fn cache_control(&self) -> Option<&str> {
        self.status.and(self.detail.as_deref())
    }
}

impl Drop for RealProvider {
    fn drop(&mut self) {
        if let Some(file) = &self.jwks_file {
            let _ = std::fs::remove_file(file);
        }
    }
}

async fn get_json(url: &str) -> Value {
    let res = http_client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(res.status(), 200, "GET {url}");
    res.json().await.expect("JSON body")
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when
/// relative) or `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    let root = workspace_root();
    std::env::var_os("CARGO_TARGET_DIR")
        .map(|d| root.join(d)) // an absolute path replaces `root`
        .unwrap_or_else(|| root.join("target"))
}

/// Path of the `quickstart` binary, building it once per process.
///
/// `QUICKSTART_BIN` overrides the path (and skips the build). Otherwise runs
/// `cargo build -p quickstart` in the workspace (a no-op when up to date, so the binary is
/// never stale) and returns `<target dir>/debug/quickstart`, the target dir being
/// `CARGO_TARGET_DIR` or `<workspace>/target`.
///
/// # Panics
///
/// If the build fails or the binary is missing afterwards.
pub fn quickstart_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    workspace_binary(&BIN, "quickstart", "QUICKSTART_BIN")
}

/// The binary `package` of this workspace (binary of the same name), built once per test
/// process into [`target_dir`] and kept in `slot`, or the path in the environment variable
/// `override_var` when it is set.
///
/// # Panics
///
/// If the build fails or the binary is missing afterwards.
pub fn workspace_binary(
    slot: &'static OnceLock<Result<PathBuf, String>>,
    package: &str,
    override_var: &str,
) -> PathBuf {
    let result = slot.get_or_init(|| {
        if let Some(bin) = std::env::var_os(override_var) {
            return Ok(PathBuf::from(bin));
        }
        let target_dir = target_dir();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = Command::new(&cargo)
            .args(["build", "-p", package, "--bin", package])
            .current_dir(workspace_root())
            .env("CARGO_TARGET_DIR", &target_dir)
            .stdout(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {cargo:?}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "`cargo build -p {package}` failed ({}):\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let bin = target_dir
            .join("debug")
            .join(format!("{package}{}", std::env::consts::EXE_SUFFIX));
        if bin.is_file() {
            Ok(bin)
        } else {
            Err(format!("{} missing after the build", bin.display()))
        }
    });
    match result {
        Ok(bin) => bin.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// A running `quickstart` example, stopped on drop.
#[derive(Debug)]
pub struct Quickstart {
    proc: Proc,
    base_url: String,
    http: reqwest::Client,
}

impl Quickstart {
    /// Starts the quickstart on `127.0.0.1:<port>` against `op`, with
    /// `OIDC_AUDIENCE = op.api_resource()` and the `web-app` client, and waits until
    /// `GET /healthz` answers 200.
    pub async fn start(op: &RealProvider, port: u16) -> Self {
        let (client_id, client_secret) = clients::WEB_APP;
        Self::start_with_env(
            port,
            &[
                ("BIND", &format!("127.0.0.1:{port}")),
                ("APP_URL", &format!("http://localhost:{port}")),
                ("OIDC_ISSUER", op.issuer()),
                ("OIDC_AUDIENCE", op.api_resource()),
                ("OIDC_CLIENT_ID", client_id),
                ("OIDC_CLIENT_SECRET", client_secret),
            ],
        )
        .await
    }

    /// Starts the quickstart, which must listen on `127.0.0.1:<port>`, with these environment
    /// variables, and waits for `GET /healthz` → 200.
    ///
    /// The quickstart's own variables (`BIND`, `OIDC_*`, …) are not inherited from this
    /// process; `NO_PROXY` covers loopback, and `RUST_LOG` defaults to debug for the `oidc*`
    /// crates.
    pub async fn start_with_env(port: u16, env: &[(&str, &str)]) -> Self {
        Self::start_with_env_on(Ipv4Addr::LOCALHOST, port, env).await
    }

    /// Like [`start_with_env`](Self::start_with_env), for a quickstart that listens on
    /// `<ip>:<port>` (another loopback address than `127.0.0.1`, for example).
    pub async fn start_with_env_on(ip: Ipv4Addr, port: u16, env: &[(&str, &str)]) -> Self {
        let bin = quickstart_binary();
        let mut cmd = supervised(&bin);
        cmd.current_dir(workspace_root());
        for key in [
            "BIND",
            "APP_URL",
            "OIDC_ISSUER",
            "OIDC_AUDIENCE",
            "OIDC_CLIENT_ID",
            "OIDC_CLIENT_SECRET",
            "OIDC_SCOPES",
            "OIDC_STRICT_AT_JWT",
            "OIDC_UNKNOWN_KID_COOLDOWN_SECS",
            "OIDC_REFRESH_MARGIN_SECS",
            "SESSION_STORE",
            "SESSION_NAMESPACE",
            "HEADER_READ_TIMEOUT_SECS",
            "BODY_READ_TIMEOUT_SECS",
            "MAX_CONNECTIONS",
        ] {
            cmd.env_remove(key);
        }
        // Everything is on loopback: never go through a proxy from the environment.
        cmd.env("NO_PROXY", "localhost,127.0.0.1")
            .env("no_proxy", "localhost,127.0.0.1");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env(
                "RUST_LOG",
                "info,quickstart=debug,oidc=debug,oidc_core=debug,oidc_tower=debug,oidc_axum=debug",
            );
        }
        cmd.envs(env.iter().copied());
        let mut proc = Proc::spawn("quickstart", cmd, None);
        let base_url = format!("http://{ip}:{port}");
        let http = http_client();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            proc.assert_running();
            if let Ok(res) = http.get(format!("{base_url}/healthz")).send().await
                && res.status() == 200
            {
                break;
            }
            if Instant::now() > deadline {
                proc.fail(&format!(
                    "did not answer GET /healthz with 200 within {STARTUP_TIMEOUT:?}"
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            proc,
            base_url,
            http,
        }
    }

    /// `http://127.0.0.1:<port>` (the app's listening address) followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// `GET path`, with `Authorization: Bearer <token>` when `bearer` is given.
    pub async fn get(&self, path: &str, bearer: Option<&str>) -> reqwest::Response {
        match bearer {
            Some(token) => {
                self.get_with_authorization(path, &format!("Bearer {token}"))
                    .await
            }
            None => self.send(self.http.get(self.url(path)), path).await,
        }
    }

    /// `GET path` with this exact `Authorization` header value.
    pub async fn get_with_authorization(
        &self,
        path: &str,
        authorization: &str,
    ) -> reqwest::Response {
        self.send(
            self.http
                .get(self.url(path))
                .header("authorization", authorization),
            path,
        )
        .await
    }

    async fn send(&self, req: reqwest::RequestBuilder, path: &str) -> reqwest::Response {
        req.send()
            .await
            .unwrap_or_else(|e| panic!("request to quickstart {path}: {e}"))
    }

    /// Output captured from the quickstart so far.
    pub fn logs(&self) -> String {
        self.proc.logs.snapshot()
    }
}

/// A quickstart wired to the [shared](RealProvider::shared) provider; the quickstart is
/// stopped on drop.
#[derive(Debug)]
pub struct Stack {
    /// The quickstart API, listening on a free port.
    pub app: Quickstart,
    /// The shared OpenID Provider.
    pub op: &'static RealProvider,
}

impl Stack {
    /// Starts (or reuses) the shared provider, then a quickstart on a free port whose
    /// audience is the provider's API resource.
    pub async fn start() -> Self {
        let op = RealProvider::shared().await;
        let app = Quickstart::start(op, free_port()).await;
        Self { app, op }
    }
}

/// A loopback port kept bound (by a listener that never accepts) until
/// [`release`](Self::release)d, so that no other process takes it in the meantime.
///
/// Used to give the provider the app's URL before the app runs: reserve, start the provider
/// with `APP_URL=http://127.0.0.1:<port>`, then release the port and start the app on it
/// right away.
#[derive(Debug)]
pub struct ReservedPort {
    listener: TcpListener,
    ip: Ipv4Addr,
    port: u16,
}

impl ReservedPort {
    /// Binds `127.0.0.1:0` and keeps the port.
    pub fn new() -> Self {
        Self::on(Ipv4Addr::LOCALHOST)
    }

    /// Binds `<ip>:0` and keeps the port. `ip` is a loopback address: on Linux all of
    /// `127.0.0.0/8` is, and a browser keeps the cookies of `127.0.0.2` apart from those of
    /// `127.0.0.1` (cookies ignore ports, not hosts).
    ///
    /// # Panics
    ///
    /// If `ip` is not a loopback address, or cannot be bound.
    pub fn on(ip: Ipv4Addr) -> Self {
        assert!(ip.is_loopback(), "{ip} is not a loopback address");
        let listener = TcpListener::bind((ip, 0)).unwrap_or_else(|e| panic!("bind {ip}:0: {e}"));
        let port = listener.local_addr().expect("local address").port();
        Self { listener, ip, port }
    }

    /// The reserved port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the port is reserved on (`127.0.0.1` unless made with [`on`](Self::on)).
    pub fn ip(&self) -> Ipv4Addr {
        self.ip
    }

    /// `http://<ip>:<port>`: the URL of an app that will listen on this port.
    pub fn app_url(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    /// Frees the port (for the app about to bind it) and returns it.
    pub fn release(self) -> u16 {
        drop(self.listener);
        self.port
    }
}

impl Default for ReservedPort {
    fn default() -> Self {
        Self::new()
    }
}

impl Quickstart {
    /// Starts the quickstart for browser login on the reserved `port`: `BIND` and `APP_URL`
    /// are `127.0.0.1:<port>` (or the port's other loopback address, see
    /// [`ReservedPort::on`]; so that the app, on `127.0.0.1`, and the provider, on
    /// `localhost`, are different sites), `OIDC_ISSUER` is `op`'s issuer, `OIDC_AUDIENCE` its
    /// API resource, and the client is `web-app`. `env` adds or overrides variables
    /// (`OIDC_SCOPES`, `OIDC_CLIENT_ID`, …).
    ///
    /// `op` must have been started with this app's URL among its `APP_URL`s, or the provider
    /// refuses the redirect URI.
    pub async fn start_login(op: &RealProvider, port: ReservedPort, env: &[(&str, &str)]) -> Self {
        let (client_id, client_secret) = clients::WEB_APP;
        let app_url = port.app_url();
        let ip = port.ip();
        let port = port.release();
        let bind = format!("{ip}:{port}");
        let mut all = vec![
            ("BIND", bind.as_str()),
            ("APP_URL", app_url.as_str()),
            ("OIDC_ISSUER", op.issuer()),
            ("OIDC_AUDIENCE", op.api_resource()),
            ("OIDC_CLIENT_ID", client_id),
            ("OIDC_CLIENT_SECRET", client_secret),
        ];
        all.extend_from_slice(env);
        Self::start_with_env_on(ip, port, &all).await
    }

    /// `http://127.0.0.1:<port>` (or the app's other loopback address), the app's origin (and
    /// `APP_URL` for [`start_login`](Self::start_login)).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }
}

/// A provider for login tests, shared by the quickstarts of one test file: it is started with
/// the URLs of `apps` reserved ports as its `APP_URL`s, and each
/// [`start_app`](Self::start_app) runs a quickstart on one of them.
///
/// Keep it in a `static` ([`tokio::sync::OnceCell`]) to share it between the tests of a file;
/// like [`RealProvider::shared`] it then exits with the test process.
#[derive(Debug)]
pub struct LoginProvider {
    op: RealProvider,
    ports: Mutex<Vec<ReservedPort>>,
    /// The clients of [`start_sso`](Self::start_sso), in order.
    web_apps: Vec<WebApp>,
    /// Their ports, by client id, until their app is started.
    web_app_ports: Mutex<BTreeMap<String, ReservedPort>>,
}

/// A relying party registered at a [`LoginProvider`] as a client of its own (`WEB_APPS` in
/// `tests/op/server.mjs`), with back-channel logout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebApp {
    /// Its client id.
    pub client_id: String,
    /// Its client secret.
    pub client_secret: String,
    /// Its URL, `http://<loopback address>:<port>`.
    pub app_url: String,
}

impl WebApp {
    /// `<app_url>/auth/backchannel-logout`, its registered `backchannel_logout_uri` (the login
    /// layer's default back-channel logout path).
    pub fn backchannel_logout_uri(&self) -> String {
        format!("{}/auth/backchannel-logout", self.app_url)
    }
}

impl LoginProvider {
    /// The provider of a test file, kept in `cell`: started at first use with `apps` app ports
    /// and access tokens for `web-app` that live `at_ttl` seconds (`AT_TTL`).
    pub async fn shared(cell: &'static OnceCell<Self>, apps: usize, at_ttl: u64) -> &'static Self {
        cell.get_or_init(|| async { Self::start(apps, &[("AT_TTL", &at_ttl.to_string())]).await })
            .await
    }

    /// Reserves `apps` ports, then starts a provider whose `web-app` client may redirect to
    /// each of them, with the extra environment `env` for `server.mjs` (`AT_TTL`, …).
    pub async fn start(apps: usize, env: &[(&str, &str)]) -> Self {
        let ports: Vec<ReservedPort> = (0..apps).map(|_| ReservedPort::new()).collect();
        let app_urls: Vec<String> = ports.iter().map(ReservedPort::app_url).collect();
        let op = RealProvider::start_with_env(SHARED_API_RESOURCE, &app_urls.join(" "), env).await;
        Self {
            op,
            ports: Mutex::new(ports),
            web_apps: Vec::new(),
            web_app_ports: Mutex::new(BTreeMap::new()),
        }
    }

    /// Starts a provider for single sign-on across apps: one confidential client per entry of
    /// `client_ids` (secret `<client_id>-secret`), each for an app on a loopback address of
    /// its own (`127.0.0.1`, `127.0.0.2`, … in order) and a reserved port, with its redirect
    /// URI, post-logout redirect URI and back-channel logout URI
    /// ([`WebApp::backchannel_logout_uri`]) registered. `env` is extra environment for
    /// `server.mjs` (`AT_TTL`, …).
    ///
    /// Distinct addresses, not just ports, because browsers share cookies between the ports
    /// of a host: two apps on `127.0.0.1` would overwrite each other's session cookie.
    ///
    /// Start the apps with [`start_web_app`](Self::start_web_app).
    ///
    /// # Panics
    ///
    /// On a repeated client id, or more than 254 apps.
    pub async fn start_sso(client_ids: &[&str], env: &[(&str, &str)]) -> Self {
        let mut web_apps = Vec::new();
        let mut ports = BTreeMap::new();
        for (i, client_id) in client_ids.iter().enumerate() {
            let host = u8::try_from(i + 1)
                .ok()
                .filter(|h| *h < 255)
                .expect("at most 254 apps");
            let port = ReservedPort::on(Ipv4Addr::new(127, 0, 0, host));
            web_apps.push(WebApp {
                client_id: (*client_id).to_owned(),
                client_secret: format!("{client_id}-secret"),
                app_url: port.app_url(),
            });
            let previous = ports.insert((*client_id).to_owned(), port);
            assert!(previous.is_none(), "client id {client_id} repeated");
        }
        let registrations: Vec<Value> = web_apps
            .iter()
            .map(|app| {
                serde_json::json!({
                    "client_id": app.client_id,
                    "client_secret": app.client_secret,
                    "app_url": app.app_url,
                })
            })
            .collect();
        let registrations = Value::Array(registrations).to_string();
        let app_urls: Vec<&str> = web_apps.iter().map(|app| app.app_url.as_str()).collect();
        let mut all: Vec<(&str, &str)> = vec![("WEB_APPS", registrations.as_str())];
        all.extend_from_slice(env);
        let op = RealProvider::start_with_env(SHARED_API_RESOURCE, &app_urls.join(" "), &all).await;
        Self {
            op,
            ports: Mutex::new(Vec::new()),
            web_apps,
            web_app_ports: Mutex::new(ports),
        }
    }

    /// The clients registered by [`start_sso`](Self::start_sso), in order.
    pub fn web_apps(&self) -> &[WebApp] {
        &self.web_apps
    }

    /// The client `client_id` registered by [`start_sso`](Self::start_sso).
    ///
    /// # Panics
    ///
    /// If there is no such client.
    pub fn web_app(&self, client_id: &str) -> &WebApp {
        self.web_apps
            .iter()
            .find(|app| app.client_id == client_id)
            .unwrap_or_else(|| panic!("no web app {client_id:?} registered by start_sso"))
    }

    /// Starts the quickstart of the client `client_id` (see [`start_sso`](Self::start_sso)) on
    /// its reserved address and port, with its client id and secret ([`Quickstart::start_login`];
    /// `env` adds or overrides variables).
    ///
    /// # Panics
    ///
    /// If there is no such client, or its app was already started.
    pub async fn start_web_app(&self, client_id: &str, env: &[(&str, &str)]) -> Quickstart {
        let app = self.web_app(client_id);
        let port = self
            .web_app_ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(client_id)
            .unwrap_or_else(|| panic!("the app of {client_id:?} was already started"));
        let mut all = vec![
            ("OIDC_CLIENT_ID", app.client_id.as_str()),
            ("OIDC_CLIENT_SECRET", app.client_secret.as_str()),
        ];
        all.extend_from_slice(env);
        Quickstart::start_login(&self.op, port, &all).await
    }

    /// The provider.
    pub fn op(&self) -> &RealProvider {
        &self.op
    }

    /// Starts a quickstart on one of the reserved ports (see [`Quickstart::start_login`]).
    ///
    /// # Panics
    ///
    /// When all the ports given to [`start`](Self::start) are used (a provider of
    /// [`start_sso`](Self::start_sso) has none: use [`start_web_app`](Self::start_web_app)).
    pub async fn start_app(&self, env: &[(&str, &str)]) -> Quickstart {
        let port = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .expect("LoginProvider::start(apps, ..): more quickstarts started than `apps`");
        Quickstart::start_login(&self.op, port, env).await
    }
}

/// Decodes one base64url segment of a compact JWS as JSON.
///
/// # Panics
///
/// If the token has no such segment or it is not base64url JSON.
pub fn jwt_segment(token: &str, index: usize) -> Value {
    let segment = token
        .split('.')
        .nth(index)
        .unwrap_or_else(|| panic!("token has no segment {index}"));
    let bytes = URL_SAFE_NO_PAD.decode(segment).expect("base64url segment");
    serde_json::from_slice(&bytes).expect("JSON segment")
}

/// The JOSE header of a compact JWS.
pub fn jwt_header(token: &str) -> Value {
    jwt_segment(token, 0)
}

/// The claims of a compact JWS (not verified).
pub fn jwt_claims(token: &str) -> Value {
    jwt_segment(token, 1)
}

/// Re-encodes the claims after `edit` and keeps the original header and signature, so the
/// signature no longer matches.
pub fn with_edited_claims(token: &str, edit: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "compact JWS expected");
    let mut claims = jwt_claims(token);
    edit(&mut claims);
    let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
    format!("{}.{payload}.{}", parts[0], parts[2])
}

/// Replaces the character in the middle of segment `index` with another base64url character.
///
/// The middle (not the last) character is changed so that the decoded bytes always differ.
pub fn flip_char_in_segment(token: &str, index: usize) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let segment = &mut parts[index];
    let mid = segment.len() / 2;
    let old = segment.as_bytes()[mid];
    let new = if old == b'A' { "B" } else { "A" };
    segment.replace_range(mid..=mid, new);
    parts.join(".")
}

/// Parses a `WWW-Authenticate` challenge such as
/// `Bearer realm="api", error="invalid_token"` into its scheme and parameters.
///
/// Handles quoted strings with backslash escapes and bare tokens; parameter names are
/// lowercased. Only the first challenge is read.
pub fn parse_challenge(header: &str) -> (String, BTreeMap<String, String>) {
    let header = header.trim();
    let (scheme, mut rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = BTreeMap::new();
    loop {
        rest = rest.trim_start_matches([' ', ',']);
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.insert(name, value);
        rest = remaining;
    }
    (scheme.to_owned(), params)
}

/// The `WWW-Authenticate` header of `res`, parsed with [`parse_challenge`].
///
/// # Panics
///
/// If the header is missing, repeated or not UTF-8.
pub fn www_authenticate(res: &reqwest::Response) -> (String, BTreeMap<String, String>) {
    let values: Vec<_> = res.headers().get_all("www-authenticate").iter().collect();
    assert_eq!(
        values.len(),
        1,
        "expected exactly one WWW-Authenticate header, got {values:?}"
    );
    parse_challenge(values[0].to_str().expect("ASCII WWW-Authenticate"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let (scheme, p) = parse_challenge(
            r#"Bearer realm="api", error="insufficient_scope", scope="api:write", error_description="a \"b\", c""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(p["realm"], "api");
        assert_eq!(p["error"], "insufficient_scope");
        assert_eq!(p["scope"], "api:write");
        assert_eq!(p["error_description"], r#"a "b", c"#);

        let (scheme, p) = parse_challenge("Bearer");
        assert_eq!(scheme, "Bearer");
        assert!(p.is_empty());

        let (_, p) = parse_challenge("Bearer error=invalid_token,realm=x");
        assert_eq!(p["error"], "invalid_token");
        assert_eq!(p["realm"], "x");
    }

    #[test]
    fn reads_the_pinned_provider_version() {
        let pinned = read_version(
            &op_dir().join("package.json"),
            &["dependencies", "oidc-provider"],
        )
        .unwrap();
        assert!(pinned.starts_with("9."), "{pinned}");
        assert!(
            pinned.chars().all(|c| c.is_ascii_digit() || c == '.'),
            "exact pin: {pinned}"
        );
        assert_eq!(
            read_version(&op_dir().join("missing.json"), &["version"]),
            None
        );
    }

    #[test]
    fn parses_backchannel_lines() {
        let ok = BackchannelDelivery::parse("BACKCHANNEL app-one 200 no-store, max-age=0\n");
        assert_eq!(ok.client_id, "app-one");
        assert_eq!(ok.status, Some(200));
        assert_eq!(ok.cache_control(), Some("no-store, max-age=0"));
        let bare = BackchannelDelivery::parse("BACKCHANNEL app-two 400 -");
        assert_eq!(bare.status, Some(400));
        assert_eq!(bare.cache_control(), None);
        let failed = BackchannelDelivery::parse("BACKCHANNEL app-two error ECONNREFUSED");
        assert_eq!(failed.status, None);
        assert_eq!(failed.detail.as_deref(), Some("ECONNREFUSED"));
        assert_eq!(failed.cache_control(), None);
        assert!(std::panic::catch_unwind(|| BackchannelDelivery::parse("GRANT x y z")).is_err());
    }

    #[test]
    fn tampering_changes_the_token() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2lnbmF0dXJl";
        assert_ne!(flip_char_in_segment(token, 1), token);
        assert_ne!(flip_char_in_segment(token, 2), token);
        let edited = with_edited_claims(token, |c| c["sub"] = "b".into());
        assert_eq!(jwt_claims(&edited)["sub"], "b");
        assert!(edited.ends_with(".c2lnbmF0dXJl"));
    }
}
