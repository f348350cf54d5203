//! [`InFlightLayer`]: an in-flight limit around a router, with the unit carried by the
//! response body until it ends.

use super::{InFlightLimit, InFlightPermit};
use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll};
use http_body::{Frame, SizeHint};
use std::convert::Infallible;
use tower_layer::Layer;
use tower_service::Service;

/// Runs an [`InFlightLimit`] before the inner service. An admitted request holds its
/// unit until its response body has been sent, or until the response (or the future
/// that makes it) is dropped, e.g. when the client disconnects. A rejected one gets
/// the limit's 429 (or 503) and never reaches the inner service.
///
/// Works with `Router::layer` and `Router::route_layer`; see
/// [the module documentation](super) for an example.
#[derive(Debug, Clone)]
pub struct InFlightLayer {
    limit: InFlightLimit,
}

impl InFlightLayer {
    /// A layer running `limit`.
    pub fn new(limit: InFlightLimit) -> Self {
        InFlightLayer { limit }
    }
}

impl<S> Layer<S> for InFlightLayer {
    type Service = InFlightService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InFlightService { inner, limit: self.limit.clone() }
    }
}

/// The service made by [`InFlightLayer`].
#[derive(Debug, Clone)]
pub struct InFlightService<S> {
    inner: S,
    limit: InFlightLimit,
}

impl<S, B> Service<Request<B>> for InFlightService<S>
where
    S: Service<Request<B>, Error = Infallible> + Clone + Send + 'static,
    S::Response: IntoResponse,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        // The clone is the one that was not driven to readiness; keep the ready one.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let limit = self.limit.clone();
        // Only the head is borrowed across the acquire, so bodies need not be `Sync`.
        let (parts, body) = request.into_parts();
        Box::pin(async move {
            let permit = match limit.acquire(&parts).await {
                Ok(permit) => permit,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            // From here the permit lives in this future: dropping it returns the unit.
            let headers = limit.admitted_headers(&permit);
            let response = inner.call(Request::from_parts(parts, body)).await?.into_response();
            let (mut head, body) = response.into_parts();
            head.headers.extend(headers);
            Ok(Response::from_parts(head, Body::new(InFlightBody::new(body, permit))))
        })
    }
}

/// A response body that holds an [`InFlightPermit`] until its last frame (or an
/// error) has been read, or until it is dropped.
#[derive(Debug)]
pub struct InFlightBody {
    inner: Body,
    permit: Option<InFlightPermit>,
}

impl InFlightBody {
    /// `inner`, releasing `permit` when it ends.
    pub fn new(inner: Body, permit: InFlightPermit) -> Self {
        InFlightBody { inner, permit: Some(permit) }
    }
}

impl http_body::Body for InFlightBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) || self.inner.is_end_stream() {
            // The response is over: the unit goes back now, not when the connection
            // gets around to dropping the body.
            self.permit = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
