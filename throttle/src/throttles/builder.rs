//! [`ThrottleBuilder`]: every throttle option, checked once by `build`.

use super::core::Core;
use super::operating::{Operating, OperatingOptions};
use super::options::{CostSource, OnError, RateSource};
use super::split::KeySplit;
use super::top_denied::MAX_TOP_DENIED;
use crate::CountWhen;
use crate::backend::{Backend, default_backend};
use crate::headers::{HeaderError, Headers};
use crate::rate::ParseRateError;
use crate::registry::Registry;
use crate::rejection::{Rejection, Throttled, ThrottledHandler};
use crate::strategy::{DynStrategy, FixedWindow, Strategy};
use crate::{ConfigError, Connection, Context, Cost, Identifier, InvalidCost, Rate, Rule, key};
use axum::response::Response;
use core::future::Future;
use http::{HeaderName, HeaderValue, StatusCode};
use parking_lot::RwLock;
use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Options of a throttle, keyed by its uid. Setters never fail; [`build`](Self::build)
/// checks everything and reports the first problem.
#[must_use = "a builder does nothing until `build` is called"]
pub struct ThrottleBuilder<T: BuildThrottle> {
    uid: String,
    origin: String,
    rate: Option<Result<RateSource, ParseRateError>>,
    strategy: Arc<dyn DynStrategy>,
    strategy_error: Option<crate::strategy::ParseStrategyError>,
    backend: Option<Arc<dyn Backend>>,
    identifier: Identifier,
    cost: Result<CostSource, InvalidCost>,
    headers: Headers,
    on_error: OnError,
    timeout: Duration,
    context: Context,
    /// Set apart from `context`, so a later `.context(..)` keeps it.
    scope: Option<Cow<'static, str>>,
    handler: Option<ThrottledHandler>,
    /// Status, detail, extra headers and frame fields of rejections.
    pub(crate) rejection: Rejection,
    /// The first invalid `throttled_header`, reported by `build`.
    header_error: Option<HeaderError>,
    rules: Vec<Rule>,
    split: KeySplit,
    registry: Option<Registry>,
    /// Shadow mode, counting by outcome, the top denied clients.
    operating: OperatingOptions,
    /// Options only this kind of throttle has (the WebSocket message options).
    kind_options: T::Options,
    kind: PhantomData<fn() -> T>,
}

/// A rate given to [`ThrottleBuilder::rate`]: a [`Rate`] or a string to parse.
pub trait IntoRate {
    /// The rate, or why the string does not parse.
    fn into_rate(self) -> Result<Rate, ParseRateError>;
}

impl IntoRate for Rate {
    fn into_rate(self) -> Result<Rate, ParseRateError> {
        Ok(self)
    }
}

impl IntoRate for &str {
    fn into_rate(self) -> Result<Rate, ParseRateError> {
        self.parse()
    }
}

impl IntoRate for String {
    fn into_rate(self) -> Result<Rate, ParseRateError> {
        self.parse()
    }
}

/// Throttle types a [`ThrottleBuilder`] builds.
pub trait BuildThrottle: sealed::Sealed + Sized {}

mod sealed {
    pub trait Sealed {
        /// Options only this kind of throttle has; `()` for HTTP.
        type Options: Default;
        fn from_core(core: std::sync::Arc<super::Core>, options: Self::Options) -> Self;
    }
}
pub(crate) use sealed::Sealed;

impl<T: BuildThrottle> ThrottleBuilder<T> {
    pub(crate) fn new(uid: String, origin: String) -> Self {
        ThrottleBuilder {
            uid,
            origin,
            rate: None,
            strategy: Arc::new(FixedWindow),
            strategy_error: None,
            backend: None,
            identifier: Identifier::default(),
            cost: Ok(CostSource::Fixed(1)),
            headers: Headers::new(),
            on_error: OnError::default(),
            timeout: Duration::from_millis(250),
            context: Context::new(),
            scope: None,
            handler: None,
            rejection: Rejection::default(),
            header_error: None,
            rules: Vec::new(),
            split: KeySplit::default(),
            registry: None,
            operating: OperatingOptions::default(),
            kind_options: T::Options::default(),
            kind: PhantomData,
        }
    }

    /// The rate: a [`Rate`] or a string such as `"100/min"` (checked by `build`).
    pub fn rate(mut self, rate: impl IntoRate) -> Self {
        self.rate = Some(rate.into_rate().map(RateSource::Fixed));
        self
    }

    /// A rate computed per request; stats, checks and headers use it too.
    ///
    /// `f` reads what it needs from the request and the [`Context`] right away, then
    /// returns a `'static` future (an `async move` block) that may await, e.g. a
    /// lookup of the client's plan:
    ///
    /// ```
    /// use throttle::{HttpThrottle, Rate};
    ///
    /// async fn plan_limit(api_key: Option<String>) -> u64 {
    ///     if api_key.is_some() { 1_000 } else { 100 } // a database lookup, say
    /// }
    ///
    /// let api = HttpThrottle::builder("docs:rate-fn")
    ///     .rate_fn(|conn, _context| {
    ///         let api_key = conn.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(String::from);
    ///         async move { Rate::per_minute(plan_limit(api_key).await) }
    ///     })
    ///     .build()?;
    /// # let _ = api;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    ///
    /// A named function has the same shape; in edition 2024, `use<>` says its future
    /// borrows nothing from the arguments:
    ///
    /// ```
    /// use std::future::Future;
    /// use throttle::{Connection, Context, Rate};
    ///
    /// fn by_plan(conn: &Connection<'_>, _context: &Context) -> impl Future<Output = Rate> + Send + use<> {
    ///     let pro = conn.headers().contains_key("x-pro-key");
    ///     async move { if pro { Rate::per_minute(1_000) } else { Rate::per_minute(100) } }
    /// }
    ///
    /// let api = throttle::HttpThrottle::builder("docs:rate-fn-named").rate_fn(by_plan).build()?;
    /// # let _ = api;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn rate_fn<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(&Connection<'_>, &Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Rate> + Send + 'static,
    {
        self.rate = Some(Ok(RateSource::hook(f)));
        self
    }

    /// The algorithm (default [`FixedWindow`]).
    pub fn strategy(mut self, strategy: impl Strategy) -> Self {
        self.strategy = Arc::new(strategy);
        self.strategy_error = None;
        self
    }

    /// A built-in algorithm by name, with optional parameters (see
    /// [`strategy::from_name`](crate::strategy::from_name)): `"token_bucket"`,
    /// `"gcra(burst = 10)"`, ... An unknown name or a bad parameter is reported by
    /// [`build`](Self::build).
    ///
    /// ```
    /// use throttle::{ConfigError, HttpThrottle};
    ///
    /// let api = HttpThrottle::builder("docs:strategy-name")
    ///     .rate("100/min")
    ///     .strategy_name("token_bucket(burst = 150)")
    ///     .build()?;
    ///
    /// let err = HttpThrottle::builder("docs:strategy-typo").rate("1/s").strategy_name("gcar").build().unwrap_err();
    /// assert!(matches!(err, ConfigError::Strategy(_)));
    /// assert!(err.to_string().ends_with("(did you mean `gcra`?)"));
    /// # Ok::<(), ConfigError>(())
    /// ```
    pub fn strategy_name(self, name: &str) -> Self {
        self.built_strategy(crate::strategy::from_name(name))
    }

    /// A built-in strategy with parameters, as the attribute's `strategy = "..."`
    /// emits it (already checked by the shared grammar, so it cannot fail).
    pub(crate) fn strategy_kind(self, kind: crate::strategy::StrategyKind, params: &[(&str, u64)]) -> Self {
        self.built_strategy(kind.build_with(params))
    }

    fn built_strategy(
        mut self,
        built: Result<Arc<dyn crate::strategy::DynStrategy>, crate::strategy::ParseStrategyError>,
    ) -> Self {
        match built {
            Ok(strategy) => {
                self.strategy = strategy;
                self.strategy_error = None;
            }
            Err(error) => self.strategy_error = Some(error),
        }
        self
    }

    /// The backend (default: [`default_backend`]).
    pub fn backend(mut self, backend: impl Backend) -> Self {
        self.backend = Some(Arc::new(backend));
        self
    }

    /// A backend shared with other owners.
    pub fn shared_backend(mut self, backend: Arc<dyn Backend>) -> Self {
        self.backend = Some(backend);
        self
    }

    /// Who is limited (default: the peer IP).
    pub fn identifier(mut self, identifier: Identifier) -> Self {
        self.identifier = identifier;
        self
    }

    /// The default cost of a hit (default 1).
    pub fn cost<C: TryInto<Cost, Error = InvalidCost>>(mut self, cost: C) -> Self {
        self.cost = cost.try_into().map(|c| CostSource::Fixed(c.get()));
        self
    }

    /// A cost computed per request, used when a call gives none; the shape of
    /// [`rate_fn`](Self::rate_fn). A cost above 2^53 - 1 fails the hit with
    /// [`ThrottleError::InvalidCost`](crate::ThrottleError::InvalidCost).
    ///
    /// ```
    /// use throttle::HttpThrottle;
    ///
    /// // One unit per KiB the client says it sends, at least 1.
    /// let uploads = HttpThrottle::builder("docs:cost-fn")
    ///     .rate("1000/min")
    ///     .cost_fn(|conn, _context| {
    ///         let length = conn.headers().get("content-length").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    ///         async move { length.map_or(1, |bytes| (bytes / 1024).max(1)) }
    ///     })
    ///     .build()?;
    /// # let _ = uploads;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn cost_fn<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(&Connection<'_>, &Context) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = u64> + Send + 'static,
    {
        self.cost = Ok(CostSource::hook(f));
        self
    }

    /// Headers resolved on every hit: attached to admitted responses by the
    /// attribute, the layer or [`Admitted`](crate::Admitted), and to rejections.
    pub fn headers(mut self, headers: impl Into<Headers>) -> Self {
        self.headers = headers.into();
        self
    }

    /// What to do when the backend fails (default: throttle for 1 s).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// How long to wait for a remote backend before applying the error policy
    /// (default 250 ms). The in-memory backend never waits.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The default context: your values, under every call's (see [`Context`]).
    pub fn context(mut self, context: Context) -> Self {
        self.context = context;
        self
    }

    /// A separate bucket for this throttle's hits: clients count in `scope` (default
    /// `"default"`), and [`Call::scope`](crate::Call::scope) picks another per call.
    /// Two throttles with one uid and different scopes share nothing.
    ///
    /// ```
    /// use throttle::HttpThrottle;
    ///
    /// let public = HttpThrottle::builder("docs:scoped").rate("100/min").scope("public").build()?;
    /// # let _ = public;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn scope(mut self, scope: impl Into<Cow<'static, str>>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// The status of the default rejection instead of 429 (e.g. 503 to shed load).
    ///
    /// ```
    /// use http::StatusCode;
    /// use throttle::HttpThrottle;
    ///
    /// let shed = HttpThrottle::builder("docs:shed")
    ///     .rate("500/s")
    ///     .throttled_status(StatusCode::SERVICE_UNAVAILABLE)
    ///     .throttled_detail("The service is busy. Try again shortly.")
    ///     .throttled_header("Cache-Control", "no-store")
    ///     .build()?;
    /// # let _ = shed;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn throttled_status(mut self, status: StatusCode) -> Self {
        self.rejection.status = Some(status);
        self
    }

    /// The body of the default rejection (the `detail` of a
    /// [problem details](Self::problem_details) body) instead of
    /// `Too many requests. Retry in N seconds.`
    pub fn throttled_detail(mut self, detail: impl Into<String>) -> Self {
        self.rejection.detail = Some(detail.into().into_boxed_str());
        self
    }

    /// An extra header on every rejection (replacing a throttled header of the same
    /// name; `Retry-After` is always the wait). An invalid name or value is reported by
    /// [`build`](Self::build) as [`ConfigError::Header`].
    ///
    /// ```
    /// use throttle::{ConfigError, HttpThrottle};
    ///
    /// let err = HttpThrottle::builder("docs:bad-header").rate("1/s").throttled_header("X-Why", "line\nbreak").build();
    /// assert!(matches!(err, Err(ConfigError::Header(_))));
    /// ```
    pub fn throttled_header(mut self, name: &str, value: &str) -> Self {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::InvalidName(name.to_string()));
        let value = HeaderValue::from_str(value).map_err(|_| HeaderError::InvalidValue(value.to_string()));
        match (name, value) {
            (Ok(name), Ok(value)) => {
                self.rejection.headers.insert(name, value);
            }
            (Err(error), _) | (_, Err(error)) => {
                self.header_error.get_or_insert(error);
            }
        }
        self
    }

    /// Replaces the default rejection response.
    pub fn throttled_handler(mut self, f: impl Fn(&Throttled) -> Response + Send + Sync + 'static) -> Self {
        self.handler = Some(Arc::new(f));
        self
    }

    /// Rejections answer with RFC 9457 problem details (`application/problem+json`)
    /// naming the wait and the policy, instead of the text body (see
    /// [`Throttled::problem_details`]). Replaces any
    /// [`throttled_handler`](Self::throttled_handler) set before.
    ///
    /// ```
    /// use throttle::HttpThrottle;
    ///
    /// let api = HttpThrottle::builder("docs:problem-details").rate("100/min").problem_details().build()?;
    /// # let _ = api;
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn problem_details(mut self) -> Self {
        self.handler = Some(Arc::new(Throttled::problem_details));
        self
    }

    /// Adds a rule: where the throttle applies (see [`Rule`]).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds several rules.
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// A separate bucket per HTTP method (off by default: one budget for all methods).
    ///
    /// The nine standard methods (`GET`, `POST`, ...) each get their own bucket; every
    /// extension method (`PURGE`, or anything a client invents) shares one more, so a
    /// client cannot mint buckets by inventing methods.
    pub fn per_method(mut self) -> Self {
        self.split.method = true;
        self
    }

    /// A separate bucket per **route**: axum's [`MatchedPath`], the template the request
    /// matched (`/users/{id}`), not the raw path. So `/users/1`, `/users/2` and
    /// `/users/%31` are one bucket (give a per-user limit its own identifier or scope),
    /// and the number of buckets is bounded by your routes, not by what clients send.
    /// Off by default: a throttle shared by routes is one budget.
    ///
    /// Requests without a matched route share one `unmatched` bucket. Where the
    /// throttle runs decides what it sees (axum 0.8):
    ///
    /// - [`Router::route_layer`] and handlers (the attribute, the direct API): every
    ///   request has its route.
    /// - [`Router::layer`]: matched requests have their route; 404s (the fallback) have
    ///   none, so all invented paths share the `unmatched` bucket.
    /// - [`Router::nest`]: the route is the whole template, prefix included
    ///   (`/api/users/{id}`), for layers on the outer and on the inner router alike.
    /// - [`Router::nest_service`], or a layer wrapped around the `Router` from outside
    ///   (`ServiceBuilder`, `Layer::layer(router)`), and requests built by hand: no
    ///   route yet, so everything is `unmatched`; put the throttle inside the router.
    ///
    /// ```
    /// use axum::{Router, routing::get};
    /// use throttle::{HttpThrottle, ThrottleLayer};
    ///
    /// let per_route = HttpThrottle::builder("docs:per-route").rate("100/min").per_path().build().unwrap();
    /// let app: Router = Router::new()
    ///     .route("/users/{id}", get(|| async { "a user" })) // one bucket for every id
    ///     .route("/health", get(|| async { "ok" }))
    ///     .layer(ThrottleLayer::new(per_route)); // 404s share one `unmatched` bucket
    /// # let _ = app;
    /// ```
    ///
    /// [`MatchedPath`]: axum::extract::MatchedPath
    /// [`Router::route_layer`]: axum::Router::route_layer
    /// [`Router::layer`]: axum::Router::layer
    /// [`Router::nest`]: axum::Router::nest
    /// [`Router::nest_service`]: axum::Router::nest_service
    pub fn per_path(mut self) -> Self {
        self.split.path = true;
        self
    }

    /// The options only this kind of throttle has (set by its own builder methods).
    #[cfg_attr(not(feature = "ws"), allow(dead_code))]
    pub(crate) fn kind_options(mut self, set: impl FnOnce(&mut T::Options)) -> Self {
        set(&mut self.kind_options);
        self
    }

    /// Where this throttle comes from, for duplicate-uid errors (set by the attribute).
    #[doc(hidden)]
    pub fn origin(mut self, origin: impl Into<String>) -> Self {
        self.origin = origin.into();
        self
    }

    /// Shadow mode: decide and count as usual, but let every request through; a
    /// would-be rejection is logged (`info`) and counted as shadowed. Switch it at
    /// runtime with [`HttpThrottle::set_shadow`](crate::HttpThrottle::set_shadow); see
    /// [`shadow`](crate::shadow).
    ///
    /// ```
    /// use throttle::HttpThrottle;
    /// let trial = HttpThrottle::builder("docs:trial").rate("100/min").shadow(true).build()?;
    /// assert!(trial.is_shadow());
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn shadow(mut self, shadow: bool) -> Self {
        self.operating.shadow = shadow;
        self
    }

    /// Whether responses keep the throttle's headers while it is in shadow mode
    /// (default `false`: clients see no sign of a shadowed throttle). With `true`, a
    /// would-be rejection carries the headers its 429 would have had.
    pub fn shadow_headers(mut self, keep: bool) -> Self {
        self.operating.shadow_headers = keep;
        self
    }

    /// Which responses count (default [`CountWhen::All`]): with `Failures`, a hit
    /// whose response is a success is given back once the response is known, which
    /// [`ThrottleLayer`](crate::ThrottleLayer) and `#[throttle]` do for you, and the
    /// direct API with [`Admitted::settle`](crate::Admitted::settle). See [`CountWhen`].
    ///
    /// ```
    /// use throttle::{CountWhen, HttpThrottle};
    /// let logins = HttpThrottle::builder("docs:failed-logins")
    ///     .rate("5/15min")
    ///     .count_when(CountWhen::Failures)
    ///     .build()?;
    /// # let _ = logins; Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn count_when(mut self, count: CountWhen) -> Self {
        self.operating.count = count;
        self
    }

    /// Keeps the `size` clients denied most (1 to
    /// [`MAX_TOP_DENIED`](crate::throttles::MAX_TOP_DENIED)), read with
    /// [`HttpThrottle::top_denied`](crate::HttpThrottle::top_denied) or from the
    /// registry. Off by default. Memory stays `size` keys however many clients are
    /// denied, and every client denied more than `1 / size` of all denials is listed;
    /// each denial costs a lock and, for a client new to a full list, a walk of it.
    ///
    /// ```
    /// use throttle::HttpThrottle;
    /// let api = HttpThrottle::builder("docs:top-denied").rate("100/min").track_top_denied(10).build()?;
    /// assert!(api.top_denied().is_empty());
    /// # Ok::<(), throttle::ConfigError>(())
    /// ```
    pub fn track_top_denied(mut self, size: usize) -> Self {
        self.operating.top_denied = Some(size);
        self
    }

    /// Registers the throttle in `registry` when it is built: `build` then fails with
    /// [`ConfigError::DuplicateUid`] if a live throttle of the registry has the uid.
    /// Without this, building joins no registry (see [`crate::registry`]).
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// Checks the options, registers the uid (when given a registry) and builds the
    /// throttle.
    pub fn build(self) -> Result<T, ConfigError> {
        key::validate_uid(&self.uid)?;
        let rate = self.rate.ok_or_else(|| ConfigError::MissingRate { uid: self.uid.clone() })??;
        let cost = self.cost?;
        if let Some(error) = self.strategy_error {
            return Err(error.into());
        }
        if let Some(error) = self.header_error {
            return Err(error.into());
        }
        let mut context = self.context;
        if let Some(scope) = self.scope {
            context.set_scope(scope);
        }
        let backend = self.backend.unwrap_or_else(default_backend);
        // A user backend's namespace too: keys stay within `key::MAX_KEY_LEN`.
        key::validate_namespace(backend.namespace())?;
        let key_prefix = format!("{}:{}:", backend.namespace(), self.uid);
        if let Some(size) = self.operating.top_denied.filter(|size| !(1..=MAX_TOP_DENIED).contains(size)) {
            return Err(ConfigError::TopDeniedSize { uid: self.uid, size });
        }
        let default_scope = (!self.split.method && !self.split.path).then(|| key::scope_segment(&[context.scope()]));
        let default_space =
            default_scope.as_ref().map(|scope| crate::backend::exact::space(&key_prefix, &format!(":{scope}")));
        let ops = |me| Operating::new(&self.uid, self.operating, me);
        let core = Arc::new_cyclic(|me: &Weak<Core>| Core {
            ops: ops(me.clone()),
            uid: self.uid.as_str().into(),
            origin: self.origin,
            key_prefix,
            default_scope,
            default_space,
            exact_suffices: backend.downcast_ref::<crate::backend::MemoryBackend>().is_some(),
            limit_value: std::sync::OnceLock::new(),
            limit: RwLock::new(super::limit::Limit::new(rate)),
            strategy: self.strategy,
            backend,
            identifier: self.identifier,
            cost,
            headers: self.headers,
            on_error: self.on_error,
            timeout: self.timeout,
            context: Arc::new(context),
            handler: self.handler,
            rejection: Arc::new(self.rejection),
            rules: self.rules,
            split: self.split,
            enabled: AtomicBool::new(true),
        });
        if let Some(registry) = &self.registry {
            registry.register(&core)?;
        }
        Ok(T::from_core(core, self.kind_options))
    }
}

impl<T: BuildThrottle> std::fmt::Debug for ThrottleBuilder<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThrottleBuilder")
            .field("uid", &self.uid)
            .field("strategy", &self.strategy)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}
