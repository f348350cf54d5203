//! The errors of [`Rate`](crate::Rate) (how much cost a client may spend per
//! period): a rate string that does not parse, a constructor argument out of range.

#[cfg(test)]
mod tests;
pub(crate) mod value;

use throttle_grammar::rate as grammar;
#[cfg(test)]
use value::Rate;

pub use grammar_error::ParseRateError;

/// A [`Rate::new`](crate::Rate::new) argument out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRate {
    /// The period rounds down to 0 ms.
    #[error("rate period must be at least 1 millisecond")]
    ZeroPeriod,
    /// The limit or period exceeds [`Rate::MAX`](crate::Rate::MAX).
    #[error("rate limit and period (ms) must each be at most 2^53 - 1")]
    TooLarge,
}

mod grammar_error {
    use super::grammar::RateSyntaxError;
    use core::fmt;

    /// A rate string that does not parse. The message names the problem and the fix.
    ///
    /// ```
    /// let err = "100/mins!".parse::<throttle::Rate>().unwrap_err();
    /// assert!(err.to_string().contains("cannot read period"));
    /// let err = "5/weeks".parse::<throttle::Rate>().unwrap_err();
    /// assert!(err.to_string().contains("unknown time unit `weeks`"));
    /// ```
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct ParseRateError {
        input: String,
        kind: RateSyntaxError,
    }

    impl ParseRateError {
        pub(super) fn new(input: &str, kind: RateSyntaxError) -> Self {
            Self { input: input.to_string(), kind }
        }

        /// The string that failed to parse.
        pub fn input(&self) -> &str {
            &self.input
        }
    }

    impl fmt::Display for ParseRateError {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "invalid rate {:?}: {}", self.input, self.kind)
        }
    }

    impl std::error::Error for ParseRateError {}
}
