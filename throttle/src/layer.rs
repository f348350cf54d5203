//! [`ThrottleLayer`] and [`ThrottleService`]: throttles for a whole `Router`.

use crate::{Admitted, AsConnection, CountWhen, HttpThrottle};
use axum::response::{IntoResponse, Response};
use http::Request;
use smallvec::{SmallVec, smallvec};
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower_layer::Layer;
use tower_service::Service;

/// Runs one or several throttles before the inner service, in order.
///
/// The first rejection wins and is the response (429 + `Retry-After`, as everywhere).
/// A request rejected by a later throttle consumes nothing from the earlier ones, so
/// stacked limits ("10/s" burst and "1000/h" sustained) stay exact. Admitted
/// responses carry every throttle's headers.
///
/// Works with `Router::layer` (every route, 404s included) and `Router::route_layer`
/// (matched routes only).
///
/// ```
/// use axum::{Router, routing::get};
/// use throttle::{HttpThrottle, Rule, ThrottleLayer};
///
/// let burst = HttpThrottle::builder("docs:layer:burst").rate("10/s").build()?;
/// let sustained = HttpThrottle::builder("docs:layer:hourly")
///     .rate("1000/h")
///     .rule(Rule::bypass_if().path("/health")?)
///     .build()?;
/// let app: Router = Router::new()
///     .route("/api/items", get(|| async { "items" }))
///     .route_layer(ThrottleLayer::new(burst).and(sustained));
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ThrottleLayer {
    throttles: Arc<[HttpThrottle]>,
    /// Which responses count, for every throttle of the layer; `None`: each its own.
    count: Option<Arc<CountWhen>>,
}

impl ThrottleLayer {
    /// A layer running `throttle`.
    pub fn new(throttle: HttpThrottle) -> Self {
        ThrottleLayer { throttles: Arc::new([throttle]), count: None }
    }

    /// Adds a throttle, run after the ones already in the layer.
    #[must_use]
    pub fn and(self, throttle: HttpThrottle) -> Self {
        let mut throttles = self.throttles.to_vec();
        throttles.push(throttle);
        ThrottleLayer { throttles: throttles.into(), count: self.count }
    }

    /// Which responses count for every throttle of this layer, instead of each
    /// throttle's own [`count_when`](crate::ThrottleBuilder::count_when): the hits of
    /// requests whose response does not count are given back once the inner service
    /// has answered. The hits are decided before, so pending requests hold their units
    /// (see [`CountWhen`]).
    ///
    /// ```
    /// use axum::{Router, routing::post};
    /// use throttle::{CountWhen, HttpThrottle, ThrottleLayer};
    ///
    /// let attempts = HttpThrottle::builder("docs:layer:attempts").rate("5/15min").build()?;
    /// let app: Router = Router::new()
    ///     .route("/login", post(|| async { "welcome" }))
    ///     .route_layer(ThrottleLayer::new(attempts).count_when(CountWhen::Failures));
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    #[must_use]
    pub fn count_when(mut self, count: CountWhen) -> Self {
        self.count = Some(Arc::new(count));
        self
    }
}

impl<S> Layer<S> for ThrottleLayer {
    type Service = ThrottleService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ThrottleService { inner, throttles: self.throttles.clone(), count: self.count.clone() }
    }
}

/// The service made by [`ThrottleLayer`].
#[derive(Debug, Clone)]
pub struct ThrottleService<S> {
    inner: S,
    throttles: Arc<[HttpThrottle]>,
    count: Option<Arc<CountWhen>>,
}

impl<S, B> Service<Request<B>> for ThrottleService<S>
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
        let throttles = self.throttles.clone();
        let count = self.count.clone();
        // Only the head is borrowed across the throttle's await, so bodies need not be `Sync`.
        let (parts, body) = request.into_parts();
        Box::pin(async move {
            let refundable = count.is_some();
            let admitted: Result<SmallVec<[Admitted; 1]>, _> = match &*throttles {
                // One throttle counting every response: its hit alone, with nothing to coordinate.
                [throttle] if !refundable => {
                    throttle.core().hit(&parts.as_connection(), None, None, false).await.map(|a| smallvec![a])
                }
                _ => crate::stack::hit_each_with(&crate::stack::stacked(&throttles), &parts, refundable)
                    .await
                    .map(SmallVec::from_vec),
            };
            let mut admitted = match admitted {
                Ok(admitted) => admitted,
                Err(rejection) => return Ok(rejection.into_response()),
            };
            let mut response = inner.call(Request::from_parts(parts, body)).await?.into_response();
            let refunds = crate::outcome::not_counted(&mut admitted, count.as_deref(), &response);
            crate::outcome::settle_tickets(refunds).await;
            // Straight into the response's map, in order: a later throttle's header
            // replaces an earlier one's, and the handler's, of the same name.
            for admission in admitted {
                admission.write_into(response.headers_mut());
            }
            Ok(response)
        })
    }
}
