//! What a throttle needs to be run in production, beside its decisions: the shadow
//! switch, counting by outcome (refund tickets), metrics and the top denied clients.
//! `Core` calls in here from `prepare` and `finish`.

use super::core::Core;
use super::instruments::{ErrorOutcome, Instruments};
use super::limit::Swapped;
use super::top_denied::{DeniedClient, TopDenied};
use crate::Rate;
use crate::backend::{Backend, Route, Since};
use crate::key::BuiltKey;
use crate::outcome::{CountWhen, RefundTicket};
use crate::shadow::Shadow;
use crate::strategy::Decision;
use std::sync::Weak;

/// The options the builder hands over.
#[derive(Debug, Default)]
pub(crate) struct OperatingOptions {
    pub(crate) shadow: bool,
    pub(crate) shadow_headers: bool,
    pub(crate) count: CountWhen,
    pub(crate) top_denied: Option<usize>,
}

/// A throttle's operating state.
pub(crate) struct Operating {
    pub(crate) shadow: Shadow,
    pub(crate) count: CountWhen,
    pub(crate) instruments: Instruments,
    top_denied: Option<TopDenied>,
    /// The throttle itself, for refund tickets (which outlive the call).
    me: Weak<Core>,
}

impl Operating {
    pub(crate) fn new(uid: &str, options: OperatingOptions, me: Weak<Core>) -> Self {
        Operating {
            shadow: Shadow::new(options.shadow, options.shadow_headers),
            count: options.count,
            instruments: Instruments::new(uid),
            top_denied: options.top_denied.map(TopDenied::new),
            me,
        }
    }

    /// The moment a refund will measure from, read before the decision: only for a
    /// throttle that counts by outcome (other hits take no ticket).
    pub(crate) fn since(&self, backend: &dyn Backend) -> Option<Since> {
        (!self.count.is_all()).then(|| backend.since_now())
    }

    pub(crate) fn top_denied(&self) -> Vec<DeniedClient> {
        self.top_denied.as_ref().map(TopDenied::top).unwrap_or_default()
    }
}

impl std::fmt::Debug for Operating {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operating")
            .field("shadow", &self.shadow)
            .field("count", &self.count)
            .field("top_denied", &self.top_denied)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// An admitted hit is counted; its refund ticket when a moment was read for one
    /// (with where the hit was decided, and by which strategy).
    pub(crate) fn on_admitted(
        &self,
        decision: &Decision,
        rate: Rate,
        cost: u64,
        refund: Option<(BuiltKey, Since, Route)>,
        swapped: Option<Swapped>,
    ) -> Option<RefundTicket> {
        self.ops.instruments.admitted(decision.remaining, rate);
        let (key, since, route) = refund?;
        let me = self.ops.me.upgrade()?;
        Some(RefundTicket::new(me, key, (rate, cost), (since, route), swapped))
    }

    /// A rejection, over the limit or (`failed`) by the error policy of a failed
    /// backend: `true` when shadow mode lets it through, logged and counted as
    /// shadowed. Only rejections over the limit count as the client's denials.
    pub(crate) fn on_rejected(&self, key: impl Fn() -> BuiltKey, decision: &Decision, failed: bool) -> bool {
        if !failed {
            if let Some(top) = &self.ops.top_denied {
                top.record(&key());
            }
        }
        if self.ops.shadow.is_on() {
            self.ops.instruments.shadow_rejected();
            crate::shadow::log_would_reject(self.uid(), &key(), decision.wait_ms);
            return true;
        }
        if !failed {
            self.ops.instruments.rejected();
        }
        false
    }

    pub(crate) fn on_backend_error(&self, outcome: ErrorOutcome) {
        self.ops.instruments.backend_error(outcome);
    }
}
