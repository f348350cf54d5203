//! Applying a parsed limits file through the registry: everything is checked first,
//! then everything is applied, so a refused file changes nothing. Fields a previous
//! file set and this one leaves out go back to what the code configured.

use super::error::LimitsErrorKind;
use super::parse::{Source, Spec};
use crate::registry::{self, Entry};
use crate::throttles::core::Core;
use crate::throttles::limit::{Limit, Swapped};
use crate::throttles::options::RateSource;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use throttle_grammar::suggest::did_you_mean;

/// What the code configured, for each field a file has overridden.
#[derive(Default)]
pub(crate) struct Originals {
    by_uid: HashMap<String, Original>,
}

struct Original {
    /// The throttle the values belong to (a uid can be registered again).
    core: Weak<Core>,
    rate: Option<RateSource>,
    /// The strategy before the file set one (`Some(None)`: the code's).
    strategy: Option<Option<Swapped>>,
    enabled: Option<bool>,
    /// The throttle's own shadow switch.
    shadow: Option<bool>,
}

/// A spec matched to its live throttle.
pub(crate) struct Target {
    entry: Entry,
    spec: Spec,
}

impl Originals {
    /// Checks every spec against the running throttles, then applies them all.
    /// Returns how many throttles the file names.
    pub(crate) fn apply(&mut self, source: &Source<'_>, specs: Vec<Spec>) -> Result<usize, super::LimitsError> {
        let targets = check_all(source, specs)?;
        // From here nothing can fail: the entries keep their throttles alive.
        let named = targets.len();
        let mut left_out: HashMap<String, Original> = std::mem::take(&mut self.by_uid);
        for Target { entry, spec } in targets {
            let core = entry.core();
            let mut original = match left_out.remove(&spec.uid) {
                Some(original) if std::ptr::eq(original.core.as_ptr(), Arc::as_ptr(core)) => original,
                _ => Original { core: Arc::downgrade(core), rate: None, strategy: None, enabled: None, shadow: None },
            };
            {
                // The rate and the strategy change together: no request sees one
                // without the other.
                let mut limit = core.limit.write();
                match spec.rate {
                    Some(rate) => {
                        let previous = std::mem::replace(&mut limit.rate, RateSource::Fixed(rate));
                        original.rate.get_or_insert(previous);
                    }
                    None => restore_rate(&mut limit, &mut original),
                }
                match spec.strategy {
                    Some(strategy) => {
                        let previous = std::mem::replace(&mut limit.swapped, Swapped::new(&*core.strategy, strategy));
                        original.strategy.get_or_insert(previous);
                    }
                    None => restore_strategy(&mut limit, &mut original),
                }
            }
            match spec.enabled {
                Some(enabled) => {
                    original.enabled.get_or_insert(core.is_enabled());
                    core.set_enabled(enabled);
                }
                None => restore_enabled(core, &mut original),
            }
            match spec.shadow {
                Some(shadow) => {
                    original.shadow.get_or_insert(core.ops.shadow.is_set());
                    core.ops.shadow.set(shadow);
                }
                None => restore_shadow(core, &mut original),
            }
            self.by_uid.insert(spec.uid, original);
        }
        // Throttles a previous file named and this one does not: back to the code's values.
        for (_, mut original) in left_out {
            let Some(core) = original.core.upgrade() else { continue };
            {
                let mut limit = core.limit.write();
                restore_rate(&mut limit, &mut original);
                restore_strategy(&mut limit, &mut original);
            }
            restore_enabled(&core, &mut original);
            restore_shadow(&core, &mut original);
        }
        Ok(named)
    }
}

fn restore_rate(limit: &mut Limit, original: &mut Original) {
    if let Some(rate) = original.rate.take() {
        limit.rate = rate;
    }
}

fn restore_strategy(limit: &mut Limit, original: &mut Original) {
    if let Some(swapped) = original.strategy.take() {
        limit.swapped = swapped;
    }
}

fn restore_enabled(core: &Core, original: &mut Original) {
    if let Some(enabled) = original.enabled.take() {
        core.set_enabled(enabled);
    }
}

fn restore_shadow(core: &Core, original: &mut Original) {
    if let Some(shadow) = original.shadow.take() {
        core.ops.shadow.set(shadow);
    }
}

/// Every spec matched to its live throttle, or the first that cannot apply.
pub(crate) fn check_all(source: &Source<'_>, specs: Vec<Spec>) -> Result<Vec<Target>, super::LimitsError> {
    specs.into_iter().map(|spec| check(source, spec)).collect()
}

/// The live throttle for `spec`, or why the spec cannot apply to it.
fn check(source: &Source<'_>, spec: Spec) -> Result<Target, super::LimitsError> {
    let Some(entry) = registry::global().get(&spec.uid) else {
        let running: Vec<String> = registry::global().list().iter().map(|entry| entry.uid().to_string()).collect();
        let candidates: Vec<&str> = running.iter().map(String::as_str).collect();
        let suggestion = did_you_mean(&spec.uid, &candidates).map(str::to_string);
        return Err(source.error(Some(spec.at), Some(&spec.uid), None, LimitsErrorKind::UnknownUid { suggestion }));
    };
    Ok(Target { entry, spec })
}
