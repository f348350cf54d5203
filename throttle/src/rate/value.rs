//! [`Rate`] itself: a limit per period.

use super::grammar_error::ParseRateError;
use super::{InvalidRate, grammar};
use core::fmt;
use core::str::FromStr;
use core::time::Duration;

/// A limit per period, e.g. 100 per minute. `Copy`, cheap, and comparable.
///
/// Build one with a `const fn` constructor, parse one from a string, or (with the
/// `macros` feature) check one at compile time with [`rate!`](crate::rate!).
///
/// ```
/// use throttle::Rate;
/// use std::time::Duration;
///
/// const API: Rate = Rate::per_minute(100);
/// assert_eq!(API.limit(), 100);
/// assert_eq!(API.period(), Duration::from_secs(60));
///
/// let parsed: Rate = "100 per 1h30m".parse()?;
/// assert_eq!(parsed.period_ms(), 5_400_000);
/// assert_eq!(parsed.to_string(), "100/90min");
/// assert!("unlimited".parse::<Rate>()?.is_unlimited());
/// # Ok::<(), throttle::rate::ParseRateError>(())
/// ```
///
/// A limit of 0 built with a constructor is a closed gate: every hit is rejected. The
/// string grammar refuses `"0/min"` because it is almost always a typo.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rate {
    limit: u64,
    period_ms: u64,
}

impl Rate {
    /// No limit at all: throttles with this rate never touch their backend.
    pub const UNLIMITED: Rate = Rate { limit: 0, period_ms: 0 };

    /// The largest limit or period (ms) a rate may have: 2^53 - 1, so values survive
    /// a Lua double in the Redis backend.
    pub const MAX: u64 = grammar::MAX_VALUE;

    /// `limit` per `period`, checked: the period must be at least 1 ms, and both
    /// values at most [`Rate::MAX`].
    ///
    /// ```
    /// use throttle::Rate;
    /// use std::time::Duration;
    /// assert!(Rate::new(10, Duration::from_secs(1)).is_ok());
    /// assert!(Rate::new(10, Duration::ZERO).is_err());
    /// ```
    pub const fn new(limit: u64, period: Duration) -> Result<Rate, InvalidRate> {
        let ms = period.as_millis();
        if ms == 0 {
            return Err(InvalidRate::ZeroPeriod);
        }
        if limit > Self::MAX || ms > Self::MAX as u128 {
            return Err(InvalidRate::TooLarge);
        }
        Ok(Rate { limit, period_ms: ms as u64 })
    }

    /// `limit` per `period_ms` milliseconds, saturated into the valid range
    /// (a 0 ms period becomes 1 ms; values above [`Rate::MAX`] become `MAX`).
    pub const fn per_millis(limit: u64, period_ms: u64) -> Rate {
        let limit = if limit > Self::MAX { Self::MAX } else { limit };
        let period_ms = match period_ms {
            0 => 1,
            p if p > Self::MAX => Self::MAX,
            p => p,
        };
        Rate { limit, period_ms }
    }

    /// `limit` per second.
    pub const fn per_second(limit: u64) -> Rate {
        Self::per_millis(limit, 1_000)
    }

    /// `limit` per minute.
    pub const fn per_minute(limit: u64) -> Rate {
        Self::per_millis(limit, 60_000)
    }

    /// `limit` per hour.
    pub const fn per_hour(limit: u64) -> Rate {
        Self::per_millis(limit, 3_600_000)
    }

    /// `limit` per day.
    pub const fn per_day(limit: u64) -> Rate {
        Self::per_millis(limit, 86_400_000)
    }

    /// The quota per period (0 for [`Rate::UNLIMITED`]).
    pub const fn limit(&self) -> u64 {
        self.limit
    }

    /// The period in milliseconds (0 for [`Rate::UNLIMITED`]).
    pub const fn period_ms(&self) -> u64 {
        self.period_ms
    }

    /// The period as a [`Duration`].
    pub const fn period(&self) -> Duration {
        Duration::from_millis(self.period_ms)
    }

    /// `true` for [`Rate::UNLIMITED`].
    pub const fn is_unlimited(&self) -> bool {
        self.period_ms == 0
    }

    /// `true` when the period is shorter than a second.
    pub const fn is_subsecond(&self) -> bool {
        !self.is_unlimited() && self.period_ms < 1_000
    }

    /// Builds a rate from parts the macro already validated with the same grammar.
    #[doc(hidden)]
    pub const fn __from_parts(limit: u64, period_ms: u64) -> Rate {
        Rate { limit, period_ms }
    }
}

impl FromStr for Rate {
    type Err = ParseRateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match grammar::parse(s) {
            Ok(grammar::ParsedRate::Unlimited) => Ok(Rate::UNLIMITED),
            Ok(grammar::ParsedRate::Limited { limit, period_ms }) => Ok(Rate { limit, period_ms }),
            Err(kind) => Err(ParseRateError::new(s, kind)),
        }
    }
}

impl TryFrom<&str> for Rate {
    type Error = ParseRateError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for Rate {
    /// Canonical form: `"100/min"`, `"10/10s"`, `"100/90min"`, `"unlimited"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_unlimited() {
            return f.write_str("unlimited");
        }
        match grammar::canonical_period(self.period_ms) {
            (1, unit) => write!(f, "{}/{unit}", self.limit),
            (n, unit) => write!(f, "{}/{n}{unit}", self.limit),
        }
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rate({self})")
    }
}
