//! The quickstart binary against slow clients (issue 11, item 6): `/healthz` keeps answering
//! while 1 000 half-open connections are held, a connection that sends no whole request head
//! is closed after `HEADER_READ_TIMEOUT_SECS`, and a body slower than `BODY_READ_TIMEOUT_SECS`
//! gets 408. Loopback only; every loop is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use oidc_e2e::{Quickstart, free_port};
use oidc_testing::slow_client::{half_open, trickle};
use tokio::io::AsyncReadExt as _;

#[tokio::test(flavor = "multi_thread")]
async fn quickstart_survives_slow_clients() {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
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
        held.push(half_open(addr, "/healthz").await);
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
    let text = trickle(
        addr,
        b"POST /auth/backchannel-logout HTTP/1.1\r\nHost: x\r\n\
          Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\nlogout_token=",
        4,
        Duration::from_millis(400),
        Duration::from_secs(6),
    )
    .await
    .expect("answered and closed");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
}
