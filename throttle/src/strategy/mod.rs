//! Rate-limiting algorithms.
//!
//! A [`Strategy`] is a pure decision step: given its per-key state, the time, the rate
//! and a cost, it admits or rejects and updates the state. Backends run that step
//! atomically per key, so every backend makes the same decisions for the same
//! sequence of `(time, cost)`.
//!
//! Rejected hits never consume quota, in every strategy: a rejection leaves the state
//! exactly as it was.

mod erased;
mod fixed_window;
mod stat;

pub use erased::{AnyState, DynStrategy};
pub use fixed_window::{FixedWindow, FixedWindowState};
pub use stat::{Decision, Metadata, Snapshot, StrategyStat};

use crate::Rate;
use core::fmt::Debug;

/// A rate-limiting algorithm over a small per-key state.
///
/// Implement it to add an algorithm of your own; it then runs on the in-memory
/// backend like the built-in ones.
///
/// ```
/// use throttle::Rate;
/// use throttle::strategy::{Decision, Metadata, Snapshot, Strategy};
///
/// /// Admits at most `limit` cost in total, forever.
/// #[derive(Debug)]
/// struct Lifetime;
///
/// impl Strategy for Lifetime {
///     type State = u64; // cost spent so far
///
///     fn name(&self) -> &'static str { "lifetime" }
///
///     fn decide(&self, spent: &mut u64, _now_ms: u64, rate: Rate, cost: u64) -> Decision {
///         let allowed = *spent + cost <= rate.limit();
///         if allowed { *spent += cost; }
///         let remaining = rate.limit() - *spent;
///         // A lifetime quota never comes back, so there is no honest wait to give.
///         Decision { allowed, remaining, wait_ms: if allowed { 0 } else { u64::MAX }, reset_ms: 0 }
///     }
///
///     fn stat(&self, spent: &u64, _now_ms: u64, rate: Rate) -> Snapshot {
///         let remaining = rate.limit() - *spent;
///         Snapshot { remaining, wait_ms: 0, reset_ms: 0, metadata: Metadata::None }
///     }
///
///     fn expires_at(&self, _spent: &u64, _rate: Rate) -> u64 { u64::MAX }
/// }
/// ```
pub trait Strategy: Debug + Send + Sync + 'static {
    /// Per-key state. `Default` is the state of a key never seen (or expired, or
    /// unreadable: corrupt state is treated as fresh).
    type State: Default + Send + 'static;

    /// A short snake_case name (`"fixed_window"`), used in keys, stats and logs.
    fn name(&self) -> &'static str;

    /// Admits or rejects `cost` at `now_ms`. A rejection must leave `state` untouched.
    /// `cost` is at least 1 and at most [`capacity`](Self::capacity).
    fn decide(&self, state: &mut Self::State, now_ms: u64, rate: Rate, cost: u64) -> Decision;

    /// The state as seen at `now_ms`, consuming nothing.
    fn stat(&self, state: &Self::State, now_ms: u64, rate: Rate) -> Snapshot;

    /// The time (ms since the epoch) from which `state` is equivalent to a fresh
    /// state, so the backend may forget the key.
    fn expires_at(&self, state: &Self::State, rate: Rate) -> u64;

    /// The largest cost a single hit can ever be admitted with; larger costs are
    /// refused with an error instead of a wait that could never be met.
    fn capacity(&self, rate: Rate) -> u64 {
        rate.limit()
    }
}
