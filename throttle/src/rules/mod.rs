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

/// Whether a throttle with `rules` applies to `conn`: cheap conditions first, then
/// predicates, bypass rules before apply rules.
pub(crate) async fn applies(rules: &[Rule], conn: &Connection<'_>) -> bool {
    if rules.is_empty() {
        return true;
    }
    let candidates = |bypass: bool| rules.iter().filter(move |r| r.bypass == bypass && r.matches_cheap(conn));
    // Bypass rules whose paths and methods match: one without a predicate settles it.
    let mut bypass_predicates = Vec::new();
    for rule in candidates(true) {
        match &rule.predicate {
            None => return false,
            Some(p) => bypass_predicates.push(p),
        }
    }
    let has_apply_rules = rules.iter().any(|r| !r.bypass);
    let mut apply_predicates = Vec::new();
    let mut applied = !has_apply_rules;
    for rule in candidates(false) {
        match &rule.predicate {
            None => applied = true,
            Some(p) => apply_predicates.push(p),
        }
    }
    for predicate in bypass_predicates {
        if predicate(conn).await {
            return false;
        }
    }
    for predicate in apply_predicates {
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
