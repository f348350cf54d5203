//! The engine shared by HTTP and WebSocket throttles: hit, stat, check, headers.

use super::instruments::{ErrorOutcome, Stopwatch};
use super::limit::{Limit, Swapped};
use super::operating::Operating;
use super::options::{CostSource, ErrorAction, OnError, RateSource};
use super::split::KeySplit;
use crate::backend::{Backend, BackendError, BoxFuture, Hit, Key, Reply, Route, Since};
use crate::headers::Headers;
use crate::headers::header::{Figures, Input};
use crate::headers::resolved::Resolved;
use crate::identity::ClientId;
use crate::key::{BuiltKey, ClientSegment, Deferred, KeyBuf, KeyPlace, ScopeSegment};
use crate::outcome::RefundTicket;
use crate::rejection::{Rejection, Throttled, ThrottledHandler};
use crate::rules::{self, Rule};
use crate::strategy::{Decision, DynStrategy, Metadata, Snapshot, StrategyStat};
use crate::{Connection, Context, Cost, Identifier, InvalidCost, Rate, ThrottleError, key};
use http::{HeaderMap, HeaderValue};
use parking_lot::RwLock;
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

#[doc(hidden)]
pub struct Core {
    pub(crate) uid: Arc<str>,
    pub(crate) origin: String,
    /// `{namespace}:{uid}:`, computed once.
    pub(crate) key_prefix: String,
    /// The scope segment of the default context, made once; `None` when the throttle
    /// splits by method or route.
    pub(crate) default_scope: Option<String>,
    /// The [space](crate::backend::exact::space) of the default scope's keys, with it.
    pub(crate) default_space: Option<u64>,
    /// Whether the backend reads only a key's exact form when it has one (the in-memory
    /// backend): the text of such a key is then written only if asked for.
    pub(crate) exact_suffices: bool,
    /// The `X-RateLimit-Limit`-style value of the first limit seen, made once.
    pub(crate) limit_value: OnceLock<(u64, HeaderValue)>,
    /// The rate, and a strategy set at runtime (see `limit`): one lock per request.
    pub(crate) limit: RwLock<Limit>,
    /// The code's strategy.
    pub(crate) strategy: Arc<dyn DynStrategy>,
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) identifier: Identifier,
    pub(crate) cost: CostSource,
    pub(crate) headers: Headers,
    pub(crate) on_error: OnError,
    pub(crate) timeout: Duration,
    /// Shared with every rejection, so a 429 never copies it.
    pub(crate) context: Arc<Context>,
    pub(crate) handler: Option<ThrottledHandler>,
    /// Status, detail and extra headers of rejections, shared with each one.
    pub(crate) rejection: Arc<Rejection>,
    pub(crate) rules: Vec<Rule>,
    pub(crate) split: KeySplit,
    pub(crate) enabled: AtomicBool,
    /// Shadow mode, counting by outcome, metrics (see `operating`).
    pub(crate) ops: Operating,
}

/// A hit that was admitted (or that the throttle let through untouched).
///
/// Its headers are written straight into the response (as a response part, by the
/// attribute or by the layer); [`headers`](Self::headers) makes a map of them only
/// when asked. A clone carries the figures and the headers but no refund ticket: a
/// hit is given back at most once.
#[derive(Debug, Default)]
pub struct Admitted {
    pub(crate) remaining: Option<u64>,
    pub(crate) resolved: Resolved,
    /// For [`Admitted::refund`] and [`Admitted::settle`] (see `crate::outcome`).
    pub(crate) ticket: Option<RefundTicket>,
    /// A would-be rejection let through in shadow mode.
    pub(crate) shadowed: bool,
    /// Headers left to write when the response is made (`resolved` is empty then).
    pub(crate) figured: Option<Figured>,
}

/// An admitted hit's headers left to write when its response is made: the throttle's
/// headers read nothing but these figures ([`Core::write_figured`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Figured {
    rate: Rate,
    decision: Decision,
    /// A would-be rejection let through in shadow mode.
    throttled: bool,
}

impl Clone for Admitted {
    fn clone(&self) -> Self {
        Admitted {
            remaining: self.remaining,
            resolved: self.resolved.clone(),
            ticket: None,
            shadowed: self.shadowed,
            figured: self.figured,
        }
    }
}

impl Admitted {
    /// Quota left after this hit; `None` when nothing was counted (disabled throttle,
    /// cost 0, unlimited rate, exempted client, or a backend failure allowed through).
    pub fn remaining(&self) -> Option<u64> {
        self.remaining
    }

    /// Whether the hit was counted against a quota.
    pub fn is_counted(&self) -> bool {
        self.remaining.is_some()
    }

    /// Whether the throttle would have rejected this hit and let it through because
    /// it is in [shadow mode](crate::shadow) (the hit is not counted then).
    pub fn is_shadowed(&self) -> bool {
        self.shadowed
    }

    /// The throttle's headers resolved for this (admitted) response.
    pub fn headers(&self) -> &HeaderMap {
        self.resolved.map()
    }

    /// Takes the resolved headers.
    pub fn into_headers(self) -> HeaderMap {
        self.resolved.into_map()
    }

    /// Writes the headers into a response's map, replacing values of the same names.
    pub(crate) fn write_into(self, target: &mut HeaderMap) {
        self.resolved.write_into(target);
    }
}

impl axum::response::IntoResponseParts for Admitted {
    type Error = std::convert::Infallible;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        self.write_into(res.headers_mut());
        Ok(res)
    }
}

/// [`Core::hit_now`]'s answer: at once, or a hit to await.
#[allow(clippy::large_enum_variant, reason = "the answer at once is the hot path: boxing it would allocate per hit")]
pub(crate) enum Now<'c> {
    Done(Result<Admitted, ThrottleError>),
    Later(BoxFuture<'c, Result<Admitted, ThrottleError>>),
}

/// A hook of [`Core::prepare`] that may have to be awaited.
#[derive(Debug, Clone, Copy)]
enum Hook {
    Rules,
    Rate,
    Cost,
    Client,
}

/// The hooks' answers awaited so far (`None`: not asked yet).
#[derive(Default)]
struct Answers {
    applies: Option<bool>,
    rate: Option<(Rate, Option<Swapped>)>,
    cost: Option<Result<u64, InvalidCost>>,
    client: Option<ClientId>,
}

/// Why [`Core::prepare_now`] stopped short of a prepared hit.
enum Pause {
    Failed(ThrottleError),
    /// A hook has to be awaited first.
    Await(Hook),
}

impl From<ThrottleError> for Pause {
    fn from(error: ThrottleError) -> Self {
        Pause::Failed(error)
    }
}

impl From<InvalidCost> for Pause {
    fn from(error: InvalidCost) -> Self {
        Pause::Failed(error.into())
    }
}

/// What a hit fails with when a backend that answers at once gives a pending reply.
const PENDING_AT_ONCE: &str = "a backend that answers at once gave a pending reply";

/// A hit ready for the backend; its key's text is in a buffer beside it.
pub(crate) struct Prepared<'c> {
    pub(crate) key: KeyPlace<'c>,
    pub(crate) rate: Rate,
    pub(crate) cost: u64,
    pub(crate) context: Cow<'c, Context>,
    /// Read before the decision when the hit takes a refund ticket.
    pub(crate) since: Option<Since>,
    /// The strategy, when not the code's (its key is tagged already).
    pub(crate) swapped: Option<Swapped>,
    /// Where a refundable hit was decided.
    pub(crate) route: Route,
}

impl Core {
    pub(crate) fn uid(&self) -> &str {
        &self.uid
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn strategy_name(&self) -> &'static str {
        self.limit.read().swapped.as_ref().map_or(&*self.strategy, |s| &*s.strategy).name()
    }

    /// The strategy in force now (the code's, or one a limits file set).
    pub(crate) fn strategy_now(&self) -> Arc<dyn DynStrategy> {
        self.limit.read().swapped.as_ref().map_or_else(|| self.strategy.clone(), |s| s.strategy.clone())
    }

    /// The strategy in force for a hit that read `swapped`.
    pub(crate) fn strategy_in<'a>(&'a self, swapped: Option<&'a Swapped>) -> &'a dyn DynStrategy {
        swapped.map_or(&*self.strategy, |s| &*s.strategy)
    }

    pub(crate) fn backend_namespace(&self) -> &str {
        self.backend.namespace()
    }

    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    pub(crate) fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    pub(crate) fn static_rate(&self) -> Option<Rate> {
        self.limit.read().rate.now()
    }

    pub(crate) fn set_rate(&self, rate: Rate) {
        self.limit.write().rate = RateSource::Fixed(rate);
    }

    /// The default context, or the default with the call's context merged on top.
    fn context<'a>(&'a self, call: Option<&Context>) -> Cow<'a, Context> {
        match call {
            Some(call) if !call.is_empty() => Cow::Owned(self.context.merged_with(call)),
            _ => Cow::Borrowed(&*self.context),
        }
    }

    /// The rate and the strategy in force, read together.
    async fn resolve_rate(&self, conn: &Connection<'_>, context: &Context) -> (Rate, Option<Swapped>) {
        let (source, swapped) = {
            let limit = self.limit.read();
            (limit.rate.clone(), limit.swapped.clone())
        };
        (source.get(conn, context).await, swapped)
    }

    /// [`resolve_rate`](Self::resolve_rate) when the rate is fixed.
    fn rate_now(&self) -> Option<(Rate, Option<Swapped>)> {
        let limit = self.limit.read();
        Some((limit.rate.now()?, limit.swapped.clone()))
    }

    async fn resolve_cost(&self, conn: &Connection<'_>, context: &Context) -> Result<u64, InvalidCost> {
        Cost::try_from(self.cost.get(conn, context).await).map(Cost::get)
    }

    /// The bucket's key, built on the stack: bounded whatever the client sends (see
    /// [`key`]). A peer address goes into it as bytes, with no text of its own.
    async fn client_key(&self, conn: &Connection<'_>, context: &Context) -> Option<BuiltKey> {
        let mut text = KeyBuf::new();
        let place = self.key_for(self.identifier.client_id(conn).await, conn, context, &mut text, false)?;
        Some(place.text(&text))
    }

    /// The key of client `id`, written into `text`; `None` for an exempted client. With
    /// `may_defer`, a key the backend names by its exact form alone is not written (see
    /// [`KeyPlace::text`]).
    fn key_for<'c>(
        &'c self,
        id: ClientId,
        conn: &Connection<'_>,
        context: &Context,
        text: &mut KeyBuf,
        may_defer: bool,
    ) -> Option<KeyPlace<'c>> {
        let default_scope = match &self.default_scope {
            Some(segment) if std::ptr::eq(context, &*self.context) => Some(segment),
            _ => None,
        };
        // An IPv4 client on the default scope: the key's exact form, known without its text.
        let exact = match (&id, default_scope.and(self.default_space)) {
            (ClientId::Ip(ip), Some(space)) => ip.exact(space),
            _ => None,
        };
        if let (Some(exact), ClientId::Ip(ip), Some(scope)) = (exact, &id, default_scope) {
            if may_defer && self.exact_suffices {
                return Some(KeyPlace::deferred(exact, Deferred { prefix: &self.key_prefix, scope, client: *ip }));
            }
        }
        let scope_text;
        let parts;
        let scope = match default_scope {
            Some(segment) => ScopeSegment::Built(segment),
            None => {
                scope_text = context.scope();
                parts = self.split.scope_parts(scope_text, conn);
                ScopeSegment::Parts(&parts)
            }
        };
        let client = match id {
            ClientId::Exempted => return None,
            ClientId::Ip(ip) => {
                key::build_into(text, &self.key_prefix, ClientSegment::Readable(&|k| ip.write_segment(k)), scope)
            }
            ClientId::Inline(id) => key::build_into(text, &self.key_prefix, ClientSegment::Text(&id), scope),
            ClientId::Text(id) => key::build_into(text, &self.key_prefix, ClientSegment::Text(&id), scope),
        };
        Some(KeyPlace::new(client).with_exact(exact))
    }

    /// The backend's decision; an answer it gives at once (in memory) is taken as it
    /// is, a pending one within the timeout. A refundable hit learns which store decided.
    pub(crate) async fn decide(&self, text: &KeyBuf, prepared: &mut Prepared<'_>) -> Result<Decision, BackendError> {
        let started = Stopwatch::start();
        let reply = self.reply(text, prepared);
        let decision = match reply.now() {
            Ok(routed) => routed,
            Err(pending) => pending.within(self.timeout).await,
        };
        self.decided(started, prepared, decision)
    }

    /// [`decide`](Self::decide) on a backend that [answers at
    /// once](Backend::answers_at_once): no future. A reply that is pending all the same
    /// fails the hit (the throttle's `on_error` says what follows), and is dropped.
    fn decide_at_once(&self, text: &KeyBuf, prepared: &mut Prepared<'_>) -> Result<Decision, BackendError> {
        let started = Stopwatch::start();
        let decision =
            self.reply(text, prepared).now().unwrap_or_else(|_| Err(BackendError::Failed(PENDING_AT_ONCE.into())));
        self.decided(started, prepared, decision)
    }

    /// The backend's reply to `prepared`, with the store that decided it.
    #[inline]
    fn reply<'p>(&'p self, text: &'p KeyBuf, prepared: &'p Prepared<'_>) -> Reply<'p, (Decision, Route)> {
        let strategy = self.strategy_in(prepared.swapped.as_ref());
        let hit = Hit { key: prepared.key.key(text), strategy, rate: prepared.rate, cost: prepared.cost };
        if prepared.since.is_some() {
            self.backend.hit_routed(hit)
        } else {
            self.backend.hit(hit).map(|decision| (decision, Route::default()))
        }
    }

    fn decided(
        &self,
        started: Stopwatch,
        prepared: &mut Prepared<'_>,
        decision: Result<(Decision, Route), BackendError>,
    ) -> Result<Decision, BackendError> {
        self.ops.instruments.decided(started);
        decision.map(|(decision, route)| {
            prepared.route = route;
            decision
        })
    }

    pub(super) async fn snapshot(
        &self,
        key: Key<'_>,
        strategy: &dyn DynStrategy,
        rate: Rate,
    ) -> Result<Snapshot, BackendError> {
        self.backend.stat(key, strategy, rate).within(self.timeout).await
    }

    /// One hit; `refundable` gives it a refund ticket whatever the throttle counts.
    pub(crate) async fn hit(
        &self,
        conn: &Connection<'_>,
        cost: Option<Result<Cost, InvalidCost>>,
        call_context: Option<&Context>,
        refundable: bool,
    ) -> Result<Admitted, ThrottleError> {
        match self.hit_now(*conn, cost, call_context, refundable, false) {
            Now::Done(result) => result,
            Now::Later(future) => future.await,
        }
    }

    /// [`hit`](Self::hit) without a future when nothing has to be awaited: no async
    /// hook, and a backend that [answers at once](Backend::answers_at_once). Otherwise
    /// the hit, boxed, to be awaited. With `defer_headers`, an admission decided at once
    /// may leave its headers to [`write_figured`](Self::write_figured).
    pub(crate) fn hit_now<'c>(
        &'c self,
        conn: Connection<'c>,
        cost: Option<Result<Cost, InvalidCost>>,
        call_context: Option<&'c Context>,
        refundable: bool,
        defer_headers: bool,
    ) -> Now<'c> {
        let later = move || -> Now<'c> {
            Now::Later(Box::pin(async move {
                let Some((text, mut prepared)) = self.prepare(&conn, cost, call_context, refundable).await? else {
                    return Ok(Admitted::default());
                };
                let decision = self.decide(&text, &mut prepared).await;
                self.finish(&conn, &text, prepared, decision, false)
            }))
        };
        if !self.backend.answers_at_once() {
            return later();
        }
        let mut text = KeyBuf::new();
        let mut prepared =
            match self.prepare_now(&conn, cost, call_context, refundable, &mut Answers::default(), &mut text) {
                Ok(Some(prepared)) => prepared,
                Ok(None) => return Now::Done(Ok(Admitted::default())),
                Err(Pause::Failed(error)) => return Now::Done(Err(error)),
                Err(Pause::Await(_)) => return later(),
            };
        let decision = self.decide_at_once(&text, &mut prepared);
        Now::Done(self.finish(&conn, &text, prepared, decision, defer_headers))
    }

    /// Everything before the backend: switches, cost, rules, rate, identity and key.
    /// `None` means the hit is let through untouched. A `refundable` hit reads the
    /// moment it can be given back from, whatever the throttle counts.
    pub(crate) async fn prepare<'c>(
        &'c self,
        conn: &Connection<'_>,
        cost: Option<Result<Cost, InvalidCost>>,
        call_context: Option<&'c Context>,
        refundable: bool,
    ) -> Result<Option<(KeyBuf, Prepared<'c>)>, ThrottleError> {
        let mut answers = Answers::default();
        let mut text = KeyBuf::new();
        loop {
            match self.prepare_now(conn, cost, call_context, refundable, &mut answers, &mut text) {
                Ok(prepared) => return Ok(prepared.map(|prepared| (text, prepared))),
                Err(Pause::Failed(error)) => return Err(error),
                Err(Pause::Await(hook)) => self.answer(hook, conn, call_context, &mut answers).await,
            }
        }
    }

    /// Awaits the async `hook` that [`prepare_now`](Self::prepare_now) stopped at.
    async fn answer(&self, hook: Hook, conn: &Connection<'_>, call_context: Option<&Context>, answers: &mut Answers) {
        let context = self.context(call_context);
        match hook {
            Hook::Rules => answers.applies = Some(rules::applies(&self.rules, conn).await),
            Hook::Rate => answers.rate = Some(self.resolve_rate(conn, &context).await),
            Hook::Cost => answers.cost = Some(self.resolve_cost(conn, &context).await),
            Hook::Client => answers.client = Some(self.identifier.client_id(conn).await),
        }
    }

    /// The steps of [`prepare`](Self::prepare), in order, taking each hook's answer from
    /// `answers` or at once; stops at the first hook that has to be awaited
    /// ([`Pause::Await`]), to be run again once it is answered.
    fn prepare_now<'c>(
        &'c self,
        conn: &Connection<'_>,
        cost: Option<Result<Cost, InvalidCost>>,
        call_context: Option<&'c Context>,
        refundable: bool,
        answers: &mut Answers,
        text: &mut KeyBuf,
    ) -> Result<Option<Prepared<'c>>, Pause> {
        if !self.is_enabled() {
            return Ok(None);
        }
        let explicit_cost = cost.transpose()?.map(Cost::get);
        if explicit_cost == Some(0) {
            return Ok(None);
        }
        let applies =
            answers.applies.or_else(|| rules::applies_now(&self.rules, conn)).ok_or(Pause::Await(Hook::Rules))?;
        if !applies {
            self.ops.instruments.bypassed();
            return Ok(None);
        }
        let (rate, swapped) = answers.rate.clone().or_else(|| self.rate_now()).ok_or(Pause::Await(Hook::Rate))?;
        if rate.is_unlimited() {
            return Ok(None);
        }
        let cost = match explicit_cost {
            Some(cost) => cost,
            None => answers.cost.or_else(|| self.cost.now().map(Ok)).ok_or(Pause::Await(Hook::Cost))??,
        };
        if cost == 0 {
            return Ok(None);
        }
        let capacity = self.strategy_in(swapped.as_ref()).capacity(rate);
        if cost > capacity && capacity > 0 {
            let uid = self.uid.to_string();
            return Err(ThrottleError::CostExceedsCapacity { uid, cost, capacity }.into());
        }
        let id =
            answers.client.take().or_else(|| self.identifier.client_id_now(conn)).ok_or(Pause::Await(Hook::Client))?;
        let context = self.context(call_context);
        let tag = swapped.as_ref().and_then(|s| s.key_tag);
        let Some(mut key) = self.key_for(id, conn, &context, text, tag.is_none()) else {
            self.ops.instruments.exempted();
            return Ok(None);
        };
        if let Some(tag) = tag {
            key.push_str(text, tag);
        }
        let since = self.ops.since(&*self.backend).or_else(|| refundable.then(|| self.backend.since_now()));
        Ok(Some(Prepared { key, rate, cost, context, since, swapped, route: Route::default() }))
    }

    /// Everything after the backend: the error policy, headers, the rejection.
    pub(crate) fn finish(
        &self,
        conn: &Connection<'_>,
        text: &KeyBuf,
        prepared: Prepared<'_>,
        decision: Result<Decision, BackendError>,
        defer_headers: bool,
    ) -> Result<Admitted, ThrottleError> {
        let Prepared { key: place, rate, cost, context, since, swapped, route } = prepared;
        let failed = decision.is_err();
        let decision = match decision {
            Ok(decision) => decision,
            Err(error) => match self.on_error.action(&error, &context) {
                ErrorAction::Allow => {
                    self.on_backend_error(ErrorOutcome::Allowed);
                    crate::log::event!(warn, "throttle {:?}: backend failed, request allowed: {error}", self.uid);
                    return Ok(Admitted::default());
                }
                ErrorAction::Raise => {
                    self.on_backend_error(ErrorOutcome::Raised);
                    return Err(error.into());
                }
                ErrorAction::Throttle(wait) => {
                    self.on_backend_error(ErrorOutcome::Throttled);
                    crate::log::event!(warn, "throttle {:?}: backend failed, request throttled: {error}", self.uid);
                    let wait_ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
                    Decision { allowed: false, remaining: 0, wait_ms, reset_ms: wait_ms }
                }
            },
        };
        let hide_headers = self.ops.shadow.hides_headers() || self.headers.is_empty();
        let deferred = defer_headers && !hide_headers && self.headers.reads_figures_only();
        let strategy = self.strategy_in(swapped.as_ref()).name();
        let stat = || self.stat_from(place.text(text).to_string(), rate, decision, strategy);
        let headers = |throttled: bool| match (hide_headers, deferred) {
            (true, _) => (Resolved::default(), None),
            (false, true) => (Resolved::default(), Some(Figured { rate, decision, throttled })),
            (false, false) => {
                let input = Input::lazy(conn, self.figures(rate, decision), &context, throttled, &stat);
                (self.headers.resolve_list(&input), None)
            }
        };
        if decision.allowed {
            let (resolved, figured) = headers(false);
            let refund = since.map(|since| (place.text(text), since, route));
            let ticket = self.on_admitted(&decision, rate, cost, refund, swapped);
            return Ok(Admitted { remaining: Some(decision.remaining), resolved, ticket, shadowed: false, figured });
        }
        if self.on_rejected(|| place.text(text), &decision, failed) {
            let (resolved, figured) = headers(true);
            return Ok(Admitted { remaining: None, resolved, ticket: None, shadowed: true, figured });
        }
        let headers = if self.headers.is_empty() {
            Resolved::default()
        } else {
            self.headers.resolve_list(&Input::lazy(conn, self.figures(rate, decision), &context, true, &stat))
        };
        let context = match context {
            Cow::Borrowed(_) => self.context.clone(),
            Cow::Owned(merged) => Arc::new(merged),
        };
        Err(Throttled {
            uid: self.uid.clone(),
            wait_ms: decision.wait_ms,
            rate,
            headers,
            context,
            handler: self.handler.clone(),
            rejection: self.rejection.clone(),
        }
        .into())
    }

    /// Writes an admission's [`Figured`] headers into a response's map, those it does
    /// not have yet.
    pub(crate) fn write_figured(&self, figured: Figured, target: &mut HeaderMap) {
        let Figured { rate, decision, throttled } = figured;
        self.headers.write_missing_from(&self.figures(rate, decision), throttled, target);
    }

    fn figures(&self, rate: Rate, decision: Decision) -> Figures<'_> {
        let limit = rate.limit();
        let (cached, value) = self.limit_value.get_or_init(|| (limit, crate::headers::header::lasting_integer(limit)));
        Figures {
            uid: &self.uid,
            rate,
            limit_value: (*cached == limit).then_some(value),
            remaining: decision.remaining,
            wait_ms: decision.wait_ms,
            reset_ms: decision.reset_ms,
        }
    }

    fn stat_from(&self, key: String, rate: Rate, decision: Decision, strategy: &'static str) -> StrategyStat {
        StrategyStat {
            uid: self.uid.clone(),
            key,
            rate,
            hits_remaining: decision.remaining,
            wait_ms: decision.wait_ms,
            reset_ms: decision.reset_ms,
            strategy,
            metadata: Metadata::None,
        }
    }

    pub(crate) async fn stat(
        &self,
        conn: &Connection<'_>,
        call_context: Option<&Context>,
    ) -> Result<Option<StrategyStat>, ThrottleError> {
        let context = self.context(call_context);
        if !rules::applies(&self.rules, conn).await {
            return Ok(None);
        }
        let (rate, swapped) = self.resolve_rate(conn, &context).await;
        let Some(mut key) = self.client_key(conn, &context).await else {
            return Ok(None);
        };
        if let Some(tag) = swapped.as_ref().and_then(|s| s.key_tag) {
            key.push_str(tag);
        }
        let strategy = self.strategy_in(swapped.as_ref());
        if rate.is_unlimited() {
            let unlimited = Decision { allowed: true, remaining: u64::MAX, wait_ms: 0, reset_ms: 0 };
            return Ok(Some(self.stat_from(key.to_string(), rate, unlimited, strategy.name())));
        }
        let snapshot = self.snapshot(key.as_key(), strategy, rate).await?;
        Ok(Some(StrategyStat::from_snapshot(self.uid.clone(), key.to_string(), rate, strategy.name(), snapshot)))
    }

    pub(crate) async fn check(
        &self,
        conn: &Connection<'_>,
        cost: Option<Result<Cost, InvalidCost>>,
        call_context: Option<&Context>,
    ) -> bool {
        if !self.is_enabled() {
            return true;
        }
        let context = self.context(call_context);
        let cost = match cost {
            Some(Ok(cost)) => cost.get(),
            Some(Err(_)) => return false,
            None => match self.resolve_cost(conn, &context).await {
                Ok(cost) => cost,
                Err(_) => return false,
            },
        };
        if cost == 0 {
            return true;
        }
        match self.stat(conn, Some(&context)).await {
            Ok(Some(stat)) => self.fits_now(&stat, cost),
            // Exempted, or the state cannot be read: check is best effort and optimistic.
            Ok(None) | Err(_) => true,
        }
    }

    pub(crate) async fn get_headers(
        &self,
        conn: &Connection<'_>,
        overrides: Option<&Headers>,
        call_context: Option<&Context>,
    ) -> Result<HeaderMap, ThrottleError> {
        let merged;
        let headers = match overrides.filter(|o| !o.is_empty()) {
            Some(overrides) => {
                merged = &self.headers | overrides;
                &merged
            }
            None => &self.headers,
        };
        if headers.is_empty() || headers.is_static() {
            return Ok(headers.resolve_static());
        }
        let context = self.context(call_context);
        let Some(stat) = self.stat(conn, Some(&context)).await? else {
            return Ok(headers.resolve_static());
        };
        // Headers for a response this throttle admitted (the seed calls `get_headers` in
        // a handler after the hit): a rejection carries its own headers in `Throttled`,
        // so a 200 never gets `Retry-After`, even when its hit took the last unit.
        Ok(headers.resolve(None, &Input::from_stat(conn, &stat, &context, false)))
    }
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Throttle")
            .field("uid", &self.uid)
            .field("rate", &self.static_rate())
            .field("strategy", &self.strategy)
            .field("backend", &self.backend.namespace())
            .field("identifier", &self.identifier)
            .field("on_error", &self.on_error)
            .field("enabled", &self.is_enabled())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-memory path leaves an IPv4 client's key unwritten; written when asked,
    /// it is the text the throttle writes for any other backend, and names the same
    /// exact bucket.
    #[test]
    fn a_deferred_key_is_written_as_it_would_have_been() {
        use crate::AsConnection;
        let throttle = crate::HttpThrottle::builder("core:deferred").rate("5/min").build().unwrap();
        let core = throttle.core();
        let peer = axum::extract::ConnectInfo(std::net::SocketAddr::from(([203, 0, 113, 7], 4000)));
        let request = http::Request::get("/").extension(peer).body(()).unwrap();
        let conn = request.as_connection();
        let id = || core.identifier.client_id_now(&conn).unwrap();
        let (mut lazy, mut eager) = (KeyBuf::new(), KeyBuf::new());
        let deferred = core.key_for(id(), &conn, &core.context, &mut lazy, true).unwrap();
        let written = core.key_for(id(), &conn, &core.context, &mut eager, false).unwrap();
        assert!(lazy.is_empty(), "nothing written on the in-memory path");
        assert_eq!(&*deferred.text(&lazy), "throttle:core:deferred:ip=203.0.113.7:default");
        assert_eq!(&*deferred.text(&lazy), eager.as_str());
        assert!(written.key(&eager).exact().is_some());
        assert_eq!(deferred.text(&lazy).as_key().exact(), written.key(&eager).exact());
        assert_eq!(deferred.key(&lazy).exact(), written.key(&eager).exact());
    }

    /// An admission moves through every request's futures: it stays a few words, its
    /// usual two headers inline (or, for the attribute, the figures to write them from).
    #[test]
    fn an_admission_is_small() {
        assert!(size_of::<Admitted>() <= 256, "{} bytes", size_of::<Admitted>());
    }
}
