//! Throttle options that are either a value or a function of the request.

use crate::backend::{BackendError, BoxFuture};
use crate::{Connection, Context, Rate};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) type RateFn = dyn Fn(&Connection<'_>, &Context) -> BoxFuture<'static, Rate> + Send + Sync;
pub(crate) type CostFn = dyn Fn(&Connection<'_>, &Context) -> BoxFuture<'static, u64> + Send + Sync;
type ErrorFn = dyn Fn(&BackendError, &Context) -> ErrorAction + Send + Sync;

#[derive(Clone)]
pub(crate) enum RateSource {
    Static(Rate),
    Dynamic(Arc<RateFn>),
}

#[derive(Clone)]
pub(crate) enum CostSource {
    Fixed(u64),
    Dynamic(Arc<CostFn>),
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
