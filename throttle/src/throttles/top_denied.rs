//! The clients a throttle denied most: a bounded Space-Saving summary.

use hashbrown::HashMap;
use parking_lot::Mutex;

/// The largest list [`ThrottleBuilder::track_top_denied`](crate::ThrottleBuilder::track_top_denied) keeps.
pub const MAX_TOP_DENIED: usize = 1_000;

/// A client among those a throttle denied most (see
/// [`ThrottleBuilder::track_top_denied`](crate::ThrottleBuilder::track_top_denied)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeniedClient {
    /// The client's bucket key, as the backend stores it (`namespace:uid:client:scope`,
    /// a long client id as its digest): bounded, never raw client bytes.
    pub key: String,
    /// Denials counted for it, at most `overcount` more than the true number.
    pub denials: u64,
    /// How far `denials` may exceed the true number: a client that entered a full
    /// list inherited the count of the one it replaced.
    pub overcount: u64,
}

/// Space-Saving (Metwally et al.): `capacity` counters; a key not in a full list
/// replaces the smallest and inherits its count as overcount. Every client denied more
/// than `1 / capacity` of all denials is in the list, whatever the order of arrival,
/// and memory stays `capacity` keys however many clients are denied.
pub(crate) struct TopDenied {
    capacity: usize,
    counts: Mutex<HashMap<Box<str>, (u64, u64), foldhash::fast::RandomState>>,
}

impl TopDenied {
    /// `capacity` between 1 and [`MAX_TOP_DENIED`] (checked by the builder).
    pub(crate) fn new(capacity: usize) -> Self {
        let counts = HashMap::with_capacity_and_hasher(capacity, foldhash::fast::RandomState::default());
        TopDenied { capacity, counts: Mutex::new(counts) }
    }

    /// Counts a denial of `key`.
    pub(crate) fn record(&self, key: &str) {
        let mut counts = self.counts.lock();
        if let Some((denials, _)) = counts.get_mut(key) {
            *denials += 1;
            return;
        }
        if counts.len() < self.capacity {
            counts.insert(key.into(), (1, 0));
            return;
        }
        let smallest =
            counts.iter().min_by_key(|(_, (denials, _))| *denials).map(|(k, (denials, _))| (k.clone(), *denials));
        if let Some((evicted, floor)) = smallest {
            counts.remove(&evicted);
            counts.insert(key.into(), (floor + 1, floor));
        }
    }

    /// The list, most denied first (ties by key).
    pub(crate) fn top(&self) -> Vec<DeniedClient> {
        let mut top: Vec<DeniedClient> = self
            .counts
            .lock()
            .iter()
            .map(|(key, &(denials, overcount))| DeniedClient { key: key.to_string(), denials, overcount })
            .collect();
        top.sort_by(|a, b| b.denials.cmp(&a.denials).then_with(|| a.key.cmp(&b.key)));
        top
    }
}

impl std::fmt::Debug for TopDenied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopDenied").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConfigError, HttpThrottle};

    #[test]
    fn the_size_is_checked_when_the_throttle_is_built() {
        for size in [0, MAX_TOP_DENIED + 1, usize::MAX] {
            let built = HttpThrottle::builder("top:size").rate("1/s").track_top_denied(size).build();
            assert!(matches!(built, Err(ConfigError::TopDeniedSize { size: s, .. }) if s == size), "{size}");
        }
        let error = HttpThrottle::builder("top:size").rate("1/s").track_top_denied(0).build().unwrap_err();
        assert_eq!(
            error.to_string(),
            "throttle \"top:size\" cannot track the top 0 denied clients: the list holds from 1 to 1000 clients"
        );
        for size in [1, MAX_TOP_DENIED] {
            assert!(HttpThrottle::builder("top:size").rate("1/s").track_top_denied(size).build().is_ok());
        }
    }

    #[test]
    fn heavy_hitters_stay_and_memory_stays_bounded() {
        // 25 000 denials over 8 slots: every key denied more than 25 000 / 8 times stays.
        let top = TopDenied::new(8);
        for round in 0..10_000u32 {
            top.record("attacker-a");
            if round % 2 == 0 {
                top.record("attacker-b");
            }
            // A rotating crowd, each key denied once: none may push the heavy ones out.
            top.record(&format!("crowd-{round}"));
        }
        let list = top.top();
        assert_eq!(list.len(), 8, "never more keys than slots");
        assert_eq!((list[0].key.as_str(), list[0].denials, list[0].overcount), ("attacker-a", 10_000, 0));
        assert_eq!((list[1].key.as_str(), list[1].denials, list[1].overcount), ("attacker-b", 5_000, 0));
        for crowd in &list[2..] {
            assert!(crowd.key.starts_with("crowd-"), "{crowd:?}");
            assert!(crowd.denials - crowd.overcount <= 1, "a crowd key's true count is 1: {crowd:?}");
        }
    }
}
