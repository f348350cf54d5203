//! [`Reply`]: a backend's answer, ready at once or later.

use super::{BackendError, BoxFuture};
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use std::time::Duration;

/// A backend's answer: ready at once (a store in this process), or a future (a store
/// over the network). Await it either way.
///
/// Throttles take a ready answer as it is: no future is boxed, no timer is armed. A
/// pending one is bounded by the throttle's [`timeout`](crate::ThrottleBuilder::timeout).
///
/// ```
/// use throttle::backend::Reply;
///
/// # async fn demo() -> Result<(), throttle::backend::BackendError> {
/// let now: Reply<'_, u64> = Reply::ready(Ok(7));
/// assert!(now.is_ready());
/// let later: Reply<'_, u64> = Reply::pending(async { Ok(7) });
/// assert!(!later.is_ready());
/// assert_eq!(now.await?, later.await?);
/// # Ok(()) }
/// ```
#[must_use = "a reply does nothing more unless awaited"]
pub struct Reply<'a, T>(State<'a, T>);

enum State<'a, T> {
    /// `None` once taken by a poll.
    Ready(Option<Result<T, BackendError>>),
    Pending(BoxFuture<'a, Result<T, BackendError>>),
}

impl<'a, T> Reply<'a, T> {
    /// An answer given at once.
    #[inline]
    pub fn ready(result: Result<T, BackendError>) -> Self {
        Reply(State::Ready(Some(result)))
    }

    /// An answer that `future` gives.
    pub fn pending(future: impl Future<Output = Result<T, BackendError>> + Send + 'a) -> Self {
        Reply(State::Pending(Box::pin(future)))
    }

    /// Whether the answer was given at once (awaiting it returns at the first poll).
    pub fn is_ready(&self) -> bool {
        matches!(self.0, State::Ready(Some(_)))
    }

    /// The answer at once, or the reply back when it is pending.
    #[inline]
    pub(crate) fn now(self) -> Result<Result<T, BackendError>, Self> {
        match self.0 {
            State::Ready(Some(result)) => Ok(result),
            state => Err(Reply(state)),
        }
    }

    /// The answer, a pending one within `timeout` ([`BackendError::Timeout`] past it).
    /// A ready answer arms no timer.
    pub(crate) async fn within(self, timeout: Duration) -> Result<T, BackendError> {
        match self.now() {
            Ok(result) => result,
            Err(pending) => pending.timed(timeout).await,
        }
    }

    /// A pending answer within `timeout`.
    async fn timed(self, timeout: Duration) -> Result<T, BackendError> {
        tokio::time::timeout(timeout, self).await.unwrap_or(Err(BackendError::Timeout(timeout)))
    }
}

impl<'a, T: Send + 'a> Reply<'a, T> {
    /// The answer passed through `f` when it comes (at once when it is ready).
    pub fn map<U: Send + 'a>(self, f: impl FnOnce(T) -> U + Send + 'a) -> Reply<'a, U> {
        match self.now() {
            Ok(result) => Reply::ready(result.map(f)),
            Err(pending) => Reply::pending(async move { pending.await.map(f) }),
        }
    }

    /// Runs `f` on the answer when it comes (at once when it is ready).
    pub(crate) fn inspect(self, f: impl FnOnce(&Result<T, BackendError>) + Send + 'a) -> Self {
        match self.now() {
            Ok(result) => {
                f(&result);
                Reply::ready(result)
            }
            Err(pending) => Reply::pending(async move {
                let result = pending.await;
                f(&result);
                result
            }),
        }
    }
}

// Nothing is pinned in place: a ready answer is moved out, a pending one is boxed.
impl<T> Unpin for Reply<'_, T> {}

impl<T> Future for Reply<'_, T> {
    type Output = Result<T, BackendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match &mut self.0 {
            State::Ready(result) => Poll::Ready(result.take().expect("a reply polled after it was answered")),
            State::Pending(future) => future.as_mut().poll(cx),
        }
    }
}

impl<T> fmt::Debug for Reply<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.is_ready() { "Reply::Ready" } else { "Reply::Pending" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ready_reply_ignores_the_timeout_and_a_pending_one_keeps_it() {
        assert_eq!(Reply::ready(Ok(3)).within(Duration::ZERO).await.unwrap(), 3);
        let hung: Reply<'_, u64> = Reply::pending(core::future::pending());
        let error = hung.within(Duration::from_millis(5)).await.unwrap_err();
        assert!(matches!(error, BackendError::Timeout(d) if d == Duration::from_millis(5)));
    }

    #[tokio::test]
    async fn inspect_sees_the_answer_once_whenever_it_comes() {
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        for reply in [Reply::ready(Ok(2)), Reply::pending(async { Ok(2) })] {
            let seen = seen.clone();
            let reply = reply.inspect(move |r| {
                seen.fetch_add(*r.as_ref().unwrap(), std::sync::atomic::Ordering::Relaxed);
            });
            assert_eq!(reply.await.unwrap(), 2);
        }
        assert_eq!(seen.load(std::sync::atomic::Ordering::Relaxed), 4);
    }
}
