//! Anchored path globs, compiled to a linear-time regex.
//!
//! A glob is matched against every request path before the throttle decides, so its
//! cost is the client's to choose: a backtracking matcher takes seconds on a 64 KB path
//! against `/**/a/**/b`. The `regex` crate guarantees time linear in the path for any
//! pattern, so a glob is translated once, at build time, and never backtracks.

use crate::ConfigError;
use regex::Regex;

/// An anchored path glob: `*` is any run of characters inside one segment, `**` (a
/// whole segment) any number of segments, zero included; everything else is literal.
#[derive(Debug, Clone)]
pub(super) struct Glob {
    source: String,
    regex: Regex,
}

impl Glob {
    pub(super) fn new(source: &str) -> Result<Self, ConfigError> {
        let invalid = |reason: &str| ConfigError::InvalidGlob { glob: source.to_string(), reason: reason.to_string() };
        let rest = source.strip_prefix('/').ok_or_else(|| invalid("a path glob starts with `/`"))?;
        let mut pattern = String::from("^");
        for segment in rest.split('/') {
            match segment {
                // Zero or more whole segments, each with its leading slash.
                "**" => pattern.push_str("(?:/[^/]*)*"),
                s if s.contains("**") => return Err(invalid("`**` must be a whole segment, as in `/api/**`")),
                s => {
                    pattern.push('/');
                    let literals: Vec<String> = s.split('*').map(regex::escape).collect();
                    pattern.push_str(&literals.join("[^/]*"));
                }
            }
        }
        pattern.push('$');
        let regex = Regex::new(&pattern).map_err(|e| invalid(&format!("cannot be compiled: {e}")))?;
        Ok(Glob { source: source.to_string(), regex })
    }

    pub(super) fn source(&self) -> &str {
        &self.source
    }

    pub(super) fn matches(&self, path: &str) -> bool {
        path.starts_with('/') && self.regex.is_match(path)
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

    /// The matcher this module replaced: recursive and backtracking, exponential on
    /// hostile input, but obviously right on small inputs. The compiled glob must agree.
    fn reference(glob: &str, path: &str) -> bool {
        fn segments(globs: &[&str], parts: &[&str]) -> bool {
            match globs.split_first() {
                None => parts.is_empty(),
                Some((&"**", rest)) => (0..=parts.len()).any(|skip| segments(rest, &parts[skip..])),
                Some((p, rest)) => {
                    parts.split_first().is_some_and(|(part, tail)| wildcard(p, part) && segments(rest, tail))
                }
            }
        }
        fn wildcard(pattern: &str, text: &str) -> bool {
            match pattern.split_once('*') {
                None => pattern == text,
                Some((prefix, rest)) => text.strip_prefix(prefix).is_some_and(|text| {
                    (0..=text.len()).filter(|i| text.is_char_boundary(*i)).any(|i| wildcard(rest, &text[i..]))
                }),
            }
        }
        let (Some(glob), Some(path)) = (glob.strip_prefix('/'), path.strip_prefix('/')) else { return false };
        segments(&glob.split('/').collect::<Vec<_>>(), &path.split('/').collect::<Vec<_>>())
    }

    proptest::proptest! {
        #[test]
        fn agrees_with_the_backtracking_reference(
            glob in "(/(\\*\\*|[ab.*é]{0,3})){1,4}",
            path in "/?[ab./é*]{0,10}",
        ) {
            if let Ok(compiled) = Glob::new(&glob) {
                proptest::prop_assert_eq!(compiled.matches(&path), reference(&glob, &path), "{} on {}", glob, path);
            }
        }

        #[test]
        fn any_glob_and_path_never_panics(glob in "\\PC{0,40}", path in "\\PC{0,200}") {
            if let Ok(compiled) = Glob::new(&glob) {
                let _ = compiled.matches(&path);
            }
        }
    }
}
