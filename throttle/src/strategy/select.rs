//! Choosing a built-in strategy by name, with parameters: [`from_name`] and
//! [`StrategyKind`].

use super::{
    DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
    TokenBucketDebt,
};
use core::fmt;
use core::str::FromStr;
use std::sync::Arc;
use throttle_grammar::strategy::{self as grammar, STRATEGIES};
pub use throttle_grammar::strategy::{InvalidStrategyParam, Param as StrategyParam, ParseStrategyError};

/// The built-in strategies, by name.
///
/// ```
/// use throttle::strategy::StrategyKind;
///
/// let kind: StrategyKind = "leaky_bucket".parse()?;
/// assert_eq!(kind, StrategyKind::LeakyBucket);
/// assert_eq!(kind.build().name(), "leaky_bucket");
/// let params: Vec<&str> = StrategyKind::TokenBucketDebt.params().iter().map(|p| p.name).collect();
/// assert_eq!(params, ["burst", "max_debt"]);
/// assert!(StrategyKind::ALL.iter().all(|k| k.name().parse() == Ok(*k)));
/// # Ok::<(), throttle::strategy::ParseStrategyError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StrategyKind {
    /// `"fixed_window"`: [`FixedWindow`], the default.
    FixedWindow,
    /// `"sliding_window_counter"`: [`SlidingWindowCounter`].
    SlidingWindowCounter,
    /// `"sliding_window_log"`: [`SlidingWindowLog`].
    SlidingWindowLog,
    /// `"token_bucket"`: [`TokenBucket`]; parameter `burst`.
    TokenBucket,
    /// `"token_bucket_debt"`: [`TokenBucketDebt`]; parameters `burst`, `max_debt`.
    TokenBucketDebt,
    /// `"leaky_bucket"`: [`LeakyBucket`].
    LeakyBucket,
    /// `"leaky_bucket_queue"`: [`LeakyBucketQueue`].
    LeakyBucketQueue,
    /// `"gcra"`: [`Gcra`]; parameter `burst`.
    Gcra,
}

impl StrategyKind {
    /// Every built-in strategy, in the order of the documentation.
    pub const ALL: [StrategyKind; 8] = [
        StrategyKind::FixedWindow,
        StrategyKind::SlidingWindowCounter,
        StrategyKind::SlidingWindowLog,
        StrategyKind::TokenBucket,
        StrategyKind::TokenBucketDebt,
        StrategyKind::LeakyBucket,
        StrategyKind::LeakyBucketQueue,
        StrategyKind::Gcra,
    ];

    /// The name, as [`Strategy::name`](super::Strategy::name) reports it.
    pub const fn name(self) -> &'static str {
        STRATEGIES[self as usize].name
    }

    /// The parameters the strategy accepts (all whole numbers, all optional).
    pub const fn params(self) -> &'static [StrategyParam] {
        STRATEGIES[self as usize].params
    }

    /// The strategy with default parameters.
    pub fn build(self) -> Arc<dyn DynStrategy> {
        match self {
            StrategyKind::FixedWindow => Arc::new(FixedWindow),
            StrategyKind::SlidingWindowCounter => Arc::new(SlidingWindowCounter),
            StrategyKind::SlidingWindowLog => Arc::new(SlidingWindowLog),
            StrategyKind::TokenBucket => Arc::new(TokenBucket::new()),
            StrategyKind::TokenBucketDebt => Arc::new(TokenBucketDebt::default()),
            StrategyKind::LeakyBucket => Arc::new(LeakyBucket),
            StrategyKind::LeakyBucketQueue => Arc::new(LeakyBucketQueue),
            StrategyKind::Gcra => Arc::new(Gcra::new()),
        }
    }

    /// The built-in kind `strategy` is, by its type (never by its name, which any
    /// strategy may share); `None` for a strategy of your own.
    #[cfg(feature = "limits-file")]
    pub(crate) fn of(strategy: &dyn DynStrategy) -> Option<StrategyKind> {
        let any = strategy.as_any();
        let kind = if any.is::<FixedWindow>() {
            StrategyKind::FixedWindow
        } else if any.is::<SlidingWindowCounter>() {
            StrategyKind::SlidingWindowCounter
        } else if any.is::<SlidingWindowLog>() {
            StrategyKind::SlidingWindowLog
        } else if any.is::<TokenBucket>() {
            StrategyKind::TokenBucket
        } else if any.is::<TokenBucketDebt>() {
            StrategyKind::TokenBucketDebt
        } else if any.is::<LeakyBucket>() {
            StrategyKind::LeakyBucket
        } else if any.is::<LeakyBucketQueue>() {
            StrategyKind::LeakyBucketQueue
        } else if any.is::<Gcra>() {
            StrategyKind::Gcra
        } else {
            return None;
        };
        Some(kind)
    }

    /// The strategy with these parameters (see [`params`](Self::params)); parameters
    /// left out take their defaults.
    ///
    /// ```
    /// use throttle::Rate;
    /// use throttle::strategy::StrategyKind;
    ///
    /// let gcra = StrategyKind::Gcra.build_with(&[("burst", 5)])?;
    /// assert_eq!(gcra.capacity(Rate::per_minute(100)), 5);
    /// let err = StrategyKind::Gcra.build_with(&[("burst", 0)]).unwrap_err();
    /// assert_eq!(err.to_string(), "invalid parameter of strategy `gcra`: `burst` must be at least 1");
    /// # Ok::<(), throttle::strategy::ParseStrategyError>(())
    /// ```
    pub fn build_with(self, params: &[(&str, u64)]) -> Result<Arc<dyn DynStrategy>, ParseStrategyError> {
        for (i, (param, _)) in params.iter().enumerate() {
            if !self.params().iter().any(|p| p.name == *param) {
                return Err(ParseStrategyError::UnknownParam { strategy: self.name(), param: (*param).to_string() });
            }
            if params[..i].iter().any(|(p, _)| p == param) {
                return Err(ParseStrategyError::DuplicateParam { strategy: self.name(), param: (*param).to_string() });
            }
        }
        let get = |name: &str| params.iter().find(|(p, _)| *p == name).map(|&(_, v)| v);
        let invalid = |source| ParseStrategyError::Param { strategy: self.name(), source };
        Ok(match (self, get("burst")) {
            (StrategyKind::TokenBucket, Some(burst)) => Arc::new(TokenBucket::with_burst(burst).map_err(invalid)?),
            (StrategyKind::Gcra, Some(burst)) => Arc::new(Gcra::with_burst(burst).map_err(invalid)?),
            (StrategyKind::TokenBucketDebt, burst) => {
                let max_debt = get("max_debt").unwrap_or(0);
                let debt = match burst {
                    Some(burst) => TokenBucketDebt::with_burst(burst, max_debt),
                    None => TokenBucketDebt::new(max_debt),
                };
                Arc::new(debt.map_err(invalid)?)
            }
            _ => self.build(),
        })
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for StrategyKind {
    type Err = ParseStrategyError;

    /// A name alone, such as `"token_bucket"` (see [`from_name`] for parameters).
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let name = name.trim();
        StrategyKind::ALL
            .into_iter()
            .find(|kind| kind.name() == name)
            .ok_or_else(|| ParseStrategyError::Unknown { name: name.to_string() })
    }
}

/// A built-in strategy from its name and optional parameters:
/// `"name"` or `"name(param = value, ...)"`, e.g. `"token_bucket(burst = 15)"`.
///
/// This is what [`ThrottleBuilder::strategy_name`](crate::ThrottleBuilder::strategy_name)
/// and the attribute's `strategy = "..."` use.
///
/// ```
/// use throttle::Rate;
/// use throttle::strategy::from_name;
///
/// let rate = Rate::per_second(10);
/// assert_eq!(from_name("gcra")?.capacity(rate), 10);
/// assert_eq!(from_name("token_bucket_debt(burst = 20, max_debt = 5)")?.capacity(rate), 25);
///
/// let err = from_name("token-bucket").unwrap_err();
/// assert!(err.to_string().starts_with("unknown strategy `token-bucket`; expected one of `fixed_window`,"));
/// assert!(err.to_string().ends_with("(did you mean `token_bucket`?)"));
/// assert!(from_name("token_bucket(burst = 0)").is_err());
/// assert!(from_name("fixed_window(burst = 3)").is_err());
/// # Ok::<(), throttle::strategy::ParseStrategyError>(())
/// ```
pub fn from_name(spec: &str) -> Result<Arc<dyn DynStrategy>, ParseStrategyError> {
    let spec = grammar::parse(spec)?;
    StrategyKind::ALL[spec.index].build_with(&spec.params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rate;
    use proptest::strategy::Just;

    #[test]
    fn the_kinds_follow_the_shared_table() {
        assert_eq!(StrategyKind::ALL.len(), STRATEGIES.len());
        for (index, kind) in StrategyKind::ALL.into_iter().enumerate() {
            assert_eq!(kind as usize, index, "{kind:?}");
            assert_eq!(format!("{kind:?}"), STRATEGIES[index].variant);
        }
    }

    /// Every spec the shared grammar accepts builds: the macro checks specs with that
    /// grammar, so a spec it accepted can never fail when the throttle is built.
    #[test]
    fn every_spec_the_grammar_accepts_builds() {
        for (input, name, _) in throttle_grammar::vectors::strategy::VALID {
            assert_eq!(from_name(input).map(|s| s.name()), Ok(*name), "{input:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn any_accepted_spec_builds(
            index in 0..8usize,
            params in proptest::collection::vec((0..3usize, proptest::prop_oneof![0..4u64, Just(Rate::MAX), Just(Rate::MAX + 1)]), 0..3),
        ) {
            let names = ["burst", "max_debt", "other"];
            let args: Vec<String> = params.iter().map(|(p, v)| format!("{} = {v}", names[*p])).collect();
            let spec = format!("{}({})", STRATEGIES[index].name, args.join(", "));
            if let Ok(parsed) = grammar::parse(&spec) {
                proptest::prop_assert!(StrategyKind::ALL[parsed.index].build_with(&parsed.params).is_ok(), "{}", spec);
            }
        }
    }

    #[test]
    fn every_name_builds_its_strategy() {
        for kind in StrategyKind::ALL {
            assert_eq!(from_name(kind.name()).unwrap().name(), kind.name());
            assert_eq!(from_name(&format!("  {kind}( ) ")).unwrap().name(), kind.name());
        }
    }

    #[test]
    fn parameters_are_applied() {
        let rate = Rate::per_second(10);
        assert_eq!(from_name("token_bucket(burst=15)").unwrap().capacity(rate), 15);
        assert_eq!(from_name("token_bucket(burst = 1_000,)").unwrap().capacity(rate), 1_000);
        assert_eq!(from_name("gcra(burst = 3)").unwrap().capacity(rate), 3);
        assert_eq!(from_name("token_bucket_debt(max_debt = 5)").unwrap().capacity(rate), 15);
        assert_eq!(from_name("token_bucket_debt").unwrap().capacity(rate), 10);
    }

    #[test]
    fn errors_name_the_problem_and_the_choices() {
        let message = |spec: &str| from_name(spec).map(|_| ()).unwrap_err().to_string();
        assert_eq!(
            message("sliding_window"),
            "unknown strategy `sliding_window`; expected one of `fixed_window`, `sliding_window_counter`, \
             `sliding_window_log`, `token_bucket`, `token_bucket_debt`, `leaky_bucket`, `leaky_bucket_queue`, \
             `gcra` (did you mean `sliding_window_counter`?)"
        );
        assert!(message("Leaky-Bucket-With-Queue").ends_with("(did you mean `leaky_bucket_queue`?)"));
        assert!(message("zzz").ends_with("`gcra`"));
        assert_eq!(message("gcra(tolerance = 5)"), "strategy `gcra` has no parameter `tolerance`; expected `burst`");
        assert_eq!(
            message("token_bucket_debt(debt = 5)"),
            "strategy `token_bucket_debt` has no parameter `debt`; expected `burst` or `max_debt`"
        );
        assert_eq!(
            message("leaky_bucket(burst = 5)"),
            "strategy `leaky_bucket` has no parameter `burst`; it takes no parameters"
        );
        assert_eq!(message("gcra(burst = 1, burst = 2)"), "parameter `burst` of strategy `gcra` is given twice");
        assert_eq!(
            message("gcra(burst = -1)"),
            "invalid value `-1` for parameter `burst` of strategy `gcra`; expected a whole number"
        );
        assert_eq!(
            message("token_bucket(burst = 0)"),
            "invalid parameter of strategy `token_bucket`: `burst` must be at least 1"
        );
        assert_eq!(
            message("gcra(burst = 5"),
            "invalid strategy \"gcra(burst = 5\": missing the closing `)`; expected `name` or `name(param = value, ...)`"
        );
        assert!(message("gcra(burst)").contains("expected `param = value`"));
        assert!(message("(burst = 1)").contains("missing the strategy name"));
        assert!(message("").contains("missing the strategy name"));
    }
}
