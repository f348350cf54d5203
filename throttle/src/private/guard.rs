//! [`Guard`]: the extractor `#[throttle]` puts first in a handler's arguments.

use crate::attribute::StaticThrottle;
use crate::attribute::WithHeaders;
use crate::attribute::with_headers::append_missing;
use crate::{HttpThrottle, ThrottleError};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use core::fmt;
use core::marker::PhantomData;
use http::HeaderMap;
use http::request::Parts;

/// Ties a handler's marker type to the statics of its `#[throttle]` attributes.
pub trait Site: 'static {
    /// The handler's statics, top attribute first; never empty.
    fn throttles() -> &'static [&'static StaticThrottle];
}

/// The one extractor `#[throttle]` adds to a handler, first in its arguments: it hits
/// the handler's throttles before any other extractor runs, and rejects with the
/// response of the first throttle that refuses (429, or 500 when a throttle could not
/// be built).
///
/// Stacked attributes share this one guard: it hits their throttles as one
/// ([`crate::hit_all`]), so a rejection by a lower limit consumes nothing in the higher
/// ones when they share a store.
pub struct Guard<M> {
    headers: HeaderMap,
    site: PhantomData<fn() -> M>,
}

impl<M: Site, S: Send + Sync> FromRequestParts<S> for Guard<M> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let headers = hit(M::throttles(), parts).await.map_err(IntoResponse::into_response)?;
        Ok(Guard { headers, site: PhantomData })
    }
}

/// Hits the statics' throttles as one stack; the admitted hits' headers, the higher
/// attribute's first.
async fn hit(statics: &[&StaticThrottle], parts: &Parts) -> Result<HeaderMap, ThrottleError> {
    if let [only] = statics {
        return Ok(built(only)?.hit(parts).await?.into_headers());
    }
    let throttles = statics.iter().map(|site| built(site).cloned()).collect::<Result<Vec<_>, _>>()?;
    let mut headers = HeaderMap::new();
    for admitted in crate::stack::hit_each(&throttles, parts).await? {
        append_missing(&mut headers, admitted.into_headers());
    }
    Ok(headers)
}

/// The static's throttle, or the error (a 500) that names it.
fn built(site: &StaticThrottle) -> Result<&HttpThrottle, ThrottleError> {
    site.get().map_err(|error| site.not_built(error))
}

impl<M> fmt::Debug for Guard<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard").field("headers", &self.headers).finish_non_exhaustive()
    }
}

/// The handler's output, for a handler without `headers = ...`. The bound reports a
/// return type that is no response at the handler's `-> T`.
pub fn respond<M, T: IntoResponse>(_guard: Guard<M>, output: T) -> T {
    output
}

/// The handler's output with the admitted hit's headers, for `headers = ...`.
pub fn with_headers<M, T: IntoResponse>(guard: Guard<M>, output: T) -> WithHeaders<T> {
    WithHeaders::new(guard.headers, output)
}
