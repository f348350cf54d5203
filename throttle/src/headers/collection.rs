//! [`Headers`]: an ordered name → [`Header`] collection.

use super::header::{Figures, Header, HeaderError, Input};
use super::resolved::Resolved;
use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};
use std::ops::{BitOr, BitOrAssign};

/// The headers a throttle resolves, by name. Merge with `|` (a new collection) and `|=`
/// (in place); the right-hand side wins per name.
///
/// A collection of only fixed values is encoded once and copied per response.
///
/// ```
/// use throttle::headers::{DEFAULT_HEADERS_ALWAYS, Header, Headers, When};
///
/// let extra = Headers::new()
///     .with("X-Service-Name", Header::fixed("my-api"))?
///     .with("X-RateLimit-Reset-Ms", Header::reset_milliseconds(When::Always))?;
/// let combined = &*DEFAULT_HEADERS_ALWAYS | &extra; // the preset is not changed
/// assert_eq!(combined.len(), 5);
///
/// let mut copy = DEFAULT_HEADERS_ALWAYS.clone();
/// copy.insert("X-Service-Name", Header::fixed("my-api"))?;
/// assert_eq!(copy.len(), 4);
/// # Ok::<(), throttle::headers::HeaderError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Headers {
    entries: Vec<(HeaderName, Header)>,
    /// Pre-encoded values when every entry is a fixed value sent always.
    encoded: Option<HeaderMap>,
    /// Whether an entry reads more than a decision's figures (a resolver, a predicate).
    needs_request: bool,
}

impl Headers {
    /// An empty collection.
    pub const fn new() -> Self {
        Headers { entries: Vec::new(), encoded: None, needs_request: false }
    }

    /// Builds a collection from `(name, header)` pairs.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, Header)>) -> Result<Self, HeaderError> {
        pairs.into_iter().try_fold(Headers::new(), |headers, (name, header)| headers.with(name, header))
    }

    /// Adds or replaces `name`, by value.
    pub fn with(mut self, name: &str, header: Header) -> Result<Self, HeaderError> {
        self.insert(name, header)?;
        Ok(self)
    }

    /// Adds or replaces `name` in place. Names are case-insensitive.
    pub fn insert(&mut self, name: &str, header: Header) -> Result<(), HeaderError> {
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| HeaderError::InvalidName(name.to_string()))?;
        if let Some(error) = header.invalid() {
            return Err(error);
        }
        self.insert_name(name, header);
        Ok(())
    }

    pub(crate) fn insert_name(&mut self, name: HeaderName, header: Header) {
        match self.entries.iter_mut().find(|(n, _)| *n == name) {
            Some(entry) => entry.1 = header,
            None => self.entries.push((name, header)),
        }
        self.encode_if_static();
    }

    /// Removes `name`.
    pub fn remove(&mut self, name: &str) -> Option<Header> {
        let index = self.entries.iter().position(|(n, _)| n.as_str().eq_ignore_ascii_case(name))?;
        let (_, header) = self.entries.remove(index);
        self.encode_if_static();
        Some(header)
    }

    /// The header under `name`.
    pub fn get(&self, name: &str) -> Option<&Header> {
        self.entries.iter().find(|(n, _)| n.as_str().eq_ignore_ascii_case(name)).map(|(_, h)| h)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// `true` when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &Header)> {
        self.entries.iter().map(|(n, h)| (n, h))
    }

    /// `true` when every entry is a fixed value sent always (resolution is a copy).
    pub fn is_static(&self) -> bool {
        self.encoded.is_some()
    }

    fn encode_if_static(&mut self) {
        self.needs_request = !self.entries.iter().all(|(_, header)| header.reads_figures_only());
        self.encoded = self
            .entries
            .iter()
            .map(|(name, header)| header.as_static().map(|v| (name.clone(), v.clone())))
            .collect::<Option<HeaderMap>>();
    }

    /// Only the fixed values: what is sent when there is no stat (an exempted client).
    pub(crate) fn resolve_static(&self) -> HeaderMap {
        if let Some(encoded) = &self.encoded {
            return encoded.clone();
        }
        self.entries.iter().filter_map(|(n, h)| h.as_static().map(|v| (n.clone(), v.clone()))).collect()
    }

    /// Resolves every entry (with `overrides` on top) for one response.
    pub(crate) fn resolve(&self, overrides: Option<&Headers>, input: &Input<'_>) -> HeaderMap {
        let overrides = overrides.filter(|o| !o.is_empty());
        if let (Some(encoded), None) = (&self.encoded, overrides) {
            return encoded.clone();
        }
        let mut out = HeaderMap::with_capacity(self.entries.len());
        self.resolve_each(overrides, input, |name, value| {
            out.insert(name.clone(), value);
        });
        out
    }

    /// Whether every entry reads only a decision's figures, so the headers of an
    /// admitted hit can be written when its response is made, from
    /// [`write_missing_from`](Self::write_missing_from).
    pub(crate) fn reads_figures_only(&self) -> bool {
        !self.needs_request
    }

    /// Writes the entries the response's map does not have yet, resolved from a
    /// decision's figures (see [`reads_figures_only`](Self::reads_figures_only)).
    pub(crate) fn write_missing_from(&self, figures: &Figures<'_>, throttled: bool, target: &mut HeaderMap) {
        target.reserve(self.entries.len());
        for (name, header) in &self.entries {
            if let Entry::Vacant(entry) = target.entry(name) {
                if let Some(value) = header.resolve_from(figures, throttled) {
                    entry.insert(value);
                }
            }
        }
    }

    /// Resolves every entry for one response into a list, to be written straight into
    /// the response's map: no map of its own.
    pub(crate) fn resolve_list(&self, input: &Input<'_>) -> Resolved {
        let mut out = Resolved::default();
        self.resolve_each(None, input, |name, value| out.push(name.clone(), value));
        out
    }

    fn resolve_each(
        &self,
        overrides: Option<&Headers>,
        input: &Input<'_>,
        mut f: impl FnMut(&HeaderName, HeaderValue),
    ) {
        let overrides = overrides.filter(|o| !o.is_empty());
        let own = self.entries.iter().filter(|(n, _)| overrides.is_none_or(|o| o.get(n.as_str()).is_none()));
        let extra = overrides.into_iter().flat_map(|o| o.entries.iter());
        for (name, header) in own.chain(extra) {
            if let Some(value) = header.resolve(input) {
                f(name, value);
            }
        }
    }
}

impl BitOr<&Headers> for &Headers {
    type Output = Headers;

    fn bitor(self, rhs: &Headers) -> Headers {
        let mut merged = self.clone();
        merged |= rhs;
        merged
    }
}

impl BitOr<Headers> for Headers {
    type Output = Headers;

    fn bitor(mut self, rhs: Headers) -> Headers {
        self |= &rhs;
        self
    }
}

impl BitOrAssign<&Headers> for Headers {
    fn bitor_assign(&mut self, rhs: &Headers) {
        for (name, header) in &rhs.entries {
            match self.entries.iter_mut().find(|(n, _)| n == name) {
                Some(entry) => entry.1 = header.clone(),
                None => self.entries.push((name.clone(), header.clone())),
            }
        }
        self.encode_if_static();
    }
}

impl BitOrAssign<Headers> for Headers {
    fn bitor_assign(&mut self, rhs: Headers) {
        *self |= &rhs;
    }
}

/// A preset by reference, without `&*`: `.headers(&DEFAULT_HEADERS_ALWAYS)`.
impl From<&std::sync::LazyLock<Headers>> for Headers {
    fn from(preset: &std::sync::LazyLock<Headers>) -> Self {
        Headers::clone(preset)
    }
}

impl From<&Headers> for Headers {
    fn from(headers: &Headers) -> Self {
        headers.clone()
    }
}
