//! Several throttles on one request: decided in order, the first rejection wins, a
//! failing backend only ever answers for its own throttles.

use crate::backend::{BackendError, Hit, Route, share_a_store};
use crate::context::same_scope;
use crate::key::KeyBuf;
use crate::strategy::Decision;
use crate::throttles::core::{Core, Prepared};
use crate::throttles::instruments::Stopwatch;
use crate::{Admitted, AsConnection, Connection, Context, Cost, HttpThrottle, ThrottleError};
use http::HeaderMap;
use std::sync::Arc;

/// Hits several throttles as one request, in order, and returns the union of their
/// headers. The first rejection wins.
///
/// # Exactness
///
/// Neighbours in the list that share one store are decided together, in one call:
/// the shards' locks of one [`MemoryBackend`](crate::backend::MemoryBackend), or one script
/// call on Redis for the built-in strategies (on a Cluster, when their keys share a
/// slot). Among them, a rejection by any throttle consumes nothing from the others.
/// Otherwise throttles are decided one after the other, and a later rejection leaves
/// the earlier hits counted; so put the limits that share a store next to each other.
/// Nothing is ever charged twice: a joint call is never retried one by one.
///
/// # Backend failures
///
/// A failure only answers for the throttles it concerns, and each of them applies its
/// own [`OnError`](crate::OnError) policy:
///
/// - a failed or timed-out call for one throttle is that throttle's error;
/// - a failed or timed-out joint call is an error for every throttle in it;
/// - a throttle whose policy admits (`Allow`) lets the request go on to the next
///   throttles, which are decided as usual: a fail-open Redis limit never disables an
///   in-memory limit behind it;
/// - a throttle whose policy rejects (`Throttle`) or raises (`Raise`) ends the request
///   there, like a rejection, and the later throttles are not charged.
///
/// A throttle listed more than once is hit once, at its first place: a stack is a set
/// of limits, and the same key twice in one joint call could not be decided exactly.
///
/// ```
/// # async fn demo(request: axum::extract::Request) -> Result<(), throttle::ThrottleError> {
/// use throttle::HttpThrottle;
/// let burst = HttpThrottle::builder("docs:stack:burst").rate("10/s").build().unwrap();
/// let hourly = HttpThrottle::builder("docs:stack:hourly").rate("1000/h").build().unwrap();
/// let headers = throttle::hit_all(&[burst, hourly], &request).await?;
/// # let _ = headers; Ok(()) }
/// ```
pub async fn hit_all(throttles: &[HttpThrottle], conn: &impl AsConnection) -> Result<HeaderMap, ThrottleError> {
    let mut headers = HeaderMap::new();
    for admitted in hit_each(throttles, conn).await? {
        headers.extend(admitted.into_headers());
    }
    Ok(headers)
}

/// One throttle of the stack, ready for its backend.
struct Pending<'c> {
    /// Its place in the caller's list.
    index: usize,
    core: &'c Core,
    /// The text of its key.
    text: KeyBuf,
    prepared: Prepared<'c>,
}

/// [`hit_all`], with each throttle's own admission (in order; a repeated throttle's
/// later places admit untouched).
pub(crate) async fn hit_each(
    throttles: &[HttpThrottle],
    conn: &impl AsConnection,
) -> Result<Vec<Admitted>, ThrottleError> {
    hit_each_with(&stacked(throttles), conn, false).await
}

/// Each throttle with its own cost and context.
pub(crate) fn stacked(throttles: &[HttpThrottle]) -> Vec<StackedHit<'_>> {
    throttles.iter().map(|throttle| StackedHit { throttle, cost: None, context: None }).collect()
}

/// One throttle of a stacked hit, with its own cost and context (a quota context's
/// queued totals); `None` takes the throttle's.
pub(crate) struct StackedHit<'a> {
    pub(crate) throttle: &'a HttpThrottle,
    pub(crate) cost: Option<Cost>,
    pub(crate) context: Option<&'a Context>,
}

/// [`hit_each`] with a cost and context per throttle; with `refundable`, every counted
/// admission takes a refund ticket.
pub(crate) async fn hit_each_with(
    calls: &[StackedHit<'_>],
    conn: &impl AsConnection,
    refundable: bool,
) -> Result<Vec<Admitted>, ThrottleError> {
    let conn = conn.as_connection();
    let mut pending: Vec<Pending<'_>> = Vec::with_capacity(calls.len());
    for (index, StackedHit { throttle, cost, context }) in calls.iter().enumerate() {
        let core = throttle.core();
        // The same throttle with the same context is the same bucket: hit once. (A
        // quota context may hit one throttle in several scopes: separate buckets.)
        if calls[..index]
            .iter()
            .any(|earlier| std::ptr::eq(earlier.throttle.core(), core) && same_scope(earlier.context, *context))
        {
            continue;
        }
        if let Some((text, prepared)) = core.prepare(&conn, cost.map(Ok), *context, refundable).await? {
            pending.push(Pending { index, core, text, prepared });
        }
    }
    let mut admitted = vec![Admitted::default(); calls.len()];
    let mut pending = pending.into_iter().peekable();
    while let Some(first) = pending.next() {
        let store = &*first.core.backend;
        let mut run = vec![first];
        while let Some(next) = pending.next_if(|p| share_a_store(store, &*p.core.backend)) {
            run.push(next);
        }
        decide_run(run, &conn, &mut admitted).await?;
    }
    Ok(admitted)
}

/// Decides neighbours on one store (together when the backend can) and applies each
/// outcome; `Err` is the request's answer (a rejection, or an error to raise).
async fn decide_run(
    mut run: Vec<Pending<'_>>,
    conn: &Connection<'_>,
    admitted: &mut [Admitted],
) -> Result<(), ThrottleError> {
    loop {
        let Some((mut decisions, route)) = decide_together(&run).await else { break };
        for p in &mut run {
            p.prepared.route = route;
        }
        if ends_in_shadowed_rejection(&run, &decisions) {
            if let Some(decision) = decisions.pop() {
                // A joint rejection changed nothing, and a throttle in shadow mode lets
                // the request through: decide the others again as if it were not there.
                let p = run.remove(decisions.len());
                admitted[p.index] = p.core.finish(conn, &p.text, p.prepared, decision, false)?;
                continue;
            }
        }
        // The decisions stop at the first rejection, which `finish` turns into `Err`.
        for (p, decision) in run.into_iter().zip(decisions) {
            admitted[p.index] = p.core.finish(conn, &p.text, p.prepared, decision, false)?;
        }
        return Ok(());
    }
    for mut p in run {
        let decision = p.core.decide(&p.text, &mut p.prepared).await;
        admitted[p.index] = p.core.finish(conn, &p.text, p.prepared, decision, false)?;
    }
    Ok(())
}

/// Whether a joint call's decisions stop at a rejection by a throttle in shadow mode.
fn ends_in_shadowed_rejection(run: &[Pending<'_>], decisions: &[Result<Decision, BackendError>]) -> bool {
    match decisions.last() {
        Some(Ok(decision)) if !decision.allowed => {
            run.get(decisions.len() - 1).is_some_and(|p| p.core.ops.shadow.is_on())
        }
        _ => false,
    }
}

/// The decisions of a run of two or more throttles on one store, from one joint call,
/// and where they were decided (for refunds); `None` when the backend cannot decide
/// them together (nothing was sent then). A failed joint call is an error for each of
/// them.
async fn decide_together(run: &[Pending<'_>]) -> Option<(Vec<Result<Decision, BackendError>>, Route)> {
    let [first, _, ..] = run else { return None };
    let core = first.core;
    let hits: Vec<Hit<'_>> = run
        .iter()
        .map(|p| Hit {
            key: p.prepared.key.key(&p.text),
            strategy: p.core.strategy_in(p.prepared.swapped.as_ref()),
            rate: p.prepared.rate,
            cost: p.prepared.cost,
        })
        .collect();
    let started = Stopwatch::start();
    // A refundable hit learns which store decided; a ready answer (in memory) is taken
    // at once, only a pending one needs the timeout.
    let outcome = if run.iter().any(|p| p.prepared.since.is_some()) {
        core.backend.hit_all_routed(&hits)?.within(core.timeout).await
    } else {
        core.backend.hit_all(&hits)?.within(core.timeout).await.map(|decisions| (decisions, Route::default()))
    };
    for p in run {
        p.core.ops.instruments.decided(started);
    }
    Some(match outcome {
        Ok((decisions, route)) if answers_every_hit(&decisions, run.len()) => {
            (decisions.into_iter().map(Ok).collect(), route)
        }
        Ok((decisions, _)) => {
            let error = format!("a joint call answered {} decisions for {} hits", decisions.len(), run.len());
            (shared(BackendError::Failed(error.into()), run.len()), Route::default())
        }
        Err(error) => (shared(error, run.len()), Route::default()),
    })
}

/// One decision per hit, or fewer ending with the rejection that stopped them: so no
/// throttle of the run is left undecided (a backend of one's own could answer less).
fn answers_every_hit(decisions: &[Decision], hits: usize) -> bool {
    decisions.len() == hits || (decisions.len() < hits && decisions.last().is_some_and(|d| !d.allowed))
}

/// One backend error as `n` errors, one per throttle of a failed joint call.
fn shared(error: BackendError, n: usize) -> Vec<Result<Decision, BackendError>> {
    match error {
        BackendError::Timeout(after) => (0..n).map(|_| Err(BackendError::Timeout(after))).collect(),
        BackendError::Failed(cause) => {
            let cause: Arc<dyn std::error::Error + Send + Sync> = Arc::from(cause);
            (0..n).map(|_| Err(BackendError::Failed(Box::new(SharedCause(cause.clone()))))).collect()
        }
    }
}

/// The cause of a failed joint call, shared by the errors of its throttles.
#[derive(Debug)]
struct SharedCause(Arc<dyn std::error::Error + Send + Sync>);

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_failed_joint_call_is_the_same_error_for_each_throttle() {
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let errors = shared(BackendError::Failed(Box::new(cause)), 3);
        assert_eq!(errors.len(), 3);
        for error in errors {
            let error = error.expect_err("an error per throttle");
            assert!(matches!(error, BackendError::Failed(_)));
            assert_eq!(error.to_string(), "throttle backend failed: refused");
        }
        let timeouts = shared(BackendError::Timeout(Duration::from_millis(5)), 2);
        assert!(timeouts.iter().all(|e| matches!(e, Err(BackendError::Timeout(d)) if *d == Duration::from_millis(5))));
    }

    #[test]
    fn a_joint_answer_must_decide_every_throttle_or_stop_at_a_rejection() {
        let allowed = Decision { allowed: true, remaining: 1, wait_ms: 0, reset_ms: 0 };
        let rejected = Decision { allowed: false, remaining: 0, wait_ms: 1, reset_ms: 1 };
        assert!(answers_every_hit(&[allowed, allowed], 2));
        assert!(answers_every_hit(&[rejected], 2));
        assert!(!answers_every_hit(&[allowed], 2), "the second throttle would go undecided");
        assert!(!answers_every_hit(&[], 2));
        assert!(!answers_every_hit(&[allowed, allowed, allowed], 2));
    }
}
