//! Registries of live throttles: uid uniqueness, lookup, listing and runtime switches.
//!
//! Building a throttle joins no registry: the same router can be built twice in one
//! process. A [`Registry`] is a value you create and hand to the builders you want in
//! it ([`ThrottleBuilder::registry`](crate::ThrottleBuilder::registry)); the
//! `#[throttle]` attribute's statics join the process-wide [`global`] one, so a uid used
//! by two handlers is refused, naming both.

use crate::throttles::core::Core;
use crate::{ConfigError, Rate};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

/// Live throttles by uid. Cheap to clone: clones share one table.
///
/// ```
/// use throttle::HttpThrottle;
/// use throttle::registry::Registry;
///
/// let registry = Registry::new();
/// let throttle = HttpThrottle::builder("docs:registry").rate("10/s").registry(&registry).build()?;
/// let entry = registry.get("docs:registry").expect("registered");
/// entry.disable(); // admits everything, no backend I/O
/// assert!(!throttle.is_enabled());
/// entry.enable();
///
/// // A second live throttle with the uid is refused by the same registry...
/// assert!(HttpThrottle::builder("docs:registry").rate("1/s").registry(&registry).build().is_err());
/// // ...while one outside it builds: the same router can be built twice.
/// assert!(HttpThrottle::builder("docs:registry").rate("1/s").build().is_ok());
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Registry {
    live: Arc<Mutex<HashMap<String, Weak<Core>>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    pub(crate) fn register(&self, core: &Arc<Core>) -> Result<(), ConfigError> {
        // The live throttle is dropped only after the lock is released: its handle may
        // be the last one, and dropping it must never wait on this lock.
        let existing = {
            let mut live = self.live.lock();
            live.retain(|_, weak| weak.strong_count() > 0);
            match live.get(core.uid()).and_then(Weak::upgrade) {
                Some(existing) => existing,
                None => {
                    live.insert(core.uid().to_string(), Arc::downgrade(core));
                    return Ok(());
                }
            }
        };
        Err(ConfigError::DuplicateUid {
            uid: core.uid().to_string(),
            existing: existing.origin().to_string(),
            new: core.origin().to_string(),
        })
    }

    /// The live throttle with this uid.
    pub fn get(&self, uid: &str) -> Option<Entry> {
        let found = self.live.lock().get(uid).and_then(Weak::upgrade);
        found.map(Entry)
    }

    /// Every live throttle, sorted by uid.
    pub fn list(&self) -> Vec<Entry> {
        let mut entries: Vec<Entry> = self.live.lock().values().filter_map(Weak::upgrade).map(Entry).collect();
        entries.sort_by(|a, b| a.uid().cmp(b.uid()));
        entries
    }
}

/// The process-wide registry: the `#[throttle]` attribute's statics join it, and so
/// does any builder given it.
///
/// ```
/// use throttle::registry;
///
/// for entry in registry::global().list() {
///     println!("{} {:?} enabled={}", entry.uid(), entry.rate(), entry.is_enabled());
/// }
/// ```
pub fn global() -> &'static Registry {
    static GLOBAL: LazyLock<Registry> = LazyLock::new(Registry::new);
    &GLOBAL
}

/// A registered throttle, by uid: its description and runtime switches.
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

    /// The name of the strategy in force: the code's, or the one a
    /// limits file (feature `limits-file`) switched to.
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

    /// Whether the throttle is in [shadow mode](crate::shadow) (its own switch or the
    /// process-wide one).
    pub fn is_shadow(&self) -> bool {
        self.0.ops.shadow.is_on()
    }

    /// Turns the throttle's own shadow mode on or off: it decides and counts as usual
    /// and lets every request through while on.
    ///
    /// ```
    /// use throttle::HttpThrottle;
    /// use throttle::registry::Registry;
    ///
    /// let registry = Registry::new();
    /// let throttle = HttpThrottle::builder("docs:entry-shadow").rate("1/s").registry(&registry).build()?;
    /// registry.get("docs:entry-shadow").expect("registered").set_shadow(true);
    /// assert!(throttle.is_shadow());
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn set_shadow(&self, shadow: bool) {
        self.0.ops.shadow.set(shadow);
    }

    /// The clients the throttle denied most; empty unless it tracks them
    /// ([`track_top_denied`](crate::ThrottleBuilder::track_top_denied)).
    pub fn top_denied(&self) -> Vec<crate::throttles::DeniedClient> {
        self.0.ops.top_denied()
    }
}
