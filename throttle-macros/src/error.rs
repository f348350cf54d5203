//! [`Errors`]: collects independent mistakes so one compile shows them all.

use proc_macro2::TokenStream;
use quote::ToTokens;

pub(crate) use throttle_grammar::suggest::{did_you_mean, one_of};

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
