//! [`Rule`]: where a throttle applies. Path globs, methods and async predicates.

mod glob;

use crate::backend::BoxFuture;
use crate::{ConfigError, Connection};
use core::future::Future;
use glob::Glob;
use http::Method;
use std::fmt;
use std::sync::Arc;

type PredicateFn = dyn Fn(&Connection<'_>) -> BoxFuture<'static, bool> + Send + Sync;

/// A condition on requests that either limits a throttle to matching requests
/// ([`Rule::apply_if`]) or exempts them ([`Rule::bypass_if`]).
///
/// A rule matches when every condition it has matches: the path matches one of its
/// globs, the method is one of its methods, and its predicate returns `true`. Globs are
/// anchored over the whole path; `*` is one segment (or part of one: `*.json`), `**` any
/// number of segments (zero included), and every other character is literal (`.` too).
///
/// A throttle with rules is skipped when any bypass rule matches, or when it has apply
/// rules and none matches. Paths and methods are checked before any predicate runs.
///
/// ```
/// use http::Method;
/// use throttle::Rule;
///
/// let health = Rule::bypass_if().path("/health")?.path("/metrics/**")?;
/// let api_writes = Rule::apply_if().path("/api/**")?.methods([Method::POST, Method::PUT]);
/// let internal = Rule::bypass_if().predicate(|conn| {
///     let internal = conn.headers().contains_key("x-internal-token");
///     async move { internal }
/// });
/// # let _ = (health, api_writes, internal);
/// # Ok::<(), throttle::ConfigError>(())
/// ```
#[derive(Clone)]
pub struct Rule {
    bypass: bool,
    globs: Vec<Glob>,
    methods: Vec<Method>,
    predicate: Option<Arc<PredicateFn>>,
}

impl Rule {
    /// The throttle applies only to requests matching some apply rule.
    pub fn apply_if() -> Self {
        Rule { bypass: false, globs: Vec::new(), methods: Vec::new(), predicate: None }
    }

    /// The throttle skips requests matching this rule.
    pub fn bypass_if() -> Self {
        Rule { bypass: true, ..Self::apply_if() }
    }

    /// Adds a path glob (a rule with several matches any of them).
    pub fn path(mut self, glob: &str) -> Result<Self, ConfigError> {
        self.globs.push(Glob::new(glob)?);
        Ok(self)
    }

    /// Restricts the rule to these methods.
    pub fn methods(mut self, methods: impl IntoIterator<Item = Method>) -> Self {
        self.methods.extend(methods);
        self
    }

    /// Adds an async predicate: it reads what it needs from the request right away
    /// and returns a `'static` future (an `async move` block) that may await.
    pub fn predicate<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn(&Connection<'_>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = bool> + Send + 'static,
    {
        let boxed = move |conn: &Connection<'_>| -> BoxFuture<'static, bool> { Box::pin(f(conn)) };
        self.predicate = Some(Arc::new(boxed));
        self
    }

    fn matches_cheap(&self, conn: &Connection<'_>) -> bool {
        let path = conn.uri().path();
        (self.globs.is_empty() || self.globs.iter().any(|g| g.matches(path)))
            && (self.methods.is_empty() || self.methods.contains(conn.method()))
    }
}

/// What the paths and methods of `rules` settle about `conn`, or the predicates left
/// to ask.
enum Cheap<'r> {
    Settled(bool),
    Ask { bypass: Vec<&'r Arc<PredicateFn>>, apply: Vec<&'r Arc<PredicateFn>>, applied: bool },
}

/// Cheap conditions first: bypass rules whose paths and methods match (one without a
/// predicate settles it), then apply rules.
fn cheap<'r>(rules: &'r [Rule], conn: &Connection<'_>) -> Cheap<'r> {
    if rules.is_empty() {
        return Cheap::Settled(true);
    }
    let candidates = |bypass: bool| rules.iter().filter(move |r| r.bypass == bypass && r.matches_cheap(conn));
    let mut bypass = Vec::new();
    for rule in candidates(true) {
        match &rule.predicate {
            None => return Cheap::Settled(false),
            Some(p) => bypass.push(p),
        }
    }
    let mut apply = Vec::new();
    let mut applied = !rules.iter().any(|r| !r.bypass);
    for rule in candidates(false) {
        match &rule.predicate {
            None => applied = true,
            Some(p) => apply.push(p),
        }
    }
    if bypass.is_empty() && (applied || apply.is_empty()) {
        return Cheap::Settled(applied);
    }
    Cheap::Ask { bypass, apply, applied }
}

/// [`applies`] when no predicate has to be asked; `None` when one has.
pub(crate) fn applies_now(rules: &[Rule], conn: &Connection<'_>) -> Option<bool> {
    match cheap(rules, conn) {
        Cheap::Settled(applies) => Some(applies),
        Cheap::Ask { .. } => None,
    }
}

/// Whether a throttle with `rules` applies to `conn`: cheap conditions first, then
/// predicates, bypass rules before apply rules.
pub(crate) async fn applies(rules: &[Rule], conn: &Connection<'_>) -> bool {
    let (bypass, apply, mut applied) = match cheap(rules, conn) {
        Cheap::Settled(applies) => return applies,
        Cheap::Ask { bypass, apply, applied } => (bypass, apply, applied),
    };
    for predicate in bypass {
        if predicate(conn).await {
            return false;
        }
    }
    for predicate in apply {
        if applied {
            break;
        }
        applied = predicate(conn).await;
    }
    applied
}

impl fmt::Debug for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct(if self.bypass { "Rule::bypass_if" } else { "Rule::apply_if" })
            .field("paths", &self.globs.iter().map(|g| g.source()).collect::<Vec<_>>())
            .field("methods", &self.methods)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}
