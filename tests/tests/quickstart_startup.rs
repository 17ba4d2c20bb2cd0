//! The quickstart's embedded test provider (public keys, anyone signs in) starts only when
//! `OIDC_ISSUER` is truly unset and the app is on loopback (issue 11, item 11): an empty
//! `OIDC_ISSUER`, a non-loopback `BIND` or an `https`/non-loopback `APP_URL` without an issuer
//! stop the start with a message naming the setting, before anything is served.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oidc_e2e::{Quickstart, free_port, quickstart_binary, workspace_root};

/// Runs the quickstart with only `env` of its own variables and expects it to exit with an
/// error within 30 s; returns its standard error.
fn start_refused(env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(quickstart_binary());
    cmd.current_dir(workspace_root())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn the quickstart");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "with {env:?} the quickstart kept running (it must refuse to start):\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!status.success(), "with {env:?}: exit status {status}");
    assert!(
        !stdout.contains("Embedded OpenID Provider") && !stdout.contains("Listening on"),
        "with {env:?} nothing starts: {stdout}"
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn empty_oidc_issuer_is_a_start_up_error_not_the_embedded_provider() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let err = start_refused(&[("BIND", &bind), ("OIDC_ISSUER", "")]);
    assert!(err.contains("OIDC_ISSUER is set but empty"), "{err}");
    // Truly unset on loopback: the embedded provider does start (the refusal above is not
    // an accident of the environment).
    let app = Quickstart::start_with_env(port, &[("BIND", &bind)]).await;
    assert!(
        app.logs().contains("Embedded OpenID Provider"),
        "{}",
        app.logs()
    );
}

#[test]
fn no_issuer_on_a_non_loopback_bind_is_a_start_up_error() {
    let err = start_refused(&[("BIND", "0.0.0.0:0")]);
    assert!(
        err.contains("BIND 0.0.0.0:0 is not a loopback address"),
        "{err}"
    );
    assert!(err.contains("set OIDC_ISSUER"), "{err}");
}

#[test]
fn no_issuer_with_an_https_or_remote_app_url_is_a_start_up_error() {
    for app_url in ["https://127.0.0.1:3000", "http://app.example.com"] {
        let err = start_refused(&[("BIND", "127.0.0.1:0"), ("APP_URL", app_url)]);
        assert!(err.contains("APP_URL"), "{app_url}: {err}");
        assert!(
            err.contains("is not an http URL on a loopback host"),
            "{app_url}: {err}"
        );
    }
}
