//! Serving an axum app the way the workspace's server binaries (`quickstart`, `oidc-proxy`) do:
//! HTTP/1.1 with websocket upgrades and graceful shutdown, like `axum::serve`, plus the three
//! limits a server facing slow or hostile clients needs:
//!
//! - a **header-read timeout** ([`Limits::header_read_timeout`], default 10 s): a connection
//!   that has not sent a whole request head in that time (a new one, or an idle keep-alive
//!   one) is closed (hyper's `header_read_timeout`);
//! - a **body-read deadline** ([`Limits::body_read_timeout`], default 30 s): a request body
//!   not received in full within that time of its head fails for the handler reading it, and
//!   the request is answered **408** with `Connection: close` (the OpenID back-channel logout
//!   endpoint and every other body-reading route alike);
//! - a **connection cap** ([`Limits::max_connections`], default 4 096): past it no connection
//!   is accepted (new ones wait in the listen backlog) until one closes.
//!
//! Each connection's peer address is in the request extensions as axum's
//! `ConnectInfo<SocketAddr>`.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let app = axum::Router::new().route("/", axum::routing::get(|| async { "hi" }));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! server_limits::serve(listener, app, server_limits::Limits::default(), std::future::pending())
//!     .await
//! # }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt as _;

/// The limits of [`serve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// How long a connection may take to send a request head. The default value is 10 s.
    pub header_read_timeout: Duration,
    /// How long after its head a request's body may take to arrive in full. The default value
    /// is 30 s.
    pub body_read_timeout: Duration,
    /// How many connections are served at once. The default value is 4 096.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_connections: 4096,
        }
    }
}

impl Limits {
    /// These limits (a zero connection cap is taken as 1).
    pub fn new(
        header_read_timeout: Duration,
        body_read_timeout: Duration,
        max_connections: usize,
    ) -> Self {
        Self {
            header_read_timeout,
            body_read_timeout,
            max_connections: max_connections.max(1),
        }
    }
}

/// The error a body reports when its deadline passed.
#[derive(Debug)]
struct BodyDeadline;

impl std::fmt::Display for BodyDeadline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the request body did not arrive in time")
    }
}

impl std::error::Error for BodyDeadline {}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    inner: Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(Box::new(BodyDeadline))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

fn request_timeout() -> Response<Body> {
    let mut res = Response::new(Body::from("The request body did not arrive in time.\n"));
    *res.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let headers = res.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

/// One request: the peer address and the body deadline added, then the app.
async fn handle(
    app: Router,
    peer: SocketAddr,
    body_timeout: Duration,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (mut parts, incoming) = req.into_parts();
    parts.extensions.insert(ConnectInfo(peer));
    // A request without a body (most GETs) needs no timer.
    if http_body::Body::is_end_stream(&incoming) {
        let req = Request::from_parts(parts, Body::new(incoming));
        return app.oneshot(req).await;
    }
    let expired = Arc::new(AtomicBool::new(false));
    let body = DeadlineBody {
        inner: incoming,
        deadline: Box::pin(tokio::time::sleep(body_timeout)),
        expired: expired.clone(),
    };
    let res = app
        .oneshot(Request::from_parts(parts, Body::new(body)))
        .await?;
    if expired.load(Ordering::Relaxed) {
        tracing::debug!(%peer, "request body too slow; answered 408");
        return Ok(request_timeout());
    }
    Ok(res)
}

/// Serves `app` on `listener` with `limits` until `shutdown` completes, then lets the
/// requests in progress end (for at most 30 s).
///
/// # Errors
///
/// Never for a single connection (those are logged at debug); only when waiting for a
/// connection slot fails, which cannot happen while the server runs.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    // Told to every connection at shutdown: finish the request in progress, then close.
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(std::io::Error::other)?,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, as axum::serve does.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let body_timeout = limits.body_read_timeout;
        let service =
            hyper::service::service_fn(move |req| handle(app.clone(), peer, body_timeout, req));
        let conn = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                true = async { closed.wait_for(|closing| *closing).await.is_ok() } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every connection holds a permit until it ends: all permits back means all ended.
    let all = u32::try_from(limits.max_connections.max(1)).unwrap_or(u32::MAX);
    if tokio::time::timeout(Duration::from_secs(30), permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("requests still in progress after 30 s; stopping anyway");
    }
    Ok(())
}
