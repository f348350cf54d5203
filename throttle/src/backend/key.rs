//! [`Key`]: the key of one bucket, with the place of its client segment.

use super::exact::Exact;
use core::fmt;
use core::ops::Range;

/// The key of one bucket: `{namespace}:{uid}:{client}:{scope}`, as a throttle builds it
/// (the grammar is in [`crate::key`]), with the place of its client segment, so a
/// backend can group one client's keys (Redis makes the client the Cluster hash tag)
/// without reading the text again.
///
/// Throttles hand their keys to backends in this form. A key written as text (for a
/// tool, or a test that calls a backend directly) is read by the same grammar: its
/// client is the segment between the last two `:`, and text with fewer than two `:`
/// has no client segment.
///
/// ```
/// use throttle::backend::Key;
///
/// let key = Key::from("shop:api:1.2.3.4:default");
/// assert_eq!(key.as_str(), "shop:api:1.2.3.4:default");
/// assert_eq!(key.client(), Some("1.2.3.4"));
/// assert_eq!(key.around_client(), Some(("shop:api:", "1.2.3.4", ":default")));
/// assert_eq!(Key::from("plain").client(), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key<'a> {
    text: &'a str,
    /// Byte offsets of the client segment in `text`: `start..end`, on character
    /// boundaries (keys are far shorter than 4 GiB; a longer text has no client).
    client: Option<(u32, u32)>,
    /// The bucket named exactly, for a throttle's key of an IPv4 client: always what
    /// [`Exact::read`] makes of the text.
    exact: Option<Exact>,
}

impl<'a> Key<'a> {
    /// `text` whose client segment is `client` (byte offsets); the key builder knows
    /// them. A range that is not a segment of `text` leaves the key without a client.
    pub(crate) fn with_client(text: &'a str, client: Range<usize>) -> Self {
        let fits = text.get(client.clone()).is_some();
        let span = (u32::try_from(client.start).ok()).zip(u32::try_from(client.end).ok());
        Key { text, client: span.filter(|_| fits), exact: None }.read_exact()
    }

    /// [`with_client`](Self::with_client) for a span the key builder just made, so
    /// known to be a segment of `text`: nothing to check on the hot path (a wrong span
    /// would only read as no client: the text is the key).
    #[inline]
    pub(crate) fn built(text: &'a str, client: (u16, u16)) -> Self {
        debug_assert!(text.get(usize::from(client.0)..usize::from(client.1)).is_some());
        Key { text, client: Some((u32::from(client.0), u32::from(client.1))), exact: None }.read_exact()
    }

    /// [`built`](Self::built) for a throttle that knows the key's exact form already
    /// (its IPv4 client on its default scope): nothing is read.
    #[inline]
    pub(crate) fn built_exact(text: &'a str, client: (u16, u16), exact: Exact) -> Self {
        let key = Key { text, client: Some((u32::from(client.0), u32::from(client.1))), exact: Some(exact) };
        // (An in-memory hit may leave the text unwritten: the exact form is the key.)
        debug_assert!(text.is_empty() || key.exact == Key::built(text, client).exact, "{text}");
        key
    }

    /// The key with the exact form its text has, if any.
    fn read_exact(mut self) -> Self {
        self.exact = self.around_client().and_then(|(before, client, after)| Exact::read(before, client, after));
        self
    }

    /// The bucket named exactly, when the key has that form.
    pub(crate) fn exact(&self) -> Option<Exact> {
        self.exact
    }

    /// The whole key.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// The client segment, if the key has one.
    pub fn client(&self) -> Option<&'a str> {
        self.around_client().map(|(_, client, _)| client)
    }

    /// The text before the client segment, the segment, and the text after it.
    pub fn around_client(&self) -> Option<(&'a str, &'a str, &'a str)> {
        let (start, end) = self.client?;
        let (start, end) = (start as usize, end as usize);
        Some((self.text.get(..start)?, self.text.get(start..end)?, self.text.get(end..)?))
    }
}

impl<'a> From<&'a str> for Key<'a> {
    /// Reads text as a throttle writes a key: the client is the segment between the
    /// last two `:` (client and scope never contain a raw `:`; see [`crate::key`]).
    fn from(text: &'a str) -> Self {
        let client = text.rsplit_once(':').and_then(|(head, _)| {
            let start = head.rfind(':')? + 1;
            Some(start..head.len())
        });
        match client {
            Some(client) if text.len() <= u32::MAX as usize => Key::with_client(text, client),
            _ => Key { text, client: None, exact: None },
        }
    }
}

impl<'a> From<&'a String> for Key<'a> {
    fn from(text: &'a String) -> Self {
        Key::from(text.as_str())
    }
}

impl fmt::Debug for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.text, f)
    }
}

impl fmt::Display for Key<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_read_by_the_key_grammar() {
        assert_eq!(
            Key::from("ns:api:data:1.2.3.4:default").around_client(),
            Some(("ns:api:data:", "1.2.3.4", ":default"))
        );
        assert_eq!(Key::from("ns:u::s").client(), Some(""));
        assert_eq!(Key::from("ns:u:#:#inflight").client(), Some("#"));
        assert_eq!(Key::from("a:b").client(), None);
        assert_eq!(Key::from("k").client(), None);
        assert_eq!(Key::from("").client(), None);
    }

    #[test]
    fn a_range_that_is_not_a_segment_leaves_no_client() {
        assert_eq!(Key::with_client("é", 0..1).client(), None);
        assert_eq!(Key::with_client("ab", 1..5).client(), None);
    }
}
