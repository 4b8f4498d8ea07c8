//! A request body that must arrive by a deadline: the part of a request the client controls.
//!
//! The local server wraps every request body in a [`DeadlineBody`]; a body still incomplete at
//! the deadline fails with [`BodyTimedOut`], which the handlers answer with `408 request_timeout`
//! (see [`super::json_body`]). The handler's own work is not cut: a buy that has read its body runs
//! to its answer. Written here rather than taken from `tower-http`'s `TimeoutBody` because the
//! error must be a type the handlers recognise, and this crate does not otherwise need tower-http.

use axum::body::{Body, Bytes, HttpBody};
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::time::{Instant, Sleep};

/// The request body did not arrive whole by its deadline.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive by its deadline")]
pub struct BodyTimedOut;

/// `inner`, failing with [`BodyTimedOut`] once `deadline` passes before its end.
pub struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    pub fn new(inner: Body, deadline: Instant) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        }
    }
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A body whose next frame never comes.
    struct Stalled;

    impl HttpBody for Stalled {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn a_body_that_never_ends_fails_at_its_deadline_as_timed_out() {
        let body = Body::new(DeadlineBody::new(
            Body::new(Stalled),
            Instant::now() + Duration::from_millis(20),
        ));
        let err = axum::body::to_bytes(body, 1024).await.unwrap_err();
        assert!(super::super::caused_by::<BodyTimedOut>(&err), "{err:?}");
    }

    #[tokio::test]
    async fn a_whole_body_passes_unchanged() {
        let body = Body::new(DeadlineBody::new(
            Body::from("{\"quantity\":1}"),
            Instant::now() + Duration::from_secs(5),
        ));
        let bytes = axum::body::to_bytes(body, 1024).await.unwrap();
        assert_eq!(&bytes[..], b"{\"quantity\":1}");
    }
}
