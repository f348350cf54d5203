//! Where a throttle's keys live in Redis: `{namespace}:{uid}:{{client}}:{scope}`, the
//! client segment as the Cluster hash tag, so one client's keys share a slot.

use crate::backend::Key;

/// The stored key: the client segment, which the key builder marked, in braces. A key
/// without one (text made by hand with fewer than two `:`) is stored as it is.
pub(super) fn stored_key(key: Key<'_>) -> String {
    let Some((before, client, after)) = key.around_client() else { return key.as_str().to_string() };
    let mut stored = String::with_capacity(key.as_str().len() + 2);
    stored.push_str(before);
    stored.push('{');
    stored.push_str(client);
    stored.push('}');
    stored.push_str(after);
    stored
}

/// The key beside a state key that holds the entries of a sliding log or a queue
/// (a list): the same hash tag, so the same Cluster slot. No state key ends so: a
/// state key's last segment follows its `{client}` one. `key::MAX_SUFFIX_LEN` keeps it
/// within `key::MAX_KEY_LEN`.
pub(super) fn entries_key(stored: &str) -> String {
    const SUFFIX: &str = ":entries";
    const _: () = assert!(SUFFIX.len() <= crate::key::MAX_SUFFIX_LEN);
    format!("{stored}{SUFFIX}")
}

/// What Redis Cluster hashes to pick the slot, by Redis's own rule: the text between
/// the first `{` and the first `}` after it when that is not empty, else the whole key.
pub(super) fn hash_tag(key: &str) -> &str {
    match key.split_once('{').and_then(|(_, rest)| rest.split_once('}')) {
        Some((tag, _)) if !tag.is_empty() => tag,
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{ClientSegment, KeyBuf, ScopeSegment, build_into};

    #[test]
    fn the_client_is_the_hash_tag() {
        let mut text = KeyBuf::new();
        let client = build_into(
            &mut text,
            "throttle:api:data:",
            ClientSegment::Text("1.2.3.4"),
            ScopeSegment::Parts(&["default"]),
        );
        assert_eq!(stored_key(Key::with_client(&text, client)), "throttle:api:data:{1.2.3.4}:default");
        let client = build_into(&mut text, "ns:u:", ClientSegment::Text(""), ScopeSegment::Parts(&["a:b"]));
        assert_eq!(stored_key(Key::with_client(&text, client)), "ns:u:{#}:a%3Ab");
        // Text made by hand is read by the same grammar.
        assert_eq!(stored_key(Key::from("ns:u:a%3Ab:s")), "ns:u:{a%3Ab}:s");
        assert_eq!(stored_key(Key::from("ns:u:#:#inflight")), "ns:u:{#}:#inflight");
        assert_eq!(stored_key(Key::from("plain")), "plain");
    }

    #[test]
    fn hash_tags_follow_the_redis_rule() {
        assert_eq!(hash_tag("ns:u:{1.2.3.4}:s"), "1.2.3.4");
        assert_eq!(hash_tag("ns:u:{#}:s"), "#");
        // An empty tag is no tag: Redis hashes the whole key, so two such keys differ.
        assert_eq!(hash_tag("ns:a:{}:s"), "ns:a:{}:s");
        assert_ne!(hash_tag("ns:a:{}:s"), hash_tag("ns:b:{}:s"));
        assert_eq!(hash_tag("no-tag"), "no-tag");
        assert_eq!(hash_tag("a{b"), "a{b");
        assert_eq!(hash_tag("a}{b}"), "b", "the first opening brace, then the first closing one after it");
        assert_eq!(hash_tag("{}{b}"), "{}{b}", "only the first opening brace counts");
    }
}
