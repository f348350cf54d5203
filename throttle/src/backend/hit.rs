//! [`Hit`]: one hit for a backend to decide.

use super::Key;
use crate::Rate;
use crate::strategy::DynStrategy;

/// One hit for a backend to decide: `cost` on `key`, by `strategy` at `rate`.
///
/// ```
/// use throttle::backend::{Backend, Hit};
/// use throttle::strategy::FixedWindow;
/// use throttle::{Rate, backend::MemoryBackend};
///
/// # async fn demo() -> Result<(), throttle::backend::BackendError> {
/// let backend = MemoryBackend::new();
/// let hit = Hit::new("shop:api:1.2.3.4:default", &FixedWindow, Rate::per_minute(10), 3);
/// assert_eq!(backend.hit(hit).await?.remaining, 7);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Hit<'a> {
    /// The bucket.
    pub key: Key<'a>,
    /// The algorithm that decides it.
    pub strategy: &'a dyn DynStrategy,
    /// The bucket's rate.
    pub rate: Rate,
    /// What the hit costs: at least 1 and at most the strategy's
    /// [`capacity`](DynStrategy::capacity) when a throttle sends it.
    pub cost: u64,
}

impl<'a> Hit<'a> {
    /// A hit of `cost` on `key`.
    pub fn new(key: impl Into<Key<'a>>, strategy: &'a dyn DynStrategy, rate: Rate, cost: u64) -> Self {
        Hit { key: key.into(), strategy, rate, cost }
    }
}
