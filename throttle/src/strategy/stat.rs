//! What strategies report: decisions, snapshots and the public [`StrategyStat`].

use crate::Rate;

/// The outcome of one hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct Decision {
    /// Whether the hit was admitted (and its cost consumed).
    pub allowed: bool,
    /// Quota left after this hit, never above the limit.
    pub remaining: u64,
    /// Milliseconds until this same hit would be admitted; 0 when admitted.
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
    /// Milliseconds until a hit of cost 1 would be admitted; 0 if it would be now.
    pub wait_ms: u64,
    /// Milliseconds until the quota is whole again.
    pub reset_ms: u64,
    /// The strategy's name.
    pub strategy: &'static str,
    /// Strategy-specific detail.
    pub metadata: Metadata,
}
