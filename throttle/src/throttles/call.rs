//! Per-call builders: `throttle.hit(&req).cost(5).scope(tenant).await`.

use super::core::{Admitted, Core};
use crate::headers::Headers;
use crate::strategy::StrategyStat;
use crate::{Connection, Context, Cost, InvalidCost, ThrottleError};
use core::future::{Future, IntoFuture};
use core::marker::PhantomData;
use core::pin::Pin;
use http::HeaderMap;
use std::borrow::Cow;

/// One call on a throttle, configured with [`cost`](Call::cost),
/// [`scope`](Call::scope), [`context`](Call::context) (and, for headers,
/// [`overrides`](Call::overrides)), then `.await`ed. `Op` names the operation:
/// [`HitOp`], [`CheckOp`], [`StatOp`], [`HeadersOp`].
#[must_use = "a throttle call does nothing until it is awaited"]
pub struct Call<'a, Op> {
    core: &'a Core,
    conn: Connection<'a>,
    cost: Option<Result<Cost, InvalidCost>>,
    context: Option<Context>,
    scope: Option<Cow<'static, str>>,
    overrides: Option<Headers>,
    refundable: bool,
    op: PhantomData<Op>,
}

/// `hit`: record, check, reject. Resolves to `Result<Admitted, ThrottleError>`.
#[derive(Debug)]
pub enum HitOp {}
/// `check`: a non-consuming pre-check. Resolves to `bool`.
#[derive(Debug)]
pub enum CheckOp {}
/// `stat`: read the state (as a hit of the given cost sees it). Resolves to
/// `Result<Option<StrategyStat>, ThrottleError>`.
#[derive(Debug)]
pub enum StatOp {}
/// `get_headers`: resolve headers. Resolves to `Result<HeaderMap, ThrottleError>`.
#[derive(Debug)]
pub enum HeadersOp {}

/// A pending [`hit`](crate::HttpThrottle::hit).
pub type Hit<'a> = Call<'a, HitOp>;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl<'a, Op> Call<'a, Op> {
    pub(crate) fn new(core: &'a Core, conn: Connection<'a>) -> Self {
        Call { core, conn, cost: None, context: None, scope: None, overrides: None, refundable: false, op: PhantomData }
    }

    /// Your values for this call, merged over the throttle's default
    /// [`context`](crate::ThrottleBuilder::context) (the call wins per type), for your
    /// rate and cost functions, resolvers and handlers to read (see [`Context`]).
    pub fn context(mut self, context: Context) -> Self {
        self.context = Some(context);
        self
    }

    /// The bucket for this call: the client counts in `scope` instead of the
    /// throttle's [`scope`](crate::ThrottleBuilder::scope) (`"default"` unless set).
    /// The seed's `context={"scope": tenant_id}`:
    ///
    /// ```
    /// use axum::extract::{Path, Request, State};
    /// use throttle::{HttpThrottle, ThrottleError};
    ///
    /// async fn get_resource(
    ///     State(api): State<HttpThrottle>,
    ///     Path(tenant_id): Path<String>,
    ///     request: Request,
    /// ) -> Result<String, ThrottleError> {
    ///     api.hit(&request).scope(tenant_id.clone()).await?; // one budget per tenant
    ///     Ok(tenant_id)
    /// }
    /// # let _ = get_resource;
    /// ```
    pub fn scope(mut self, scope: impl Into<Cow<'static, str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The call's context with its scope, if it has either.
    fn call_context(context: Option<Context>, scope: Option<Cow<'static, str>>) -> Option<Context> {
        match scope {
            None => context,
            Some(scope) => {
                let mut context = context.unwrap_or_default();
                context.set_scope(scope);
                Some(context)
            }
        }
    }
}

impl<Op: CostedOp> Call<'_, Op> {
    /// The cost of this call instead of the throttle's default. 0 is a no-op (no
    /// backend I/O); a negative or too large cost fails the call with
    /// [`ThrottleError::InvalidCost`] (and makes `check` return `false`). For a
    /// [`stat`](crate::HttpThrottle::stat), the stat's `wait_ms` is how long until a
    /// hit of this cost would be admitted.
    pub fn cost<C: TryInto<Cost, Error = InvalidCost>>(mut self, cost: C) -> Self {
        self.cost = Some(cost.try_into());
        self
    }
}

impl Call<'_, HitOp> {
    /// Gives the admission a refund ticket, so the hit can be given back with
    /// [`Admitted::refund`] or [`Admitted::settle`] (a throttle that
    /// [counts by outcome](crate::ThrottleBuilder::count_when) always gives one).
    pub fn refundable(mut self) -> Self {
        self.refundable = true;
        self
    }
}

impl Call<'_, HeadersOp> {
    /// Per-call header overrides on top of the throttle's headers;
    /// [`Header::DISABLE`](crate::headers::Header::DISABLE) removes one.
    pub fn overrides(mut self, overrides: Headers) -> Self {
        self.overrides = Some(overrides);
        self
    }
}

/// Operations that take a cost.
pub trait CostedOp: sealed::Sealed {}
impl CostedOp for HitOp {}
impl CostedOp for CheckOp {}
impl CostedOp for StatOp {}
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::HitOp {}
    impl Sealed for super::CheckOp {}
    impl Sealed for super::StatOp {}
}

impl<'a> IntoFuture for Call<'a, HitOp> {
    type Output = Result<Admitted, ThrottleError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let context = Self::call_context(self.context, self.scope);
        Box::pin(async move { self.core.hit(&self.conn, self.cost, context.as_ref(), self.refundable).await })
    }
}

impl<'a> IntoFuture for Call<'a, CheckOp> {
    type Output = bool;
    type IntoFuture = BoxFuture<'a, bool>;

    fn into_future(self) -> Self::IntoFuture {
        let context = Self::call_context(self.context, self.scope);
        Box::pin(async move { self.core.check(&self.conn, self.cost, context.as_ref()).await })
    }
}

impl<'a> IntoFuture for Call<'a, StatOp> {
    type Output = Result<Option<StrategyStat>, ThrottleError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let context = Self::call_context(self.context, self.scope);
        Box::pin(async move { self.core.stat_for(&self.conn, self.cost, context.as_ref()).await })
    }
}

impl<'a> IntoFuture for Call<'a, HeadersOp> {
    type Output = Result<HeaderMap, ThrottleError>;
    type IntoFuture = BoxFuture<'a, Self::Output>;

    fn into_future(self) -> Self::IntoFuture {
        let context = Self::call_context(self.context, self.scope);
        Box::pin(async move { self.core.get_headers(&self.conn, self.overrides.as_ref(), context.as_ref()).await })
    }
}

impl<Op> core::fmt::Debug for Call<'_, Op> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Call")
            .field("uid", &self.core.uid())
            .field("cost", &self.cost)
            .field("scope", &self.scope)
            .field("context", &self.context)
            .finish_non_exhaustive()
    }
}
