//! [`StaticThrottle`]: the static an annotated handler gets.

use super::StaticCall;
use crate::throttles::{CheckOp, HeadersOp, HitOp, StatOp};
use crate::{AsConnection, ConfigError, HttpThrottle, ThrottleError};
use core::fmt;
use std::sync::OnceLock;

/// The throttle of an annotated handler: the static `#[throttle]` generates
/// (`GET_DATA_THROTTLE` for `get_data`, or the `name = ...` given).
///
/// It is built and registered on first use, by the handler or by a call here. The
/// calls mirror [`HttpThrottle`]'s and share the handler's counts; if the throttle
/// could not be built (a uid used by two handlers), `hit`, `stat` and `get_headers`
/// fail with an error naming both handlers (a 500 as a response) and `check` is
/// `false`.
///
/// ```
/// use axum::extract::Request;
/// use throttle::{ThrottleError, throttle};
///
/// #[throttle(uid = "docs:static", rate = "10/min")]
/// async fn export() -> &'static str {
///     "exported"
/// }
///
/// async fn preview(request: Request) -> Result<String, ThrottleError> {
///     if !EXPORT_THROTTLE.check(&request).cost(2).await {
///         return Ok("try later".into());
///     }
///     EXPORT_THROTTLE.hit(&request).cost(2).await?;
///     let left = EXPORT_THROTTLE.stat(&request).await?.map_or(0, |s| s.hits_remaining);
///     Ok(format!("{left} exports left"))
/// }
///
/// // At startup, to surface a configuration error before serving:
/// let throttle = EXPORT_THROTTLE.get().expect("a unique uid");
/// assert_eq!(throttle.uid(), "docs:static");
/// ```
pub struct StaticThrottle {
    handler: &'static str,
    name: &'static str,
    init: fn() -> Result<HttpThrottle, ConfigError>,
    cell: OnceLock<Result<HttpThrottle, ConfigError>>,
}

impl StaticThrottle {
    #[doc(hidden)]
    pub const fn new(
        handler: &'static str,
        name: &'static str,
        init: fn() -> Result<HttpThrottle, ConfigError>,
    ) -> Self {
        StaticThrottle { handler, name, init, cell: OnceLock::new() }
    }

    /// The throttle, built on the first call; or why it could not be built.
    pub fn get(&self) -> Result<&HttpThrottle, &ConfigError> {
        self.cell.get_or_init(self.init).as_ref()
    }

    /// The annotated handler's name.
    pub fn handler(&self) -> &'static str {
        self.handler
    }

    /// The static's own name, e.g. `"GET_DATA_THROTTLE"`.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// [`HttpThrottle::hit`]: resolves to `Result<Admitted, ThrottleError>`.
    pub fn hit<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> StaticCall<'a, HitOp> {
        StaticCall::new(self, |t| t.hit(conn))
    }

    /// [`HttpThrottle::check`]: resolves to `bool`.
    pub fn check<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> StaticCall<'a, CheckOp> {
        StaticCall::new(self, |t| t.check(conn))
    }

    /// [`HttpThrottle::stat`]: resolves to `Result<Option<StrategyStat>, ThrottleError>`.
    pub fn stat<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> StaticCall<'a, StatOp> {
        StaticCall::new(self, |t| t.stat(conn))
    }

    /// [`HttpThrottle::get_headers`]: resolves to `Result<HeaderMap, ThrottleError>`.
    pub fn get_headers<'a>(&'a self, conn: &'a (impl AsConnection + ?Sized)) -> StaticCall<'a, HeadersOp> {
        StaticCall::new(self, |t| t.get_headers(conn))
    }

    pub(crate) fn not_built(&self, error: &ConfigError) -> ThrottleError {
        let throttle = format!("`{}` of handler `{}`", self.name, self.handler);
        ThrottleError::NotBuilt { throttle, error: error.clone() }
    }
}

impl fmt::Debug for StaticThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticThrottle")
            .field("name", &self.name)
            .field("handler", &self.handler)
            .field("throttle", &self.cell.get())
            .finish()
    }
}
