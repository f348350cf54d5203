//! What a running throttle may change (through the limits file), held together behind
//! the one lock a request takes to read its rate: the rate and the strategy.

use super::options::RateSource;
use crate::strategy::DynStrategy;
#[cfg(feature = "limits-file")]
use crate::strategy::StrategyKind;
use std::sync::Arc;

/// The rate and the strategy in force.
pub(crate) struct Limit {
    pub(crate) rate: RateSource,
    /// `None` runs the code's strategy (`Core::strategy`), which costs a request nothing
    /// more than the rate alone.
    pub(crate) swapped: Option<Swapped>,
}

impl Limit {
    pub(crate) fn new(rate: RateSource) -> Self {
        Limit { rate, swapped: None }
    }
}

/// A strategy set at runtime in place of the code's.
#[derive(Clone)]
pub(crate) struct Swapped {
    pub(crate) strategy: Arc<dyn DynStrategy>,
    /// What the throttle's keys end with while this strategy runs, when it is of another
    /// kind than the code's (see [`key_tag`]); `None` for the code's kind with other
    /// parameters, whose state carries over as it does across a rate change.
    pub(crate) key_tag: Option<&'static str>,
}

#[cfg(feature = "limits-file")]
impl Swapped {
    /// `strategy` in place of `code`: `None` when it is the code's (same type and
    /// parameters), so the throttle runs exactly as built.
    pub(crate) fn new(code: &dyn DynStrategy, strategy: Arc<dyn DynStrategy>) -> Option<Swapped> {
        let same_type = code.as_any().type_id() == strategy.as_any().type_id();
        if same_type && format!("{code:?}") == format!("{strategy:?}") {
            return None;
        }
        let key_tag = if same_type { None } else { Some(key_tag(StrategyKind::of(&*strategy))) };
        Some(Swapped { strategy, key_tag })
    }
}

#[cfg(feature = "limits-file")]
/// `#` and a letter per built-in kind: appended to the scope segment, the last of a
/// key, it makes a key no throttle builds otherwise (a readable segment never holds a
/// raw `#`, a digested one is `#` and 64 hex digits, an empty one `#` alone; see
/// [`crate::key`]), and no `:`, so the Redis key and its `:entries` list keep their
/// shape and slot.
pub(crate) fn key_tag(kind: Option<StrategyKind>) -> &'static str {
    match kind {
        Some(StrategyKind::FixedWindow) => "#f",
        Some(StrategyKind::SlidingWindowCounter) => "#c",
        Some(StrategyKind::SlidingWindowLog) => "#l",
        Some(StrategyKind::TokenBucket) => "#t",
        Some(StrategyKind::TokenBucketDebt) => "#d",
        Some(StrategyKind::LeakyBucket) => "#b",
        Some(StrategyKind::LeakyBucketQueue) => "#q",
        Some(StrategyKind::Gcra) => "#g",
        // Only the limits file swaps strategies, and it names built-in ones.
        None => "#x",
    }
}

/// The longest [`key_tag`].
pub(crate) const MAX_KEY_TAG_LEN: usize = 2;

// A tagged key and its Redis `:entries` list still fit `MAX_KEY_LEN`.
const _: () = {
    use crate::key::{MAX_KEY_LEN, MAX_NAMESPACE_LEN, MAX_SEGMENT_LEN, MAX_SUFFIX_LEN, MAX_UID_LEN};
    assert!(
        MAX_NAMESPACE_LEN + MAX_UID_LEN + 2 * MAX_SEGMENT_LEN + "::{}:".len() + MAX_KEY_TAG_LEN + MAX_SUFFIX_LEN
            <= MAX_KEY_LEN
    );
};

#[cfg(all(test, feature = "limits-file"))]
mod tests {
    use super::*;
    use crate::strategy::from_name;

    #[test]
    fn a_swap_tags_keys_only_for_another_kind() {
        let code = from_name("token_bucket(burst = 30)").unwrap();
        assert!(Swapped::new(&*code, from_name("token_bucket(burst = 30)").unwrap()).is_none(), "the code's own");
        let burst = Swapped::new(&*code, from_name("token_bucket(burst = 5)").unwrap()).expect("other parameters");
        assert_eq!(burst.key_tag, None, "the same kind keeps its keys");
        let debt = Swapped::new(&*code, from_name("token_bucket_debt").unwrap()).expect("another kind");
        assert_eq!(debt.key_tag, Some("#d"), "even with the same state type in memory");
    }

    #[test]
    fn every_kind_has_its_own_tag() {
        let tags: Vec<&str> = StrategyKind::ALL.iter().map(|kind| key_tag(Some(*kind))).collect();
        for (i, tag) in tags.iter().enumerate() {
            assert!(tag.len() <= MAX_KEY_TAG_LEN && tag.starts_with('#') && !tag.contains(':'));
            assert!(!tags[..i].contains(tag), "{tag} twice");
            assert_eq!(StrategyKind::of(&*StrategyKind::ALL[i].build()), Some(StrategyKind::ALL[i]));
        }
    }
}
