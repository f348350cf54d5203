//! [`HandlerFn`]: the annotated function, with its body kept as opaque tokens.
//!
//! The body is never parsed: that keeps expansion cheap, and keeps rust-analyzer
//! working while the body is mid-edit and does not parse yet.

use proc_macro2::{Delimiter, Group, TokenStream};
use quote::ToTokens;
use syn::parse::{Parse, ParseStream};
use syn::{Attribute, Signature, Visibility};

pub(crate) struct HandlerFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// `#![...]` at the top of the body.
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The body's braces, for their span.
    pub(crate) brace: Group,
    /// The body's statements, untouched.
    pub(crate) body: TokenStream,
}

impl Parse for HandlerFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis: Visibility = input.parse()?;
        let sig: Signature = input.parse()?;
        let brace: Group = input.parse()?;
        if brace.delimiter() != Delimiter::Brace {
            return Err(syn::Error::new(brace.span(), "expected the function body `{ ... }`"));
        }
        let (inner_attrs, body) = syn::parse::Parser::parse2(
            |body: ParseStream<'_>| Ok((body.call(Attribute::parse_inner)?, body.parse::<TokenStream>()?)),
            brace.stream(),
        )?;
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the function body"));
        }
        Ok(HandlerFn { attrs, vis, sig, inner_attrs, brace, body })
    }
}

impl ToTokens for HandlerFn {
    /// The function exactly as written.
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        self.brace.to_tokens(tokens);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_body_opaque_and_the_inner_attributes_apart() {
        let item: HandlerFn = syn::parse_str(
            "/// doc\n#[allow(unused)] pub(crate) async fn f<T: Send>(x: T) -> u8 where T: Sync {
                #![allow(clippy::all)]
                let _ = x; 1 + !!! // does not parse as an expression, and need not
            }",
        )
        .unwrap();
        assert_eq!(item.attrs.len(), 2);
        assert_eq!(item.inner_attrs.len(), 1);
        assert_eq!(item.body.to_string().matches('!').count(), 3);
        assert_eq!(item.sig.ident, "f");
    }
}
