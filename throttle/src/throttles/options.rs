//! Throttle options that are either a value or a function of the request.

use crate::backend::{BackendError, BoxFuture};
use crate::{Connection, Context, Rate};
use core::future::Future;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A user function of the request and context, its future boxed here once (user code
/// returns any `'static` future).
pub(crate) type HookFn<T> = dyn Fn(&Connection<'_>, &Context) -> BoxFuture<'static, T> + Send + Sync;
type ErrorFn = dyn Fn(&BackendError, &Context) -> ErrorAction + Send + Sync;

/// `f` with its future boxed.
pub(crate) fn boxed_hook<T, F, Fut>(f: F) -> Arc<HookFn<T>>
where
    F: Fn(&Connection<'_>, &Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    Arc::new(move |conn: &Connection<'_>, context: &Context| -> BoxFuture<'static, T> { Box::pin(f(conn, context)) })
}

/// A value fixed when the throttle is built, or given for each request by a hook.
#[derive(Clone)]
pub(crate) enum Source<T> {
    Fixed(T),
    Hook(Arc<HookFn<T>>),
}

/// The rate: [`Rate`] or `rate_fn`.
pub(crate) type RateSource = Source<Rate>;

/// The cost: a number or `cost_fn` (validated after the hook answers).
pub(crate) type CostSource = Source<u64>;

impl<T: Copy + 'static> Source<T> {
    pub(crate) fn hook<F, Fut>(f: F) -> Self
    where
        F: Fn(&Connection<'_>, &Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        Source::Hook(boxed_hook(f))
    }

    /// The value, when no hook has to be awaited for it.
    pub(crate) fn now(&self) -> Option<T> {
        match self {
            Source::Fixed(value) => Some(*value),
            Source::Hook(_) => None,
        }
    }

    /// The value for this request.
    pub(crate) async fn get(&self, conn: &Connection<'_>, context: &Context) -> T {
        match self {
            Source::Fixed(value) => *value,
            Source::Hook(f) => f(conn, context).await,
        }
    }
}

/// What a throttle does when its backend fails or times out.
///
/// The default is `Throttle(1 s)`: fail closed, as the reference library does. APIs
/// that prefer availability over strictness choose [`OnError::Allow`].
#[derive(Clone)]
#[non_exhaustive]
pub enum OnError {
    /// Admit the request (fail open).
    Allow,
    /// Reject the request with this wait (fail closed).
    Throttle(Duration),
    /// Return the error ([`ThrottleError::Backend`](crate::ThrottleError::Backend), a 500).
    Raise,
    /// Decide per error.
    Custom(Arc<ErrorFn>),
}

/// What an [`OnError::Custom`] function decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorAction {
    /// Admit the request.
    Allow,
    /// Reject it with this wait.
    Throttle(Duration),
    /// Return the error.
    Raise,
}

impl OnError {
    /// A policy deciding per error.
    pub fn custom(f: impl Fn(&BackendError, &Context) -> ErrorAction + Send + Sync + 'static) -> Self {
        OnError::Custom(Arc::new(f))
    }

    pub(crate) fn action(&self, error: &BackendError, context: &Context) -> ErrorAction {
        match self {
            OnError::Allow => ErrorAction::Allow,
            OnError::Throttle(wait) => ErrorAction::Throttle(*wait),
            OnError::Raise => ErrorAction::Raise,
            OnError::Custom(f) => f(error, context),
        }
    }
}

impl Default for OnError {
    fn default() -> Self {
        OnError::Throttle(Duration::from_secs(1))
    }
}

impl fmt::Debug for OnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OnError::Allow => f.write_str("Allow"),
            OnError::Throttle(wait) => write!(f, "Throttle({wait:?})"),
            OnError::Raise => f.write_str("Raise"),
            OnError::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}
