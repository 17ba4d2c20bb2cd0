//! Transport-level attacks on the proxy: protocol upgrades other than websocket (issue 11,
//! item 1), against a fake upstream that switches protocols whenever it is asked to (or not).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use oidc_testing::slow_client::{half_open, trickle};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// An upstream that answers every request with `101 Switching Protocols` to `protocol` and
/// then sends bytes of that protocol: what an h2c-capable server does when asked, and what a
/// broken one does unasked. Counts the requests it got.
struct Switcher {
    addr: SocketAddr,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Switcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Switcher {
    async fn start(protocol: &'static str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicU64::new(0));
        let counted = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    return;
                };
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let answer = format!(
                        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: {protocol}\r\n\r\nSPLICED-{protocol}"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                    tokio::time::sleep(Duration::from_secs(5)).await;
                });
            }
        });
        Self {
            addr,
            requests,
            task,
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// The proxy with the fake upstream at `/` (skip-auth `/public/`, bearer `/bearer/`).
async fn world_before(switcher: &Switcher) -> World {
    let url = format!("http://{}", switcher.addr);
    World::start(move |config| {
        config.upstreams[0].url = Some(url);
    })
    .await
}

/// Sends `head` (with its final blank line) and returns everything the proxy answers within
/// two seconds (the connection may stay open).
async fn exchange(addr: SocketAddr, head: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn h2c_request(path: &str, host: SocketAddr, auth: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade, HTTP2-Settings\r\n\
         Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n{auth}\r\n"
    )
}

fn bearer(w: &World) -> String {
    let token = w.op.token().claim("sub", "u").audience(AUDIENCE).sign();
    format!("Authorization: Bearer {token}\r\n")
}

#[tokio::test]
async fn h2c_upgrade_is_not_forwarded_on_skip_auth_routes() {
    let switcher = Switcher::start("h2c").await;
    let w = world_before(&switcher).await;
    let answer = exchange(w.addr, &h2c_request("/public/x", w.addr, "")).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("SPLICED"), "{answer}");
    assert_eq!(
        switcher.requests(),
        0,
        "the h2c request reached the upstream"
    );
}

#[tokio::test]
async fn h2c_upgrade_is_not_forwarded_on_authenticated_routes() {
    let switcher = Switcher::start("h2c").await;
    let w = world_before(&switcher).await;
    let auth = bearer(&w);
    let answer = exchange(w.addr, &h2c_request("/bearer/x", w.addr, &auth)).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("SPLICED"), "{answer}");
    assert_eq!(
        switcher.requests(),
        0,
        "the h2c request reached the upstream"
    );
}

#[tokio::test]
async fn unknown_and_multiple_upgrades_are_not_forwarded() {
    let switcher = Switcher::start("h2c").await;
    let w = world_before(&switcher).await;
    for upgrade in [
        "Upgrade: TLS/1.0",
        "Upgrade: websocket, h2c",
        "Upgrade: websocket\r\nUpgrade: h2c",
        "Upgrade: h2c", // Connection below names it too
    ] {
        let head = format!(
            "GET /public/x HTTP/1.1\r\nHost: {}\r\nConnection: upgrade\r\n{upgrade}\r\n\r\n",
            w.addr
        );
        let answer = exchange(w.addr, &head).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{upgrade}: {answer}");
    }
    // A websocket handshake must be a GET.
    let head = format!(
        "POST /public/x HTTP/1.1\r\nHost: {}\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
        w.addr
    );
    let answer = exchange(w.addr, &head).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(switcher.requests(), 0);
}

#[tokio::test]
async fn upstream_101_to_h2c_for_a_websocket_handshake_is_not_spliced() {
    let switcher = Switcher::start("h2c").await;
    let w = world_before(&switcher).await;
    for (path, auth) in [("/public/ws", String::new()), ("/bearer/ws", bearer(&w))] {
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{auth}\r\n",
            w.addr
        );
        let answer = exchange(w.addr, &head).await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{path}: {answer}");
        assert!(!answer.contains("SPLICED"), "{path}: {answer}");
    }
    assert_eq!(switcher.requests(), 2);
}

#[tokio::test]
async fn upstream_101_to_a_plain_request_is_not_spliced() {
    for protocol in ["websocket", "h2c"] {
        let switcher = Switcher::start(protocol).await;
        let w = world_before(&switcher).await;
        let head = format!("GET /public/plain HTTP/1.1\r\nHost: {}\r\n\r\n", w.addr);
        let answer = exchange(w.addr, &head).await;
        assert!(answer.starts_with("HTTP/1.1 502"), "{protocol}: {answer}");
        assert!(!answer.contains("SPLICED"), "{protocol}: {answer}");
        assert_eq!(switcher.requests(), 1);
    }
}

// ---------------------------------------------------------------------------------------------
// Slow clients (issue 11, item 6): header-read timeout, body-read deadline, connection cap.

#[tokio::test]
async fn ping_answers_while_1000_half_open_connections_are_held() {
    let w = World::start(|_| {}).await;
    let mut held = Vec::with_capacity(1000);
    for _ in 0..1000 {
        held.push(half_open(w.addr, "/ping").await);
    }
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        raw_status(w.addr, "GET /ping HTTP/1.1\r\nHost: x"),
    )
    .await
    .expect("/ping answers with 1000 half-open connections held");
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

#[tokio::test]
async fn a_half_open_connection_is_closed_after_the_header_timeout() {
    let w = World::start(|c| c.server.header_read_timeout_secs = Some(1)).await;
    let mut slow = half_open(w.addr, "/ping").await;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the proxy closes a connection that sends no whole head"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_trickled_back_channel_logout_body_gets_408() {
    let w = World::start(|c| c.server.body_read_timeout_secs = Some(1)).await;
    let text = trickle(
        w.addr,
        b"POST /oauth2/backchannel-logout HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nlogout_token=",
        4,
        Duration::from_millis(400),
        Duration::from_secs(6),
    )
    .await
    .expect("answered and closed");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}

#[tokio::test]
async fn the_connection_cap_holds_back_the_next_connection() {
    let w = World::start(|c| c.server.max_connections = Some(2)).await;
    let first = half_open(w.addr, "/ping").await;
    let _second = half_open(w.addr, "/ping").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let addr = w.addr;
    let third =
        tokio::spawn(async move { raw_status(addr, "GET /ping HTTP/1.1\r\nHost: x").await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(!third.is_finished(), "not served at the cap");
    drop(first);
    let status = tokio::time::timeout(Duration::from_secs(5), third)
        .await
        .expect("served once a connection closed")
        .unwrap();
    assert_eq!(status, 200);
}

// ---------------------------------------------------------------------------------------------
// Websocket tunnels of a session that is logged out (issue 11, item 8).

#[tokio::test]
async fn a_websocket_of_a_signed_out_session_is_closed() {
    let w = World::start(|c| c.server.websocket_session_check_secs = Some(1)).await;
    let cookie = w.login().await;
    let (mut stream, head) =
        websocket_handshake(&w, &format!("Cookie: {COOKIE}={cookie}\r\n")).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let (opcode, greeting) = read_frame(&mut stream).await.unwrap();
    assert_eq!(
        (opcode, greeting.as_slice()),
        (0x1, format!("user={USER}").as_bytes())
    );
    // Past two checks with the session alive, the tunnel still works.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    write_frame(&mut stream, 0x1, b"still here", Some([1, 2, 3, 4])).await;
    let (_, echoed) = read_frame(&mut stream).await.unwrap();
    assert_eq!(echoed, b"still here");

    let res = w
        .http
        .post(w.url("/oauth2/sign_out"))
        .header("cookie", format!("{COOKIE}={cookie}"))
        .header("origin", &w.url)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    // Within a check interval or two, the proxy closes the tunnel.
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "the tunnel of a signed-out session is closed"
    );
}

// ---------------------------------------------------------------------------------------------
// A real h2c-capable upstream: hypercorn (Debian `python3-hypercorn`, installed by .ci/run).

/// hypercorn serving a tiny ASGI app on a free loopback port; it logs every request it gets
/// (path and HTTP version) to a file. Killed on drop.
struct Hypercorn {
    addr: SocketAddr,
    log: std::path::PathBuf,
    child: std::process::Child,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Hypercorn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const ASGI_APP: &str = r#"
import pathlib
LOG = pathlib.Path(__file__).with_name("requests.log")

async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    with LOG.open("a") as f:
        f.write(scope["path"] + " " + scope["http_version"] + "\n")
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"hypercorn"})
"#;

impl Hypercorn {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir =
            std::env::temp_dir().join(format!("oidc-proxy-h2c-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("app.py"), ASGI_APP).unwrap();
        let child = std::process::Command::new("hypercorn")
            .arg("--bind")
            .arg(format!("127.0.0.1:{port}"))
            .arg("app:app")
            .current_dir(&dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("hypercorn (Debian python3-hypercorn, installed by .ci/run) must be on PATH");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "hypercorn did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Self {
            addr,
            log: dir.join("requests.log"),
            child,
            _dir: TempDir(dir),
        }
    }

    /// The requests it got: `path version` lines.
    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

#[tokio::test]
async fn h2c_upgrade_to_a_real_h2c_server_is_not_forwarded() {
    let hypercorn = Hypercorn::start().await;
    // Spoken to directly, hypercorn does switch to HTTP/2: the test can tell.
    let direct = exchange(hypercorn.addr, &h2c_request("/direct", hypercorn.addr, "")).await;
    assert!(
        direct.starts_with("HTTP/1.1 101"),
        "hypercorn upgrades h2c: {direct:?}"
    );
    let url = format!("http://{}", hypercorn.addr);
    let w = World::start(move |config| {
        config.upstreams[0].url = Some(url);
    })
    .await;
    let before = hypercorn.requests();
    assert!(before.iter().any(|r| r == "/direct 2"), "{before:?}");
    // Through the proxy, on a skip-auth and on an authenticated route: refused, not sent.
    for (path, auth) in [("/public/x", String::new()), ("/bearer/x", bearer(&w))] {
        let answer = exchange(w.addr, &h2c_request(path, w.addr, &auth)).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer:?}");
        assert!(!answer.contains("101"), "{path}: {answer:?}");
    }
    assert_eq!(
        hypercorn.requests(),
        before,
        "no h2c request reached hypercorn"
    );
    // A plain request on the same route does reach it (the wiring is right).
    let res = w.http.get(w.url("/public/x")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.unwrap(), "hypercorn");
    assert!(hypercorn.requests().iter().any(|r| r == "/public/x 1.1"));
}
