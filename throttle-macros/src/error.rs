//! [`Errors`]: collects independent mistakes so one compile shows them all.

use proc_macro2::TokenStream;
use quote::ToTokens;

use crate::rate::edit_distance;

/// Independent errors, folded with [`syn::Error::combine`].
#[derive(Default)]
pub(crate) struct Errors {
    first: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.first {
            Some(first) => first.combine(error),
            None => self.first = Some(error),
        }
    }

    /// An error spanned on `tokens` (the whole of them, first to last token).
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.first.is_some()
    }

    pub(crate) fn finish(self) -> syn::Result<()> {
        self.first.map_or(Ok(()), Err)
    }
}

/// `tokens` followed by `error` as `compile_error!`s: the item stays defined, so code
/// that names it does not pile secondary errors onto the real one.
pub(crate) fn with_error(tokens: TokenStream, error: &syn::Error) -> TokenStream {
    let mut out = tokens;
    out.extend(error.to_compile_error());
    out
}

/// The closest candidate by edit distance, when it is close enough to be a typo.
pub(crate) fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|candidate| (edit_distance(input, candidate), *candidate))
        .filter(|(distance, candidate)| *distance <= 2.max(candidate.len() / 3) && *distance < candidate.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// "`a`, `b` or `c`".
pub(crate) fn one_of(choices: &[&str]) -> String {
    let quoted: Vec<String> = choices.iter().map(|c| format!("`{c}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["uid", "rate", "rate_fn", "headers", "strategy", "identifier"];
        assert_eq!(did_you_mean("rtae", &keys), Some("rate"));
        assert_eq!(did_you_mean("header", &keys), Some("headers"));
        assert_eq!(did_you_mean("identifer", &keys), Some("identifier"));
        assert_eq!(did_you_mean("id", &keys), Some("uid"));
        assert_eq!(did_you_mean("completely_else", &keys), None);
    }

    #[test]
    fn lists_choices_in_prose() {
        assert_eq!(one_of(&["a"]), "`a`");
        assert_eq!(one_of(&["a", "b", "c"]), "`a`, `b` or `c`");
    }
}
