//! [`LimitsError`]: why a limits file was refused, with where (line, column), which
//! throttle and which field.

use crate::rate::ParseRateError;
use crate::strategy::ParseStrategyError;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

/// A limits file was refused; the running limits are unchanged. Displays as
/// `limits.toml:4:8: throttle "api:data", field `rate`: <what is wrong>`.
#[derive(Debug, Clone)]
pub struct LimitsError(Box<Details>);

#[derive(Debug, Clone)]
struct Details {
    origin: String,
    position: Option<(usize, usize)>,
    uid: Option<String>,
    field: Option<String>,
    kind: LimitsErrorKind,
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", Location(&self.0), Subject(&self.0), self.0.kind)
    }
}

/// The message already says what the kind says, so the source is the kind's own.
impl std::error::Error for LimitsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.0.kind)
    }
}

/// What is wrong with a limits file.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LimitsErrorKind {
    /// The file could not be read.
    #[error("cannot read the file: {0}")]
    Io(#[source] Arc<std::io::Error>),
    /// The file is larger than a limits file can be.
    #[error("the file has {0} bytes; a limits file is at most 1 MiB")]
    TooLarge(u64),
    /// The text is not TOML.
    #[error("invalid TOML: {0}")]
    Syntax(String),
    /// A key the format does not have.
    #[error("unknown key `{key}`; expected {expected}{}", did_you_mean(.suggestion))]
    UnknownKey {
        /// The key.
        key: String,
        /// The keys allowed here.
        expected: &'static str,
        /// The closest allowed key, if one is close.
        suggestion: Option<&'static str>,
    },
    /// A value of the wrong type.
    #[error("expected {expected}, found {found}")]
    WrongType {
        /// What the field takes.
        expected: &'static str,
        /// What the file has.
        found: &'static str,
    },
    /// The uid is not a valid uid.
    #[error("invalid uid: {0}")]
    InvalidUid(String),
    /// No live throttle has this uid.
    #[error("no throttle with this uid is running{}", did_you_mean(&.suggestion.as_deref()))]
    UnknownUid {
        /// The closest running uid, if one is close.
        suggestion: Option<String>,
    },
    /// The rate does not parse.
    #[error(transparent)]
    Rate(ParseRateError),
    /// The strategy does not parse.
    #[error(transparent)]
    Strategy(ParseStrategyError),
}

fn did_you_mean(suggestion: &Option<impl fmt::Display>) -> String {
    match suggestion {
        Some(s) => format!(" (did you mean `{s}`?)"),
        None => String::new(),
    }
}

struct Location<'a>(&'a Details);

impl fmt::Display for Location<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.position {
            Some((line, column)) => write!(f, "{}:{line}:{column}: ", self.0.origin),
            None => write!(f, "{}: ", self.0.origin),
        }
    }
}

struct Subject<'a>(&'a Details);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.0.uid, &self.0.field) {
            (Some(uid), Some(field)) => write!(f, "throttle {uid:?}, field `{field}`: "),
            (Some(uid), None) => write!(f, "throttle {uid:?}: "),
            (None, Some(field)) => write!(f, "`{field}`: "),
            (None, None) => Ok(()),
        }
    }
}

impl LimitsError {
    pub(crate) fn new(origin: &str, kind: LimitsErrorKind) -> Self {
        Self::at(origin, None, None, None, kind)
    }

    pub(crate) fn at(
        origin: &str,
        position: Option<(usize, usize)>,
        uid: Option<&str>,
        field: Option<&str>,
        kind: LimitsErrorKind,
    ) -> Self {
        LimitsError(Box::new(Details {
            origin: origin.to_string(),
            position,
            uid: uid.map(str::to_string),
            field: field.map(str::to_string),
            kind,
        }))
    }

    pub(crate) fn io(path: &std::path::Path, error: std::io::Error) -> Self {
        Self::new(&path.display().to_string(), LimitsErrorKind::Io(Arc::new(error)))
    }

    /// Where in the file (1-based line and column, in characters), when known.
    pub fn position(&self) -> Option<(usize, usize)> {
        self.0.position
    }

    /// The throttle uid the problem is about, if any.
    pub fn uid(&self) -> Option<&str> {
        self.0.uid.as_deref()
    }

    /// The field (`rate`, `strategy`, `enabled`, `shadow`, or an unknown key), if any.
    pub fn field(&self) -> Option<&str> {
        self.0.field.as_deref()
    }

    /// What is wrong.
    pub fn kind(&self) -> &LimitsErrorKind {
        &self.0.kind
    }

    /// The file's path (or the name given to text).
    pub fn origin(&self) -> PathBuf {
        PathBuf::from(&self.0.origin)
    }
}
