//! What strategies report: decisions, snapshots and the public [`StrategyStat`].

use crate::Rate;

/// The wait of a hit no wait can ever admit: its cost is above the strategy's
/// [`capacity`](crate::strategy::Strategy::capacity). Throttles refuse such costs
/// with an error before deciding, so only direct callers of a strategy see it.
pub const NEVER: u64 = u64::MAX;

/// The outcome of one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    /// Whether the hit was admitted (and its cost consumed).
    pub allowed: bool,
    /// Quota left after this hit, never above the limit.
    pub remaining: u64,
    /// Milliseconds until this same hit would be admitted (absent other traffic);
    /// 0 when admitted, [`NEVER`] when the cost is above the capacity.
    pub wait_ms: u64,
    /// Milliseconds until the quota is whole again (the window or bucket resets).
    pub reset_ms: u64,
}

/// A read of a key's state that consumed nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Quota left now, never above the limit.
    pub remaining: u64,
    /// Milliseconds until a hit of cost 1 would be admitted; 0 if it would be now.
    pub wait_ms: u64,
    /// Milliseconds until the quota is whole again.
    pub reset_ms: u64,
    /// Strategy-specific detail.
    pub metadata: Metadata,
}

/// Strategy-specific detail of a [`Snapshot`]. Integers only.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Metadata {
    /// The strategy reports nothing more.
    None,
    /// [`FixedWindow`](crate::strategy::FixedWindow): the current window and its count.
    FixedWindow {
        /// Start of the current window, ms since the epoch.
        window_start_ms: u64,
        /// End (exclusive) of the current window, ms since the epoch.
        window_end_ms: u64,
        /// Cost consumed in the current window.
        current_count: u64,
    },
    /// [`SlidingWindowCounter`](crate::strategy::SlidingWindowCounter): both windows
    /// and the weighted count.
    SlidingWindowCounter {
        /// Start of the current window, ms since the epoch.
        window_start_ms: u64,
        /// End (exclusive) of the current window, ms since the epoch.
        window_end_ms: u64,
        /// Cost admitted in the current window.
        current_count: u64,
        /// Cost admitted in the previous window.
        previous_count: u64,
        /// Weight of the previous window now, in thousandths (1000 at the start of the
        /// current window, falling to 0 at its end).
        previous_weight_permille: u64,
        /// `previous × weight + current`, rounded up.
        weighted_count: u64,
    },
    /// [`SlidingWindowLog`](crate::strategy::SlidingWindowLog): the log of the last
    /// period.
    SlidingWindowLog {
        /// Start (exclusive) of the sliding window: entries after it count.
        window_start_ms: u64,
        /// Number of log entries in the window (hits admitted in the same millisecond
        /// share one entry).
        entry_count: u64,
        /// Cost admitted in the window.
        current_count: u64,
        /// Time of the oldest entry in the window; 0 when there is none.
        oldest_entry_ms: u64,
    },
    /// [`TokenBucket`](crate::strategy::TokenBucket): tokens now.
    TokenBucket {
        /// Whole tokens in the bucket (may exceed the limit when the burst does).
        tokens: u64,
        /// The bucket's size: the burst.
        capacity: u64,
        /// When tokens were last taken, ms since the epoch.
        last_refill_ms: u64,
        /// Tokens missing from a full bucket now, exact (where `tokens` is rounded
        /// down), in units that a hit of cost `c` takes `c × period_ms` of and that
        /// refill at `limit` per millisecond.
        level_units: u64,
    },
    /// [`TokenBucketDebt`](crate::strategy::TokenBucketDebt): tokens, possibly
    /// negative.
    TokenBucketDebt {
        /// Whole tokens in the bucket, rounded down; negative while in debt.
        tokens: i64,
        /// The bucket's size: the burst.
        capacity: u64,
        /// How far below zero tokens may go.
        max_debt: u64,
        /// Tokens owed now (`-tokens` while in debt, else 0).
        debt: u64,
        /// When tokens were last taken, ms since the epoch.
        last_refill_ms: u64,
        /// Tokens missing from a full bucket now, exact, in the units of
        /// [`Metadata::TokenBucket`]'s `level_units`.
        level_units: u64,
    },
    /// [`LeakyBucket`](crate::strategy::LeakyBucket): the bucket's level.
    LeakyBucket {
        /// Cost in the bucket now, rounded up.
        level: u64,
        /// The bucket's size: the limit.
        capacity: u64,
        /// When cost was last added, ms since the epoch.
        last_leak_ms: u64,
        /// Cost in the bucket now, exact (where `level` is rounded up), in units that
        /// a hit of cost `c` adds `c × period_ms` of and that leak at `limit` per
        /// millisecond.
        level_units: u64,
    },
    /// [`LeakyBucketQueue`](crate::strategy::LeakyBucketQueue): the queue.
    LeakyBucketQueue {
        /// Admitted hits still in the queue.
        queue_len: u64,
        /// Their cost not yet leaked, rounded up.
        queue_cost: u64,
        /// The queue's size in cost: the limit.
        capacity: u64,
        /// When the queue was last updated, ms since the epoch.
        last_leak_ms: u64,
        /// The queue's undrained cost now, exact, in the units of
        /// [`Metadata::LeakyBucket`]'s `level_units`.
        level_units: u64,
    },
    /// [`Gcra`](crate::strategy::Gcra): the theoretical arrival time.
    Gcra {
        /// Theoretical arrival time, rounded up, ms since the epoch (at or before now
        /// for a key at full burst).
        tat_ms: u64,
        /// Time between two hits at the sustained rate, in microseconds (rounded down).
        emission_interval_us: u64,
        /// Hits admitted at once from rest.
        burst: u64,
        /// How far the TAT runs ahead of now, exact, in units of `1 / limit` ms: a
        /// hit of cost `c` pushes it `c × period_ms` units, and it falls `limit` units
        /// per millisecond.
        level_units: u64,
    },
    /// A user strategy's own named integers.
    Custom(Vec<(&'static str, i64)>),
}

/// What [`stat`](crate::HttpThrottle::stat) returns: a client's standing with a throttle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategyStat {
    /// The uid of the throttle (also the IETF policy name).
    pub uid: std::sync::Arc<str>,
    /// The backend key of this client's bucket.
    pub key: String,
    /// The rate this stat was computed for (dynamic rates included).
    pub rate: Rate,
    /// Quota left, between 0 and the limit.
    pub hits_remaining: u64,
    /// Milliseconds until a hit of cost 1 would be admitted (of cost `n` for a stat
    /// asked with [`.cost(n)`](crate::Call::cost)); 0 if it would be now.
    pub wait_ms: u64,
    /// Milliseconds until the quota is whole again.
    pub reset_ms: u64,
    /// The strategy's name.
    pub strategy: &'static str,
    /// Strategy-specific detail.
    pub metadata: Metadata,
}

impl StrategyStat {
    /// The stat a throttle reports for `snapshot` (remaining capped at the limit).
    pub(crate) fn from_snapshot(
        uid: std::sync::Arc<str>,
        key: String,
        rate: Rate,
        strategy: &'static str,
        snapshot: Snapshot,
    ) -> Self {
        StrategyStat {
            uid,
            key,
            rate,
            hits_remaining: snapshot.remaining.min(rate.limit()),
            wait_ms: snapshot.wait_ms,
            reset_ms: snapshot.reset_ms,
            strategy,
            metadata: snapshot.metadata,
        }
    }

    /// The quota left after a hit of `cost` taken now, never below 0: the seed's
    /// `stat.hits_remaining - 1` without the underflow when a window rolls over between
    /// the stat and the hit. After a hit, prefer the admitted hit's own
    /// [`Admitted::remaining`](crate::Admitted::remaining).
    ///
    /// ```
    /// use axum::extract::Request;
    /// use throttle::{HttpThrottle, ThrottleError};
    ///
    /// // The seed's "quota_remaining": stat, then hit.
    /// async fn get_data(api: &HttpThrottle, request: Request) -> Result<String, ThrottleError> {
    ///     let before = api.stat(&request).await?;
    ///     let admitted = api.hit(&request).await?;
    ///     // Preferred: what the hit itself left. Else the stat's figure, which cannot underflow.
    ///     let remaining = admitted.remaining().or(before.map(|stat| stat.remaining_after(1)));
    ///     Ok(format!("quota_remaining: {remaining:?}"))
    /// }
    /// # let _ = get_data;
    /// ```
    pub const fn remaining_after(&self, cost: u64) -> u64 {
        self.hits_remaining.saturating_sub(cost)
    }
}
