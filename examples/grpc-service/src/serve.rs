//! Serving both apps with the limits every server binary of the workspace has: a deadline for
//! the request head (hyper) or for the whole call (gRPC), a connection cap, and for HTTP/2
//! keep-alive pings that close dead connections.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a request head may take to arrive (hyper), and a whole gRPC call may take.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(10);
/// The most connections served at once; further ones wait in the listen backlog.
pub const MAX_CONNECTIONS: usize = 1024;

/// A connection that holds its slot of the connection cap until it is dropped.
struct Capped {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Capped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Capped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

impl Connected for Capped {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

/// Accepts connections while fewer than `max` are open.
async fn accept_capped(listener: &TcpListener, permits: &Arc<Semaphore>) -> io::Result<Capped> {
    let permit = Arc::clone(permits)
        .acquire_owned()
        .await
        .map_err(io::Error::other)?;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return Ok(Capped {
                    stream,
                    _permit: permit,
                });
            }
            // Out of file descriptors and the like: wait a little and go on.
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// Serves the gRPC `router` on `listener` with tonic's server: each call ends after
/// [`REQUEST_DEADLINE`] (`DEADLINE_EXCEEDED`), HTTP/2 keep-alive pings every 30 s close dead
/// connections, at most 64 streams per connection and `max_connections` connections.
///
/// # Errors
///
/// When the server fails to start.
pub async fn serve_grpc(
    listener: TcpListener,
    router: axum::Router,
    max_connections: usize,
) -> Result<(), tonic::transport::Error> {
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    let (send, receive) = mpsc::channel::<io::Result<Capped>>(1);
    tokio::spawn(async move {
        loop {
            let connection = accept_capped(&listener, &permits).await;
            if send.send(connection).await.is_err() {
                break;
            }
        }
    });
    tonic::transport::Server::builder()
        .timeout(REQUEST_DEADLINE)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .max_concurrent_streams(Some(64))
        .add_routes(tonic::service::Routes::from(router))
        .serve_with_incoming(tokio_stream::wrappers::ReceiverStream::new(receive))
        .await
}

/// Serves the tower `service` on `listener` with hyper's HTTP/1.1 server: a request head must
/// arrive within [`REQUEST_DEADLINE`], at most `max_connections` connections at once.
///
/// # Errors
///
/// Never while the server runs (a failed connection is dropped).
pub async fn serve_hyper<S>(
    listener: TcpListener,
    service: S,
    max_connections: usize,
) -> io::Result<()>
where
    S: tower::Service<
            Request<hyper::body::Incoming>,
            Response = Response<String>,
            Error = Infallible,
        > + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    let permits = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let connection = accept_capped(&listener, &permits).await?;
        let service = hyper_util::service::TowerToHyperService::new(service.clone());
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(REQUEST_DEADLINE)
                .serve_connection(TokioIo::new(connection), service)
                .await;
        });
    }
}
