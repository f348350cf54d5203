//! The process-wide registry of live throttles: uid uniqueness, lookup, listing and
//! runtime switches.

use crate::throttles::core::Core;
use crate::{ConfigError, Rate};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

static LIVE: LazyLock<Mutex<HashMap<String, Weak<Core>>>> = LazyLock::new(Default::default);

pub(crate) fn register(core: &Arc<Core>) -> Result<(), ConfigError> {
    let mut live = LIVE.lock();
    if let Some(existing) = live.get(core.uid()).and_then(Weak::upgrade) {
        return Err(ConfigError::DuplicateUid {
            uid: core.uid().to_string(),
            existing: existing.origin().to_string(),
            new: core.origin().to_string(),
        });
    }
    live.insert(core.uid().to_string(), Arc::downgrade(core));
    Ok(())
}

pub(crate) fn unregister(uid: &str) {
    let mut live = LIVE.lock();
    if live.get(uid).is_some_and(|weak| weak.strong_count() == 0) {
        live.remove(uid);
    }
}

/// A registered throttle, by uid: its description and runtime switches.
///
/// ```
/// use throttle::{HttpThrottle, registry};
///
/// let throttle = HttpThrottle::builder("docs:registry").rate("10/s").build()?;
/// let entry = registry::get("docs:registry").expect("registered");
/// entry.disable(); // admits everything, no backend I/O
/// assert!(!throttle.is_enabled());
/// entry.enable();
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Entry(Arc<Core>);

impl Entry {
    /// The uid.
    pub fn uid(&self) -> &str {
        self.0.uid()
    }

    /// The static rate, or `None` for a rate function.
    pub fn rate(&self) -> Option<Rate> {
        self.0.static_rate()
    }

    /// The strategy's name.
    pub fn strategy(&self) -> &'static str {
        self.0.strategy_name()
    }

    /// The backend's namespace.
    pub fn backend_namespace(&self) -> &str {
        self.0.backend_namespace()
    }

    /// Where the throttle was built (source location, or the annotated handler).
    pub fn origin(&self) -> &str {
        self.0.origin()
    }

    /// Whether hits are counted.
    pub fn is_enabled(&self) -> bool {
        self.0.is_enabled()
    }

    /// Turns the throttle off: it admits everything with no backend I/O.
    pub fn disable(&self) {
        self.0.set_enabled(false);
    }

    /// Turns the throttle back on.
    pub fn enable(&self) {
        self.0.set_enabled(true);
    }

    /// Replaces the rate (a rate function included) from now on.
    pub fn set_rate(&self, rate: Rate) {
        self.0.set_rate(rate);
    }

    /// The throttle itself, for runtime tools of this crate (the limits file).
    #[cfg(feature = "limits-file")]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.0
    }
}

/// The live throttle with this uid.
pub fn get(uid: &str) -> Option<Entry> {
    LIVE.lock().get(uid).and_then(Weak::upgrade).map(Entry)
}

/// Every live throttle, sorted by uid.
pub fn list() -> Vec<Entry> {
    let mut entries: Vec<Entry> = LIVE.lock().values().filter_map(Weak::upgrade).map(Entry).collect();
    entries.sort_by(|a, b| a.uid().cmp(b.uid()));
    entries
}
