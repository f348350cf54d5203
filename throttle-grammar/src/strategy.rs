//! The strategy-spec grammar: `"name"` or `"name(param = value, ...)"`, e.g.
//! `"token_bucket(burst = 15)"`, with the table of built-in strategies and their
//! parameters. Values are checked here too, so an accepted spec always builds.

use crate::rate::MAX_VALUE;
use crate::suggest::{did_you_mean, one_of};
use core::fmt;

/// A parameter of a built-in strategy: a whole number from `min` to 2^53 - 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Its name in a spec.
    pub name: &'static str,
    /// The smallest accepted value.
    pub min: u64,
}

/// A built-in strategy: its name and the parameters it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Strategy {
    /// The name in a spec, as the runtime's `StrategyKind::name` reports it.
    pub name: &'static str,
    /// The runtime's `StrategyKind` variant (a test holds the two to each other).
    pub variant: &'static str,
    /// The parameters it takes, all optional.
    pub params: &'static [Param],
}

const BURST: Param = Param { name: "burst", min: 1 };
const MAX_DEBT: Param = Param { name: "max_debt", min: 0 };

/// Every built-in strategy, in the order of the documentation (and of the runtime's
/// `StrategyKind::ALL`, which a test holds to this table).
pub const STRATEGIES: [Strategy; 8] = [
    Strategy { name: "fixed_window", variant: "FixedWindow", params: &[] },
    Strategy { name: "sliding_window_counter", variant: "SlidingWindowCounter", params: &[] },
    Strategy { name: "sliding_window_log", variant: "SlidingWindowLog", params: &[] },
    Strategy { name: "token_bucket", variant: "TokenBucket", params: &[BURST] },
    Strategy { name: "token_bucket_debt", variant: "TokenBucketDebt", params: &[BURST, MAX_DEBT] },
    Strategy { name: "leaky_bucket", variant: "LeakyBucket", params: &[] },
    Strategy { name: "leaky_bucket_queue", variant: "LeakyBucketQueue", params: &[] },
    Strategy { name: "gcra", variant: "Gcra", params: &[BURST] },
];

/// A spec the grammar accepted: the strategy (an index into [`STRATEGIES`]) and the
/// parameters given, each valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrategySpec {
    /// Index into [`STRATEGIES`].
    pub index: usize,
    /// `(name, value)` in the order written; no name twice.
    pub params: Vec<(&'static str, u64)>,
}

impl StrategySpec {
    /// The strategy named.
    pub fn strategy(&self) -> Strategy {
        STRATEGIES[self.index]
    }
}

/// A parameter value out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidStrategyParam {
    /// A burst of 0 would admit nothing.
    ZeroBurst,
    /// The value exceeds 2^53 - 1.
    TooLarge {
        /// The parameter.
        param: &'static str,
        /// The refused value.
        value: u64,
    },
}

impl fmt::Display for InvalidStrategyParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidStrategyParam::ZeroBurst => f.write_str("`burst` must be at least 1"),
            InvalidStrategyParam::TooLarge { param, value } => {
                write!(f, "`{param}` is {value}, above the maximum 2^53 - 1")
            }
        }
    }
}

impl std::error::Error for InvalidStrategyParam {}

/// Checks one parameter's value against its range.
pub fn check_param(param: Param, value: u64) -> Result<(), InvalidStrategyParam> {
    if value > MAX_VALUE {
        return Err(InvalidStrategyParam::TooLarge { param: param.name, value });
    }
    if value < param.min {
        return Err(InvalidStrategyParam::ZeroBurst);
    }
    Ok(())
}

/// A strategy name or parameter list that cannot be used. The message lists what is
/// valid.
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
        strategy: &'static str,
        /// The parameter given.
        param: String,
    },
    /// A parameter is given twice.
    DuplicateParam {
        /// The strategy.
        strategy: &'static str,
        /// The repeated parameter.
        param: String,
    },
    /// A parameter's value is not a whole number.
    BadValue {
        /// The strategy.
        strategy: &'static str,
        /// The parameter.
        param: String,
        /// The value given.
        value: String,
    },
    /// A parameter's value is out of range.
    Param {
        /// The strategy.
        strategy: &'static str,
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
                let names = STRATEGIES.map(|s| s.name);
                let list: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
                write!(f, "unknown strategy `{name}`; expected one of {}", list.join(", "))?;
                match suggest(name) {
                    Some(name) => write!(f, " (did you mean `{name}`?)"),
                    None => Ok(()),
                }
            }
            ParseStrategyError::UnknownParam { strategy, param } => {
                write!(f, "strategy `{strategy}` has no parameter `{param}`; ")?;
                let params: Vec<&str> = find(strategy).map_or(&[][..], |s| s.params).iter().map(|p| p.name).collect();
                if params.is_empty() {
                    return f.write_str("it takes no parameters");
                }
                write!(f, "expected {}", one_of(&params))?;
                match did_you_mean(param, &params) {
                    Some(name) => write!(f, " (did you mean `{name}`?)"),
                    None => Ok(()),
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

fn find(name: &str) -> Option<Strategy> {
    STRATEGIES.into_iter().find(|s| s.name == name)
}

/// The built-in name closest to `name` (spelled with `-`, spaces, capitals or `_with_`),
/// if it is close enough to be a typo.
fn suggest(name: &str) -> Option<&'static str> {
    let normalized: String =
        name.chars().map(|c| if c == '-' || c == ' ' { '_' } else { c.to_ascii_lowercase() }).collect();
    did_you_mean(&normalized.replace("_with_", "_"), &STRATEGIES.map(|s| s.name))
}

/// Parses a spec. Never panics, whatever the input.
///
/// ```
/// use throttle_grammar::strategy::{STRATEGIES, parse};
///
/// let spec = parse("token_bucket_debt(burst = 20, max_debt = 5)")?;
/// assert_eq!(STRATEGIES[spec.index].name, "token_bucket_debt");
/// assert_eq!(spec.params, [("burst", 20), ("max_debt", 5)]);
/// assert!(parse("gcra(burst = 0)").is_err());
/// # Ok::<(), throttle_grammar::strategy::ParseStrategyError>(())
/// ```
pub fn parse(spec: &str) -> Result<StrategySpec, ParseStrategyError> {
    let syntax = |reason| ParseStrategyError::Syntax { input: spec.to_string(), reason };
    let trimmed = spec.trim();
    let (name, args) = match trimmed.split_once('(') {
        None => (trimmed, ""),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(args) => (name.trim(), args),
            None => return Err(syntax("missing the closing `)`")),
        },
    };
    if name.is_empty() {
        return Err(syntax("missing the strategy name"));
    }
    let index = STRATEGIES
        .iter()
        .position(|s| s.name == name)
        .ok_or_else(|| ParseStrategyError::Unknown { name: name.to_string() })?;
    let strategy = STRATEGIES[index];
    let mut params: Vec<(&'static str, u64)> = Vec::new();
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
            let Some(known) = strategy.params.iter().find(|p| p.name == param) else {
                return Err(ParseStrategyError::UnknownParam { strategy: strategy.name, param: param.to_string() });
            };
            if params.iter().any(|(p, _)| *p == param) {
                return Err(ParseStrategyError::DuplicateParam { strategy: strategy.name, param: param.to_string() });
            }
            let bad_value = || ParseStrategyError::BadValue {
                strategy: strategy.name,
                param: param.to_string(),
                value: value.to_string(),
            };
            let digits = value.replace('_', "");
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad_value());
            }
            let parsed = digits.parse::<u64>().map_err(|_| ParseStrategyError::Param {
                strategy: strategy.name,
                source: InvalidStrategyParam::TooLarge { param: known.name, value: u64::MAX },
            })?;
            check_param(*known, parsed)
                .map_err(|source| ParseStrategyError::Param { strategy: strategy.name, source })?;
            params.push((known.name, parsed));
        }
    }
    Ok(StrategySpec { index, params })
}
