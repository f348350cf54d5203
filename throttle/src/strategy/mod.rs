//! Rate-limiting algorithms.
//!
//! A [`Strategy`] is a pure decision step: given its per-key state, the time, the rate
//! and a cost, it admits or rejects and updates the state. Backends run that step
//! atomically per key, so every backend makes the same decisions for the same
//! sequence of `(time, cost)`.
//!
//! Rejected hits never consume quota, in every strategy: a rejection leaves the state
//! exactly as it was.
//!
//! # The built-in strategies
//!
//! | name | type | state | in memory, per key | on Redis, per key |
//! |---|---|---|---|---|
//! | `fixed_window` (default) | [`FixedWindow`] | window start, count | 16 bytes | 3 integers |
//! | `sliding_window_counter` | [`SlidingWindowCounter`] | window start, two counts | 24 bytes | 4 integers |
//! | `sliding_window_log` | [`SlidingWindowLog`] | one `(ms, cost)` entry per admitting millisecond | 40 + 16 per entry, at most `limit` entries | 7 integers + about 13 bytes per entry |
//! | `token_bucket` | [`TokenBucket`] | last refill, missing tokens | 16 bytes | 3 integers |
//! | `token_bucket_debt` | [`TokenBucketDebt`] | last refill, missing tokens | 16 bytes | 3 integers |
//! | `leaky_bucket` | [`LeakyBucket`] | last leak, level | 16 bytes | 3 integers |
//! | `leaky_bucket_queue` | [`LeakyBucketQueue`] | last leak, FIFO of admitted costs | 56 + 8 per queued hit, at most `limit` | 7 integers + 2 to 10 bytes per queued hit |
//! | `gcra` | [`Gcra`] | theoretical arrival time | 16 bytes | 3 integers |
//!
//! No decision does work in proportion to the limit, rejections included: the log and
//! the queue keep the total of their entries beside them, so admission is O(1)
//! amortised (each entry is dropped once) and a rejection of cost 1 on a full log or
//! queue looks at its oldest entry at most; on Redis the other calls read O(log n)
//! entries at most (see [`SlidingWindowLog`] and [`LeakyBucketQueue`]).
//!
//! Every one of them:
//!
//! - admits exactly: `N` concurrent hits on a fresh key with limit `L` admit exactly
//!   `min(N, L)` (`min(N, burst)` for the bucket strategies given a burst);
//! - waits honestly: after a rejection with wait `W`, the same hit at `now + W` is
//!   admitted when nothing else hits the key, and at `now + W - 1` it would not be;
//! - reports `remaining` between 0 and the rate's limit;
//! - refuses a cost above its [`capacity`](Strategy::capacity) (the throttle turns it
//!   into [`ThrottleError::CostExceedsCapacity`](crate::ThrottleError::CostExceedsCapacity));
//!   called directly, [`Strategy::decide`] rejects it with a wait of [`NEVER`];
//! - admits everything for [`Rate::UNLIMITED`] and rejects everything for a limit of 0
//!   (a closed gate: the wait is one period, as no wait would ever admit);
//! - computes in integer milliseconds only, with integer state (see [`codec`]).
//!
//! # Refunds
//!
//! A hit can be given back after it was admitted ([`Admitted::refund`](crate::Admitted::refund),
//! and counting by outcome, [`CountWhen`](crate::CountWhen)): the hit holds its units
//! while its request is pending, then keeps them or returns them. The caller knows
//! only a moment `since` no later than the admission, so each strategy gives back what
//! the hit provably still holds, never more:
//!
//! | strategy | refund |
//! |---|---|
//! | `fixed_window` | the cost, from the window the hit was counted in, if `since` and now fall in it; nothing once the window has ended (the hit no longer counts) or when the window may have changed in between |
//! | `sliding_window_counter` | the cost, from the current window if the hit was counted there, else from the previous window (its weight is smaller, so that errs toward counting) |
//! | `sliding_window_log` | the cost, from the log entries at or after `since` (earliest first, which errs toward counting); nothing after a whole period |
//! | `token_bucket`, `token_bucket_debt`, `leaky_bucket`, `gcra` | the cost, less what the bucket has refilled (or leaked, or the TAT has caught up) since `since`: what the hit still provably holds |
//! | `leaky_bucket_queue` | what the `leaky_bucket` gives back, drained from the head of the queue (a queued hit cannot be told from the others; the queue's total stays the bucket's level) |
//!
//! A hit whose units have run out on their own has nothing left to give back, so a
//! refund never raises a quota above what it would be had the hit never been made.
//! Every backend of this crate refunds every built-in strategy the same way (on Redis
//! the log and the queue take the cost out of their entries in one script call), and
//! a [`Failover`](crate::backend::Failover) refunds on the backend that decided the hit.
//!
//! Select one by type with [`ThrottleBuilder::strategy`](crate::ThrottleBuilder::strategy)
//! or by name, with parameters, with [`from_name`] and
//! [`ThrottleBuilder::strategy_name`](crate::ThrottleBuilder::strategy_name):
//!
//! ```
//! let strategy = throttle::strategy::from_name("token_bucket(burst = 15)")?;
//! assert_eq!(strategy.name(), "token_bucket");
//! assert_eq!(strategy.capacity(throttle::Rate::per_second(10)), 15);
//! # Ok::<(), throttle::strategy::ParseStrategyError>(())
//! ```
//!
//! # Exactness with large rates
//!
//! The bucket strategies (token buckets, leaky buckets) count in units of
//! `1 / period_ms` of a hit, so their stored level reaches `capacity × period_ms` and
//! intermediate values stay within about twice that. Rust computes in 128 bits and
//! stores 64-bit levels: exact while `capacity × period_ms < 2^64` (a billion hits
//! per day is 8.64 × 10^16); past that, levels saturate and admit more than they
//! should. A backend that runs the same steps with doubles (Lua) is exact while the
//! product stays below 2^53, which covers e.g. a million hits per day
//! (8.64 × 10^13). The other strategies store only counts and times and are exact for
//! every rate.

mod bucket;
pub mod codec;
mod erased;
mod fixed_window;
mod gcra;
mod leaky_bucket;
mod leaky_bucket_queue;
mod select;
mod sliding_window_counter;
mod sliding_window_log;
mod stat;
mod token_bucket;
mod token_bucket_debt;
pub(crate) mod wait;

pub use codec::EncodedDecision;
pub use erased::{AnyState, Builtin, DynStrategy};
pub use fixed_window::{FixedWindow, FixedWindowState};
pub use gcra::{Gcra, GcraState};
pub use leaky_bucket::{LeakyBucket, LeakyBucketState};
pub use leaky_bucket_queue::{LeakyBucketQueue, LeakyBucketQueueState};
pub use select::{InvalidStrategyParam, ParseStrategyError, StrategyKind, StrategyParam, from_name};
pub use sliding_window_counter::{SlidingWindowCounter, SlidingWindowCounterState};
pub use sliding_window_log::{SlidingWindowLog, SlidingWindowLogState};
pub use stat::{Decision, Metadata, NEVER, Snapshot, StrategyStat};
pub use token_bucket::{TokenBucket, TokenBucketState};
pub use token_bucket_debt::TokenBucketDebt;

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
///
/// let backend = throttle::backend::MemoryBackend::new();
/// let rate = Rate::per_minute(2);
/// assert!(backend.hit_now("k", &Lifetime, rate, 2).allowed);
/// assert!(!backend.hit_now("k", &Lifetime, rate, 1).allowed);
/// ```
///
/// To run on a backend that stores state outside the process (through its
/// compare-and-set path), also implement [`encode`](Self::encode) and
/// [`decode`](Self::decode); see [`codec`].
pub trait Strategy: Debug + Send + Sync + 'static {
    /// Per-key state. `Default` is the state of a key never seen (or expired, or
    /// unreadable: corrupt state is treated as fresh). `Clone` lets the in-memory
    /// backend put a key back as it was when a stacked limit rejects (see
    /// [`hit_all`](crate::hit_all)).
    type State: Default + Clone + Send + 'static;

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

    /// Gives back `cost` of a hit this strategy admitted at some moment in
    /// `[since_ms, now_ms]` (the caller only knows bounds), as far as the state still
    /// holds it, and says whether anything was given back. See [Refunds](self#refunds).
    ///
    /// A refund must never give back more than the hit still holds: when in doubt (the
    /// hit may already have aged out, or the state cannot tell which hit is which), give
    /// back less, or nothing. The default gives nothing back: the hit stays counted.
    fn refund(&self, state: &mut Self::State, now_ms: u64, rate: Rate, cost: u64, since_ms: u64) -> bool {
        let _ = (state, now_ms, rate, cost, since_ms);
        false
    }

    /// The state as integers, for backends that store it outside the process.
    /// `None` (the default) means the strategy runs on the in-memory backend only.
    ///
    /// Keep every integer below 2^53 in magnitude so a Lua script reads it exactly.
    fn encode(&self, state: &Self::State) -> Option<Vec<i64>> {
        let _ = state;
        None
    }

    /// Reads what [`encode`](Self::encode) wrote. Return `None` for anything
    /// unreadable: the backend then uses a fresh state (corrupt state is never an
    /// error).
    fn decode(&self, fields: &[i64]) -> Option<Self::State> {
        let _ = fields;
        None
    }
}

/// Integer helpers of the built-in strategies.
mod math {
    /// `x` as a `u64`, saturating.
    pub(super) fn sat(x: u128) -> u64 {
        u64::try_from(x).unwrap_or(u64::MAX)
    }

    /// `a / b`; `b` must not be 0. Operands that fit 64 bits (the usual case) take
    /// a 64-bit division, several times faster than a 128-bit one.
    pub(super) fn div(a: u128, b: u128) -> u128 {
        match (u64::try_from(a), u64::try_from(b)) {
            (Ok(a), Ok(b)) => u128::from(a / b),
            _ => a / b,
        }
    }

    /// `a % b`; `b` must not be 0. See [`div`].
    pub(super) fn rem(a: u128, b: u128) -> u128 {
        match (u64::try_from(a), u64::try_from(b)) {
            (Ok(a), Ok(b)) => u128::from(a % b),
            _ => a % b,
        }
    }

    /// `a / b` rounded up; `b` must not be 0. See [`div`].
    pub(super) fn ceil_div(a: u128, b: u128) -> u128 {
        match (u64::try_from(a), u64::try_from(b)) {
            (Ok(a), Ok(b)) => u128::from(a.div_ceil(b)),
            _ => a.div_ceil(b),
        }
    }

    /// `fields[i]` as a non-negative integer.
    pub(super) fn field(fields: &[i64], i: usize) -> Option<u64> {
        fields.get(i).and_then(|&v| u64::try_from(v).ok())
    }

    /// `v` as a codec field (values above `i64::MAX` cannot occur in valid state).
    pub(super) fn to_field(v: u64) -> i64 {
        i64::try_from(v).unwrap_or(i64::MAX)
    }

    /// `[tag, a, b]`: the codec layout of every two-integer state.
    pub(super) fn encode_pair(tag: i64, a: u64, b: u64) -> Option<Vec<i64>> {
        Some(vec![tag, to_field(a), to_field(b)])
    }

    /// The two integers of `[tag, a, b]`; `None` for another tag, length or a negative field.
    pub(super) fn decode_pair(tag: i64, fields: &[i64]) -> Option<(u64, u64)> {
        match fields {
            [t, _, _] if *t == tag => Some((field(fields, 1)?, field(fields, 2)?)),
            _ => None,
        }
    }
}

/// The decision for rates no algorithm needs to run on: [`Rate::UNLIMITED`] admits
/// everything, a limit of 0 rejects everything (for one period at a time).
pub(crate) fn degenerate(rate: Rate) -> Option<Decision> {
    if rate.is_unlimited() {
        return Some(Decision { allowed: true, remaining: u64::MAX, wait_ms: 0, reset_ms: 0 });
    }
    if rate.limit() == 0 {
        let wait_ms = rate.period_ms();
        return Some(Decision { allowed: false, remaining: 0, wait_ms, reset_ms: wait_ms });
    }
    None
}

/// [`degenerate`] for stats.
pub(crate) fn degenerate_stat(rate: Rate) -> Option<Snapshot> {
    degenerate(rate).map(|d| Snapshot {
        remaining: d.remaining,
        wait_ms: d.wait_ms,
        reset_ms: d.reset_ms,
        metadata: Metadata::None,
    })
}

/// A rejection of a cost no wait can ever admit.
fn never(remaining: u64, reset_ms: u64) -> Decision {
    Decision { allowed: false, remaining, wait_ms: NEVER, reset_ms }
}

#[cfg(test)]
mod refund_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn state_sizes_are_as_documented() {
        for (size, documented) in [
            (size_of::<FixedWindowState>(), 16),
            (size_of::<SlidingWindowCounterState>(), 24),
            (size_of::<SlidingWindowLogState>(), 40),
            (size_of::<TokenBucketState>(), 16),
            (size_of::<LeakyBucketState>(), 16),
            (size_of::<LeakyBucketQueueState>(), 56),
            (size_of::<GcraState>(), 16),
        ] {
            assert_eq!(size, documented);
        }
    }
}
