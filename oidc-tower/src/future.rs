//! The response future shared by the layers of this crate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Response future of [`BearerAuth`](crate::BearerAuth), [`Require`](crate::Require) and
/// [`OutboundAuth`](crate::OutboundAuth).
///
/// Boxed in this version when it waits for something (the inner service, a key set); a
/// rejection decided at once is not boxed. The name stays if that changes.
pub struct ResponseFuture<T, E> {
    kind: Kind<T, E>,
}

enum Kind<T, E> {
    Boxed(Pin<Box<dyn Future<Output = Result<T, E>> + Send>>),
    Ready(Option<Result<T, E>>),
}

impl<T, E> ResponseFuture<T, E> {
    pub(crate) fn new(future: impl Future<Output = Result<T, E>> + Send + 'static) -> Self {
        Self {
            kind: Kind::Boxed(Box::pin(future)),
        }
    }

    /// A future that is ready with `response`.
    pub(crate) fn ready(response: T) -> Self {
        Self {
            kind: Kind::Ready(Some(Ok(response))),
        }
    }
}

impl<T, E> std::fmt::Debug for ResponseFuture<T, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

// Nothing is pinned structurally: the boxed future is pinned on the heap.
impl<T, E> Unpin for ResponseFuture<T, E> {}

impl<T, E> Future for ResponseFuture<T, E> {
    type Output = Result<T, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.get_mut().kind {
            Kind::Boxed(future) => future.as_mut().poll(cx),
            // Polled again after completion: a misuse of the future; stay pending rather
            // than panic (library code does not panic).
            Kind::Ready(output) => output.take().map_or(Poll::Pending, Poll::Ready),
        }
    }
}
