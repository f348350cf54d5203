//! The limits file's format, read from TOML with the span of every key and value so
//! that each error points at its line and column.

use super::error::{LimitsError, LimitsErrorKind};
use crate::Rate;
use crate::strategy::DynStrategy;
use std::sync::Arc;
use throttle_grammar::suggest::did_you_mean;
use toml::de::{DeTable, DeValue};

/// The keys of one throttle's table.
pub(crate) const FIELDS: [&str; 4] = ["rate", "strategy", "enabled", "shadow"];

/// One throttle's settings, as the file gives them (absent fields are `None`).
pub(crate) struct Spec {
    pub(crate) uid: String,
    /// Byte offset of the uid, for errors found later (unknown uid).
    pub(crate) at: usize,
    pub(crate) rate: Option<Rate>,
    pub(crate) strategy: Option<Arc<dyn DynStrategy>>,
    pub(crate) enabled: Option<bool>,
    pub(crate) shadow: Option<bool>,
}

/// Errors with positions computed from the text.
pub(crate) struct Source<'a> {
    pub(crate) origin: &'a str,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// An error at byte `at` (or nowhere), about `uid`'s `field`.
    pub(crate) fn error(
        &self,
        at: Option<usize>,
        uid: Option<&str>,
        field: Option<&str>,
        kind: LimitsErrorKind,
    ) -> LimitsError {
        LimitsError::at(self.origin, at.map(|at| line_column(self.text, at)), uid, field, kind)
    }

    /// Every throttle's settings, or the first problem in the file.
    pub(crate) fn parse(&self) -> Result<Vec<Spec>, LimitsError> {
        let document = DeTable::parse(self.text).map_err(|error| {
            let at = error.span().map(|span| span.start);
            self.error(at, None, None, LimitsErrorKind::Syntax(error.message().to_string()))
        })?;
        let mut specs = Vec::new();
        for (key, value) in document.get_ref().iter() {
            if key.get_ref() != "throttles" {
                let kind = unknown_key(key.get_ref(), "`throttles`", &["throttles"]);
                return Err(self.error(Some(key.span().start), None, Some(key.get_ref()), kind));
            }
            let table = self.table(value, None, Some("throttles"))?;
            for (uid, settings) in table.iter() {
                specs.push(self.spec(uid.get_ref(), uid.span().start, settings)?);
            }
        }
        Ok(specs)
    }

    fn table<'t>(
        &self,
        value: &'t toml::Spanned<DeValue<'_>>,
        uid: Option<&str>,
        field: Option<&str>,
    ) -> Result<&'t DeTable<'t>, LimitsError> {
        match value.get_ref() {
            DeValue::Table(table) => Ok(table),
            other => Err(self.error(Some(value.span().start), uid, field, wrong_type("a table", other))),
        }
    }

    fn spec(&self, uid: &str, at: usize, settings: &toml::Spanned<DeValue<'_>>) -> Result<Spec, LimitsError> {
        crate::key::validate_uid(uid).map_err(|error| {
            let reason = match error {
                crate::ConfigError::InvalidUid { reason, .. } => reason,
                other => other.to_string(),
            };
            self.error(Some(at), Some(uid), None, LimitsErrorKind::InvalidUid(reason))
        })?;
        let mut spec = Spec { uid: uid.to_string(), at, rate: None, strategy: None, enabled: None, shadow: None };
        for (key, value) in self.table(settings, Some(uid), None)?.iter() {
            let (field, at) = (key.get_ref().as_ref(), value.span().start);
            let error = |kind| self.error(Some(at), Some(uid), Some(field), kind);
            match field {
                "rate" => {
                    let text = string(value.get_ref()).map_err(error)?;
                    spec.rate = Some(text.parse::<Rate>().map_err(|e| error(LimitsErrorKind::Rate(e)))?);
                }
                "strategy" => {
                    let text = string(value.get_ref()).map_err(error)?;
                    let strategy = crate::strategy::from_name(text).map_err(|e| error(LimitsErrorKind::Strategy(e)))?;
                    spec.strategy = Some(strategy);
                }
                "enabled" => spec.enabled = Some(boolean(value.get_ref()).map_err(error)?),
                "shadow" => spec.shadow = Some(boolean(value.get_ref()).map_err(error)?),
                unknown => {
                    let kind = unknown_key(unknown, "`rate`, `strategy`, `enabled` or `shadow`", &FIELDS);
                    return Err(self.error(Some(key.span().start), Some(uid), Some(unknown), kind));
                }
            }
        }
        Ok(spec)
    }
}

fn string<'v>(value: &'v DeValue<'_>) -> Result<&'v str, LimitsErrorKind> {
    value.as_str().ok_or_else(|| wrong_type("a string", value))
}

fn boolean(value: &DeValue<'_>) -> Result<bool, LimitsErrorKind> {
    value.as_bool().ok_or_else(|| wrong_type("a boolean (`true` or `false`)", value))
}

fn wrong_type(expected: &'static str, found: &DeValue<'_>) -> LimitsErrorKind {
    LimitsErrorKind::WrongType { expected, found: found.type_str() }
}

fn unknown_key(key: &str, expected: &'static str, allowed: &[&'static str]) -> LimitsErrorKind {
    LimitsErrorKind::UnknownKey { key: key.to_string(), expected, suggestion: did_you_mean(key, allowed) }
}

/// 1-based line and column (in characters) of byte `at`.
fn line_column(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_lines_and_character_columns() {
        let text = "a = 1\n[x]\né = \"v\"";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, text.find('=').unwrap()), (1, 3));
        assert_eq!(line_column(text, text.rfind('=').unwrap()), (3, 3), "é is one column");
        assert_eq!(line_column(text, text.len() + 10), (3, 8));
    }
}
