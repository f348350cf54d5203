//! Shadow mode: a throttle decides and counts exactly as when it enforces, but lets
//! every request through. Roll a new limit out in shadow, watch what it would reject
//! (logs at `info`, the `throttle_shadow_rejected_total` counter
//! with the `metrics` feature, [`ThrottleBuilder::track_top_denied`]), then enforce it.
//!
//! - Per throttle: [`ThrottleBuilder::shadow`], `#[throttle(shadow = true)]`, and at
//!   runtime [`HttpThrottle::set_shadow`](crate::HttpThrottle::set_shadow) or
//!   [`Entry::set_shadow`](crate::registry::Entry::set_shadow) from the registry.
//! - Process-wide: [`set_global`] puts every throttle in shadow mode at once.
//!
//! What stays the same as in enforcing mode: the backend call, the state it leaves
//! (a rejected hit consumes nothing in any strategy, enforced or not), and so every
//! later decision. What changes: a would-be rejection (over the limit, or a backend
//! failure under `OnError::Throttle`) is admitted, logged and counted as shadowed. In
//! a stack, the other throttles are then decided as if the shadowed one were not
//! there. `OnError::Raise` still raises: it is an error, not a limit.
//!
//! Responses carry none of the throttle's headers in shadow mode, so clients see no
//! difference; [`ThrottleBuilder::shadow_headers`] keeps them (a would-be rejection
//! then carries the headers its 429 would have had, without the 429).
//!
//! ```
//! use throttle::HttpThrottle;
//!
//! let search = HttpThrottle::builder("docs:shadow").rate("1/min").shadow(true).build()?;
//! assert!(search.is_shadow());
//! search.set_shadow(false); // enforce from now on
//!
//! throttle::shadow::set_global(true); // every throttle of the process, e.g. in an incident
//! assert!(search.is_shadow());
//! throttle::shadow::set_global(false);
//! # Ok::<(), throttle::ConfigError>(())
//! ```
//!
//! [`ThrottleBuilder::shadow`]: crate::ThrottleBuilder::shadow
//! [`ThrottleBuilder::shadow_headers`]: crate::ThrottleBuilder::shadow_headers
//! [`ThrottleBuilder::track_top_denied`]: crate::ThrottleBuilder::track_top_denied

use std::sync::atomic::{AtomicBool, Ordering};

static GLOBAL: AtomicBool = AtomicBool::new(false);

/// Puts every throttle of the process in shadow mode (`true`), or returns each to its
/// own setting (`false`).
pub fn set_global(shadow: bool) {
    GLOBAL.store(shadow, Ordering::Relaxed);
}

/// Whether the process-wide switch is on.
pub fn is_global() -> bool {
    GLOBAL.load(Ordering::Relaxed)
}

/// A throttle's own shadow switch and header choice.
#[derive(Debug)]
pub(crate) struct Shadow {
    on: AtomicBool,
    headers: bool,
}

impl Shadow {
    pub(crate) fn new(on: bool, headers: bool) -> Self {
        Shadow { on: AtomicBool::new(on), headers }
    }

    /// On by the throttle's own switch or the process-wide one.
    pub(crate) fn is_on(&self) -> bool {
        self.on.load(Ordering::Relaxed) || is_global()
    }

    /// The throttle's own switch, whatever the process-wide one says.
    #[cfg(feature = "limits-file")]
    pub(crate) fn is_set(&self) -> bool {
        self.on.load(Ordering::Relaxed)
    }

    pub(crate) fn set(&self, on: bool) {
        self.on.store(on, Ordering::Relaxed);
    }

    /// Responses carry none of the throttle's headers.
    pub(crate) fn hides_headers(&self) -> bool {
        !self.headers && self.is_on()
    }
}

/// The log line of a would-be rejection (target `throttle::shadow`).
pub(crate) fn log_would_reject(uid: &str, key: &str, wait_ms: u64) {
    crate::log::event!(info, "throttle {uid:?}: would reject {key:?} (shadow mode), retry in {wait_ms} ms");
}
