//! The rate-string grammar of `Rate::from_str`, `#[throttle(rate = "...")]` and `rate!`.
//!
//! ```text
//! rate    := "unlimited" | limit sep period
//! sep     := "/" | "per"            (whitespace allowed around either)
//! limit   := digits                 ("_" allowed between digits, optional leading "+")
//! period  := part+                  (e.g. "min", "10s", "1h30m", "1h 30m")
//! part    := [digits] unit
//! unit    := ms | millisecond(s) | s | sec(s) | second(s) | m | min(s) | minute(s)
//!          | h | hr(s) | hour(s) | d | day(s)
//! ```
//!
//! Case-insensitive. Limits and periods are bounded by `MAX_VALUE` (2^53 - 1) so every
//! number survives a trip through a Lua double in the Redis backend.

use core::fmt;

/// Largest limit, cost or period (ms) accepted anywhere: 2^53 - 1.
pub const MAX_VALUE: u64 = (1 << 53) - 1;

const UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("millisecond", 1),
    ("milliseconds", 1),
    ("s", 1_000),
    ("sec", 1_000),
    ("secs", 1_000),
    ("second", 1_000),
    ("seconds", 1_000),
    ("m", 60_000),
    ("min", 60_000),
    ("mins", 60_000),
    ("minute", 60_000),
    ("minutes", 60_000),
    ("h", 3_600_000),
    ("hr", 3_600_000),
    ("hrs", 3_600_000),
    ("hour", 3_600_000),
    ("hours", 3_600_000),
    ("d", 86_400_000),
    ("day", 86_400_000),
    ("days", 86_400_000),
];

/// A successfully parsed rate string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParsedRate {
    /// `"unlimited"`.
    Unlimited,
    /// `limit` units of cost per `period_ms` milliseconds; both are non-zero.
    Limited { limit: u64, period_ms: u64 },
}

/// Why a rate string was refused. `Display` gives the rustc-style message shown by both
/// the runtime error and the macro's compile error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateSyntaxError {
    Empty,
    MissingSeparator,
    TooManySeparators,
    EmptyLimit,
    NegativeLimit,
    FractionalLimit,
    InvalidLimit(String),
    ZeroLimit,
    EmptyPeriod,
    UnknownUnit { unit: String, suggestion: Option<&'static str> },
    MissingUnit(String),
    FractionalPeriod,
    NegativePeriod,
    InvalidPeriod(String),
    ZeroMultiplier,
    Overflow,
}

impl fmt::Display for RateSyntaxError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const FORM: &str = "expected `<limit>/<period>` or `<limit> per <period>`, e.g. \"100/min\", \"5 per 10s\", \"1000/1h30m\" or \"unlimited\"";
        const VALID_UNITS: &str =
            "`ms`, `s`, `sec`, `second`, `m`, `min`, `minute`, `h`, `hr`, `hour`, `d`, `day` (plurals accepted)";
        match self {
            Self::Empty => write!(f, "rate string is empty; {FORM}"),
            Self::MissingSeparator => write!(f, "rate has no `/` or `per` separator; {FORM}"),
            Self::TooManySeparators => {
                write!(f, "rate has more than one `/` or `per` separator; {FORM}")
            }
            Self::EmptyLimit => write!(f, "rate has no limit before the separator; {FORM}"),
            Self::NegativeLimit => write!(f, "rate limit cannot be negative"),
            Self::FractionalLimit => {
                write!(
                    f,
                    "rate limit must be a whole number, e.g. \"5/s\" rather than \"0.5/s\" (write \"1/2s\" instead)"
                )
            }
            Self::InvalidLimit(s) => write!(f, "rate limit `{s}` is not a whole number; {FORM}"),
            Self::ZeroLimit => write!(
                f,
                "a rate limit of 0 admits nothing; use a positive limit, or \"unlimited\" to disable limiting"
            ),
            Self::EmptyPeriod => write!(f, "rate has no period after the separator; {FORM}"),
            Self::UnknownUnit { unit, suggestion } => {
                write!(f, "unknown time unit `{unit}`; expected one of {VALID_UNITS}")?;
                if let Some(s) = suggestion {
                    write!(f, " (did you mean `{s}`?)")?;
                }
                Ok(())
            }
            Self::MissingUnit(n) => {
                write!(f, "period `{n}` has no time unit; write e.g. \"{n}s\" or \"{n}min\"")
            }
            Self::FractionalPeriod => {
                write!(f, "period multipliers must be whole numbers; write \"1500ms\" rather than \"1.5s\"")
            }
            Self::NegativePeriod => write!(f, "rate period cannot be negative"),
            Self::InvalidPeriod(s) => {
                write!(f, "cannot read period `{s}`; expected e.g. \"min\", \"10s\" or \"1h30m\"")
            }
            Self::ZeroMultiplier => {
                write!(f, "period multiplier must be positive; \"0s\" is not a period")
            }
            Self::Overflow => {
                write!(f, "rate is too large: limit and period must each stay below 2^53 (period in milliseconds)")
            }
        }
    }
}

/// Parses a rate string. Never panics, whatever the input.
pub fn parse(input: &str) -> Result<ParsedRate, RateSyntaxError> {
    let lowered = input.trim().to_ascii_lowercase();
    if lowered.is_empty() {
        return Err(RateSyntaxError::Empty);
    }
    if lowered == "unlimited" {
        return Ok(ParsedRate::Unlimited);
    }
    let (limit_str, period_str) = split_separator(&lowered)?;
    let limit = parse_limit(limit_str.trim())?;
    let period_ms = parse_period(period_str.trim())?;
    if limit == 0 {
        return Err(RateSyntaxError::ZeroLimit);
    }
    Ok(ParsedRate::Limited { limit, period_ms })
}

fn split_separator(s: &str) -> Result<(&str, &str), RateSyntaxError> {
    let slashes = s.matches('/').count();
    let pers = s.matches("per").count();
    match (slashes, pers) {
        (1, 0) => Ok(s.split_once('/').unwrap_or((s, ""))),
        (0, 1) => Ok(s.split_once("per").unwrap_or((s, ""))),
        (0, 0) => Err(RateSyntaxError::MissingSeparator),
        _ => Err(RateSyntaxError::TooManySeparators),
    }
}

fn parse_limit(s: &str) -> Result<u64, RateSyntaxError> {
    if s.is_empty() {
        return Err(RateSyntaxError::EmptyLimit);
    }
    if s.starts_with('-') {
        return Err(RateSyntaxError::NegativeLimit);
    }
    let digits = s.strip_prefix('+').unwrap_or(s);
    if digits.contains('.') && digits.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(RateSyntaxError::FractionalLimit);
    }
    parse_number(digits).ok_or_else(|| match parse_number_overflows(digits) {
        true => RateSyntaxError::Overflow,
        false => RateSyntaxError::InvalidLimit(s.to_string()),
    })
}

/// Digits with optional `_` between them (`1_000`), bounded by `MAX_VALUE`.
fn parse_number(s: &str) -> Option<u64> {
    let bytes = s.as_bytes();
    let well_formed = !bytes.is_empty()
        && bytes[0].is_ascii_digit()
        && bytes[bytes.len() - 1].is_ascii_digit()
        && bytes.iter().all(|b| b.is_ascii_digit() || *b == b'_')
        && !s.contains("__");
    if !well_formed {
        return None;
    }
    let mut value: u64 = 0;
    for b in bytes.iter().filter(|b| b.is_ascii_digit()) {
        value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    (value <= MAX_VALUE).then_some(value)
}

/// Whether `s` is a well-formed number that is merely too large.
fn parse_number_overflows(s: &str) -> bool {
    let well_formed = s.starts_with(|c: char| c.is_ascii_digit())
        && s.ends_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_ascii_digit() || c == '_')
        && !s.contains("__");
    well_formed && parse_number(s).is_none()
}

fn parse_period(s: &str) -> Result<u64, RateSyntaxError> {
    if s.is_empty() {
        return Err(RateSyntaxError::EmptyPeriod);
    }
    if s.starts_with('-') {
        return Err(RateSyntaxError::NegativePeriod);
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut parts = 0;
    let mut bare_unit = false;
    while !rest.is_empty() {
        parts += 1;
        let digits_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'_').count();
        let (number, after_number) = rest.split_at(digits_len);
        let after_number = after_number.trim_start();
        if after_number.starts_with('.') {
            return Err(RateSyntaxError::FractionalPeriod);
        }
        let unit_len = after_number.bytes().take_while(u8::is_ascii_lowercase).count();
        let (unit, after_unit) = after_number.split_at(unit_len);
        if unit.is_empty() {
            return Err(if after_number.is_empty() && !number.is_empty() {
                RateSyntaxError::MissingUnit(number.to_string())
            } else {
                RateSyntaxError::InvalidPeriod(s.to_string())
            });
        }
        let multiplier = match number {
            "" => {
                bare_unit = true;
                1
            }
            n => match parse_number(n) {
                Some(0) => return Err(RateSyntaxError::ZeroMultiplier),
                Some(v) => v,
                None if parse_number_overflows(n) => return Err(RateSyntaxError::Overflow),
                None => return Err(RateSyntaxError::InvalidPeriod(s.to_string())),
            },
        };
        let unit_ms = unit_millis(unit)
            .ok_or_else(|| RateSyntaxError::UnknownUnit { unit: unit.to_string(), suggestion: suggest_unit(unit) })?;
        total = multiplier
            .checked_mul(unit_ms)
            .and_then(|part| total.checked_add(part))
            .filter(|t| *t <= MAX_VALUE)
            .ok_or(RateSyntaxError::Overflow)?;
        rest = after_unit.trim_start();
        if let Some(c) = rest.chars().next() {
            if !c.is_ascii_digit() && !c.is_ascii_lowercase() {
                return Err(RateSyntaxError::InvalidPeriod(s.to_string()));
            }
        }
    }
    // A bare unit ("min") stands alone; compound periods spell every number ("1h30m").
    if parts > 1 && bare_unit {
        return Err(RateSyntaxError::InvalidPeriod(s.to_string()));
    }
    Ok(total)
}

fn unit_millis(unit: &str) -> Option<u64> {
    UNITS.iter().find(|(name, _)| *name == unit).map(|(_, ms)| *ms)
}

/// The closest known unit, if it is close enough to be a typo.
fn suggest_unit(unit: &str) -> Option<&'static str> {
    let names: Vec<&'static str> = UNITS.iter().map(|(name, _)| *name).collect();
    crate::suggest::did_you_mean(unit, &names)
}

/// Canonical text of a limited rate: the largest unit that divides the period exactly.
pub fn canonical_period(period_ms: u64) -> (u64, &'static str) {
    const CANONICAL: &[(u64, &str)] = &[(86_400_000, "d"), (3_600_000, "h"), (60_000, "min"), (1_000, "s"), (1, "ms")];
    CANONICAL.iter().find(|(ms, _)| period_ms % ms == 0).map_or((period_ms, "ms"), |(ms, unit)| (period_ms / ms, *unit))
}
