//! Quota contexts: costs queued while a handler works, then applied together, all or
//! nothing, or dropped.
//!
//! A handler that learns its cost as it goes (rows read, tokens generated, files
//! touched) queues it on one or several throttles, and charges the total at the end:
//!
//! ```
//! use axum::extract::Request;
//! use throttle::quota::Quota;
//! use throttle::{HttpThrottle, ThrottleError};
//!
//! async fn export(reads: &HttpThrottle, exports: &HttpThrottle, request: Request) -> Result<String, ThrottleError> {
//!     let mut quota = Quota::new();
//!     for table in ["users", "orders"] {
//!         // A pre-check against what is queued so far plus this table.
//!         if !quota.check(&request, reads, 10).await {
//!             break;
//!         }
//!         quota.add(reads, 10)?;
//!     }
//!     quota.add(exports, 1)?;
//!     let headers = quota.apply(&request).await?; // all or nothing
//!     # let _ = headers;
//!     Ok("exported".to_string())
//! }
//! ```
//!
//! # How it differs from Traffik's `QuotaContext`
//!
//! - **All or nothing.** [`Quota::apply`] decides every queued throttle as one, through
//!   the machinery of stacked limits ([`hit_all`](crate::hit_all)): on one in-memory
//!   backend under the shards' locks, on Redis in one script call (one client's keys
//!   share a hash tag, so Cluster works). A rejection consumes nothing from any of them.
//!   Throttles on *different* backends are decided one after the other, and there a
//!   later rejection leaves the earlier hits counted, as for stacked limits.
//! - **No lock.** Nothing serializes clients: the backend's own atomicity is all there
//!   is, per client key.
//! - **Apply once, by construction.** `apply`, `cancel` and `merge` take the context by
//!   value, so queuing after them, or applying twice, does not compile. Adding is
//!   synchronous and returns a `Result` (there is nothing to `await`).
//! - **Dropped means discarded.** A context that goes out of scope unapplied (a `?`
//!   on an error path, a panic, a cancelled request) charges nothing. Call `apply` on
//!   the success path; [`cancel`](Quota::cancel) says the same as dropping, explicitly.
//! - **Exact totals.** Costs are whole numbers queued as given; the same throttle
//!   (in the same scope) queued twice is one entry with the sum. A total above
//!   what the throttle could ever admit fails the apply with
//!   [`ThrottleError::CostExceedsCapacity`].
//! - **Nesting.** [`Quota::nested`] borrows its parent: while the child is alive the
//!   parent is untouched, the child's pre-checks count the parent's queue too, and
//!   [`NestedQuota::merge`] hands the child's entries to the parent (dropping the child
//!   discards them). Only the outermost context applies.

use crate::stack::{self, StackedHit};
use crate::{AsConnection, Connection, Context, Cost, HttpThrottle, InvalidCost, ThrottleError};
use core::future::Future;
use http::HeaderMap;

/// One queued charge: a throttle, the summed cost, and the call context.
#[derive(Debug, Clone)]
struct Queued {
    throttle: HttpThrottle,
    cost: Cost,
    context: Option<Context>,
}

impl Queued {
    fn matches(&self, throttle: &HttpThrottle, context: Option<&Context>) -> bool {
        std::ptr::eq(self.throttle.core(), throttle.core())
            && crate::context::same_scope(self.context.as_ref(), context)
    }
}

/// A context's own entries, and read access to its ancestors'.
trait Queue {
    fn own(&self) -> &Vec<Queued>;
    fn own_mut(&mut self) -> &mut Vec<Queued>;
    fn parent(&self) -> Option<&(dyn Queue + Send + Sync)>;

    /// The cost queued on `throttle` with `context` here and in every ancestor.
    fn queued_total(&self, throttle: &HttpThrottle, context: Option<&Context>) -> u64 {
        let own: u64 = self.own().iter().filter(|q| q.matches(throttle, context)).map(|q| q.cost.get()).sum();
        own + self.parent().map_or(0, |parent| parent.queued_total(throttle, context))
    }
}

/// Adds `cost` to the entry of `throttle` and `context`, or starts one.
fn push(
    entries: &mut Vec<Queued>,
    throttle: &HttpThrottle,
    cost: Cost,
    context: Option<Context>,
) -> Result<(), InvalidCost> {
    if cost.get() == 0 {
        return Ok(());
    }
    match entries.iter_mut().find(|q| q.matches(throttle, context.as_ref())) {
        Some(entry) => entry.cost = Cost::try_from(u128::from(entry.cost.get()) + u128::from(cost.get()))?,
        None => entries.push(Queued { throttle: throttle.clone(), cost, context }),
    }
    Ok(())
}

/// Whether `throttle` would admit what is queued on it plus `cost`, now.
async fn check_total(
    queue: &(impl Queue + ?Sized),
    conn: &Connection<'_>,
    throttle: &HttpThrottle,
    cost: Cost,
    context: Option<&Context>,
) -> bool {
    let total = u128::from(queue.queued_total(throttle, context)) + u128::from(cost.get());
    let call = throttle.check(conn).cost(total);
    match context {
        Some(context) => call.context(context.clone()).await,
        None => call.await,
    }
}

/// The methods both kinds of context share.
macro_rules! queue_methods {
    () => {
        /// Queues `cost` on `throttle` (with its default context). Nothing is consumed
        /// until the outermost context is applied. A cost of 0 queues nothing; a
        /// negative cost, or a total above 2^53 - 1, is an error.
        pub fn add<C: TryInto<Cost, Error = InvalidCost>>(
            &mut self,
            throttle: &HttpThrottle,
            cost: C,
        ) -> Result<&mut Self, InvalidCost> {
            push(self.own_mut(), throttle, cost.try_into()?, None)?;
            Ok(self)
        }

        /// Queues `cost` on `throttle` in the bucket `scope` (see
        /// [`Call::scope`](crate::Call::scope)). Entries with different scopes are
        /// separate charges.
        pub fn add_scoped<C: TryInto<Cost, Error = InvalidCost>>(
            &mut self,
            throttle: &HttpThrottle,
            cost: C,
            scope: impl Into<std::borrow::Cow<'static, str>>,
        ) -> Result<&mut Self, InvalidCost> {
            let mut context = Context::new();
            context.set_scope(scope.into());
            push(self.own_mut(), throttle, cost.try_into()?, Some(context))?;
            Ok(self)
        }

        /// Whether `throttle` would admit everything queued on it (here and in every
        /// enclosing context) plus `cost`, now. Consumes nothing, and like
        /// [`HttpThrottle::check`] it is best effort: another request may take the quota
        /// before the apply. `false` for an invalid cost.
        pub fn check<'a, C: TryInto<Cost, Error = InvalidCost>>(
            &'a self,
            conn: &'a (impl AsConnection + ?Sized),
            throttle: &'a HttpThrottle,
            cost: C,
        ) -> impl Future<Output = bool> + Send + 'a {
            // The view, not `conn` itself, goes into the future: a `Request`'s body is
            // not `Sync`, and handler futures must be `Send`.
            let conn = conn.as_connection();
            let cost = cost.try_into();
            async move {
                match cost {
                    Ok(cost) => check_total(self, &conn, throttle, cost, None).await,
                    Err(_) => false,
                }
            }
        }

        /// Whether every charge queued here would be admitted now, each counted with
        /// what the enclosing contexts queue on the same throttle.
        pub fn check_queued<'a>(
            &'a self,
            conn: &'a (impl AsConnection + ?Sized),
        ) -> impl Future<Output = bool> + Send + 'a {
            let conn = conn.as_connection();
            async move {
                for entry in self.own() {
                    let zero = Cost::try_from(0u8).expect("0 is a cost");
                    // The entry's own cost is part of the queued total.
                    if !check_total(self, &conn, &entry.throttle, zero, entry.context.as_ref()).await {
                        return false;
                    }
                }
                true
            }
        }

        /// The cost queued on `throttle` (default context) here and in every enclosing
        /// context.
        pub fn queued_cost(&self, throttle: &HttpThrottle) -> u64 {
            self.queued_total(throttle, None)
        }

        /// Whether this context queued nothing itself.
        pub fn is_empty(&self) -> bool {
            self.own().is_empty()
        }

        /// A context inside this one: its entries join this one's on
        /// [`merge`](NestedQuota::merge), or vanish when it is dropped.
        pub fn nested(&mut self) -> NestedQuota<'_> {
            NestedQuota { parent: self, entries: Vec::new() }
        }

        /// Discards everything queued here (the same as dropping it, said explicitly).
        pub fn cancel(self) {}
    };
}

/// The outermost quota context: queue costs, then [`apply`](Self::apply) them together.
/// See the [module documentation](self).
#[derive(Debug, Default)]
#[must_use = "a quota context charges nothing until `apply` is called"]
pub struct Quota {
    entries: Vec<Queued>,
}

impl Quota {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    queue_methods!();

    /// Charges every queued cost as one hit per throttle, in the order first queued:
    /// either all are admitted, or the first rejection is returned and (on one
    /// backend) nothing is consumed. On success, the union of the throttles' headers.
    ///
    /// Each throttle is hit as by [`HttpThrottle::hit`] with the queued total as its
    /// cost: disabled throttles, rules, exempted clients and error policies apply.
    pub fn apply<'a>(
        self,
        conn: &'a (impl AsConnection + ?Sized),
    ) -> impl Future<Output = Result<HeaderMap, ThrottleError>> + Send + 'a {
        let conn = conn.as_connection();
        async move {
            let calls: Vec<StackedHit<'_>> = self
                .entries
                .iter()
                .map(|q| StackedHit { throttle: &q.throttle, cost: Some(q.cost), context: q.context.as_ref() })
                .collect();
            let mut headers = HeaderMap::new();
            for admitted in stack::hit_each_with(&calls, &conn, false).await? {
                headers.extend(admitted.into_headers());
            }
            Ok(headers)
        }
    }
}

impl Queue for Quota {
    fn own(&self) -> &Vec<Queued> {
        &self.entries
    }
    fn own_mut(&mut self) -> &mut Vec<Queued> {
        &mut self.entries
    }
    fn parent(&self) -> Option<&(dyn Queue + Send + Sync)> {
        None
    }
}

/// A quota context inside another: [`merge`](Self::merge) it to hand its entries to
/// the parent; drop it to discard them.
#[must_use = "a nested quota context is discarded unless `merge` is called"]
pub struct NestedQuota<'p> {
    parent: &'p mut (dyn Queue + Send + Sync + 'p),
    entries: Vec<Queued>,
}

impl NestedQuota<'_> {
    queue_methods!();

    /// Moves this context's entries into its parent, summed with the parent's own.
    pub fn merge(self) {
        let NestedQuota { parent, entries } = self;
        for Queued { throttle, cost, context } in entries {
            // Both totals were valid on their own; only their sum can be too large, and
            // a sum above 2^53 - 1 could never be admitted anyway, so it saturates.
            if push(parent.own_mut(), &throttle, cost, context.clone()).is_err() {
                let max = Cost::try_from(Cost::MAX).expect("MAX is a cost");
                if let Some(entry) = parent.own_mut().iter_mut().find(|q| q.matches(&throttle, context.as_ref())) {
                    entry.cost = max;
                }
            }
        }
    }
}

impl Queue for NestedQuota<'_> {
    fn own(&self) -> &Vec<Queued> {
        &self.entries
    }
    fn own_mut(&mut self) -> &mut Vec<Queued> {
        &mut self.entries
    }
    fn parent(&self) -> Option<&(dyn Queue + Send + Sync)> {
        Some(&*self.parent)
    }
}

impl std::fmt::Debug for NestedQuota<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NestedQuota").field("entries", &self.entries).finish_non_exhaustive()
    }
}
