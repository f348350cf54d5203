//! Parsing `#[throttle(key = value, ...)]` into [`ThrottleArgs`]: syntax only. Every
//! value keeps its key token, so later errors can point at either.

use crate::error::{Errors, did_you_mean, one_of};
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::{Expr, Ident, LitStr, Token};

pub(crate) mod kw {
    syn::custom_keyword!(uid);
    syn::custom_keyword!(rate);
    syn::custom_keyword!(rate_fn);
    syn::custom_keyword!(headers);
    syn::custom_keyword!(strategy);
    syn::custom_keyword!(cost);
    syn::custom_keyword!(backend);
    syn::custom_keyword!(identifier);
    syn::custom_keyword!(rules);
    syn::custom_keyword!(scope);
    syn::custom_keyword!(on_error);
    syn::custom_keyword!(shadow);
    syn::custom_keyword!(count);
    syn::custom_keyword!(name);
}

/// Every key, in the order the docs list them.
pub(crate) const KEYS: &[&str] = &[
    "uid",
    "rate",
    "rate_fn",
    "headers",
    "strategy",
    "cost",
    "backend",
    "identifier",
    "rules",
    "scope",
    "on_error",
    "shadow",
    "count",
    "name",
    "crate",
];

/// The full grammar, for inputs that are not `key = value` at all.
pub(crate) const USAGE: &str = "expected #[throttle(uid = \"...\", rate = \"...\")], optionally with `headers`, \
     `strategy`, `cost`, `backend`, `identifier`, `rules`, `scope`, `on_error`, `shadow`, `count`, `name` or `crate`";

/// The attribute's arguments as written, each value next to its key token.
#[derive(Default)]
pub(crate) struct ThrottleArgs {
    pub(crate) uid: Option<(kw::uid, Expr)>,
    pub(crate) rate: Option<(kw::rate, Expr)>,
    pub(crate) rate_fn: Option<(kw::rate_fn, Expr)>,
    pub(crate) headers: Option<(kw::headers, Expr)>,
    pub(crate) strategy: Option<(kw::strategy, Expr)>,
    pub(crate) cost: Option<(kw::cost, Expr)>,
    pub(crate) backend: Option<(kw::backend, Expr)>,
    pub(crate) identifier: Option<(kw::identifier, Expr)>,
    pub(crate) rules: Option<(kw::rules, Expr)>,
    pub(crate) scope: Option<(kw::scope, Expr)>,
    pub(crate) on_error: Option<(kw::on_error, Expr)>,
    pub(crate) shadow: Option<(kw::shadow, Expr)>,
    pub(crate) count: Option<(kw::count, Expr)>,
    pub(crate) name: Option<(kw::name, Expr)>,
    pub(crate) krate: Option<(Token![crate], Expr)>,
    /// Unknown or repeated keys: reported together with the validation errors.
    pub(crate) errors: Errors,
}

impl Parse for ThrottleArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = ThrottleArgs::default();
        while !input.is_empty() {
            args.parse_one(input)?;
            if input.is_empty() {
                break;
            }
            if !input.peek(Token![,]) {
                return Err(input.error("expected `,` between arguments"));
            }
            input.parse::<Token![,]>()?;
        }
        Ok(args)
    }
}

impl ThrottleArgs {
    fn parse_one(&mut self, input: ParseStream<'_>) -> syn::Result<()> {
        let errors = &mut self.errors;
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::uid) {
            assign(input, &mut self.uid, "uid", "\"api:data\"", errors)
        } else if lookahead.peek(kw::rate_fn) {
            assign(input, &mut self.rate_fn, "rate_fn", "path::to::rate_fn", errors)
        } else if lookahead.peek(kw::rate) {
            assign(input, &mut self.rate, "rate", "\"100/min\"", errors)
        } else if lookahead.peek(kw::headers) {
            assign(input, &mut self.headers, "headers", "\"always\"", errors)
        } else if lookahead.peek(kw::strategy) {
            assign(input, &mut self.strategy, "strategy", "\"fixed_window\"", errors)
        } else if lookahead.peek(kw::cost) {
            assign(input, &mut self.cost, "cost", "5", errors)
        } else if lookahead.peek(kw::count) {
            assign(input, &mut self.count, "count", "\"failures\"", errors)
        } else if lookahead.peek(kw::shadow) {
            assign(input, &mut self.shadow, "shadow", "true", errors)
        } else if lookahead.peek(kw::backend) {
            assign(input, &mut self.backend, "backend", "app_backend()", errors)
        } else if lookahead.peek(kw::identifier) {
            assign(input, &mut self.identifier, "identifier", "by_api_key()", errors)
        } else if lookahead.peek(kw::rules) {
            assign(input, &mut self.rules, "rules", "health_bypass()", errors)
        } else if lookahead.peek(kw::scope) {
            assign(input, &mut self.scope, "scope", "\"public\"", errors)
        } else if lookahead.peek(kw::on_error) {
            assign(input, &mut self.on_error, "on_error", "\"allow\"", errors)
        } else if lookahead.peek(kw::name) {
            assign(input, &mut self.name, "name", "DATA_THROTTLE", errors)
        } else if lookahead.peek(Token![crate]) {
            assign(input, &mut self.krate, "crate", "\"my_throttle\"", errors)
        } else if input.peek(Ident::peek_any) {
            unknown_key(input, errors)
        } else if input.peek(LitStr) {
            Err(input.error(USAGE))
        } else {
            Err(lookahead.error())
        }
    }
}

/// Parses `key = value` into `slot`, once: a repeated key is an error on the repeat.
fn assign<K: Parse + quote::ToTokens>(
    input: ParseStream<'_>,
    slot: &mut Option<(K, Expr)>,
    name: &str,
    example: &str,
    errors: &mut Errors,
) -> syn::Result<()> {
    let key: K = input.parse()?;
    if !input.peek(Token![=]) {
        return Err(syn::Error::new_spanned(&key, format!("expected a value: `{name} = {example}`")));
    }
    input.parse::<Token![=]>()?;
    let value = parse_value(input)?;
    match slot {
        Some(_) => errors.spanned(&key, format!("`{name}` specified more than once")),
        None => *slot = Some((key, value)),
    }
    Ok(())
}

fn parse_value(input: ParseStream<'_>) -> syn::Result<Expr> {
    if input.is_empty() || input.peek(Token![,]) {
        return Err(input.error("expected a value after `=`"));
    }
    input.parse()
}

/// An identifier that is no key: an error with the list of keys and the closest one.
/// Its value is skipped so the keys after it are still checked.
fn unknown_key(input: ParseStream<'_>, errors: &mut Errors) -> syn::Result<()> {
    let key = Ident::parse_any(input)?;
    let written = key.unraw().to_string();
    let mut message = format!("unknown key `{written}`; expected one of {}", one_of(KEYS));
    if let Some(suggestion) = did_you_mean(&written, KEYS) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    errors.spanned(&key, message);
    if input.peek(Token![=]) {
        input.parse::<Token![=]>()?;
        parse_value(input)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(tokens: &str) -> syn::Result<ThrottleArgs> {
        let args: ThrottleArgs = syn::parse_str(tokens)?;
        let ThrottleArgs { errors, .. } = args;
        errors.finish()?;
        syn::parse_str(tokens)
    }

    #[test]
    fn parses_every_key() {
        let args = parse(
            r#"uid = "a", rate = "1/s", headers = "always", strategy = "gcra", cost = 2,
               backend = b(), identifier = i(), scope = "s", on_error = "allow", name = N,
               crate = "t", shadow = true, count = "failures","#,
        )
        .unwrap();
        assert!(args.shadow.is_some() && args.count.is_some());
        assert!(args.uid.is_some() && args.rate.is_some() && args.headers.is_some());
        assert!(args.strategy.is_some() && args.cost.is_some() && args.backend.is_some());
        assert!(args.identifier.is_some() && args.scope.is_some() && args.on_error.is_some());
        assert!(args.name.is_some() && args.krate.is_some() && args.rate_fn.is_none());
    }

    #[test]
    fn reports_repeats_and_unknown_keys() {
        let err = parse(r#"uid = "a", uid = "b""#).err().unwrap();
        assert_eq!(err.to_string(), "`uid` specified more than once");
        let err = parse(r#"uid = "a", rtae = "1/s""#).err().unwrap();
        assert!(err.to_string().contains("(did you mean `rate`?)"), "{err}");
    }

    #[test]
    fn requires_commas_and_values() {
        assert!(parse(r#"uid = "a" rate = "1/s""#).is_err());
        assert!(parse("uid").err().unwrap().to_string().contains("`uid = \"api:data\"`"));
        assert!(parse("uid = ").is_err());
    }
}
