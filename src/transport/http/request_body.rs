//! A request body as the connection layer hands it on: read within `--body-read-timeout`
//! of its head, its bytes counted against `--max-body-buffer-bytes` while it is held
//! ([`TimedBody`]), and why reading it failed ([`BodyError`], answered by
//! [`super::limits::read_capped`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Why a request body could not be read to its end.
#[derive(Debug)]
pub(super) enum BodyError {
    /// The connection failed or closed mid-body.
    Read(hyper::Error),
    /// The body did not arrive within `--body-read-timeout`.
    TimedOut(Duration),
    /// Holding it would take request bodies beyond `--max-body-buffer-bytes`.
    OverBudget,
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Read(error) => write!(f, "the request body was cut off ({error})"),
            BodyError::TimedOut(timeout) => write!(
                f,
                "the request body did not arrive within {}s",
                timeout.as_secs()
            ),
            BodyError::OverBudget => f.write_str("too many request bodies are being held"),
        }
    }
}

impl std::error::Error for BodyError {}

/// A request body under `--body-read-timeout` and `--max-body-buffer-bytes`.
pub(super) struct TimedBody {
    inner: Incoming,
    deadline: Instant,
    timeout: Duration,
    /// Set the first time the body makes the reader wait: most bodies are in the first
    /// read with their head and never need a timer.
    timer: Option<Pin<Box<Sleep>>>,
    budget: Arc<Semaphore>,
    /// This body's share of the budget: what it has read so far, given back when the body
    /// is dropped (read in full and handed on, or abandoned), not when the answer is sent,
    /// so a call held for minutes does not keep its body's bytes counted.
    held: Option<OwnedSemaphorePermit>,
}

impl TimedBody {
    pub(super) fn new(inner: Incoming, timeout: Duration, budget: Arc<Semaphore>) -> Self {
        Self {
            inner,
            deadline: Instant::now() + timeout,
            timeout,
            timer: None,
            budget,
            held: None,
        }
    }
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref()
                    && !data.is_empty()
                {
                    let bytes = u32::try_from(data.len()).unwrap_or(u32::MAX);
                    match this.budget.clone().try_acquire_many_owned(bytes) {
                        Ok(permit) => match this.held.as_mut() {
                            Some(held) => held.merge(permit),
                            None => this.held = Some(permit),
                        },
                        Err(_) => return Poll::Ready(Some(Err(BodyError::OverBudget))),
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(BodyError::Read(error)))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => {
                let deadline = this.deadline;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(BodyError::TimedOut(this.timeout))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
