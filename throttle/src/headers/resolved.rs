//! [`Resolved`]: a throttle's headers resolved for one response, written straight into
//! the response's map.

use http::header::Entry;
use http::{HeaderMap, HeaderName, HeaderValue};
use smallvec::SmallVec;
use std::sync::OnceLock;

/// Headers resolved for one response, in order, each name once. A map of them is made
/// only when asked for ([`map`](Self::map)): responses take them one by one.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resolved {
    /// Two inline: what every preset sends on an admitted response.
    list: SmallVec<[(HeaderName, HeaderValue); 2]>,
    map: OnceLock<Box<HeaderMap>>,
}

impl Resolved {
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn push(&mut self, name: HeaderName, value: HeaderValue) {
        self.list.push((name, value));
    }

    /// The headers as a map, made on first use.
    pub(crate) fn map(&self) -> &HeaderMap {
        self.map.get_or_init(|| Box::new(self.list.iter().cloned().collect()))
    }

    pub(crate) fn into_map(self) -> HeaderMap {
        match self.map.into_inner() {
            Some(map) => *map,
            None => self.list.into_iter().collect(),
        }
    }

    /// Writes the headers into a response's map, replacing values of the same names.
    pub(crate) fn write_into(self, target: &mut HeaderMap) {
        for (name, value) in self.list {
            target.insert(name, value);
        }
    }

    /// Writes the headers whose names the response does not have yet: the handler's
    /// own headers win.
    pub(crate) fn write_missing_into(self, target: &mut HeaderMap) {
        target.reserve(self.list.len());
        for (name, value) in self.list {
            if let Entry::Vacant(entry) = target.entry(name) {
                entry.insert(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_handlers_headers_win_and_the_map_is_the_list() {
        let mut resolved = Resolved::default();
        resolved.push(HeaderName::from_static("x-a"), HeaderValue::from_static("1"));
        resolved.push(HeaderName::from_static("x-b"), HeaderValue::from_static("2"));
        assert_eq!(resolved.map().len(), 2);
        let mut target = HeaderMap::new();
        target.insert("x-a", HeaderValue::from_static("handler"));
        resolved.clone().write_missing_into(&mut target);
        assert_eq!(target["x-a"], "handler");
        assert_eq!(target["x-b"], "2");
        resolved.write_into(&mut target);
        assert_eq!(target["x-a"], "1");
    }
}
