//! Choosing a built-in strategy by name, with parameters: [`from_name`] and
//! [`StrategyKind`].

use super::{
    DynStrategy, FixedWindow, Gcra, LeakyBucket, LeakyBucketQueue, SlidingWindowCounter, SlidingWindowLog, TokenBucket,
    TokenBucketDebt,
};
use crate::rate::grammar::edit_distance;
use core::fmt;
use core::str::FromStr;
use std::sync::Arc;

/// The built-in strategies, by name.
///
/// ```
/// use throttle::strategy::StrategyKind;
///
/// let kind: StrategyKind = "leaky_bucket".parse()?;
/// assert_eq!(kind, StrategyKind::LeakyBucket);
/// assert_eq!(kind.build().name(), "leaky_bucket");
/// assert_eq!(StrategyKind::TokenBucketDebt.params(), ["burst", "max_debt"]);
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
        match self {
            StrategyKind::FixedWindow => "fixed_window",
            StrategyKind::SlidingWindowCounter => "sliding_window_counter",
            StrategyKind::SlidingWindowLog => "sliding_window_log",
            StrategyKind::TokenBucket => "token_bucket",
            StrategyKind::TokenBucketDebt => "token_bucket_debt",
            StrategyKind::LeakyBucket => "leaky_bucket",
            StrategyKind::LeakyBucketQueue => "leaky_bucket_queue",
            StrategyKind::Gcra => "gcra",
        }
    }

    /// The parameters the strategy accepts (all whole numbers, all optional).
    pub const fn params(self) -> &'static [&'static str] {
        match self {
            StrategyKind::TokenBucket | StrategyKind::Gcra => &["burst"],
            StrategyKind::TokenBucketDebt => &["burst", "max_debt"],
            _ => &[],
        }
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
            if !self.params().contains(param) {
                return Err(ParseStrategyError::UnknownParam { strategy: self, param: (*param).to_string() });
            }
            if params[..i].iter().any(|(p, _)| p == param) {
                return Err(ParseStrategyError::DuplicateParam { strategy: self, param: (*param).to_string() });
            }
        }
        let get = |name: &str| params.iter().find(|(p, _)| *p == name).map(|&(_, v)| v);
        let invalid = |source| ParseStrategyError::Param { strategy: self, source };
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
    let syntax = |reason| ParseStrategyError::Syntax { input: spec.to_string(), reason };
    let trimmed = spec.trim();
    let (name, args) = match trimmed.split_once('(') {
        None => (trimmed, None),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(args) => (name.trim(), Some(args)),
            None => return Err(syntax("missing the closing `)`")),
        },
    };
    if name.is_empty() {
        return Err(syntax("missing the strategy name"));
    }
    let kind: StrategyKind = name.parse()?;
    let mut params = Vec::new();
    let args = args.unwrap_or("");
    if !args.trim().is_empty() {
        let mut pieces: Vec<&str> = args.split(',').collect();
        if pieces.len() > 1 && pieces.last().is_some_and(|p| p.trim().is_empty()) {
            pieces.pop(); // a trailing comma
        }
        for piece in pieces {
            let (param, value) = piece.split_once('=').ok_or_else(|| syntax("expected `param = value`"))?;
            let (param, value) = (param.trim(), value.trim());
            if param.is_empty() {
                return Err(syntax("expected `param = value`"));
            }
            let number = value.replace('_', "");
            let parsed = if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
                None
            } else {
                number.parse::<u64>().ok()
            };
            let Some(parsed) = parsed else {
                return Err(ParseStrategyError::BadValue {
                    strategy: kind,
                    param: param.to_string(),
                    value: value.to_string(),
                });
            };
            params.push((param, parsed));
        }
    }
    kind.build_with(&params)
}

/// A strategy parameter out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidStrategyParam {
    /// A burst of 0 would admit nothing.
    #[error("`burst` must be at least 1")]
    ZeroBurst,
    /// The value exceeds [`Rate::MAX`](crate::Rate::MAX).
    #[error("`{param}` is {value}, above the maximum 2^53 - 1")]
    TooLarge {
        /// The parameter.
        param: &'static str,
        /// The refused value.
        value: u64,
    },
}

/// A strategy name or parameter list that [`from_name`] (or [`StrategyKind`]'s
/// `FromStr`) cannot use. The message lists what is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseStrategyError {
    /// No built-in strategy has this name.
    Unknown {
        /// The name given.
        name: String,
    },
    /// The strategy has no such parameter.
    UnknownParam {
        /// The strategy.
        strategy: StrategyKind,
        /// The parameter given.
        param: String,
    },
    /// A parameter is given twice.
    DuplicateParam {
        /// The strategy.
        strategy: StrategyKind,
        /// The repeated parameter.
        param: String,
    },
    /// A parameter's value is not a whole number.
    BadValue {
        /// The strategy.
        strategy: StrategyKind,
        /// The parameter.
        param: String,
        /// The value given.
        value: String,
    },
    /// A parameter's value is out of range.
    Param {
        /// The strategy.
        strategy: StrategyKind,
        /// What is wrong.
        source: InvalidStrategyParam,
    },
    /// The text is not `name` or `name(param = value, ...)`.
    Syntax {
        /// The text given.
        input: String,
        /// What is wrong.
        reason: &'static str,
    },
}

impl fmt::Display for ParseStrategyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseStrategyError::Unknown { name } => {
                write!(f, "unknown strategy `{name}`; expected one of ")?;
                for (i, kind) in StrategyKind::ALL.iter().enumerate() {
                    let sep = if i == 0 { "" } else { ", " };
                    write!(f, "{sep}`{kind}`")?;
                }
                match suggest(name) {
                    Some(kind) => write!(f, " (did you mean `{kind}`?)"),
                    None => Ok(()),
                }
            }
            ParseStrategyError::UnknownParam { strategy, param } => {
                write!(f, "strategy `{strategy}` has no parameter `{param}`; ")?;
                match strategy.params() {
                    [] => write!(f, "it takes no parameters"),
                    params => {
                        f.write_str("expected ")?;
                        for (i, p) in params.iter().enumerate() {
                            let sep = if i == 0 { "" } else { " or " };
                            write!(f, "{sep}`{p}`")?;
                        }
                        Ok(())
                    }
                }
            }
            ParseStrategyError::DuplicateParam { strategy, param } => {
                write!(f, "parameter `{param}` of strategy `{strategy}` is given twice")
            }
            ParseStrategyError::BadValue { strategy, param, value } => write!(
                f,
                "invalid value `{value}` for parameter `{param}` of strategy `{strategy}`; expected a whole number"
            ),
            ParseStrategyError::Param { strategy, source } => {
                write!(f, "invalid parameter of strategy `{strategy}`: {source}")
            }
            ParseStrategyError::Syntax { input, reason } => {
                write!(f, "invalid strategy {input:?}: {reason}; expected `name` or `name(param = value, ...)`")
            }
        }
    }
}

impl std::error::Error for ParseStrategyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ParseStrategyError::Param { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The built-in name closest to `name`, if it is close enough to be a typo.
fn suggest(name: &str) -> Option<StrategyKind> {
    let normalized: String =
        name.chars().map(|c| if c == '-' || c == ' ' { '_' } else { c.to_ascii_lowercase() }).collect();
    let normalized = normalized.replace("_with_", "_");
    if normalized.len() >= 3 {
        if let Some(kind) = StrategyKind::ALL.into_iter().find(|kind| kind.name().starts_with(&normalized)) {
            return Some(kind);
        }
    }
    StrategyKind::ALL
        .into_iter()
        .map(|kind| (edit_distance(&normalized, kind.name()), kind))
        .filter(|&(distance, _)| distance <= 3)
        .min_by_key(|&(distance, _)| distance)
        .map(|(_, kind)| kind)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rate;

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
