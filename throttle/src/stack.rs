//! Several throttles on one request: the first rejection wins and leaves nothing
//! consumed in the others.

use crate::backend::BackendError;
use crate::strategy::Decision;
use crate::throttles::core::Prepared;
use crate::{Admitted, AsConnection, HttpThrottle, ThrottleError};
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
    let conn = conn.as_connection();
    let mut prepared: Vec<(usize, &HttpThrottle, Prepared<'_>)> = Vec::with_capacity(throttles.len());
    for (index, throttle) in throttles.iter().enumerate() {
        if let Some(p) = throttle.core().prepare(&conn, None, None).await? {
            prepared.push((index, throttle, p));
        }
    }
    let decisions = decide_all(&prepared).await;
    let mut admitted = vec![Admitted::default(); throttles.len()];
    for ((index, throttle, p), decision) in prepared.into_iter().zip(decisions) {
        admitted[index] = throttle.core().finish(&conn, p, decision)?;
    }
    Ok(admitted)
}

/// Decisions in order, up to and including the first rejection. On one in-memory
/// backend the hits are decided as one (a rejection rolls the earlier ones back);
/// elsewhere they run in sequence and a later rejection leaves earlier hits counted.
async fn decide_all(prepared: &[(usize, &HttpThrottle, Prepared<'_>)]) -> Vec<Result<Decision, BackendError>> {
    if let Some(decisions) = decide_atomically(prepared) {
        return decisions.into_iter().map(Ok).collect();
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

fn decide_atomically(prepared: &[(usize, &HttpThrottle, Prepared<'_>)]) -> Option<Vec<Decision>> {
    let (_, first, _) = prepared.first()?;
    let memory = first.core().backend.as_memory()?;
    let same_backend = prepared.iter().all(|(_, t, _)| t.core().backend.as_memory().is_some_and(|m| m.same_as(memory)));
    if !same_backend {
        return None;
    }
    let hits: Vec<_> = prepared.iter().map(|(_, t, p)| (p.key.as_str(), &*t.core().strategy, p.rate, p.cost)).collect();
    memory.hit_all_now(&hits)
}
