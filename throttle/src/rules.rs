//! [`Rule`]: where a throttle applies. Path globs, methods and async predicates.

use crate::backend::BoxFuture;
use crate::{ConfigError, Connection};
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
///     Box::pin(async move { internal })
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

    /// Adds an async predicate: it reads what it needs from the request and returns
    /// a `'static` future.
    pub fn predicate(
        mut self,
        f: impl Fn(&Connection<'_>) -> BoxFuture<'static, bool> + Send + Sync + 'static,
    ) -> Self {
        self.predicate = Some(Arc::new(f));
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
            .field("paths", &self.globs.iter().map(|g| g.source.as_str()).collect::<Vec<_>>())
            .field("methods", &self.methods)
            .field("predicate", &self.predicate.is_some())
            .finish()
    }
}

/// An anchored path glob.
#[derive(Debug, Clone)]
struct Glob {
    source: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq)]
enum Segment {
    /// `**`: any number of segments.
    Any,
    /// A segment pattern where `*` matches any run of characters.
    Pattern(String),
}

impl Glob {
    fn new(source: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidGlob { glob: source.to_string(), reason: reason.to_string() };
        let rest = source.strip_prefix('/').ok_or_else(|| invalid("a path glob starts with `/`"))?;
        let segments = rest
            .split('/')
            .map(|s| match s {
                "**" => Ok(Segment::Any),
                s if s.contains("**") => Err(invalid("`**` must be a whole segment, as in `/api/**`")),
                s => Ok(Segment::Pattern(s.to_string())),
            })
            .collect::<Result<_, _>>()?;
        Ok(Glob { source: source.to_string(), segments })
    }

    fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else { return false };
        let parts: Vec<&str> = rest.split('/').collect();
        match_segments(&self.segments, &parts)
    }
}

fn match_segments(globs: &[Segment], parts: &[&str]) -> bool {
    match globs.split_first() {
        None => parts.is_empty(),
        Some((Segment::Any, rest)) => (0..=parts.len()).any(|skip| match_segments(rest, &parts[skip..])),
        Some((Segment::Pattern(p), rest)) => {
            parts.split_first().is_some_and(|(part, tail)| wildcard(p, part) && match_segments(rest, tail))
        }
    }
}

/// `*` matches any run of characters within one segment; everything else is literal.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(text) = text.strip_prefix(prefix) else { return false };
            (0..=text.len()).filter(|i| text.is_char_boundary(*i)).any(|i| wildcard(rest, &text[i..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_semantics() {
        #[rustfmt::skip]
        let cases = [
            ("/api/*", "/api/users", true),
            ("/api/*", "/api/v1/users", false),   // `*` is one segment, anchored
            ("/api/*", "/api", false),
            ("/api/**", "/api", true),            // `**` may be zero segments
            ("/api/**", "/api/v1/users", true),
            ("/api/**", "/apix", false),
            ("/api/**/edit", "/api/a/b/edit", true),
            ("/api/**/edit", "/api/edit", true),
            ("/files/*.json", "/files/a.json", true),
            ("/files/*.json", "/files/ajson", false), // the dot is literal
            ("/v1.0/x", "/v1x0/x", false),
            ("/health", "/health", true),
            ("/health", "/health/", false),
            ("/health", "/healthz", false),
            ("/**", "/anything/at/all", true),
        ];
        for (glob, path, expected) in cases {
            assert_eq!(Glob::new(glob).unwrap().matches(path), expected, "{glob} on {path}");
        }
        assert!(Glob::new("api/*").is_err());
        assert!(Glob::new("/api/a**").is_err());
    }
}
