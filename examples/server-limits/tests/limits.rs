//! The limits of `server_limits::serve`, against a real listener on loopback with raw TCP
//! clients: slow or idle clients cannot hold the server.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use oidc_testing::slow_client::{half_open, trickle};
use server_limits::{Limits, serve};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Serves `app` with `limits` on a free loopback port; the server stops with the test.
async fn start(app: Router, limits: Limits) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, app, limits, std::future::pending()));
    addr
}

fn ping_app() -> Router {
    Router::new().route("/ping", get(|| async { "pong" }))
}

/// Sends a whole `GET /ping` on a new connection and returns the status line, or `None` when
/// no answer came within `within`.
async fn ping(addr: std::net::SocketAddr, within: Duration) -> Option<String> {
    tokio::time::timeout(within, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.unwrap();
        String::from_utf8_lossy(&out)
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned()
    })
    .await
    .ok()
}

/// Waits up to `within` for the server to close `s`; returns how long it took.
async fn closed_within(s: &mut TcpStream, within: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 512];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await
    .ok()
    .map(|()| started.elapsed())
}

#[tokio::test]
async fn a_half_open_connection_is_closed_after_the_header_timeout() {
    let limits = Limits::new(Duration::from_millis(500), Duration::from_secs(30), 16);
    let addr = start(ping_app(), limits).await;
    let mut slow = half_open(addr, "/ping").await;
    let took = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .expect("the server closes a connection that sends no whole head");
    assert!(
        took >= Duration::from_millis(400),
        "not before the timeout: {took:?}"
    );
    // An idle keep-alive connection is closed too.
    let mut idle = TcpStream::connect(addr).await.unwrap();
    idle.write_all(b"GET /ping HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(
        closed_within(&mut idle, Duration::from_secs(5))
            .await
            .is_some(),
        "an idle keep-alive connection is closed"
    );
}

#[tokio::test]
async fn ping_answers_while_1000_half_open_connections_are_held() {
    let addr = start(ping_app(), Limits::default()).await;
    let mut held = Vec::with_capacity(1000);
    for _ in 0..1000 {
        held.push(half_open(addr, "/ping").await);
    }
    let started = Instant::now();
    let status = ping(addr, Duration::from_secs(5)).await;
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"), "with 1000 held");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    drop(held);
}

#[tokio::test]
async fn a_trickled_body_gets_408_and_the_handler_never_sees_it() {
    let seen = Arc::new(AtomicBool::new(false));
    let app = {
        let seen = seen.clone();
        Router::new().route(
            "/upload",
            post(move |body: String| async move {
                seen.store(true, Ordering::SeqCst);
                body
            }),
        )
    };
    let limits = Limits::new(Duration::from_secs(10), Duration::from_millis(500), 16);
    let addr = start(app, limits).await;
    // A byte now and then, slower than the deadline allows in all.
    let text = trickle(
        addr,
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nab",
        3,
        Duration::from_millis(200),
        Duration::from_secs(5),
    )
    .await
    .expect("the server answered and closed");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        !seen.load(Ordering::SeqCst),
        "the handler never got the body"
    );
    // A body that arrives in time reaches the handler.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200"));
    assert!(seen.load(Ordering::SeqCst));
}

#[tokio::test]
async fn the_connection_cap_holds_back_the_next_connection() {
    let limits = Limits::new(Duration::from_secs(10), Duration::from_secs(30), 2);
    let addr = start(ping_app(), limits).await;
    let first = half_open(addr, "/ping").await;
    let _second = half_open(addr, "/ping").await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The third is not served while two are held...
    let third = tokio::spawn(ping(addr, Duration::from_secs(5)));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !third.is_finished(),
        "a third connection is not served at the cap"
    );
    // ...and is once one of them closes.
    drop(first);
    let status = third.await.unwrap();
    assert_eq!(status.as_deref(), Some("HTTP/1.1 200 OK"));
}
