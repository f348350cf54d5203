//! [`InFlightLimit`]: at most N requests of a client at once, with its builder and the
//! [`InFlightPermit`] a request holds.

use super::release::Releases;
use super::store::{InFlightStore, MemoryInFlight, Release};
use super::{InFlightError, InFlightFull};
use crate::backend::BackendError;
use crate::key::BuiltKey;
use crate::throttles::{ErrorAction, OnError};
use crate::{AsConnection, ConfigError, Connection, Context, Identifier, Identity, Rule, key};
use core::future::Future;
use core::hash::{BuildHasher, Hash, Hasher};
use http::{HeaderMap, HeaderValue, StatusCode};
use std::collections::hash_map::RandomState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::task::AbortHandle;

/// The tag of in-flight keys: `{namespace}:{uid}:{client}:#inflight`.
const KEY_TAG: &str = "inflight";

/// At most `max` requests of one client in flight at once; a request holds its unit
/// until its response body ends or is dropped (the client went away). Cheap to clone.
///
/// Put it on a router with [`InFlightLayer`](super::InFlightLayer), or hold a permit
/// yourself with [`acquire`](Self::acquire) (a WebSocket for its lifetime, say).
///
/// ```
/// use axum::{Router, routing::get};
/// use throttle::inflight::{InFlightLayer, InFlightLimit};
///
/// let reports = InFlightLimit::builder("api:reports").max(2).build()?;
/// let app: Router = Router::new()
///     .route("/reports", get(|| async { "a slow report" }))
///     .layer(InFlightLayer::new(reports)); // a third concurrent request of one client gets 429
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone, Debug)]
pub struct InFlightLimit {
    inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) uid: Arc<str>,
    pub(crate) max: u64,
    store: Arc<dyn InFlightStore>,
    /// `{namespace}:{uid}:`.
    key_prefix: String,
    identifier: Identifier,
    rules: Vec<Rule>,
    lease_ttl: Duration,
    renew_every: Duration,
    timeout: Duration,
    on_error: OnError,
    pub(crate) status: StatusCode,
    pub(crate) retry_after: Option<Duration>,
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    pub(crate) problem_details: bool,
    pub(crate) headers_on_admitted: bool,
    releases: Releases,
}

/// Options of an [`InFlightLimit`]; [`build`](Self::build) checks them.
#[derive(Debug)]
#[must_use = "a builder does nothing until `build` is called"]
pub struct InFlightBuilder {
    uid: String,
    max: Option<u64>,
    store: Option<Arc<dyn InFlightStore>>,
    identifier: Identifier,
    rules: Vec<Rule>,
    lease_ttl: Duration,
    renew_every: Option<Duration>,
    timeout: Duration,
    on_error: OnError,
    status: StatusCode,
    retry_after: Option<Duration>,
    #[cfg_attr(not(feature = "json"), allow(dead_code))]
    problem_details: bool,
    headers_on_admitted: bool,
}

impl InFlightLimit {
    /// Starts a limit with this uid (letters, digits and `_-.:/`; the second part of
    /// every key, as for throttles). Its keys end in `#inflight`, so they never meet a
    /// throttle's, even under the same uid.
    pub fn builder(uid: impl Into<String>) -> InFlightBuilder {
        InFlightBuilder {
            uid: uid.into(),
            max: None,
            store: None,
            identifier: Identifier::default(),
            rules: Vec::new(),
            lease_ttl: Duration::from_secs(60),
            renew_every: None,
            timeout: Duration::from_millis(250),
            on_error: OnError::default(),
            status: StatusCode::TOO_MANY_REQUESTS,
            retry_after: Some(Duration::from_secs(1)),
            problem_details: false,
            headers_on_admitted: false,
        }
    }

    /// The uid.
    pub fn uid(&self) -> &str {
        &self.inner.uid
    }

    /// The most requests of one client in flight at once.
    pub fn max(&self) -> u64 {
        self.inner.max
    }

    /// Takes a unit for this request's client, held until the permit is dropped.
    ///
    /// A client the rules leave out, or that the identifier exempts, gets a permit that
    /// holds nothing. When the store fails, the [`OnError`] policy decides: `Allow`
    /// gives such a permit, `Throttle(wait)` a rejection with that wait, `Raise` the
    /// error.
    ///
    /// ```
    /// # async fn demo(request: axum::extract::Request) -> Result<(), throttle::inflight::InFlightError> {
    /// use throttle::inflight::InFlightLimit;
    ///
    /// let sockets = InFlightLimit::builder("docs:sockets").max(3).build().unwrap();
    /// let permit = sockets.acquire(&request).await?; // a 429 (as a response) past 3
    /// // ... serve the socket; the unit returns when `permit` is dropped.
    /// drop(permit);
    /// # Ok(()) }
    /// ```
    pub fn acquire<'a>(
        &'a self,
        conn: &'a (impl AsConnection + ?Sized),
    ) -> impl Future<Output = Result<InFlightPermit, InFlightError>> + Send + 'a {
        // The view, not `conn` itself, goes into the future: a `Request`'s body is not
        // `Sync`, and handler futures must be `Send`.
        let conn = conn.as_connection();
        async move { self.acquire_for(&conn).await }
    }

    async fn acquire_for(&self, conn: &Connection<'_>) -> Result<InFlightPermit, InFlightError> {
        let inner = &self.inner;
        if !crate::rules::applies(&inner.rules, conn).await {
            return Ok(InFlightPermit::unlimited());
        }
        let Some(key) = self.key(conn).await else {
            return Ok(InFlightPermit::unlimited());
        };
        let lease = next_lease();
        inner.releases.remember_runtime();
        let acquired = if inner.store.is_remote() {
            let attempt = inner.store.acquire(key.as_key(), &lease, inner.max, inner.lease_ttl);
            match tokio::time::timeout(inner.timeout, attempt).await {
                Ok(outcome) => outcome,
                Err(_) => {
                    // The lease may have landed after all: give it back, whatever happened.
                    inner.releases.run(inner.store.release(key.as_key(), &lease));
                    Err(BackendError::Timeout(inner.timeout))
                }
            }
        } else {
            inner.store.acquire(key.as_key(), &lease, inner.max, inner.lease_ttl).await
        };
        match acquired {
            Ok(acquired) if acquired.admitted => {
                let renewal = self.start_renewal(&key, &lease);
                let held = Held { limit: self.inner.clone(), key, lease, renewal };
                Ok(InFlightPermit { held: Some(held), in_flight: Some(acquired.in_flight) })
            }
            Ok(_) => Err(InFlightError::Full(self.full(None))),
            Err(error) => match inner.on_error.action(&error, &Context::new()) {
                ErrorAction::Allow => {
                    crate::log::event!(warn, "in-flight limit {:?}: store failed, request allowed: {error}", inner.uid);
                    Ok(InFlightPermit::unlimited())
                }
                ErrorAction::Throttle(wait) => {
                    crate::log::event!(
                        warn,
                        "in-flight limit {:?}: store failed, request rejected: {error}",
                        inner.uid
                    );
                    Err(InFlightError::Full(self.full(Some(wait))))
                }
                ErrorAction::Raise => Err(InFlightError::Backend(error)),
            },
        }
    }

    /// Units this request's client holds now; `None` for a client the identifier
    /// exempts.
    pub fn in_flight<'a>(
        &'a self,
        conn: &'a (impl AsConnection + ?Sized),
    ) -> impl Future<Output = Result<Option<u64>, BackendError>> + Send + 'a {
        let conn = conn.as_connection();
        async move {
            match self.key(&conn).await {
                Some(key) => self.inner.store.in_flight(key.as_key()).await.map(Some),
                None => Ok(None),
            }
        }
    }

    /// Waits until every release started so far has reached the store. A store whose
    /// releases wait (Redis) runs them in the background when responses end; call this
    /// before shutting down, or in tests before counting.
    pub async fn settle(&self) {
        self.inner.releases.settle().await;
    }

    /// The client's key, or `None` when exempted.
    async fn key(&self, conn: &Connection<'_>) -> Option<BuiltKey> {
        match self.inner.identifier.identify(conn).await {
            Identity::Exempted => None,
            Identity::Client(id) => Some(key::build_tagged(&self.inner.key_prefix, &id, KEY_TAG)),
        }
    }

    fn full(&self, wait: Option<Duration>) -> InFlightFull {
        let inner = &self.inner;
        let retry_after = wait.or(inner.retry_after).map(|wait| (wait.as_millis() as u64).div_ceil(1000).max(1));
        InFlightFull { limit: self.inner.clone(), retry_after }
    }

    /// A task that renews the lease while the permit lives (aborted when it is
    /// dropped), for stores whose leases expire.
    fn start_renewal(&self, key: &BuiltKey, lease: &str) -> Option<AbortHandle> {
        let inner = self.inner.clone();
        if !inner.store.leases_expire() {
            return None;
        }
        let (key, lease) = (*key, lease.to_string());
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let task = handle.spawn(async move {
            let mut ticks = tokio::time::interval(inner.renew_every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await; // the first tick is now
            loop {
                ticks.tick().await;
                let renewal = inner.store.renew(key.as_key(), &lease, inner.lease_ttl);
                match tokio::time::timeout(inner.timeout, renewal).await {
                    Ok(Ok(true)) => {}
                    Ok(Ok(false)) => {
                        crate::log::event!(
                            warn,
                            "in-flight limit {:?}: a lease expired before its response ended; its unit was counted free \
                             (raise `lease_ttl`, or check that renewals reach the store)",
                            inner.uid
                        );
                        return;
                    }
                    Ok(Err(error)) => crate::log::event!(warn, "in-flight limit {:?}: lease renewal failed: {error}", inner.uid),
                    Err(_) => crate::log::event!(warn, "in-flight limit {:?}: lease renewal timed out", inner.uid),
                }
            }
        });
        Some(task.abort_handle())
    }

    /// Headers for an admitted response (when asked for): the policy and what is left.
    pub(crate) fn admitted_headers(&self, permit: &InFlightPermit) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let (true, Some(in_flight)) = (self.inner.headers_on_admitted, permit.in_flight) {
            self.inner.policy_headers(&mut headers, self.inner.max.saturating_sub(in_flight));
        }
        headers
    }
}

impl Inner {
    /// `RateLimit-Policy: "uid";q=N;qu="concurrent-requests"` and `RateLimit: "uid";r=R`
    /// (draft-ietf-httpapi-ratelimit-headers-10; uids need no escaping in an sf-string).
    pub(crate) fn policy_headers(&self, headers: &mut HeaderMap, remaining: u64) {
        let policy = format!("\"{}\";q={};qu=\"concurrent-requests\"", self.uid, self.max);
        let remaining = format!("\"{}\";r={remaining}", self.uid);
        if let (Ok(policy), Ok(remaining)) = (HeaderValue::try_from(policy), HeaderValue::try_from(remaining)) {
            headers.insert("ratelimit-policy", policy);
            headers.insert("ratelimit", remaining);
        }
    }
}

impl InFlightBuilder {
    /// The most requests of one client in flight at once (at least 1; required).
    pub fn max(mut self, max: u64) -> Self {
        self.max = Some(max);
        self
    }

    /// Where units live (default: a [`MemoryInFlight`] of this limit's own). A
    /// `RedisBackend` shares the limit between processes.
    pub fn store(mut self, store: impl InFlightStore) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// A store shared with other owners.
    pub fn shared_store(mut self, store: Arc<dyn InFlightStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Who is limited (default: the peer IP), with the same ids as throttles.
    pub fn identifier(mut self, identifier: Identifier) -> Self {
        self.identifier = identifier;
        self
    }

    /// Adds a rule: where the limit applies (see [`Rule`]).
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// Adds several rules.
    pub fn rules(mut self, rules: impl IntoIterator<Item = Rule>) -> Self {
        self.rules.extend(rules);
        self
    }

    /// How long a lease lives without renewal (default 60 s): the unit of a process
    /// that died comes back after this. Live requests renew their leases (every third
    /// of this by default), so a long download keeps its unit.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How often a live request renews its lease (default: a third of the lease TTL;
    /// must be shorter than it). Stores whose leases do not expire never renew.
    pub fn renew_every(mut self, every: Duration) -> Self {
        self.renew_every = Some(every);
        self
    }

    /// How long to wait for a remote store before applying the error policy (default
    /// 250 ms).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// What to do when the store fails (default: reject, `Retry-After: 1`).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Rejections are `503 Service Unavailable` instead of `429 Too Many Requests`.
    pub fn service_unavailable(mut self) -> Self {
        self.status = StatusCode::SERVICE_UNAVAILABLE;
        self
    }

    /// `Retry-After` on rejections, in whole seconds rounded up (default 1 s); `None`
    /// sends none.
    pub fn retry_after(mut self, wait: Option<Duration>) -> Self {
        self.retry_after = wait;
        self
    }

    /// Rejections answer with RFC 9457 problem details (`application/problem+json`)
    /// instead of a text body (feature `json`, on by default).
    #[cfg(feature = "json")]
    #[cfg_attr(docsrs, doc(cfg(feature = "json")))]
    pub fn problem_details(mut self) -> Self {
        self.problem_details = true;
        self
    }

    /// `RateLimit-Policy` and `RateLimit` on admitted responses too (rejections always
    /// carry them), with the units left when the request started.
    pub fn headers_on_admitted(mut self) -> Self {
        self.headers_on_admitted = true;
        self
    }

    /// Checks the options and builds the limit.
    pub fn build(self) -> Result<InFlightLimit, ConfigError> {
        key::validate_uid(&self.uid)?;
        let invalid = |reason: &str| ConfigError::InvalidInFlight { uid: self.uid.clone(), reason: reason.to_string() };
        let max = match self.max {
            None => return Err(invalid("no maximum; call `.max(n)`")),
            Some(0) => return Err(invalid("`max` must be at least 1")),
            Some(max) => max,
        };
        if self.lease_ttl < Duration::from_millis(1) {
            return Err(invalid("`lease_ttl` must be at least 1 ms"));
        }
        let renew_every = self.renew_every.unwrap_or(self.lease_ttl / 3).max(Duration::from_millis(1));
        if renew_every >= self.lease_ttl {
            return Err(invalid("`renew_every` must be shorter than `lease_ttl`, or a lease expires between renewals"));
        }
        let store = self.store.unwrap_or_else(|| Arc::new(MemoryInFlight::new()));
        key::validate_namespace(store.namespace())?;
        let key_prefix = format!("{}:{}:", store.namespace(), self.uid);
        Ok(InFlightLimit {
            inner: Arc::new(Inner {
                uid: self.uid.into(),
                max,
                store,
                key_prefix,
                identifier: self.identifier,
                rules: self.rules,
                lease_ttl: self.lease_ttl,
                renew_every,
                timeout: self.timeout,
                on_error: self.on_error,
                status: self.status,
                retry_after: self.retry_after,
                problem_details: self.problem_details,
                headers_on_admitted: self.headers_on_admitted,
                releases: Releases::default(),
            }),
        })
    }
}

/// A unit held for one request: returned to the store when dropped (for Redis, in the
/// background: see [`InFlightLimit::settle`]).
#[derive(Debug)]
#[must_use = "the unit is returned as soon as the permit is dropped"]
pub struct InFlightPermit {
    held: Option<Held>,
    in_flight: Option<u64>,
}

#[derive(Debug)]
struct Held {
    limit: Arc<Inner>,
    key: BuiltKey,
    lease: String,
    renewal: Option<AbortHandle>,
}

impl InFlightPermit {
    fn unlimited() -> Self {
        InFlightPermit { held: None, in_flight: None }
    }

    /// Whether this permit holds a unit (`false` for a client the limit leaves out, or
    /// when the store failed and the policy allowed the request).
    pub fn is_counted(&self) -> bool {
        self.held.is_some()
    }

    /// The client's units in flight when this one was taken (this one included).
    pub fn in_flight(&self) -> Option<u64> {
        self.in_flight
    }
}

impl Drop for InFlightPermit {
    fn drop(&mut self) {
        if let Some(Held { limit, key, lease, renewal }) = self.held.take() {
            if let Some(renewal) = renewal {
                renewal.abort();
            }
            limit.releases.run(limit.store.release(key.as_key(), &lease));
        }
    }
}

impl Releases {
    /// Runs a release: nothing to do when it is done, else in the background.
    fn run(&self, release: Release) {
        if let Release::Pending(future) = release {
            self.spawn(future);
        }
    }
}

/// A lease id no other process or call uses: a per-process random prefix and a counter.
fn next_lease() -> String {
    static PROCESS: LazyLock<u64> = LazyLock::new(|| {
        let mut hasher = RandomState::new().build_hasher();
        std::process::id().hash(&mut hasher);
        std::time::SystemTime::now().hash(&mut hasher);
        hasher.finish()
    });
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("{:016x}-{}", *PROCESS, NEXT.fetch_add(1, Ordering::Relaxed))
}
