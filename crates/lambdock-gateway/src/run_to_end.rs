//! Futures that finish even when whoever awaited them stops waiting.
//!
//! Lambda runs an accepted invocation to its end: a caller that hangs up, or an API Gateway
//! integration that times out, does not stop the function, and its worker comes back to the pool
//! afterwards. Spawning every invocation would give that, at the price of a task hop on each
//! one; [`RunToEnd`] polls the invocation in place and only spawns what is left of it when it is
//! dropped unfinished.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Polls its future in place; dropped before the future finished, it spawns the rest on the
/// current Tokio runtime.
pub struct RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    inner: Option<Pin<Box<F>>>,
}

impl<F> RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    /// Wraps `future`.
    pub fn new(future: F) -> Self {
        RunToEnd {
            inner: Some(Box::pin(future)),
        }
    }
}

impl<F> Future for RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let Some(inner) = self.inner.as_mut() else {
            // Polled again after it finished: there is nothing left to give.
            return Poll::Pending;
        };
        let out = std::task::ready!(inner.as_mut().poll(cx));
        self.inner = None;
        Poll::Ready(out)
    }
}

impl<F> Drop for RunToEnd<F>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn drop(&mut self) {
        if let Some(rest) = self.inner.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(rest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn a_finished_future_gives_its_output() {
        assert_eq!(RunToEnd::new(async { 7 }).await, 7);
    }

    #[tokio::test]
    async fn a_dropped_future_still_runs_to_its_end() {
        let done = Arc::new(AtomicBool::new(false));
        let flag = done.clone();
        let work = RunToEnd::new(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            flag.store(true, Ordering::SeqCst);
        });
        // The caller gives up after the work has started.
        assert!(
            tokio::time::timeout(Duration::from_millis(10), work)
                .await
                .is_err()
        );
        assert!(!done.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(done.load(Ordering::SeqCst));
    }
}
