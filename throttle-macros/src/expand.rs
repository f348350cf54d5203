//! Code generation. Nothing here can fail: every check happened in `validate`. The top
//! `#[throttle]` expands the ones stacked below it too (see `stacked`).
//!
//! Generated locals and items are prefixed `__throttle_`; the runtime is reached only
//! through `#krate::__private` and public items of `#krate`.

use crate::args::ThrottleArgs;
use crate::error::with_error;
use crate::item::HandlerFn;
use crate::stacked::{self, InvalidStack};
use crate::validate::{
    At, Config, CostSpec, CountSpec, HeadersSpec, OnErrorSpec, RateSpec, StrategySpec, crate_path, parse_rate,
};
use proc_macro2::{Delimiter, Group, Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, Ident, Lit, LitStr, Path, ReturnType, Token, Type, Visibility};
use throttle_grammar::policy::{CountPolicy, ErrorPolicy};
use throttle_grammar::rate::ParsedRate;

/// `#[throttle(args)] item`, with the `#[throttle]` attributes stacked below it.
pub(crate) fn throttle(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut handler: HandlerFn = match syn::parse2(item.clone()) {
        Ok(handler) => handler,
        Err(error) => {
            let error = not_a_fn(item.clone()).unwrap_or(error);
            return with_error(item, &error);
        }
    };
    if stacked::already_guarded(&handler.sig) {
        return with_error(handler.to_token_stream(), &syn::Error::new(Span::call_site(), stacked::NOT_TAKEN_IN));
    }
    let args: syn::Result<ThrottleArgs> = syn::parse2(args);
    let krate = stacked::written_crate(&args);
    let (below, below_args) = stacked::take_ours(&mut handler.attrs, &krate);
    let mut attributes = vec![(At::Top, args)];
    attributes.extend(below.iter().map(At::Below).zip(below_args));
    match stacked::validate_stack(attributes, &handler, &krate) {
        Ok(configs) => expand(&configs, handler),
        Err(invalid) => fallback(&handler, invalid),
    }
}

/// For an item that is not a function at all, a clearer error than "expected `fn`".
fn not_a_fn(item: TokenStream) -> Option<syn::Error> {
    let parser = |input: ParseStream<'_>| {
        input.call(syn::Attribute::parse_outer)?;
        input.parse::<Visibility>()?;
        let looks_like_fn = input.peek(Token![fn])
            || input.peek(Token![async])
            || input.peek(Token![const])
            || input.peek(Token![unsafe])
            || input.peek(Token![extern]);
        let next: Option<proc_macro2::TokenTree> = input.parse().ok();
        input.parse::<TokenStream>()?;
        Ok((!looks_like_fn).then_some(next).flatten())
    };
    let next = syn::parse::Parser::parse2(parser, item).ok()??;
    Some(syn::Error::new(next.span(), "`#[throttle]` applies to `async fn` handlers"))
}

/// The function as written (without the stacked attributes taken in), the statics (so
/// code naming them does not cascade), and the errors.
fn fallback(handler: &HandlerFn, invalid: InvalidStack) -> TokenStream {
    let mut tokens = handler.to_token_stream();
    // A method sits in an `impl` block, where a static cannot go.
    if handler.sig.receiver().is_none() {
        let vis = &handler.vis;
        let fn_name = handler.sig.ident.unraw().to_string();
        for (krate, static_name) in &invalid.statics {
            let static_name_str = static_name.to_string();
            tokens.extend(quote! {
                #[allow(dead_code)]
                #vis static #static_name: #krate::attribute::StaticThrottle =
                    #krate::attribute::StaticThrottle::new(#fn_name, #static_name_str, #krate::__private::unbuilt);
            });
        }
    }
    with_error(tokens, &invalid.error)
}

// Input:
//     #[throttle(uid = "api:data", rate = "100/min", headers = "always")]
//     #[throttle(uid = "api:data:daily", rate = "1000/day", name = DAILY)]
//     pub async fn get_data(Path(id): Path<u32>) -> Json<Data> { body }
//
// Output:
//     #[doc(hidden)] pub struct __throttle_get_data;
//     impl ::throttle::__private::Site for __throttle_get_data { .. [&GET_DATA_THROTTLE, &DAILY] .. }
//     /// docs
//     pub static GET_DATA_THROTTLE: ::throttle::attribute::StaticThrottle = .. builder, built on first use ..;
//     /// docs
//     pub static DAILY: ::throttle::attribute::StaticThrottle = ..;
//     pub async fn get_data(
//         __throttle_guard: ::throttle::__private::Guard<__throttle_get_data>,
//         Path(id): Path<u32>,
//     ) -> ::throttle::attribute::WithHeaders<Json<Data>> {
//         let __throttle_output = async move { <fake return edge> body }.await;
//         ::throttle::__private::with_headers(__throttle_guard, __throttle_output)
//     }
fn expand(configs: &[Config], handler: HandlerFn) -> TokenStream {
    // `validate_stack` returns at least the top attribute's.
    let Some(top) = configs.first() else { return handler.to_token_stream() };
    let krate = &top.krate;
    let vis = handler.vis.clone();
    let fn_name = handler.sig.ident.unraw().to_string();
    let marker = format_ident!("__throttle_{}", fn_name);
    let statics = configs.iter().map(|config| static_item(config, &vis, &fn_name));
    let names = configs.iter().map(|config| &config.static_name);
    let count = configs.len();
    let respond = match (configs.iter().any(|c| c.count.is_some()), configs.iter().any(|c| c.headers.is_some())) {
        (true, _) => Respond::Settle,
        (false, true) => Respond::WithHeaders,
        (false, false) => Respond::Plain,
    };
    let function = rewrite(krate, respond, handler, &marker);
    quote! {
        // Unused only when the handler is: its own warning says so, once.
        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        #[derive(Debug)]
        #vis struct #marker;

        impl #krate::__private::Site for #marker {
            fn throttles() -> &'static [&'static #krate::attribute::StaticThrottle] {
                static __THROTTLE_STATICS: [&#krate::attribute::StaticThrottle; #count] = [#(&#names),*];
                &__THROTTLE_STATICS
            }
        }

        #(#statics)*

        #function
    }
}

/// One attribute's static, built on first use.
fn static_item(config: &Config, vis: &Visibility, fn_name: &str) -> TokenStream {
    let krate = &config.krate;
    let static_name = &config.static_name;
    let static_name_str = static_name.to_string();
    let init = builder(config, fn_name);
    let static_doc = format!(
        " The throttle of the handler `{fn_name}` (uid `{}`), generated by `#[throttle]`.\n\n \
         Built on first use. Call `hit`, `check`, `stat` or `get_headers` on it to share the \
         handler's counts, or `get` for the `HttpThrottle` (or the configuration error).",
        config.uid.value()
    );
    quote! {
        #[doc = #static_doc]
        #[allow(dead_code)]
        #vis static #static_name: #krate::attribute::StaticThrottle =
            #krate::attribute::StaticThrottle::new(#fn_name, #static_name_str, || #init);
    }
}

/// The block that builds the throttle: `{ let b = ...; b.build() }`.
fn builder(config: &Config, fn_name: &str) -> TokenStream {
    let krate = &config.krate;
    let b = Ident::new("__throttle_builder", Span::mixed_site());
    let uid = &config.uid;
    let origin_head = format!("handler `{fn_name}` (");
    let mut steps = vec![quote! {
        let #b = #krate::__private::builder(
            #uid,
            ::core::concat!(#origin_head, ::core::file!(), ":", ::core::line!(), ")"),
        );
    }];
    let mut step = |call: TokenStream| steps.push(quote! { let #b = #call; });

    step(match &config.rate {
        RateSpec::Parsed(rate, span) => {
            let rate = rate_tokens(krate, *rate, *span);
            quote!(#b.rate(#rate))
        }
        RateSpec::Expr(expr) => quote!(#b.rate(#expr)),
        RateSpec::Fn(expr) => quote!(#b.rate_fn(#expr)),
    });
    if let Some(strategy) = &config.strategy {
        step(match strategy {
            StrategySpec::Parsed(spec, span) => {
                let variant = Ident::new(spec.strategy().variant, *span);
                let names = spec.params.iter().map(|(name, _)| LitStr::new(name, *span));
                let values = spec.params.iter().map(|(_, value)| Literal::u64_suffixed(*value));
                quote_spanned!(*span=> #krate::__private::strategy(
                    #b,
                    #krate::strategy::StrategyKind::#variant,
                    &[#((#names, #values)),*],
                ))
            }
            StrategySpec::Expr(expr) => quote!(#b.strategy(#expr)),
        });
    }
    if let Some(headers) = &config.headers {
        step(match headers {
            HeadersSpec::Always(span) => quote_spanned!(*span=> #b.headers(#krate::__private::headers_always())),
            HeadersSpec::Throttled(span) => {
                quote_spanned!(*span=> #b.headers(#krate::__private::headers_throttled()))
            }
            HeadersSpec::Expr(expr) => quote!(#b.headers(#krate::__private::headers(&#expr))),
        });
    }
    if let Some(cost) = &config.cost {
        step(match cost {
            CostSpec::Fixed(cost, span) => {
                let mut cost = Literal::u64_suffixed(*cost);
                cost.set_span(*span);
                quote!(#b.cost(#cost))
            }
            CostSpec::Path(path) => quote!(#krate::__private::cost(#b, #path)),
        });
    }
    if let Some(backend) = &config.backend {
        step(quote!(#b.backend(#backend)));
    }
    if let Some(identifier) = &config.identifier {
        step(quote!(#b.identifier(#identifier)));
    }
    if let Some(rules) = &config.rules {
        step(quote!(#b.rules(#rules)));
    }
    if let Some(scope) = &config.scope {
        step(quote!(#krate::__private::scope(#b, #scope)));
    }
    if let Some(on_error) = &config.on_error {
        step(match on_error {
            OnErrorSpec::Named(policy, span) => {
                let policy = match policy {
                    ErrorPolicy::Allow => quote_spanned!(*span=> #krate::OnError::Allow),
                    ErrorPolicy::Throttle => {
                        quote_spanned!(*span=> <#krate::OnError as ::core::default::Default>::default())
                    }
                    ErrorPolicy::Raise => quote_spanned!(*span=> #krate::OnError::Raise),
                };
                quote!(#b.on_error(#policy))
            }
            OnErrorSpec::Expr(expr) => quote!(#b.on_error(#expr)),
        });
    }
    if let Some(shadow) = &config.shadow {
        step(quote!(#b.shadow(#shadow)));
    }
    if let Some(count) = &config.count {
        step(match count {
            CountSpec::Named(policy, span) => {
                let policy = match policy {
                    CountPolicy::All => quote_spanned!(*span=> #krate::__private::count_all()),
                    CountPolicy::Failures => quote_spanned!(*span=> #krate::__private::count_failures()),
                    CountPolicy::Successes => quote_spanned!(*span=> #krate::__private::count_successes()),
                };
                quote!(#b.count_when(#policy))
            }
            CountSpec::Expr(expr) => quote!(#b.count_when(#expr)),
        });
    }
    quote!({
        #(#steps)*
        #b.build()
    })
}

/// A `const`-evaluable `Rate` for a rate the grammar accepted.
fn rate_tokens(krate: &Path, rate: ParsedRate, span: Span) -> TokenStream {
    match rate {
        ParsedRate::Unlimited => quote_spanned!(span=> #krate::Rate::UNLIMITED),
        ParsedRate::Limited { limit, period_ms } => {
            let limit = Literal::u64_suffixed(limit);
            let period_ms = Literal::u64_suffixed(period_ms);
            quote_spanned!(span=> #krate::__private::rate(#limit, #period_ms))
        }
    }
}

/// What the rewritten handler returns.
#[derive(Clone, Copy)]
enum Respond {
    /// The declared type.
    Plain,
    /// `WithHeaders<T>`, for `headers = ...`.
    WithHeaders,
    /// A `Response`, for `count = ...`: the outcome is read (and hits given back)
    /// before the handler returns.
    Settle,
}

/// The handler with the guard injected first and the body run inside `async move`.
fn rewrite(krate: &Path, respond: Respond, handler: HandlerFn, marker: &Ident) -> TokenStream {
    let HandlerFn { attrs, vis, mut sig, inner_attrs, brace, body } = handler;
    let guard = Ident::new(stacked::GUARD, Span::mixed_site());
    let output = Ident::new("__throttle_output", Span::mixed_site());

    let guard_arg: syn::FnArg = syn::parse_quote!(#guard: #krate::__private::Guard<#marker>);
    sig.inputs.insert(0, guard_arg);

    let (declared, ret_span) = match &sig.output {
        ReturnType::Default => (quote!(()), sig.paren_token.span.close()),
        ReturnType::Type(_, ty) => (ty.to_token_stream(), ty.span()),
    };
    let fake_return = fake_return_edge(&sig.output, ret_span);
    // The whole call is spanned on the return type, so an output that is no response
    // is reported there (the `T: IntoResponse` bound of `respond`/`with_headers`).
    let krate_at_ret = respan(krate.to_token_stream(), ret_span);
    let arrow = match &sig.output {
        ReturnType::Type(arrow, _) => *arrow,
        ReturnType::Default => Token![->](ret_span),
    };
    let call = match respond {
        Respond::Plain => quote_spanned!(ret_span=> #krate_at_ret::__private::respond(#guard, #output)),
        Respond::WithHeaders => {
            let wrapped: Type = syn::parse_quote_spanned!(ret_span=> #krate::attribute::WithHeaders<#declared>);
            sig.output = ReturnType::Type(arrow, Box::new(wrapped));
            quote_spanned!(ret_span=> #krate_at_ret::__private::with_headers(#guard, #output))
        }
        Respond::Settle => {
            let response: Type = syn::parse_quote_spanned!(ret_span=> #krate::attribute::Response);
            sig.output = ReturnType::Type(arrow, Box::new(response));
            quote_spanned!(ret_span=> #krate_at_ret::__private::settle(#guard, #output).await)
        }
    };

    let mut async_body = Group::new(Delimiter::Brace, quote!(#fake_return #body));
    async_body.set_span(brace.span());
    let mut new_body = Group::new(
        Delimiter::Brace,
        quote! {
            #(#inner_attrs)*
            let #output = async move #async_body.await;
            #call
        },
    );
    new_body.set_span(brace.span());
    quote! {
        #(#attrs)*
        #vis #sig #new_body
    }
}

/// `tokens` with every span set to `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|mut tree| {
            if let proc_macro2::TokenTree::Group(group) = &tree {
                let mut inner = Group::new(group.delimiter(), respan(group.stream(), span));
                inner.set_span(span);
                tree = inner.into();
            }
            tree.set_span(span);
            tree
        })
        .collect()
}

/// A dead `return` of the declared type, first in the body: inference anchors on the
/// user's `-> T`, so a mismatch in the body is reported against it.
fn fake_return_edge(output: &ReturnType, span: Span) -> TokenStream {
    let ty = match output {
        ReturnType::Default => quote_spanned!(span=> ()),
        ReturnType::Type(_, ty) => erase_impl_trait(ty),
    };
    quote_spanned! {span=>
        #[allow(
            unknown_lints,
            unreachable_code,
            clippy::diverging_sub_expression,
            clippy::empty_loop,
            clippy::let_unit_value,
            clippy::let_with_type_underscore,
            clippy::needless_return,
            clippy::unreachable
        )]
        if false {
            let __throttle_fake_return: #ty = loop {};
            return __throttle_fake_return;
        }
    }
}

/// `impl Trait` cannot annotate a `let`; `_` can, and inference fills it in.
fn erase_impl_trait(ty: &Type) -> TokenStream {
    let mut ty = ty.clone();
    erase(&mut ty);
    ty.to_token_stream()
}

fn erase(ty: &mut Type) {
    match ty {
        Type::ImplTrait(impl_trait) => {
            *ty = Type::Infer(syn::TypeInfer { attrs: Vec::new(), underscore_token: Token![_](impl_trait.span()) });
        }
        Type::Array(inner) => erase(&mut inner.elem),
        Type::Slice(inner) => erase(&mut inner.elem),
        Type::Group(inner) => erase(&mut inner.elem),
        Type::Paren(inner) => erase(&mut inner.elem),
        Type::Ptr(inner) => erase(&mut inner.elem),
        Type::Reference(inner) => erase(&mut inner.elem),
        Type::Tuple(tuple) => tuple.elems.iter_mut().for_each(erase),
        Type::Path(path) => {
            for segment in &mut path.path.segments {
                if let syn::PathArguments::AngleBracketed(args) = &mut segment.arguments {
                    for arg in &mut args.args {
                        if let syn::GenericArgument::Type(inner) = arg {
                            erase(inner);
                        }
                    }
                }
            }
        }
        _ => {}
    }
}

/// `rate!("100/min")` and `rate!("100/min", crate = "my_throttle")`.
pub(crate) fn rate(input: TokenStream) -> TokenStream {
    match syn::parse2::<RateInput>(input).and_then(|input| {
        let rate = parse_rate(&input.lit)?;
        Ok(rate_tokens(&input.krate, rate, input.lit.span()))
    }) {
        Ok(tokens) => tokens,
        // An expression of the right type, so `const R: Rate = rate!(..)` adds no error.
        Err(error) => {
            let error = error.to_compile_error();
            quote!({ #error; ::throttle::Rate::UNLIMITED })
        }
    }
}

struct RateInput {
    lit: LitStr,
    krate: Path,
}

impl Parse for RateInput {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        const USAGE: &str = "expected a rate string literal, e.g. `rate!(\"100/min\")`";
        let lit = match input.parse::<Expr>() {
            Ok(Expr::Lit(ExprLit { lit: Lit::Str(lit), .. })) => lit,
            Ok(other) => return Err(syn::Error::new_spanned(other, USAGE)),
            Err(_) => return Err(input.error(USAGE)),
        };
        let mut krate = None;
        if input.peek(Token![,]) {
            input.parse::<Token![,]>()?;
            if !input.is_empty() {
                input.parse::<Token![crate]>()?;
                input.parse::<Token![=]>()?;
                let mut errors = crate::error::Errors::default();
                krate = crate_path(Some(input.parse()?), &mut errors);
                errors.finish()?;
                input.parse::<Option<Token![,]>>()?;
            }
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the rate; expected `rate!(\"100/min\")`"));
        }
        let krate = krate.unwrap_or_else(|| syn::parse_quote!(::throttle));
        Ok(RateInput { lit, krate })
    }
}
