//! [`Since`]: the moment a refund measures from.

use std::time::Instant;

/// A moment no later than an admitted hit, read before the hit went to its backend, on
/// the clock that backend decides with. A refund of the hit gives back only what the
/// hit can still hold after this moment (see [Refunds](crate::strategy#refunds)).
///
/// ```
/// use throttle::backend::{Backend, Since};
/// use throttle::backend::{ManualClock, MemoryBackend};
///
/// let clock = ManualClock::new(5_000);
/// let backend = MemoryBackend::builder().clock(clock).build()?;
/// assert_eq!(backend.since_now(), Since::Ms(5_000));
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Since {
    /// Milliseconds since the epoch, on the backend's own clock.
    Ms(u64),
    /// An instant on this process's monotonic clock, for a backend that decides on a
    /// clock elsewhere (Redis server time): the backend subtracts the time elapsed
    /// since, measured here, from its own clock's reading.
    Instant(Instant),
}

impl Since {
    /// This moment on a clock that reads `now_ms` now: the elapsed time is rounded up,
    /// so the result is never later than the moment itself.
    pub fn as_ms_before(self, now_ms: u64) -> u64 {
        match self {
            Since::Ms(ms) => ms,
            Since::Instant(instant) => {
                let elapsed = instant.elapsed();
                let ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
                let ms = if elapsed.subsec_nanos() % 1_000_000 == 0 { ms } else { ms.saturating_add(1) };
                now_ms.saturating_sub(ms)
            }
        }
    }

    #[cfg(feature = "redis")]
    /// For a backend that reads its clock elsewhere (a script on server time): `Ok` with
    /// the moment on a clock, or `Err` with the milliseconds elapsed since the instant,
    /// rounded up, to subtract from that clock's reading.
    pub(crate) fn on_clock_or_elapsed(self) -> Result<u64, u64> {
        match self {
            Since::Ms(ms) => Ok(ms),
            Since::Instant(_) => Err(u64::MAX - self.as_ms_before(u64::MAX)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_becomes_a_time_no_later_than_it() {
        assert_eq!(Since::Ms(7).as_ms_before(1_000), 7);
        let since = Since::Instant(Instant::now());
        std::thread::sleep(std::time::Duration::from_millis(3));
        let ms = since.as_ms_before(10_000);
        assert!(ms <= 9_997, "3 ms at least have passed: {ms}");
    }
}
