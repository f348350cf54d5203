//! Where "now" comes from: the system clock, or a [`ManualClock`] that tests move by hand.

use std::sync::Arc;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// A time source in milliseconds since the Unix epoch.
///
/// Fixed windows are aligned to the epoch, so every process (and Redis) agrees on
/// where a window starts.
#[derive(Debug, Clone, Default)]
pub enum Clock {
    /// Wall-clock time, read through a cheap monotonic counter anchored to the epoch
    /// once per process (no backwards jumps, ~10 ns per read).
    #[default]
    System,
    /// Time that only moves when a test says so.
    Manual(ManualClock),
}

impl Clock {
    /// The current time in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match self {
            Clock::System => system_now_ms(),
            Clock::Manual(manual) => manual.now_ms(),
        }
    }
}

impl From<ManualClock> for Clock {
    fn from(manual: ManualClock) -> Self {
        Clock::Manual(manual)
    }
}

struct Anchor {
    /// Our own counter, read directly (no thread-local override to look up per read).
    clock: quanta::Clock,
    raw: u64,
    epoch_ms: u64,
}

static ANCHOR: LazyLock<Anchor> = LazyLock::new(|| {
    let clock = quanta::Clock::new();
    let raw = clock.raw();
    let epoch_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Anchor { clock, raw, epoch_ms }
});

fn system_now_ms() -> u64 {
    let anchor = &*ANCHOR;
    // `delta_as_nanos` is 0 for a reading before the anchor: time never goes back.
    anchor.epoch_ms + anchor.clock.delta_as_nanos(anchor.raw, anchor.clock.raw()) / 1_000_000
}

/// A clock for tests: starts where you say and moves only with [`advance`](Self::advance)
/// or [`set`](Self::set). Clones share the same time.
///
/// ```
/// use throttle::backend::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new(1_000);
/// clock.advance(Duration::from_millis(250));
/// assert_eq!(clock.now_ms(), 1_250);
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock reading `start_ms` milliseconds since the epoch.
    pub fn new(start_ms: u64) -> Self {
        Self(Arc::new(AtomicU64::new(start_ms)))
    }

    /// The current reading.
    pub fn now_ms(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Moves time forward.
    pub fn advance(&self, by: std::time::Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::AcqRel);
    }

    /// Sets the reading.
    pub fn set(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::Release);
    }
}
