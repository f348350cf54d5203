//! Support for the code `#[throttle]` and `rate!` generate.
//!
//! **Not public API.** Everything here may change in any release, in step with
//! `throttle-macros`, which `throttle` pins to its exact version. Two types do appear
//! in user code, through generated items, and are documented for that reason:
//! [`StaticThrottle`] (the type of a handler's generated static) and [`WithHeaders`]
//! (the return type of a handler with `headers = ...`).

use crate::backend::BoxFuture;
use crate::strategy::StrategyStat;
use crate::throttles::{CheckOp, CostedOp, HeadersOp, HitOp, StatOp};
use crate::{
    Admitted, AsConnection, Call, ConfigError, Connection, Context, Cost, HttpThrottle, InvalidCost, Rate,
    ThrottleError,
};
use crate::{DEFAULT_HEADERS_ALWAYS, DEFAULT_HEADERS_THROTTLED, Headers};
use axum::extract::FromRequestParts;
use axum::response::{IntoResponse, Response};
use core::fmt;
use core::future::IntoFuture;
use core::marker::PhantomData;
use http::request::Parts;
use http::{HeaderMap, HeaderName};
use std::sync::{Arc, Mutex, OnceLock};

pub use crate::throttles::ThrottleBuilder;

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

/// `scope = "name"`.
pub fn scope(builder: ThrottleBuilder<HttpThrottle>, scope: &'static str) -> ThrottleBuilder<HttpThrottle> {
    builder.context(Context::new().with("scope", scope))
}

/// `cost = path`: a cost function or an integer constant.
pub fn cost<C: CostArg>(builder: ThrottleBuilder<HttpThrottle>, cost: C) -> ThrottleBuilder<HttpThrottle> {
    cost.apply(builder)
}

/// What `cost = path` may name.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a cost",
    note = "`cost = path` names an integer constant or a `fn(&Connection<'_>, &Context) -> BoxFuture<'static, u64>`"
)]
pub trait CostArg {
    /// Sets the cost on the builder.
    fn apply(self, builder: ThrottleBuilder<HttpThrottle>) -> ThrottleBuilder<HttpThrottle>;
}

impl<F> CostArg for F
where
    F: Fn(&Connection<'_>, &Context) -> BoxFuture<'static, u64> + Send + Sync + 'static,
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

/// A call on a [`StaticThrottle`], configured like [`Call`] and then `.await`ed.
#[must_use = "a throttle call does nothing until it is awaited"]
pub struct StaticCall<'a, Op> {
    call: Result<Call<'a, Op>, (&'a StaticThrottle, &'a ConfigError)>,
}

impl<'a, Op> StaticCall<'a, Op> {
    fn new(owner: &'a StaticThrottle, call: impl FnOnce(&'a HttpThrottle) -> Call<'a, Op>) -> Self {
        StaticCall { call: owner.get().map(call).map_err(|error| (owner, error)) }
    }

    /// [`Call::context`].
    pub fn context(self, context: Context) -> Self {
        StaticCall { call: self.call.map(|call| call.context(context)) }
    }
}

impl<Op: CostedOp> StaticCall<'_, Op> {
    /// [`Call::cost`].
    pub fn cost<C: TryInto<Cost, Error = InvalidCost>>(self, cost: C) -> Self {
        StaticCall { call: self.call.map(|call| call.cost(cost)) }
    }
}

impl StaticCall<'_, HeadersOp> {
    /// [`Call::overrides`].
    pub fn overrides(self, overrides: Headers) -> Self {
        StaticCall { call: self.call.map(|call| call.overrides(overrides)) }
    }
}

macro_rules! static_call_future {
    ($op:ty, $output:ty, |$owner:ident, $error:ident| $not_built:expr) => {
        impl<'a> IntoFuture for StaticCall<'a, $op> {
            type Output = $output;
            type IntoFuture = BoxFuture<'a, $output>;

            fn into_future(self) -> Self::IntoFuture {
                match self.call {
                    Ok(call) => call.into_future(),
                    Err(($owner, $error)) => {
                        let output: $output = $not_built;
                        Box::pin(core::future::ready(output))
                    }
                }
            }
        }
    };
}

static_call_future!(HitOp, Result<Admitted, ThrottleError>, |owner, error| Err(owner.not_built(error)));
static_call_future!(StatOp, Result<Option<StrategyStat>, ThrottleError>, |owner, error| Err(owner.not_built(error)));
static_call_future!(HeadersOp, Result<HeaderMap, ThrottleError>, |owner, error| Err(owner.not_built(error)));
static_call_future!(CheckOp, bool, |owner, error| {
    crate::log::event!(error, "throttle: {}", owner.not_built(error));
    false
});

impl<Op> fmt::Debug for StaticCall<'_, Op> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.call {
            Ok(call) => call.fmt(f),
            Err((owner, _)) => f.debug_struct("StaticCall").field("throttle", &owner.name).finish_non_exhaustive(),
        }
    }
}

/// Ties a handler's marker type to its static.
pub trait Site: 'static {
    /// The handler's static throttle.
    fn throttle() -> &'static StaticThrottle;
}

/// The extractor `#[throttle]` puts first in a handler's arguments: it hits the
/// throttle before any other extractor runs, and rejects with the throttle's response
/// (429, or 500 when the throttle could not be built).
///
/// Stacked attributes make one guard per attribute. Every guard but the last is
/// [`Deferred`]: it only enlists its throttle in the request, and the [`Last`] guard
/// hits all of them as one ([`crate::hit_all`]), so a rejection by a later limit
/// leaves nothing consumed in the earlier ones.
pub struct Guard<M, Mode = Last> {
    headers: GuardHeaders,
    site: PhantomData<fn() -> (M, Mode)>,
}

/// A guard's headers: known at once, or filled in later by the last guard of a stack.
enum GuardHeaders {
    Ready(HeaderMap),
    Slot(Arc<Mutex<HeaderMap>>),
}

impl GuardHeaders {
    fn take(self) -> HeaderMap {
        match self {
            GuardHeaders::Ready(headers) => headers,
            GuardHeaders::Slot(slot) => std::mem::take(&mut *lock(&slot)),
        }
    }
}

/// The guard of the bottom (or only) `#[throttle]` of a handler: it hits.
#[derive(Debug)]
pub enum Last {}

/// The guard of a `#[throttle]` with more below it: it enlists and waits for [`Last`].
#[derive(Debug)]
pub enum Deferred {}

/// Whether a guard hits or enlists.
pub trait GuardMode: 'static {
    /// `true` for [`Deferred`].
    const DEFERRED: bool;
}

impl GuardMode for Last {
    const DEFERRED: bool = false;
}

impl GuardMode for Deferred {
    const DEFERRED: bool = true;
}

/// The throttles enlisted by deferred guards of this request, each with the slot its
/// guard reads its headers from.
#[derive(Clone, Default)]
struct Enlisted(Vec<(HttpThrottle, Arc<Mutex<HeaderMap>>)>);

impl<M: Site, Mode: GuardMode, S: Send + Sync> FromRequestParts<S> for Guard<M, Mode> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let site = M::throttle();
        let throttle = match site.get() {
            Ok(throttle) => throttle,
            Err(error) => return Err(site.not_built(error).into_response()),
        };
        let guard = |headers| Guard { headers, site: PhantomData };
        if Mode::DEFERRED {
            let slot = Arc::new(Mutex::new(HeaderMap::new()));
            parts.extensions.get_or_insert_default::<Enlisted>().0.push((throttle.clone(), slot.clone()));
            return Ok(guard(GuardHeaders::Slot(slot)));
        }
        let Some(Enlisted(enlisted)) = parts.extensions.remove::<Enlisted>() else {
            // A single attribute: the plain hit, with nothing to coordinate.
            let admitted = throttle.hit(&*parts).await.map_err(IntoResponse::into_response)?;
            return Ok(guard(GuardHeaders::Ready(admitted.into_headers())));
        };
        let mut throttles: Vec<HttpThrottle> = enlisted.iter().map(|(t, _)| t.clone()).collect();
        throttles.push(throttle.clone());
        let mut admitted = crate::stack::hit_each(&throttles, &*parts).await.map_err(IntoResponse::into_response)?;
        let own = admitted.pop().unwrap_or_default();
        for ((_, slot), admitted) in enlisted.iter().zip(admitted) {
            *lock(slot) = admitted.into_headers();
        }
        Ok(guard(GuardHeaders::Ready(own.into_headers())))
    }
}

/// A poisoned slot still holds a usable map: headers are plain data.
fn lock(slot: &Mutex<HeaderMap>) -> std::sync::MutexGuard<'_, HeaderMap> {
    slot.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<M, Mode> fmt::Debug for Guard<M, Mode> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let stacked = matches!(self.headers, GuardHeaders::Slot(_));
        f.debug_struct("Guard").field("stacked", &stacked).finish_non_exhaustive()
    }
}

/// The handler's output, for a handler without `headers = ...`. The bound reports a
/// return type that is no response at the handler's `-> T`.
pub fn respond<M, Mode, T: IntoResponse>(_guard: Guard<M, Mode>, output: T) -> T {
    output
}

/// The handler's output with the admitted hit's headers, for `headers = ...`.
pub fn with_headers<M, Mode, T: IntoResponse>(guard: Guard<M, Mode>, output: T) -> WithHeaders<T> {
    WithHeaders { headers: guard.headers.take(), inner: output }
}

/// A handler's response with its throttle's headers: the return type of a handler
/// annotated with `#[throttle(headers = ...)]`, wrapping the declared one. The
/// handler's own headers win over the throttle's on a name conflict.
#[derive(Debug)]
pub struct WithHeaders<T> {
    headers: HeaderMap,
    inner: T,
}

impl<T> WithHeaders<T> {
    /// The headers that will be added.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// What the handler returned.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// What the handler returned, without the headers.
    pub fn into_inner(self) -> T {
        self.inner
    }
}

impl<T: IntoResponse> IntoResponse for WithHeaders<T> {
    fn into_response(self) -> Response {
        let mut response = self.inner.into_response();
        let target = response.headers_mut();
        // `HeaderMap`'s iterator gives the name once per name, then `None` for its
        // further values. A name the response already has is left to the handler.
        let mut current: Option<(HeaderName, bool)> = None;
        for (name, value) in self.headers {
            if let Some(name) = name {
                let taken = target.contains_key(&name);
                current = Some((name, taken));
            }
            if let Some((name, false)) = &current {
                target.append(name.clone(), value);
            }
        }
        response
    }
}
