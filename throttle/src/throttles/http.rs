//! [`HttpThrottle`]: the direct API for HTTP handlers.

use super::builder::{BuildThrottle, Sealed, ThrottleBuilder};
use super::call::{Call, CheckOp, HeadersOp, Hit, StatOp};
use super::core::Core;
use crate::{AsConnection, Rate};
use std::sync::Arc;

/// A rate limit for HTTP requests, called directly from handlers. Cheap to clone.
///
/// ```
/// use axum::extract::{Request, State};
/// use axum::{Json, Router, routing::get};
/// use throttle::{HttpThrottle, ThrottleError};
///
/// async fn get_data(State(api): State<HttpThrottle>, request: Request) -> Result<Json<Vec<u32>>, ThrottleError> {
///     api.hit(&request).await?; // a 429 with Retry-After when over the limit
///     Ok(Json(vec![]))
/// }
///
/// let api = HttpThrottle::builder("docs:data").rate("100/min").build()?;
/// let app: Router = Router::new().route("/data", get(get_data)).with_state(api);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
///
/// Per-call cost and scope, a pre-check, and stats:
///
/// ```
/// use axum::extract::Request;
/// use throttle::{HttpThrottle, ThrottleError};
///
/// async fn upload(uploads: &HttpThrottle, request: Request) -> Result<String, ThrottleError> {
///     if !uploads.check(&request).cost(5).await {
///         // How long until a cost of 5 fits (`wait_ms` alone is for a cost of 1).
///         let wait_ms = uploads.stat(&request).cost(5).await?.map_or(0, |stat| stat.wait_ms);
///         return Ok(format!("retry in {wait_ms} ms"));
///     }
///     let admitted = uploads.hit(&request).cost(5).await?;
///     uploads.hit(&request).scope("tenant-7").await?; // another bucket: the tenant's
///     Ok(format!("{:?} left", admitted.remaining()))
/// }
///
/// let uploads = HttpThrottle::builder("docs:uploads").rate("1000/min").build()?;
/// # let _ = (uploads, upload);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct HttpThrottle {
    core: Arc<Core>,
}

impl Sealed for HttpThrottle {
    type Options = ();

    fn from_core(core: Arc<Core>, (): ()) -> Self {
        HttpThrottle { core }
    }
}
impl BuildThrottle for HttpThrottle {}

impl HttpThrottle {
    /// Starts a throttle with this uid: unique in the process; letters, digits and
    /// `_-.:/`. It is the first part of every key the throttle stores.
    #[track_caller]
    pub fn builder(uid: impl Into<String>) -> ThrottleBuilder<HttpThrottle> {
        ThrottleBuilder::new(uid.into(), std::panic::Location::caller().to_string())
    }

    /// Records a hit: admits it (consuming its cost) or rejects it with
    /// [`ThrottleError::Throttled`](crate::ThrottleError::Throttled), which renders as a
    /// 429 with `Retry-After`. Configure with `.cost(n)`, `.scope(..)` and
    /// `.context(ctx)`. The admission's [`remaining`](crate::Admitted::remaining) is
    /// the quota left after it.
    pub fn hit<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Hit<'a> {
        Call::new(&self.core, conn.as_connection())
    }

    /// Whether a hit of the given cost (default: the throttle's) would be admitted
    /// now. Consumes nothing. Best effort: another request may take the quota before
    /// your hit, so always follow with [`hit`](Self::hit). `true` when the state cannot
    /// be read or the client is exempted.
    pub fn check<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Call<'a, CheckOp> {
        Call::new(&self.core, conn.as_connection())
    }

    /// The client's current standing, consuming nothing; `None` for an exempted client.
    /// With `.cost(n)`, its [`wait_ms`](crate::StrategyStat::wait_ms) is how long until
    /// a hit of `n` would be admitted (exact for every built-in strategy; see
    /// [`Call::cost`]).
    pub fn stat<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Call<'a, StatOp> {
        Call::new(&self.core, conn.as_connection())
    }

    /// The throttle's headers resolved for this client now, with optional per-call
    /// `.overrides(..)`. A collection of fixed values resolves without backend I/O.
    pub fn get_headers<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> Call<'a, HeadersOp> {
        Call::new(&self.core, conn.as_connection())
    }

    pub(crate) fn core(&self) -> &Core {
        &self.core
    }

    /// The uid.
    pub fn uid(&self) -> &str {
        self.core.uid()
    }

    /// The static rate, or `None` when the rate is a function.
    pub fn rate(&self) -> Option<Rate> {
        self.core.static_rate()
    }

    /// Replaces the rate from now on.
    pub fn set_rate(&self, rate: Rate) {
        self.core.set_rate(rate);
    }

    /// Whether hits are counted.
    pub fn is_enabled(&self) -> bool {
        self.core.is_enabled()
    }

    /// Turns counting on or off; a disabled throttle admits everything with no backend I/O.
    pub fn set_enabled(&self, enabled: bool) {
        self.core.set_enabled(enabled);
    }

    /// Whether the throttle is in [shadow mode](crate::shadow), by its own switch or
    /// the process-wide one.
    pub fn is_shadow(&self) -> bool {
        self.core.ops.shadow.is_on()
    }

    /// Turns the throttle's own shadow mode on or off, from the next hit on.
    pub fn set_shadow(&self, shadow: bool) {
        self.core.ops.shadow.set(shadow);
    }

    /// The clients this throttle denied most, most denied first; empty unless built
    /// with [`track_top_denied`](crate::ThrottleBuilder::track_top_denied).
    pub fn top_denied(&self) -> Vec<crate::throttles::DeniedClient> {
        self.core.ops.top_denied()
    }
}
