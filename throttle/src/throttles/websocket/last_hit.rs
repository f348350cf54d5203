//! What the last message hits on one connection were: the most recent one by any
//! throttle (the seed's `is_throttled`), and the most recent one of each throttle.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// The outcome of one message hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastHit {
    Admitted,
    /// Throttled, with the wait in milliseconds.
    Throttled(u64),
    /// Not decided (invalid cost, backend error): not admitted either.
    Failed,
}

/// Packed in one `u64` so the common read is one atomic load.
const ADMITTED: u64 = 0;
const FAILED: u64 = u64::MAX;

impl LastHit {
    fn pack(self) -> u64 {
        match self {
            LastHit::Admitted => ADMITTED,
            // A throttled hit always reads as throttled, whatever its wait.
            LastHit::Throttled(wait) => wait.clamp(1, FAILED - 1),
            LastHit::Failed => FAILED,
        }
    }

    fn unpack(packed: u64) -> Self {
        match packed {
            ADMITTED => LastHit::Admitted,
            FAILED => LastHit::Failed,
            wait => LastHit::Throttled(wait),
        }
    }

    pub(crate) fn is_admitted(self) -> bool {
        self == LastHit::Admitted
    }

    /// The wait of a throttled hit; 0 otherwise.
    pub(crate) fn wait_ms(self) -> u64 {
        match self {
            LastHit::Throttled(wait) => wait,
            LastHit::Admitted | LastHit::Failed => 0,
        }
    }
}

/// The hits recorded on one connection.
#[derive(Debug, Default)]
pub(crate) struct HitLog {
    /// The most recent hit by any throttle. `ADMITTED` before the first.
    last: AtomicU64,
    /// The most recent hit of each throttle, by uid. One entry per throttle the
    /// application hits this connection with: the code decides how many, not the client.
    by_throttle: Mutex<Vec<(Box<str>, u64)>>,
}

impl HitLog {
    pub(crate) fn record(&self, uid: &str, hit: LastHit) {
        let packed = hit.pack();
        let mut by_throttle = self.by_throttle.lock();
        match by_throttle.iter_mut().find(|(seen, _)| &**seen == uid) {
            Some(entry) => entry.1 = packed,
            None => by_throttle.push((uid.into(), packed)),
        }
        // Under the lock, so `last` is the latest of the per-throttle writes.
        self.last.store(packed, Ordering::Release);
    }

    pub(crate) fn last(&self) -> LastHit {
        LastHit::unpack(self.last.load(Ordering::Acquire))
    }

    /// The most recent hit of the throttle `uid`, `None` before its first.
    pub(crate) fn last_by(&self, uid: &str) -> Option<LastHit> {
        let by_throttle = self.by_throttle.lock();
        by_throttle.iter().find(|(seen, _)| &**seen == uid).map(|&(_, packed)| LastHit::unpack(packed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_are_packed_faithfully() {
        let log = HitLog::default();
        assert_eq!(log.last(), LastHit::Admitted, "nothing yet reads as admitted");
        assert_eq!(log.last_by("a"), None);
        log.record("a", LastHit::Throttled(0));
        assert_eq!(log.last(), LastHit::Throttled(1), "a zero wait still reads as throttled");
        log.record("a", LastHit::Throttled(u64::MAX));
        assert_eq!(log.last(), LastHit::Throttled(u64::MAX - 1), "a huge wait does not read as failed");
        log.record("a", LastHit::Failed);
        assert_eq!(log.last(), LastHit::Failed);
        assert_eq!(log.last().wait_ms(), 0);
        log.record("a", LastHit::Admitted);
        assert!(log.last().is_admitted());
    }

    #[test]
    fn the_last_hit_is_overall_and_each_throttle_keeps_its_own() {
        let log = HitLog::default();
        log.record("a", LastHit::Throttled(5_000));
        log.record("b", LastHit::Admitted);
        assert_eq!(log.last(), LastHit::Admitted, "last write wins overall");
        assert_eq!(log.last_by("a"), Some(LastHit::Throttled(5_000)), "a's rejection is not lost");
        assert_eq!(log.last_by("b"), Some(LastHit::Admitted));
        log.record("a", LastHit::Admitted);
        assert_eq!(log.last_by("a"), Some(LastHit::Admitted));
        assert_eq!(log.by_throttle.lock().len(), 2, "one entry per throttle, however many hits");
    }
}
