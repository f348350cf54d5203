//! [`Guard`]: the extractor `#[throttle]` puts first in a handler's arguments.

use crate::attribute::StaticThrottle;
use crate::attribute::WithHeaders;
use crate::attribute::guard_headers::GuardHeaders;
use crate::backend::BoxFuture;
use crate::throttles::core::{Core, Now};
use crate::{Admitted, AsConnection, HttpThrottle, ThrottleError};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use core::fmt;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use http::request::Parts;
use smallvec::{SmallVec, smallvec};

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
    /// The throttles' headers, for the response.
    headers: GuardHeaders,
    /// The admissions that can be given back (throttles that count by outcome).
    refundable: Vec<Admitted>,
    site: PhantomData<fn() -> M>,
}

impl<M: Site, S: Send + Sync> FromRequestParts<S> for Guard<M> {
    type Rejection = Response;

    /// One attribute on an in-process backend is decided here and now: the extractor's
    /// future only hands the answer over. Anything else is a boxed future.
    fn from_request_parts(parts: &mut Parts, _state: &S) -> impl Future<Output = Result<Self, Response>> + Send {
        let parts = &*parts;
        match M::throttles() {
            [only] => match built(only) {
                Ok(throttle) => {
                    let core = throttle.core();
                    match core.hit_now(parts.as_connection(), None, None, false, true) {
                        Now::Done(result) => {
                            Extraction::Ready(core::future::ready(result.map(|admitted| Guard::one(core, admitted))))
                        }
                        Now::Later(hit) => Extraction::One(core, hit),
                    }
                }
                Err(error) => Extraction::Ready(core::future::ready(Err(error))),
            },
            statics => Extraction::Stack(Box::pin(hit_stack(statics, parts))),
        }
    }
}

impl<M> Guard<M> {
    /// The guard of a single attribute's admission by `core`.
    fn one(core: &'static Core, mut admitted: Admitted) -> Self {
        let headers = match admitted.figured.take() {
            Some(figured) => GuardHeaders::Figured(core, figured),
            None => GuardHeaders::resolved(smallvec![std::mem::take(&mut admitted.resolved)]),
        };
        let refundable = if admitted.is_refundable() { vec![admitted] } else { Vec::new() };
        Guard { headers, refundable, site: PhantomData }
    }
}

/// The guard's extraction: decided already, or a boxed hit to await.
enum Extraction<'a, M> {
    Ready(core::future::Ready<Result<Guard<M>, ThrottleError>>),
    One(&'static Core, BoxFuture<'a, Result<Admitted, ThrottleError>>),
    Stack(BoxFuture<'a, Result<Guard<M>, ThrottleError>>),
}

impl<M> Future for Extraction<'_, M> {
    type Output = Result<Guard<M>, Response>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let result = match self.get_mut() {
            Extraction::Ready(result) => ready!(Pin::new(result).poll(cx)),
            Extraction::One(core, hit) => ready!(hit.as_mut().poll(cx)).map(|admitted| Guard::one(core, admitted)),
            Extraction::Stack(hit) => ready!(hit.as_mut().poll(cx)),
        };
        Poll::Ready(result.map_err(IntoResponse::into_response))
    }
}

/// Hits stacked attributes' throttles as one stack: the admitted hits' headers, the
/// higher attribute's first, and the admissions that can be given back.
async fn hit_stack<M>(statics: &[&StaticThrottle], parts: &Parts) -> Result<Guard<M>, ThrottleError> {
    let throttles = statics.iter().map(|site| built(site).cloned()).collect::<Result<Vec<_>, _>>()?;
    let mut headers = SmallVec::new();
    let mut refundable = Vec::new();
    for mut admitted in crate::stack::hit_each(&throttles, parts).await? {
        headers.push(std::mem::take(&mut admitted.resolved));
        if admitted.is_refundable() {
            refundable.push(admitted);
        }
    }
    Ok(Guard { headers: GuardHeaders::resolved(headers), refundable, site: PhantomData })
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

/// The handler's output as a response, for `count = ...`: the hits of throttles whose
/// [`CountWhen`](crate::CountWhen) does not count it are given back before it is
/// returned; the throttles' headers are added as `with_headers` adds them.
pub async fn settle<M, T: IntoResponse>(guard: Guard<M>, output: T) -> Response {
    let Guard { headers, mut refundable, .. } = guard;
    let mut response = output.into_response();
    let refunds = crate::outcome::not_counted(&mut refundable, None, &response);
    crate::outcome::settle_tickets(refunds).await;
    headers.write_missing_into(response.headers_mut());
    response
}
