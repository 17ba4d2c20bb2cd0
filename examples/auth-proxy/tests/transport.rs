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
