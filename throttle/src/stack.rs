//! Several throttles on one request: the first rejection wins and leaves nothing
//! consumed in the others.

use crate::backend::{BackendError, HitRequest};
use crate::strategy::Decision;
use crate::throttles::core::Prepared;
use crate::{Admitted, AsConnection, Context, Cost, HttpThrottle, ThrottleError};
use http::HeaderMap;

/// Hits several throttles as one, in order: the first rejection wins, and on one
/// in-memory backend a rejected request consumes nothing from any of them. On success,
/// the union of their headers.
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

/// [`hit_all`], with each throttle's own admission (in order).
pub(crate) async fn hit_each(
    throttles: &[HttpThrottle],
    conn: &impl AsConnection,
) -> Result<Vec<Admitted>, ThrottleError> {
    let calls: Vec<StackedHit<'_>> =
        throttles.iter().map(|throttle| StackedHit { throttle, cost: None, context: None }).collect();
    hit_each_with(&calls, conn).await
}

/// One throttle of a stacked hit, with its own cost and context (a quota context's
/// queued totals); `None` takes the throttle's.
pub(crate) struct StackedHit<'a> {
    pub(crate) throttle: &'a HttpThrottle,
    pub(crate) cost: Option<Cost>,
    pub(crate) context: Option<&'a Context>,
}

/// [`hit_each`] with a cost and context per throttle.
pub(crate) async fn hit_each_with(
    calls: &[StackedHit<'_>],
    conn: &impl AsConnection,
) -> Result<Vec<Admitted>, ThrottleError> {
    let conn = conn.as_connection();
    let mut prepared: Vec<(usize, &HttpThrottle, Prepared<'_>)> = Vec::with_capacity(calls.len());
    for (index, StackedHit { throttle, cost, context }) in calls.iter().enumerate() {
        if let Some(p) = throttle.core().prepare(&conn, cost.map(Ok), *context).await? {
            prepared.push((index, throttle, p));
        }
    }
    let decisions = decide_all(&prepared).await;
    let mut admitted = vec![Admitted::default(); calls.len()];
    for ((index, throttle, p), decision) in prepared.into_iter().zip(decisions) {
        admitted[index] = throttle.core().finish(&conn, p, decision)?;
    }
    Ok(admitted)
}

/// Decisions in order, up to and including the first rejection. Throttles on one
/// store are decided as one when the backend can
/// ([`crate::backend::Backend::hit_all`]); otherwise they run in sequence and a later
/// rejection leaves the earlier hits counted.
async fn decide_all(prepared: &[(usize, &HttpThrottle, Prepared<'_>)]) -> Vec<Result<Decision, BackendError>> {
    if let Some(decisions) = decide_together(prepared).await {
        return decisions;
    }
    let mut decisions = Vec::with_capacity(prepared.len());
    for (_, throttle, p) in prepared {
        let decision = throttle.core().decide(&p.key, p.rate, p.cost).await;
        let rejected = !matches!(decision, Ok(d) if d.allowed);
        decisions.push(decision);
        if rejected {
            break;
        }
    }
    decisions
}

async fn decide_together(
    prepared: &[(usize, &HttpThrottle, Prepared<'_>)],
) -> Option<Vec<Result<Decision, BackendError>>> {
    let (_, first, _) = prepared.first()?;
    let core = first.core();
    let store = core.backend.store_id();
    if prepared.len() < 2 || !prepared.iter().all(|(_, t, _)| t.core().backend.store_id() == store) {
        return None;
    }
    let hits: Vec<HitRequest<'_>> =
        prepared.iter().map(|(_, t, p)| (p.key.as_str(), &*t.core().strategy, p.rate, p.cost)).collect();
    let together = core.backend.hit_all(&hits)?;
    // The in-memory answer is ready at once; only remote stores need the timeout.
    let outcome = match core.backend.as_memory() {
        Some(_) => together.await,
        None => tokio::time::timeout(core.timeout, together).await.unwrap_or(Err(BackendError::Timeout(core.timeout))),
    };
    Some(match outcome {
        Ok(decisions) => decisions.into_iter().map(Ok).collect(),
        Err(error) => vec![Err(error)],
    })
}
