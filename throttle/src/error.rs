//! Typed errors: configuration mistakes, bad per-call input, and backend failures.

use crate::backend::BackendError;
use crate::headers::HeaderError;
use crate::rate::ParseRateError;
use crate::rejection::Throttled;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A throttle (or backend) could not be built as configured.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The uid is empty, too long or has characters outside `[A-Za-z0-9_-.:/]`.
    #[error("invalid throttle uid {uid:?}: {reason}")]
    InvalidUid {
        /// The refused uid.
        uid: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Another live throttle already has this uid.
    #[error(
        "throttle uid {uid:?} is already registered by {existing}; every throttle needs a unique uid (this one: {new})"
    )]
    DuplicateUid {
        /// The uid in use.
        uid: String,
        /// Where the registered throttle was built.
        existing: String,
        /// Where the refused throttle was built.
        new: String,
    },
    /// No rate was given.
    #[error("throttle {uid:?} has no rate; call `.rate(\"100/min\")` or `.rate_fn(..)`")]
    MissingRate {
        /// The throttle's uid.
        uid: String,
    },
    /// The rate string does not parse.
    #[error(transparent)]
    Rate(#[from] ParseRateError),
    /// The strategy name or its parameters are invalid.
    #[error(transparent)]
    Strategy(#[from] crate::strategy::ParseStrategyError),
    /// The default cost is invalid.
    #[error(transparent)]
    Cost(#[from] InvalidCost),
    /// A header name or value is invalid.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A trusted-proxy range or IPv6 prefix is invalid.
    #[error("invalid IP range {range:?}: {reason}")]
    InvalidIpRange {
        /// The refused range.
        range: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A path glob of a rule is invalid.
    #[error("invalid path glob {glob:?}: {reason}")]
    InvalidGlob {
        /// The refused glob.
        glob: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An in-flight limit's options are invalid (no maximum, a zero lease, ...).
    #[error("in-flight limit {uid:?}: {reason}")]
    InvalidInFlight {
        /// The limit's uid.
        uid: String,
        /// What is wrong, and the fix.
        reason: String,
    },
    /// The backend namespace is invalid.
    #[error("invalid backend namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        /// The refused namespace.
        namespace: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The size given to `track_top_denied` is 0 or above
    /// [`MAX_TOP_DENIED`](crate::throttles::MAX_TOP_DENIED).
    #[error(
        "throttle {uid:?} cannot track the top {size} denied clients: the list holds from 1 to {max} clients",
        max = crate::throttles::MAX_TOP_DENIED
    )]
    TopDeniedSize {
        /// The throttle's uid.
        uid: String,
        /// The refused size.
        size: usize,
    },
}

/// A cost that no hit can have: negative, or above 2^53 - 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidCost {
    /// Costs cannot be negative.
    #[error("cost cannot be negative (got {0})")]
    Negative(i128),
    /// Costs are at most 2^53 - 1.
    #[error("cost {0} is too large; costs are at most 2^53 - 1")]
    TooLarge(u128),
}

/// A validated cost: between 0 (a no-op) and 2^53 - 1.
///
/// Built from any integer with `try_from`; [`Hit::cost`](crate::throttles::Hit::cost) does it for you.
///
/// ```
/// use throttle::Cost;
/// assert_eq!(Cost::try_from(5).unwrap().get(), 5);
/// assert!(Cost::try_from(-1).is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Cost(u64);

impl Cost {
    /// The largest cost.
    pub const MAX: u64 = crate::Rate::MAX;

    /// The value.
    pub const fn get(self) -> u64 {
        self.0
    }

    fn from_i128(n: i128) -> Result<Cost, InvalidCost> {
        if n < 0 {
            return Err(InvalidCost::Negative(n));
        }
        if n as u128 > u128::from(Self::MAX) {
            return Err(InvalidCost::TooLarge(n as u128));
        }
        Ok(Cost(n as u64))
    }
}

macro_rules! cost_from_ints {
    ($($int:ty),*) => {$(
        impl TryFrom<$int> for Cost {
            type Error = InvalidCost;
            fn try_from(n: $int) -> Result<Cost, InvalidCost> {
                match i128::try_from(n) {
                    Ok(n) => Cost::from_i128(n),
                    Err(_) => Err(InvalidCost::TooLarge(n as u128)),
                }
            }
        }
    )*};
}
cost_from_ints!(i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);

/// Why a throttle call failed. Renders as a response: the 429 for [`Throttled`]; a
/// 429 without `Retry-After` for a cost above capacity (no wait would help); a 500 for
/// the others (server-side mistakes or outages).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ThrottleError {
    /// The client is over its limit.
    #[error(transparent)]
    Throttled(Box<Throttled>),
    /// The per-call cost is invalid.
    #[error(transparent)]
    InvalidCost(#[from] InvalidCost),
    /// The cost is larger than the strategy could ever admit in one hit.
    #[error("cost {cost} exceeds the capacity {capacity} of throttle {uid:?}; no wait would ever admit it")]
    CostExceedsCapacity {
        /// The throttle's uid.
        uid: String,
        /// The cost asked for.
        cost: u64,
        /// The most one hit can be admitted with.
        capacity: u64,
    },
    /// The throttle could not be built: a generated static throttle whose options
    /// are refused at first use (a duplicate uid, say).
    #[error("throttle {throttle} could not be built: {error}")]
    NotBuilt {
        /// Which throttle (the static and its handler).
        throttle: String,
        /// Why.
        error: ConfigError,
    },
    /// The backend failed and the error policy is [`OnError::Raise`](crate::OnError::Raise).
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl ThrottleError {
    /// The rejection, when this is one.
    pub fn as_throttled(&self) -> Option<&Throttled> {
        match self {
            ThrottleError::Throttled(t) => Some(t),
            _ => None,
        }
    }
}

impl From<Throttled> for ThrottleError {
    fn from(t: Throttled) -> Self {
        ThrottleError::Throttled(Box::new(t))
    }
}

impl IntoResponse for ThrottleError {
    fn into_response(self) -> Response {
        match self {
            ThrottleError::Throttled(t) => t.into_response(),
            // No wait would help, so a 429 without Retry-After that says why.
            ThrottleError::CostExceedsCapacity { cost, capacity, .. } => {
                let detail = format!("This request costs {cost}, more than the limit of {capacity} allows.");
                (StatusCode::TOO_MANY_REQUESTS, detail).into_response()
            }
            other => {
                crate::log::event!(error, "throttle: {other}");
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
        }
    }
}
