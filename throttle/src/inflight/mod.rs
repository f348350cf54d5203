//! In-flight (concurrency) limits: at most N requests of one client at once.
//!
//! A rate limit counts requests per period; an in-flight limit counts the requests that
//! have started and not yet finished, like nginx's `limit_conn` or ASP.NET Core's
//! concurrency limiter. A request takes a unit before the handler runs and gives it back
//! when its response body ends, or when it is dropped (the client disconnected, a
//! timeout layer gave up). Over the limit, the answer is `429 Too Many Requests` (or
//! `503`, [`service_unavailable`](InFlightBuilder::service_unavailable)) with
//! `Retry-After`, `RateLimit-Policy: "uid";q=N;qu="concurrent-requests"` and
//! `RateLimit: "uid";r=0`.
//!
//! ```
//! use axum::{Router, routing::get};
//! use std::time::Duration;
//! use throttle::inflight::{InFlightLayer, InFlightLimit};
//! use throttle::{HttpThrottle, ThrottleLayer};
//!
//! let exports = InFlightLimit::builder("api:exports").max(2).problem_details().build()?;
//! let rate = HttpThrottle::builder("api:exports:rate").rate("30/min").build()?;
//! let app: Router = Router::new()
//!     .route("/exports", get(|| async { "a long export" }))
//!     .layer(InFlightLayer::new(exports))
//!     .layer(ThrottleLayer::new(rate)); // the rate limit runs first
//! # Ok::<(), throttle::ConfigError>(())
//! ```
//!
//! # Stores
//!
//! - [`MemoryInFlight`] (the default, one per limit unless shared): counts per client
//!   in the process. A unit always comes back, since the process that holds it is the
//!   one that returns it.
//! - `RedisBackend` (feature `redis`): one sorted set per client, lease id → expiry,
//!   at `{namespace}:{uid}:{client}:#inflight` (the client is the Cluster hash tag). A
//!   Lua script drops expired leases, counts, and adds the new one, atomically. A
//!   release removes the lease in the background ([`InFlightLimit::settle`] waits for
//!   them). A live request renews its lease every third of the
//!   [`lease_ttl`](InFlightBuilder::lease_ttl) (60 s by default), so only the leases
//!   of a process that died, or lost Redis, expire.
//!
//! # Failure
//!
//! The store gets the limit's [`timeout`](InFlightBuilder::timeout) and its
//! [`OnError`](crate::OnError) policy, as throttles do; a lease whose acquire timed
//! out is released anyway, in case it landed.

mod layer;
mod limit;
mod release;
mod store;

pub use layer::{InFlightBody, InFlightLayer, InFlightService};
pub use limit::{InFlightBuilder, InFlightLimit, InFlightPermit};
pub use store::{Acquired, InFlightStore, MemoryInFlight, Release};

use crate::backend::BackendError;
#[cfg(feature = "json")]
use crate::problem::{self, Problem};
use axum::response::{IntoResponse, Response};
use http::HeaderValue;
use std::fmt;
use std::sync::Arc;

/// Why [`InFlightLimit::acquire`] gave no permit. As a response: the rejection, or a
/// 500 for a store failure under [`OnError::Raise`](crate::OnError::Raise).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InFlightError {
    /// The client has the maximum in flight already.
    #[error(transparent)]
    Full(InFlightFull),
    /// The store failed and the error policy is to raise.
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl IntoResponse for InFlightError {
    fn into_response(self) -> Response {
        match self {
            InFlightError::Full(full) => full.into_response(),
            InFlightError::Backend(error) => {
                crate::log::event!(error, "in-flight limit: {error}");
                (http::StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response()
            }
        }
    }
}

/// A client is at its in-flight maximum (or the store failed and the policy rejects).
/// As a response: 429 (or 503), `Retry-After`, `RateLimit-Policy`, `RateLimit`, and a
/// text or problem-details body.
pub struct InFlightFull {
    limit: Arc<limit::Inner>,
    retry_after: Option<u64>,
}

impl InFlightFull {
    /// The limit's uid.
    pub fn uid(&self) -> &str {
        &self.limit.uid
    }

    /// The most requests of one client in flight at once.
    pub fn max(&self) -> u64 {
        self.limit.max
    }

    /// `Retry-After` in seconds, if any.
    pub fn retry_after_secs(&self) -> Option<u64> {
        self.retry_after
    }
}

impl IntoResponse for InFlightFull {
    fn into_response(self) -> Response {
        let limit = &self.limit;
        let detail = format!("Too many requests in flight: at most {} at once.", limit.max);
        let mut response = self.body(detail);
        let headers = response.headers_mut();
        limit.policy_headers(headers, 0);
        if let Some(seconds) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

impl InFlightFull {
    /// The text body, or a problem-details one when the limit was built so.
    #[cfg(feature = "json")]
    fn body(&self, detail: String) -> Response {
        let limit = &self.limit;
        if !limit.problem_details {
            return (limit.status, detail).into_response();
        }
        let policy = serde_json::json!({ "uid": &*limit.uid, "max_in_flight": limit.max });
        problem::response(Problem {
            status: limit.status,
            detail,
            retry_after: self.retry_after,
            uid: &limit.uid,
            policy,
        })
    }

    /// The text body.
    #[cfg(not(feature = "json"))]
    fn body(&self, detail: String) -> Response {
        (self.limit.status, detail).into_response()
    }
}

impl fmt::Display for InFlightFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "in-flight limit {:?} reached: at most {} at once", self.limit.uid, self.limit.max)
    }
}

impl fmt::Debug for InFlightFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InFlightFull")
            .field("uid", &self.limit.uid)
            .field("max", &self.limit.max)
            .field("retry_after", &self.retry_after)
            .finish()
    }
}

impl std::error::Error for InFlightFull {}
