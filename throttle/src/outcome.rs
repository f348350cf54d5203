//! Counting by outcome: a hit is decided before the handler runs and holds its units
//! while the request is pending; once the response is known it keeps them (counted)
//! or gives them back (refunded). [`CountWhen`] says which responses count.

use crate::backend::{Hit, Route, Since};
use crate::key::BuiltKey;
use crate::throttles::core::Core;
use crate::throttles::limit::Swapped;
use crate::{Admitted, Rate, ThrottleError};
use axum::response::Response;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

type Predicate = dyn Fn(&Response) -> bool + Send + Sync;

/// Which responses a throttle counts; the hits of the others are given back.
///
/// A hit is decided before the handler runs, as always, so a pending request holds
/// its units: with a limit of `L`, `L` concurrent pending requests leave nothing for
/// the next one, whatever their outcome will be. When the response is known, a hit
/// whose response does not count is refunded (see
/// [Refunds](crate::strategy#refunds) for what each strategy gives back).
///
/// Set it on the throttle ([`ThrottleBuilder::count_when`](crate::ThrottleBuilder::count_when),
/// `#[throttle(count = "failures")]`) or on a layer
/// ([`ThrottleLayer::count_when`](crate::ThrottleLayer::count_when)). The attribute and
/// the layer settle the hit with the handler's response; the direct API settles it
/// with [`Admitted::settle`] or refunds it with [`Admitted::refund`].
///
/// A request that never produces a response (the client went away, the handler
/// panicked, a later extractor rejected it under the attribute, which sees only the
/// handler's own output) keeps its hit counted: in doubt, count.
///
/// ```
/// use axum::{Router, routing::post};
/// use throttle::{CountWhen, HttpThrottle, ThrottleLayer};
///
/// // A login limiter: 5 failed attempts per 15 minutes; successful logins are free.
/// let logins = HttpThrottle::builder("docs:logins").rate("5/15min").count_when(CountWhen::Failures).build()?;
/// let app: Router = Router::new()
///     .route("/login", post(|| async { "welcome" }))
///     .route_layer(ThrottleLayer::new(logins));
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum CountWhen {
    /// Every hit counts (the default): nothing is given back.
    #[default]
    All,
    /// Responses with a status of 400 or more (client and server errors), as a login
    /// limiter wants: successful requests are given back.
    Failures,
    /// Responses with a status below 400: failed requests are given back.
    Successes,
    /// Responses for which the function returns `true`.
    Custom(Arc<Predicate>),
}

impl CountWhen {
    /// Counts the responses for which `f` returns `true` (it can read the status, the
    /// headers and the extensions a handler set).
    ///
    /// ```
    /// use throttle::CountWhen;
    /// // Count only rejected credentials, not server errors.
    /// let count = CountWhen::custom(|response| response.status() == 401);
    /// # let _ = count;
    /// ```
    pub fn custom(f: impl Fn(&Response) -> bool + Send + Sync + 'static) -> Self {
        CountWhen::Custom(Arc::new(f))
    }

    /// Whether `response` counts.
    pub fn counts(&self, response: &Response) -> bool {
        match self {
            CountWhen::All => true,
            CountWhen::Failures => response.status().as_u16() >= 400,
            CountWhen::Successes => response.status().as_u16() < 400,
            CountWhen::Custom(f) => f(response),
        }
    }

    /// Whether every response counts (no refunds needed).
    pub fn is_all(&self) -> bool {
        matches!(self, CountWhen::All)
    }
}

impl fmt::Debug for CountWhen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CountWhen::All => f.write_str("All"),
            CountWhen::Failures => f.write_str("Failures"),
            CountWhen::Successes => f.write_str("Successes"),
            CountWhen::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// What a refund of one admitted hit needs; single use. Boxed, so an [`Admitted`]
/// without one stays small.
pub(crate) struct RefundTicket(Box<Ticket>);

struct Ticket {
    core: Arc<Core>,
    key: BuiltKey,
    rate: Rate,
    cost: u64,
    since: Since,
    /// Which of the backend's stores decided the hit.
    route: Route,
    /// The strategy that decided it, when not the code's: a refund goes to the state
    /// (and the key) the hit was counted in, whatever runs now.
    swapped: Option<Swapped>,
}

impl RefundTicket {
    pub(crate) fn new(
        core: Arc<Core>,
        key: BuiltKey,
        (rate, cost): (Rate, u64),
        (since, route): (Since, Route),
        swapped: Option<Swapped>,
    ) -> Self {
        RefundTicket(Box::new(Ticket { core, key, rate, cost, since, route, swapped }))
    }

    /// Gives the hit back, within the throttle's timeout.
    async fn redeem(self) -> Result<bool, ThrottleError> {
        let Ticket { core, key, rate, cost, since, route, swapped } = *self.0;
        // The state is read with the rate in force now (a rate set since the hit, e.g.
        // from the registry, is how the backend reads it from then on).
        let rate = core.static_rate().unwrap_or(rate);
        let strategy = core.strategy_in(swapped.as_ref());
        let hit = Hit { key: key.as_key(), strategy, rate, cost };
        let given = core.backend.refund(hit, since, route).within(core.timeout).await;
        match given {
            Ok(true) => {
                core.ops.instruments.refunded();
                Ok(true)
            }
            Ok(false) => Ok(false),
            Err(error) => {
                crate::log::event!(warn, "throttle {:?}: refund failed, the hit stays counted: {error}", core.uid());
                Err(error.into())
            }
        }
    }

    fn counts(&self, response: &Response) -> bool {
        self.0.core.ops.count.counts(response)
    }
}

impl fmt::Debug for RefundTicket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefundTicket")
            .field("uid", &self.0.core.uid())
            .field("cost", &self.0.cost)
            .finish_non_exhaustive()
    }
}

impl Admitted {
    /// Gives this hit back: it stops counting against the client's quota, as far as
    /// the strategy finds it still holds (see [Refunds](crate::strategy#refunds)).
    /// `Ok(true)` when something was given back; `Ok(false)` when nothing was (the hit
    /// has run out on its own, the strategy or backend cannot refund, or this
    /// admission has no ticket: see [`is_refundable`](Self::is_refundable)).
    ///
    /// A hit is refunded once: the ticket is used up, and clones carry none.
    ///
    /// ```
    /// # async fn demo(request: axum::extract::Request) -> Result<(), throttle::ThrottleError> {
    /// use throttle::HttpThrottle;
    /// let exports = HttpThrottle::builder("docs:exports").rate("10/h").build().unwrap();
    /// let mut admitted = exports.hit(&request).refundable().await?;
    /// if export_failed() {
    ///     admitted.refund().await?; // a failed export does not use the client's quota
    /// }
    /// # fn export_failed() -> bool { true }
    /// # Ok(()) }
    /// ```
    pub fn refund(&mut self) -> impl Future<Output = Result<bool, ThrottleError>> + Send + 'static {
        redeem(self.ticket.take())
    }

    /// Keeps or gives back this hit by the throttle's [`CountWhen`]: refunds it when
    /// `response` does not count. Resolves to `Ok(true)` when something was given back.
    /// The response is read at once; the future holds no borrow of it.
    ///
    /// ```
    /// # async fn demo(request: axum::extract::Request) -> Result<axum::response::Response, throttle::ThrottleError> {
    /// use axum::response::IntoResponse;
    /// use throttle::{CountWhen, HttpThrottle};
    /// let logins = HttpThrottle::builder("docs:settle").rate("5/15min").count_when(CountWhen::Failures).build().unwrap();
    /// let mut admitted = logins.hit(&request).await?;
    /// let response = (axum::http::StatusCode::OK, "welcome").into_response();
    /// admitted.settle(&response).await?; // a success: the attempt is given back
    /// # Ok(response) }
    /// ```
    pub fn settle(
        &mut self,
        response: &Response,
    ) -> impl Future<Output = Result<bool, ThrottleError>> + Send + 'static {
        let ticket = self.ticket.take().filter(|ticket| !ticket.counts(response));
        redeem(ticket)
    }

    /// Whether this admission carries a refund ticket: a counted hit of a throttle
    /// that counts by outcome, or of a call made with
    /// [`refundable`](crate::throttles::Call::refundable).
    pub fn is_refundable(&self) -> bool {
        self.ticket.is_some()
    }
}

/// The refund tickets of the admissions whose `response` does not count (by `count`,
/// or each throttle's own), taken out of them: redeem them with [`settle_tickets`].
/// Synchronous, so no borrow of the response is held across an await.
pub(crate) fn not_counted(
    admitted: &mut [Admitted],
    count: Option<&CountWhen>,
    response: &Response,
) -> Vec<RefundTicket> {
    admitted
        .iter_mut()
        .filter_map(|admission| admission.ticket.take())
        .filter(|ticket| !count.map_or_else(|| ticket.counts(response), |count| count.counts(response)))
        .collect()
}

/// Redeems the tickets of responses that did not count.
pub(crate) async fn settle_tickets(tickets: Vec<RefundTicket>) {
    for ticket in tickets {
        // A failure is logged where it happens; the response stands either way.
        let _ = ticket.redeem().await;
    }
}

async fn redeem(ticket: Option<RefundTicket>) -> Result<bool, ThrottleError> {
    match ticket {
        Some(ticket) => ticket.redeem().await,
        None => Ok(false),
    }
}
