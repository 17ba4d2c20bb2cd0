//! The response future shared by the layers of this crate.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use crate::metrics::InFlight;

/// A boxed future of a response: the `F` of [`ResponseFuture`] for the layers whose work
/// after the decision is itself asynchronous (the login layer, the outbound layer).
pub type BoxResponseFuture<T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send>>;

pin_project! {
    /// Response future of [`BearerAuth`](crate::BearerAuth), [`Require`](crate::Require),
    /// [`Login`](crate::login::Login) and [`OutboundAuth`](crate::OutboundAuth).
    ///
    /// `F` is the inner service's future: a request let through at once (a cached bearer
    /// token, a met requirement) polls it directly, without a box; a rejection decided at once
    /// is ready; only a request that must wait for something else first (a key set, a token
    /// verification) is boxed.
    pub struct ResponseFuture<F: Future> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F: Future> {
        Inner {
            #[pin]
            future: F,
            // Held while the request is inside the layer (metrics).
            in_flight: Option<InFlight>,
        },
        Boxed {
            future: Pin<Box<dyn Future<Output = F::Output> + Send>>,
        },
        Ready {
            output: Option<F::Output>,
        },
    }
}

impl<F: Future> ResponseFuture<F> {
    /// The inner service's future, polled as it is.
    pub(crate) fn inner(future: F) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                in_flight: None,
            },
        }
    }

    /// The inner service's future, with the in-flight record of the layer held until it ends.
    pub(crate) fn inner_in_flight(future: F, in_flight: InFlight) -> Self {
        Self {
            kind: Kind::Inner {
                future,
                in_flight: Some(in_flight),
            },
        }
    }

    /// Work that must happen before the inner service is called, boxed.
    pub(crate) fn boxed(future: impl Future<Output = F::Output> + Send + 'static) -> Self {
        Self {
            kind: Kind::Boxed {
                future: Box::pin(future),
            },
        }
    }

    /// A future that is ready with `output`.
    pub(crate) fn ready(output: F::Output) -> Self {
        Self {
            kind: Kind::Ready {
                output: Some(output),
            },
        }
    }
}

impl<F: Future> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F: Future> Future for ResponseFuture<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future, .. } => future.poll(cx),
            KindProj::Boxed { future } => future.as_mut().poll(cx),
            // Polled again after completion: a misuse of the future; stay pending rather
            // than panic (library code does not panic).
            KindProj::Ready { output } => output.take().map_or(Poll::Pending, Poll::Ready),
        }
    }
}
