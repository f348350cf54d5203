//! [`StaticCall`]: a call on a [`StaticThrottle`], which fails cleanly when the
//! throttle could not be built.

use super::StaticThrottle;
use crate::backend::BoxFuture;
use crate::strategy::StrategyStat;
use crate::throttles::{CheckOp, CostedOp, HeadersOp, HitOp, StatOp};
use crate::{Admitted, Call, ConfigError, Context, Cost, Headers, HttpThrottle, InvalidCost, ThrottleError};
use core::fmt;
use core::future::IntoFuture;
use http::HeaderMap;

/// A call on a [`StaticThrottle`], configured like [`Call`] and then `.await`ed.
#[must_use = "a throttle call does nothing until it is awaited"]
pub struct StaticCall<'a, Op> {
    call: Result<Call<'a, Op>, (&'a StaticThrottle, &'a ConfigError)>,
}

impl<'a, Op> StaticCall<'a, Op> {
    pub(super) fn new(owner: &'a StaticThrottle, call: impl FnOnce(&'a HttpThrottle) -> Call<'a, Op>) -> Self {
        StaticCall { call: owner.get().map(call).map_err(|error| (owner, error)) }
    }

    /// [`Call::context`].
    pub fn context(self, context: Context) -> Self {
        StaticCall { call: self.call.map(|call| call.context(context)) }
    }

    /// [`Call::scope`].
    pub fn scope(self, scope: impl Into<std::borrow::Cow<'static, str>>) -> Self {
        StaticCall { call: self.call.map(|call| call.scope(scope)) }
    }
}

impl<Op: CostedOp> StaticCall<'_, Op> {
    /// [`Call::cost`].
    pub fn cost<C: TryInto<Cost, Error = InvalidCost>>(self, cost: C) -> Self {
        StaticCall { call: self.call.map(|call| call.cost(cost)) }
    }
}

impl StaticCall<'_, HitOp> {
    /// [`Call::refundable`].
    pub fn refundable(self) -> Self {
        StaticCall { call: self.call.map(Call::refundable) }
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
            Err((owner, _)) => f.debug_struct("StaticCall").field("throttle", &owner.name()).finish_non_exhaustive(),
        }
    }
}
