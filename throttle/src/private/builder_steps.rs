//! The builder steps `#[throttle]` emits, one per key: each takes a value the macro
//! already checked and hands it to [`ThrottleBuilder`].

use crate::headers::{DEFAULT_HEADERS_ALWAYS, DEFAULT_HEADERS_THROTTLED, Headers};
use crate::throttles::ThrottleBuilder;
use crate::{ConfigError, Connection, Context, HttpThrottle, Rate};
use core::future::Future;

/// A rate the macro already checked with the shared grammar.
pub const fn rate(limit: u64, period_ms: u64) -> Rate {
    Rate::__from_parts(limit, period_ms)
}

/// The builder of an annotated handler's throttle; `origin` names the handler.
pub fn builder(uid: &'static str, origin: &'static str) -> ThrottleBuilder<HttpThrottle> {
    // The statics join the process-wide registry: a uid used by two handlers is refused.
    HttpThrottle::builder(uid).origin(origin).registry(crate::registry::global())
}

/// `strategy = "name(param = value, ...)"`, parsed by the macro with the shared grammar.
pub fn strategy(
    builder: ThrottleBuilder<HttpThrottle>,
    kind: crate::strategy::StrategyKind,
    params: &[(&str, u64)],
) -> ThrottleBuilder<HttpThrottle> {
    builder.strategy_kind(kind, params)
}

/// `headers = "always"`.
pub fn headers_always() -> Headers {
    DEFAULT_HEADERS_ALWAYS.clone()
}

/// `headers = "throttled"`.
pub fn headers_throttled() -> Headers {
    DEFAULT_HEADERS_THROTTLED.clone()
}

/// `headers = path`: anything that derefs to `Headers` (a `LazyLock`, a `const`).
pub fn headers(headers: &Headers) -> Headers {
    headers.clone()
}

/// `count = "failures"`.
pub fn count_failures() -> crate::CountWhen {
    crate::CountWhen::Failures
}

/// `count = "successes"`.
pub fn count_successes() -> crate::CountWhen {
    crate::CountWhen::Successes
}

/// `count = "all"`.
pub fn count_all() -> crate::CountWhen {
    crate::CountWhen::All
}

/// `scope = "name"`: the throttle's typed scope.
pub fn scope(builder: ThrottleBuilder<HttpThrottle>, scope: &'static str) -> ThrottleBuilder<HttpThrottle> {
    builder.scope(scope)
}

/// `cost = path`: a cost function or an integer constant.
pub fn cost<C: CostArg>(builder: ThrottleBuilder<HttpThrottle>, cost: C) -> ThrottleBuilder<HttpThrottle> {
    cost.apply(builder)
}

/// What `cost = path` may name.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cost",
    note = "`cost = path` names an integer constant or a `fn(&Connection<'_>, &Context) -> impl Future<Output = u64> + Send + 'static`"
)]
pub trait CostArg {
    /// Sets the cost on the builder.
    fn apply(self, builder: ThrottleBuilder<HttpThrottle>) -> ThrottleBuilder<HttpThrottle>;
}

impl<F, Fut> CostArg for F
where
    F: Fn(&Connection<'_>, &Context) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = u64> + Send + 'static,
{
    fn apply(self, builder: ThrottleBuilder<HttpThrottle>) -> ThrottleBuilder<HttpThrottle> {
        builder.cost_fn(self)
    }
}

macro_rules! integer_costs {
    ($($int:ty),*) => {$(
        impl CostArg for $int {
            fn apply(self, builder: ThrottleBuilder<HttpThrottle>) -> ThrottleBuilder<HttpThrottle> {
                builder.cost(self)
            }
        }
    )*};
}
integer_costs!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

/// The initializer of a static the macro could not generate (the crate does not
/// compile then, so it never runs).
pub fn unbuilt() -> Result<HttpThrottle, ConfigError> {
    Err(ConfigError::MissingRate { uid: String::new() })
}
