//! `oidc-proxy` in front of a real upstream HTTP server (nginx from Debian), for
//! the tests of `tests/auth_proxy.rs`.
//!
//! * [`Nginx`] runs `/usr/sbin/nginx` (or `$NGINX`) in the foreground, single process, with its
//!   own configuration, pid, log and temporary paths in a fresh directory, on a loopback port.
//!   Every request gets `200` and a plain-text echo of the identity headers nginx received,
//!   one `name=value` per line ([`NginxEcho`]). nginx reads headers spelled with `_` too
//!   (`underscores_in_headers on`), and its `$http_x_forwarded_user` matches both spellings,
//!   as CGI-style servers do: a spoofed `X_Forwarded_User` would show.
//! * [`AuthProxy`] runs the `oidc-proxy` binary (built once per test process with
//!   `cargo build -p oidc-proxy`, or `$AUTH_PROXY_BIN`) with a TOML file written for the test,
//!   and waits for `GET /ping` → 200. [`LoginProvider::start_auth_proxy`] starts one on a port
//!   the provider knows as an app URL, as the `web-app` client.
//! * [`parse_prometheus`] reads the proxy's `/metrics`, strictly enough to catch a broken page.
//!
//! Both servers are stopped on drop, and killed when the test process dies (they run under
//! the same stdin supervisor as the quickstart).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::{
    LoginProvider, Proc, ReservedPort, STARTUP_TIMEOUT, clients, http_client, workspace_root,
};

/// The headers nginx echoes, with the names of their lines in [`NginxEcho`].
const ECHOED: [(&str, &str); 12] = [
    ("user", "$http_x_forwarded_user"),
    ("email", "$http_x_forwarded_email"),
    ("groups", "$http_x_forwarded_groups"),
    ("preferred_username", "$http_x_forwarded_preferred_username"),
    ("access_token", "$http_x_forwarded_access_token"),
    ("authorization", "$http_authorization"),
    ("forwarded_for", "$http_x_forwarded_for"),
    ("forwarded_proto", "$http_x_forwarded_proto"),
    ("forwarded_host", "$http_x_forwarded_host"),
    ("cookie", "$http_cookie"),
    ("host", "$http_host"),
    ("uri", "$request_uri"),
];

/// Wraps `program args…` like [`crate::supervised`]: killed as soon as the supervisor's stdin
/// closes (the handle is dropped, or the test process dies).
fn supervised_with_args(program: &Path, args: &[&str]) -> Command {
    const SCRIPT: &str = r#"exec 3<&0
"$0" "$@" </dev/null 3<&- & child=$!
(cat <&3 >/dev/null; kill -9 "$child" 2>/dev/null) >/dev/null 2>&1 &
exec 3<&-
wait "$child""#;
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(SCRIPT).arg(program).args(args);
    cmd
}

/// A fresh directory under the system temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        Self(crate::temp_dir(what))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `GET url` until it answers `status`, or fails `proc` after [`STARTUP_TIMEOUT`].
async fn wait_for(proc: &mut Proc, url: &str, status: u16) {
    let http = http_client();
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        proc.assert_running();
        if let Ok(res) = http.get(url).send().await
            && res.status() == status
        {
            return;
        }
        if Instant::now() > deadline {
            proc.fail(&format!(
                "did not answer GET {url} with {status} within {STARTUP_TIMEOUT:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// nginx echoing the identity headers it receives, stopped on drop.
#[derive(Debug)]
pub struct Nginx {
    proc: Proc,
    port: u16,
    // Dropped after `proc`: nginx is stopped before its directory goes.
    _dir: TempDir,
}

impl Nginx {
    /// Starts nginx on a free port of `127.0.0.1` and waits until it answers.
    ///
    /// # Panics
    ///
    /// If nginx is not installed (`apt-get install nginx-light`) or does not start.
    pub async fn start() -> Self {
        let bin = std::env::var_os("NGINX")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/usr/sbin/nginx"));
        assert!(
            bin.is_file(),
            "{} not found: the oidc-proxy end-to-end test needs nginx from Debian \
             (apt-get install nginx-light; .ci/run installs it) or NGINX=/path/to/nginx",
            bin.display()
        );
        let dir = TempDir::new("nginx");
        let port = ReservedPort::new().release();
        let d = dir.0.display();
        let mut echo = String::from("upstream=nginx\\n");
        for (name, variable) in ECHOED {
            let _ = write!(echo, "{name}={variable}\\n");
        }
        let conf = format!(
            r#"daemon off;
master_process off;
pid {d}/nginx.pid;
error_log stderr notice;
events {{
    worker_connections 256;
}}
http {{
    access_log off;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    underscores_in_headers on;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type text/plain;
            return 200 "{echo}";
        }}
    }}
}}
"#
        );
        let conf_path = dir.0.join("nginx.conf");
        std::fs::write(&conf_path, conf).expect("write nginx.conf");
        let prefix = format!("{d}/");
        let conf_arg = conf_path.display().to_string();
        let mut cmd = supervised_with_args(&bin, &["-p", &prefix, "-c", &conf_arg, "-e", "stderr"]);
        cmd.current_dir(&dir.0);
        let mut proc = Proc::spawn("nginx", cmd, None);
        wait_for(&mut proc, &format!("http://127.0.0.1:{port}/"), 200).await;
        Self {
            proc,
            port,
            _dir: dir,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Output of nginx so far.
    pub fn logs(&self) -> String {
        self.proc.logs.snapshot()
    }
}

/// What nginx saw, from its echo: `name` → value (`""` when the header was absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NginxEcho(pub BTreeMap<String, String>);

impl NginxEcho {
    /// Parses the echo body.
    ///
    /// # Panics
    ///
    /// If the body is not nginx's echo.
    pub fn parse(body: &str) -> Self {
        let lines: BTreeMap<String, String> = body
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(
            lines.get("upstream").map(String::as_str),
            Some("nginx"),
            "not the nginx echo: {body}"
        );
        Self(lines)
    }

    /// The value nginx saw for `name` (one of the echoed names; `""` when absent).
    pub fn get(&self, name: &str) -> &str {
        self.0
            .get(name)
            .unwrap_or_else(|| panic!("{name} is not echoed"))
    }
}

/// Path of the `oidc-proxy` binary, building it once per process (`$AUTH_PROXY_BIN` skips
/// the build), as [`crate::quickstart_binary`] does for the quickstart.
///
/// # Panics
///
/// If the build fails or the binary is missing afterwards.
pub fn oidc_proxy_binary() -> PathBuf {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    crate::workspace_binary(&BIN, "oidc-proxy", "AUTH_PROXY_BIN")
}

/// A running `oidc-proxy`, stopped on drop.
#[derive(Debug)]
pub struct AuthProxy {
    proc: Proc,
    base_url: String,
    // Dropped after `proc`.
    _dir: TempDir,
}

impl AuthProxy {
    /// Starts the proxy with `config` (TOML) as its configuration file and these extra
    /// environment variables, listening on `ip:port`; waits for `GET /ping` → 200.
    ///
    /// No `AUTH_PROXY_*` variable of this process is inherited; `RUST_LOG` defaults to debug
    /// for the proxy and the `oidc_*` crates.
    pub async fn start(ip: Ipv4Addr, port: u16, config: &str, env: &[(&str, &str)]) -> Self {
        let dir = TempDir::new("oidc-proxy");
        let file = dir.0.join("oidc-proxy.toml");
        std::fs::write(&file, config).expect("write oidc-proxy.toml");
        let mut cmd = supervised_with_args(&oidc_proxy_binary(), &[]);
        cmd.current_dir(workspace_root());
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("AUTH_PROXY_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("AUTH_PROXY_CONFIG", &file)
            .env("NO_PROXY", "localhost,127.0.0.1")
            .env("no_proxy", "localhost,127.0.0.1");
        if std::env::var_os("RUST_LOG").is_none() {
            cmd.env(
                "RUST_LOG",
                "info,oidc_proxy=debug,oidc=debug,oidc_core=debug,oidc_tower=debug",
            );
        }
        cmd.envs(env.iter().copied());
        let mut proc = Proc::spawn("oidc-proxy", cmd, None);
        let base_url = format!("http://{ip}:{port}");
        wait_for(&mut proc, &format!("{base_url}/ping"), 200).await;
        Self {
            proc,
            base_url,
            _dir: dir,
        }
    }

    /// The proxy's origin, `http://<ip>:<port>` (its `public_url`).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `base_url` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Output of the proxy so far.
    pub fn logs(&self) -> String {
        self.proc.logs.snapshot()
    }

    /// The proxy's `/metrics`, parsed with [`parse_prometheus`].
    ///
    /// # Panics
    ///
    /// If the page is not 200 Prometheus text.
    pub async fn metrics(&self) -> BTreeMap<String, f64> {
        let res = http_client()
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(res.status(), 200, "GET /metrics");
        let content_type = crate::content_type(&res);
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        parse_prometheus(&res.text().await.expect("metrics body"))
    }
}

impl LoginProvider {
    /// Starts an `oidc-proxy` on one of the reserved ports, as the `web-app` client of this
    /// provider (callback `/auth/callback`, the redirect URI the provider knows), in front of
    /// `upstream`. `extra` is TOML added at the top level of the configuration (before the
    /// tables), `tables` TOML added at its end.
    ///
    /// # Panics
    ///
    /// When all the reserved ports are used.
    pub async fn start_auth_proxy(&self, upstream: &str, extra: &str, tables: &str) -> AuthProxy {
        let port = self
            .ports
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop()
            .expect("LoginProvider::start(apps, ..): more apps started than `apps`");
        let (client_id, secret) = clients::WEB_APP;
        let public_url = port.app_url();
        let ip = port.ip();
        let config = format!(
            r#"listen = "{ip}:{port_number}"
public_url = "{public_url}"
{extra}

[[provider]]
issuer = "{issuer}"
client_id = "{client_id}"
client_secret = "{secret}"
redirect_path = "/auth/callback"
audience = "{audience}"

[[upstream]]
prefix = "/"
url = "{upstream}"
{tables}
"#,
            port_number = port.port(),
            issuer = self.op.issuer(),
            audience = self.op.api_resource(),
        );
        let port = port.release();
        AuthProxy::start(ip, port, &config, &[]).await
    }
}

/// Parses Prometheus text exposition format: `# HELP`/`# TYPE` lines with valid names and
/// known types, and `name{label="value",…} number` samples. Returns `name{labels}` → value.
///
/// # Panics
///
/// On any line that does not parse.
pub fn parse_prometheus(text: &str) -> BTreeMap<String, f64> {
    fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    }
    let mut samples = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("TYPE") => {
                    let name = words.next().unwrap_or_default();
                    assert!(valid_name(name), "bad TYPE line {line:?}");
                    let kind = words.next().unwrap_or_default();
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                        "bad TYPE line {line:?}"
                    );
                }
                Some("HELP") => assert!(
                    valid_name(words.next().unwrap_or_default()),
                    "bad HELP line {line:?}"
                ),
                _ => {}
            }
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("no value in {line:?}"));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}")),
        };
        let name = key.split('{').next().unwrap_or_default();
        assert!(valid_name(name), "bad metric name in {line:?}");
        let labels = &key[name.len()..];
        if !labels.is_empty() {
            let inner = labels
                .strip_prefix('{')
                .and_then(|l| l.strip_suffix('}'))
                .unwrap_or_else(|| panic!("bad labels in {line:?}"));
            for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                let (label, quoted) = pair
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label in {line:?}"));
                assert!(valid_name(label), "bad label name in {line:?}");
                assert!(quoted.starts_with('"'), "unquoted label value in {line:?}");
            }
        }
        samples.insert(key.to_owned(), value);
    }
    samples
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_text() {
        let m = parse_prometheus(
            "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"b\"} 3\n\
             h_bucket{le=\"+Inf\"} 2\ng 1.5\n",
        );
        assert_eq!(m["a_total{x=\"1\",y=\"b\"}"], 3.0);
        assert_eq!(m["g"], 1.5);
        assert_eq!(m.len(), 3);
    }

    #[test]
    #[should_panic(expected = "bad value")]
    fn refuses_broken_samples() {
        parse_prometheus("a_total one\n");
    }

    #[test]
    fn reads_the_nginx_echo() {
        let echo = NginxEcho::parse("upstream=nginx\nuser=alice\nemail=\n");
        assert_eq!(echo.get("user"), "alice");
        assert_eq!(echo.get("email"), "");
    }
}
