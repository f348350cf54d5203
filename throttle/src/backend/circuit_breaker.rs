//! The circuit breaker of [`Failover`](super::Failover): closed (the primary decides),
//! open (the fallback decides, the primary is left alone), half-open (a few probes
//! try the primary again).

use crate::Clock;
use parking_lot::Mutex;

/// Where a [`Failover`](super::Failover)'s circuit breaker stands.
///
/// ```
/// use throttle::backend::MemoryBackend;
/// use throttle::backend::{CircuitState, Failover};
///
/// let failover = Failover::builder(MemoryBackend::new(), MemoryBackend::new()).build()?;
/// assert_eq!(failover.state(), CircuitState::Closed);
/// # Ok::<(), throttle::backend::InvalidBackendOption>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// The primary decides.
    Closed,
    /// The primary failed too often: the fallback decides until the cool-down ends.
    Open,
    /// The cool-down ended: a few probes go to the primary, the rest to the fallback.
    HalfOpen,
}

/// Thresholds, checked by the builder.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BreakerConfig {
    /// Consecutive failures that open the circuit (at least 1).
    pub(crate) failures: u32,
    /// How long the circuit stays open before probing (at least 1 ms).
    pub(crate) cool_down_ms: u64,
    /// Probes in flight at once while half-open (at least 1).
    pub(crate) probes: u32,
}

#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    config: BreakerConfig,
    clock: Clock,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    phase: Phase,
    /// Bumped on every change of phase: an outcome counts only in the phase its call
    /// started in, so a slow call from an earlier phase cannot flip the current one.
    epoch: u64,
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Closed { failures: u32 },
    Open { until_ms: u64 },
    HalfOpen { in_flight: u32 },
}

/// Leave to call the primary. Report how it went with [`succeeded`](Self::succeeded)
/// or [`failed`](Self::failed); dropped unreported (the caller gave up waiting), it
/// counts as a failure.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    breaker: &'a CircuitBreaker,
    epoch: u64,
    reported: bool,
}

impl CircuitBreaker {
    pub(crate) fn new(config: BreakerConfig, clock: Clock) -> Self {
        CircuitBreaker { config, clock, state: Mutex::new(State { phase: Phase::Closed { failures: 0 }, epoch: 0 }) }
    }

    pub(crate) fn state(&self) -> CircuitState {
        match self.state.lock().phase {
            Phase::Closed { .. } => CircuitState::Closed,
            Phase::Open { .. } => CircuitState::Open,
            Phase::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    pub(crate) fn cool_down_ms(&self) -> u64 {
        self.config.cool_down_ms
    }

    /// Leave to call the primary, or `None`: the fallback decides.
    pub(crate) fn attempt(&self) -> Option<Attempt<'_>> {
        let mut state = self.state.lock();
        match state.phase {
            Phase::Closed { .. } => {}
            Phase::Open { until_ms } if self.clock.now_ms() >= until_ms => {
                state.enter(Phase::HalfOpen { in_flight: 1 });
                crate::log::event!(info, "failover: cool-down over, probing the primary backend");
            }
            Phase::Open { .. } => return None,
            Phase::HalfOpen { ref mut in_flight } if *in_flight < self.config.probes => *in_flight += 1,
            Phase::HalfOpen { .. } => return None,
        }
        Some(Attempt { breaker: self, epoch: state.epoch, reported: false })
    }

    fn report(&self, epoch: u64, success: bool) {
        let mut state = self.state.lock();
        if state.epoch != epoch {
            return;
        }
        match (state.phase, success) {
            (Phase::Closed { failures: 0 }, true) => {}
            (Phase::Closed { .. }, true) => state.phase = Phase::Closed { failures: 0 },
            (Phase::Closed { failures }, false) if failures + 1 < self.config.failures => {
                state.phase = Phase::Closed { failures: failures + 1 };
            }
            (Phase::Closed { .. }, false) => {
                state.enter(Phase::Open { until_ms: self.clock.now_ms().saturating_add(self.config.cool_down_ms) });
                crate::log::event!(warn, "failover: primary backend failing, deciding on the fallback");
            }
            (Phase::HalfOpen { .. }, true) => {
                state.enter(Phase::Closed { failures: 0 });
                crate::log::event!(info, "failover: primary backend answered, deciding on it again");
            }
            (Phase::HalfOpen { .. }, false) => {
                state.enter(Phase::Open { until_ms: self.clock.now_ms().saturating_add(self.config.cool_down_ms) });
            }
            // Outcomes are issued only while closed or half-open.
            (Phase::Open { .. }, _) => {}
        }
    }

    /// The call was never made (the primary cannot decide these hits as one).
    fn release(&self, epoch: u64) {
        let mut state = self.state.lock();
        if let (true, Phase::HalfOpen { in_flight }) = (state.epoch == epoch, &mut state.phase) {
            *in_flight = in_flight.saturating_sub(1);
        }
    }
}

impl State {
    fn enter(&mut self, phase: Phase) {
        self.phase = phase;
        self.epoch += 1;
    }
}

impl Attempt<'_> {
    pub(crate) fn succeeded(mut self) {
        self.reported = true;
        self.breaker.report(self.epoch, true);
    }

    pub(crate) fn failed(mut self) {
        self.reported = true;
        self.breaker.report(self.epoch, false);
    }

    pub(crate) fn release(mut self) {
        self.reported = true;
        self.breaker.release(self.epoch);
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.reported {
            self.breaker.report(self.epoch, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    fn breaker(failures: u32, probes: u32) -> (CircuitBreaker, ManualClock) {
        let clock = ManualClock::new(0);
        let config = BreakerConfig { failures, cool_down_ms: 1_000, probes };
        (CircuitBreaker::new(config, clock.clone().into()), clock)
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let (breaker, _) = breaker(3, 1);
        for _ in 0..2 {
            breaker.attempt().unwrap().failed();
        }
        breaker.attempt().unwrap().succeeded(); // the streak is broken
        for _ in 0..2 {
            breaker.attempt().unwrap().failed();
        }
        assert_eq!(breaker.state(), CircuitState::Closed);
        breaker.attempt().unwrap().failed();
        assert_eq!(breaker.state(), CircuitState::Open);
        assert!(breaker.attempt().is_none(), "open: no call to the primary");
    }

    #[test]
    fn half_open_lets_a_limited_number_of_probes_through() {
        let (breaker, clock) = breaker(1, 2);
        breaker.attempt().unwrap().failed();
        clock.advance(Duration::from_millis(999));
        assert!(breaker.attempt().is_none(), "still cooling down");
        clock.advance(Duration::from_millis(1));
        let (first, second) = (breaker.attempt().unwrap(), breaker.attempt().unwrap());
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(breaker.attempt().is_none(), "two probes at most");
        first.failed();
        assert_eq!(breaker.state(), CircuitState::Open, "a failed probe reopens");
        second.succeeded();
        assert_eq!(breaker.state(), CircuitState::Open, "a probe of the last phase changes nothing");
        clock.advance(Duration::from_millis(1_000));
        breaker.attempt().unwrap().succeeded();
        assert_eq!(breaker.state(), CircuitState::Closed, "a successful probe closes");
    }

    #[test]
    fn an_abandoned_probe_is_a_failure_and_a_released_one_frees_its_place() {
        let (breaker, clock) = breaker(1, 1);
        breaker.attempt().unwrap().failed();
        clock.advance(Duration::from_millis(1_000));
        drop(breaker.attempt().unwrap());
        assert_eq!(breaker.state(), CircuitState::Open);
        clock.advance(Duration::from_millis(1_000));
        breaker.attempt().unwrap().release();
        assert_eq!(breaker.state(), CircuitState::HalfOpen);
        assert!(breaker.attempt().is_some(), "the released probe's place is free again");
    }
}
