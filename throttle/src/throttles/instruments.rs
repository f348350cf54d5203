//! A throttle's metric handles (see [`crate::metrics`]), registered once when it is
//! built; without the `metrics` feature every call is an empty inline function.

use crate::Rate;

/// What an [`OnError`](crate::OnError) policy made of a backend failure.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ErrorOutcome {
    Allowed,
    Throttled,
    Raised,
}

#[cfg(feature = "metrics")]
pub(crate) use enabled::{Instruments, Stopwatch};

#[cfg(not(feature = "metrics"))]
pub(crate) use disabled::{Instruments, Stopwatch};

/// A hit that left at most 20 % of the limit.
#[cfg_attr(not(feature = "metrics"), allow(dead_code))]
fn near_limit(remaining: u64, rate: Rate) -> bool {
    u128::from(remaining) * 5 <= u128::from(rate.limit())
}

#[cfg(feature = "metrics")]
mod enabled {
    use super::{ErrorOutcome, near_limit};
    use crate::Rate;
    use crate::metrics::{
        ADMITTED, BACKEND_ERRORS, BYPASSED, DECISION_SECONDS, EXEMPTED, NEAR_LIMIT, OUTCOME_LABEL, REFUNDED, REJECTED,
        SHADOW_REJECTED, THROTTLE_LABEL,
    };
    use metrics::{Counter, Histogram, counter, histogram};

    /// The handles, labelled with the uid.
    pub(crate) struct Instruments {
        admitted: Counter,
        rejected: Counter,
        shadow_rejected: Counter,
        exempted: Counter,
        bypassed: Counter,
        errors_allowed: Counter,
        errors_throttled: Counter,
        errors_raised: Counter,
        near_limit: Counter,
        refunded: Counter,
        decision: Histogram,
    }

    impl Instruments {
        pub(crate) fn new(uid: &str) -> Self {
            let uid = uid.to_string();
            let error = |outcome: &'static str| counter!(BACKEND_ERRORS, THROTTLE_LABEL => uid.clone(), OUTCOME_LABEL => outcome);
            Instruments {
                admitted: counter!(ADMITTED, THROTTLE_LABEL => uid.clone()),
                rejected: counter!(REJECTED, THROTTLE_LABEL => uid.clone()),
                shadow_rejected: counter!(SHADOW_REJECTED, THROTTLE_LABEL => uid.clone()),
                exempted: counter!(EXEMPTED, THROTTLE_LABEL => uid.clone()),
                bypassed: counter!(BYPASSED, THROTTLE_LABEL => uid.clone()),
                errors_allowed: error("allowed"),
                errors_throttled: error("throttled"),
                errors_raised: error("raised"),
                near_limit: counter!(NEAR_LIMIT, THROTTLE_LABEL => uid.clone()),
                refunded: counter!(REFUNDED, THROTTLE_LABEL => uid.clone()),
                decision: histogram!(DECISION_SECONDS, THROTTLE_LABEL => uid),
            }
        }

        pub(crate) fn admitted(&self, remaining: u64, rate: Rate) {
            self.admitted.increment(1);
            if near_limit(remaining, rate) {
                self.near_limit.increment(1);
            }
        }

        pub(crate) fn rejected(&self) {
            self.rejected.increment(1);
        }

        pub(crate) fn shadow_rejected(&self) {
            self.shadow_rejected.increment(1);
        }

        pub(crate) fn exempted(&self) {
            self.exempted.increment(1);
        }

        pub(crate) fn bypassed(&self) {
            self.bypassed.increment(1);
        }

        pub(crate) fn backend_error(&self, outcome: ErrorOutcome) {
            match outcome {
                ErrorOutcome::Allowed => &self.errors_allowed,
                ErrorOutcome::Throttled => &self.errors_throttled,
                ErrorOutcome::Raised => &self.errors_raised,
            }
            .increment(1);
        }

        pub(crate) fn refunded(&self) {
            self.refunded.increment(1);
        }

        /// Records the time since `started` as one decision.
        pub(crate) fn decided(&self, started: Stopwatch) {
            self.decision.record(started.0.elapsed().as_secs_f64());
        }
    }

    /// When a decision started.
    #[derive(Clone, Copy)]
    pub(crate) struct Stopwatch(quanta::Instant);

    impl Stopwatch {
        pub(crate) fn start() -> Self {
            Stopwatch(quanta::Instant::now())
        }
    }
}

#[cfg(not(feature = "metrics"))]
mod disabled {
    use super::ErrorOutcome;
    use crate::Rate;

    pub(crate) struct Instruments;

    impl Instruments {
        pub(crate) fn new(_uid: &str) -> Self {
            Instruments
        }
        #[inline(always)]
        pub(crate) fn admitted(&self, _remaining: u64, _rate: Rate) {}
        #[inline(always)]
        pub(crate) fn rejected(&self) {}
        #[inline(always)]
        pub(crate) fn shadow_rejected(&self) {}
        #[inline(always)]
        pub(crate) fn exempted(&self) {}
        #[inline(always)]
        pub(crate) fn bypassed(&self) {}
        #[inline(always)]
        pub(crate) fn backend_error(&self, _outcome: ErrorOutcome) {}
        #[inline(always)]
        pub(crate) fn refunded(&self) {}
        #[inline(always)]
        pub(crate) fn decided(&self, _started: Stopwatch) {}
    }

    #[derive(Clone, Copy)]
    pub(crate) struct Stopwatch;

    impl Stopwatch {
        #[inline(always)]
        pub(crate) fn start() -> Self {
            Stopwatch
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_the_limit_is_at_most_a_fifth_left() {
        let rate = Rate::per_minute(10);
        assert!(near_limit(2, rate));
        assert!(!near_limit(3, rate));
        assert!(near_limit(0, Rate::per_minute(1)));
        assert!(!near_limit(1, Rate::per_minute(4)));
    }
}
