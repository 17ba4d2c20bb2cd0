//! The quickstart binary against slow clients (issue 11, item 6): `/healthz` keeps answering
//! while 1 000 half-open connections are held, a connection that sends no whole request head
//! is closed after `HEADER_READ_TIMEOUT_SECS`, and a body slower than `BODY_READ_TIMEOUT_SECS`
//! gets 408. Loopback only; every loop is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use oidc_e2e::{Quickstart, free_port};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn half_open(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    s
}

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_survives_slow_clients() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let app = Quickstart::start_with_env(
        port,
        &[
            ("BIND", &bind),
            ("HEADER_READ_TIMEOUT_SECS", "2"),
            ("BODY_READ_TIMEOUT_SECS", "1"),
        ],
    )
    .await;

    let mut held = Vec::with_capacity(1000);
    for _ in 0..1000 {
        held.push(half_open(port).await);
    }
    let started = Instant::now();
    let res = tokio::time::timeout(Duration::from_secs(5), app.get("/healthz", None))
        .await
        .expect("/healthz answers with 1000 half-open connections held");
    assert_eq!(res.status(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // The held connections are closed by the header-read timeout.
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(Duration::from_secs(6), held[0].read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a half-open connection is closed after HEADER_READ_TIMEOUT_SECS: {closed:?}"
    );
    drop(held);

    // A back-channel logout body that trickles in: 408, and the connection closed.
    let mut s = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    s.write_all(
        b"POST /auth/backchannel-logout HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nlogout_token=",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(6), async {
        for _ in 0..4 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if s.write_all(b"x").await.is_err() {
                break;
            }
        }
        let _ = s.read_to_end(&mut out).await;
    })
    .await;
    assert!(answered.is_ok(), "answered and closed");
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}
