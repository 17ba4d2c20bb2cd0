//! Slow clients for tests of a server's read deadlines and connection cap: a request head that
//! never ends, and a body that trickles in.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A connection to `addr` that has sent `GET path` and the start of a header, and then nothing:
/// it holds a connection slot until the server's header-read deadline closes it.
///
/// # Panics
///
/// When the connection cannot be made or written to.
#[allow(clippy::expect_used)]
pub async fn half_open(addr: SocketAddr, path: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("a connection");
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nX-Slow: ").as_bytes())
        .await
        .expect("the head is written");
    s
}

/// Sends `start` (a request head and the first bytes of its body) to `addr`, then one more
/// body byte `bytes` times, `every` apart (stopping when the server has closed), and returns
/// what the server answered. `None` when the server did not answer and close within
/// `deadline`.
///
/// # Panics
///
/// When the connection cannot be made or `start` cannot be written.
#[allow(clippy::expect_used)]
pub async fn trickle(
    addr: SocketAddr,
    start: &[u8],
    bytes: usize,
    every: Duration,
    deadline: Duration,
) -> Option<String> {
    let mut s = TcpStream::connect(addr).await.expect("a connection");
    s.write_all(start).await.expect("the start is written");
    let mut out = Vec::new();
    tokio::time::timeout(deadline, async {
        for _ in 0..bytes {
            tokio::time::sleep(every).await;
            if s.write_all(b"x").await.is_err() {
                break;
            }
        }
        let _ = s.read_to_end(&mut out).await;
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&out).into_owned())
}
