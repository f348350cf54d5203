//! Checking [`ThrottleArgs`] and the annotated function: every value, every relation
//! between keys, every constraint on the signature, and what stacked attributes must
//! not share. The result, one [`Config`] per attribute, cannot fail to expand.

use crate::args::{ThrottleArgs, USAGE};
use crate::error::{Errors, did_you_mean, one_of};
use crate::item::HandlerFn;
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Attribute, Expr, ExprLit, ExprPath, ExprUnary, Ident, Lit, LitStr, Path, UnOp};
use throttle_grammar::names::NameKind;
use throttle_grammar::policy::{CountPolicy, ErrorPolicy, HeaderPolicy};
use throttle_grammar::rate::{MAX_VALUE, ParsedRate};
use throttle_grammar::strategy::StrategySpec as ParsedStrategy;

/// axum calls handlers with at most 16 extractors.
const MAX_EXTRACTORS: usize = 16;

/// Everything the expansion needs, checked.
pub(crate) struct Config {
    pub(crate) krate: Path,
    pub(crate) static_name: Ident,
    pub(crate) uid: LitStr,
    pub(crate) rate: RateSpec,
    pub(crate) headers: Option<HeadersSpec>,
    pub(crate) strategy: Option<StrategySpec>,
    pub(crate) cost: Option<CostSpec>,
    pub(crate) backend: Option<Expr>,
    pub(crate) identifier: Option<Expr>,
    pub(crate) rules: Option<Expr>,
    pub(crate) scope: Option<LitStr>,
    pub(crate) on_error: Option<OnErrorSpec>,
    /// `shadow = true`: a literal or an expression of type `bool`.
    pub(crate) shadow: Option<Expr>,
    pub(crate) count: Option<CountSpec>,
}

pub(crate) enum RateSpec {
    /// A literal checked with the runtime's grammar.
    Parsed(ParsedRate, Span),
    /// Any other expression of a type `ThrottleBuilder::rate` takes.
    Expr(Expr),
    /// `rate_fn = path`.
    Fn(Expr),
}

pub(crate) enum HeadersSpec {
    Always(Span),
    Throttled(Span),
    /// A `Headers` value (or anything that derefs to one), by reference.
    Expr(Expr),
}

pub(crate) enum StrategySpec {
    /// A spec string parsed with the shared grammar; `Span` is the literal's.
    Parsed(ParsedStrategy, Span),
    Expr(Expr),
}

pub(crate) enum CostSpec {
    Fixed(u64, Span),
    /// A cost function, or a constant of an integer type.
    Path(ExprPath),
}

pub(crate) enum OnErrorSpec {
    Named(ErrorPolicy, Span),
    Expr(Expr),
}

pub(crate) enum CountSpec {
    Named(CountPolicy, Span),
    /// A `CountWhen` value.
    Expr(Expr),
}

/// Why one attribute has no [`Config`], with what is still known for the fallback.
pub(crate) struct Invalid {
    pub(crate) error: syn::Error,
    /// The crate path, unless it is itself the mistake.
    pub(crate) krate: Option<Path>,
    pub(crate) static_name: Option<Ident>,
}

/// Where an attribute sits: errors about it as a whole point there.
#[derive(Clone, Copy)]
pub(crate) enum At<'a> {
    /// The attribute being expanded (rustc's call site).
    Top,
    /// One stacked below it, taken in.
    Below(&'a Attribute),
}

impl At<'_> {
    pub(crate) fn error(self, message: impl std::fmt::Display) -> syn::Error {
        match self {
            At::Top => syn::Error::new(Span::call_site(), message),
            At::Below(attr) => syn::Error::new_spanned(attr, message),
        }
    }
}

/// One attribute's keys; `krate` is the crate path when it gives none (the top
/// attribute's, for a stacked one). The function is checked apart, by [`check_item`].
pub(crate) fn validate(
    args: ThrottleArgs,
    item: &HandlerFn,
    at: At<'_>,
    default_krate: &Path,
) -> Result<Config, Invalid> {
    let ThrottleArgs {
        uid,
        rate,
        rate_fn,
        headers,
        strategy,
        cost,
        backend,
        identifier,
        rules,
        scope,
        on_error,
        shadow,
        count,
        name,
        krate,
        mut errors,
    } = args;

    let krate = match krate {
        Some((_, value)) => crate_path(Some(value), &mut errors),
        None => Some(default_krate.clone()),
    };
    let static_name = static_name(name.map(|(_, v)| v), item, &mut errors);

    // A misspelled key is likely the missing one: report the spelling only.
    let misspelled = errors.has_errors();
    let uid = match uid {
        Some((_, value)) => check_uid(value, &mut errors),
        None if misspelled => None,
        None => {
            errors.push(at.error(format!("missing `uid`; {USAGE}")));
            None
        }
    };
    let rate = match (rate, rate_fn) {
        (Some(_), Some((rate_fn_key, _))) => {
            errors.spanned(rate_fn_key, "`rate` and `rate_fn` cannot both be set; keep one of them");
            None
        }
        (Some((_, value)), None) => check_rate(value, &mut errors),
        (None, Some((_, value))) => Some(RateSpec::Fn(value)),
        (None, None) if misspelled => None,
        (None, None) => {
            let message = format!("missing `rate`; {USAGE} (or `rate_fn = path` for a rate computed per request)");
            errors.push(at.error(message));
            None
        }
    };
    let headers = headers.and_then(|(_, value)| check_headers(value, &mut errors));
    let strategy = strategy.and_then(|(_, value)| check_strategy(value, &mut errors));
    let cost = cost.and_then(|(_, value)| check_cost(value, &mut errors));
    let scope = scope.and_then(|(_, value)| check_scope(value, &mut errors));
    let on_error = on_error.and_then(|(_, value)| check_on_error(value, &mut errors));
    let shadow = shadow.and_then(|(_, value)| check_shadow(value, &mut errors));
    let count = count.and_then(|(_, value)| check_count(value, &mut errors));

    let invalid = |error, krate, static_name| Invalid { error, krate, static_name };
    if let Err(error) = errors.finish() {
        return Err(invalid(error, krate, static_name));
    }
    match (krate, static_name, uid, rate) {
        (Some(krate), Some(static_name), Some(uid), Some(rate)) => Ok(Config {
            krate,
            static_name,
            uid,
            rate,
            headers,
            strategy,
            cost,
            backend: backend.map(|(_, v)| v),
            identifier: identifier.map(|(_, v)| v),
            rules: rules.map(|(_, v)| v),
            scope,
            on_error,
            shadow,
            count,
        }),
        // Every `None` above pushed an error, so this arm is never taken; it keeps the
        // expansion total without a panic.
        (krate, static_name, ..) => Err(invalid(at.error(USAGE), krate, static_name)),
    }
}

/// `crate = "path"` (a string, as `tokio` and `serde` take it) or `crate = path`.
pub(crate) fn crate_path(value: Option<Expr>, errors: &mut Errors) -> Option<Path> {
    let Some(value) = value else {
        return Some(syn::parse_quote!(::throttle));
    };
    match &value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => match lit.parse::<Path>() {
            Ok(path) => Some(path),
            Err(_) => {
                let message =
                    format!("`crate` must name a path, e.g. `crate = \"my_throttle\"`; `{}` is not one", lit.value());
                errors.spanned(lit, message);
                None
            }
        },
        Expr::Path(ExprPath { qself: None, path, .. }) => Some(path.clone()),
        other => {
            errors.spanned(other, "`crate` must name a path, e.g. `crate = \"my_throttle\"`");
            None
        }
    }
}

/// `name = IDENT`, or `<FN_NAME>_THROTTLE`.
fn static_name(value: Option<Expr>, item: &HandlerFn, errors: &mut Errors) -> Option<Ident> {
    let Some(value) = value else {
        let upper = item.sig.ident.unraw().to_string().to_uppercase();
        return Some(Ident::new(&format!("{upper}_THROTTLE"), item.sig.ident.span()));
    };
    if let Expr::Path(ExprPath { qself: None, path, .. }) = &value {
        if let Some(ident) = path.get_ident() {
            return Some(ident.clone());
        }
    }
    let message = match &value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => {
            format!("`name` must be an identifier, not a string: write `name = {}`", lit.value())
        }
        _ => "`name` must be an identifier for the static, e.g. `name = DATA_THROTTLE`".to_string(),
    };
    errors.spanned(&value, message);
    None
}

/// The function: a free `async fn` with room for the guard.
pub(crate) fn check_item(item: &HandlerFn, errors: &mut Errors) {
    let sig = &item.sig;
    if let Some(constness) = &sig.constness {
        errors.spanned(constness, "a throttled handler cannot be `const`");
    }
    if sig.asyncness.is_none() {
        let message = format!(
            "`#[throttle]` requires an `async fn`: axum handlers are async, so write `async fn {}`",
            sig.ident.unraw()
        );
        errors.spanned(sig.fn_token, message);
    }
    if let Some(receiver) = sig.receiver() {
        errors.spanned(receiver, "`#[throttle]` applies to free `async fn` handlers, which take no `self`");
    }
    if sig.inputs.len() >= MAX_EXTRACTORS {
        let message = format!(
            "a throttled handler takes at most {} arguments: axum handlers take at most {MAX_EXTRACTORS} \
             extractors and `#[throttle]` adds one; group some into a struct extractor",
            MAX_EXTRACTORS - 1
        );
        errors.spanned(&sig.inputs, message);
    }
}

fn string_literal<'a>(value: &'a Expr, key: &str, example: &str, errors: &mut Errors) -> Option<&'a LitStr> {
    match value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => Some(lit),
        other => {
            errors.spanned(other, format!("`{key}` must be a string literal, e.g. `{key} = {example}`"));
            None
        }
    }
}

fn check_uid(value: Expr, errors: &mut Errors) -> Option<LitStr> {
    let lit = string_literal(&value, "uid", "\"api:data\"", errors)?;
    let uid = lit.value();
    let problem = match NameKind::Uid.check(&uid) {
        Ok(()) => None,
        Err(invalid) if uid.is_empty() => {
            let _ = invalid;
            Some("`uid` cannot be empty; name the throttle, e.g. `uid = \"api:data\"`".to_string())
        }
        Err(invalid) => Some(invalid.message(NameKind::Uid)),
    };
    match problem {
        Some(message) => {
            errors.spanned(lit, message);
            None
        }
        None => Some(lit.clone()),
    }
}

fn check_rate(value: Expr, errors: &mut Errors) -> Option<RateSpec> {
    match &value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => match parse_rate(lit) {
            Ok(rate) => Some(RateSpec::Parsed(rate, lit.span())),
            Err(error) => {
                errors.push(error);
                None
            }
        },
        Expr::Lit(other) => {
            errors.spanned(other, "`rate` must be a string such as `\"100/min\"` or a `Rate` value");
            None
        }
        _ => Some(RateSpec::Expr(value)),
    }
}

/// A rate literal through the shared grammar; the error is spanned on the literal.
pub(crate) fn parse_rate(lit: &LitStr) -> syn::Result<ParsedRate> {
    let text = lit.value();
    throttle_grammar::rate::parse(&text)
        .map_err(|error| syn::Error::new(lit.span(), format!("invalid rate {text:?}: {error}")))
}

fn check_headers(value: Expr, errors: &mut Errors) -> Option<HeadersSpec> {
    let lit = match &value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => lit,
        Expr::Lit(other) => {
            errors.spanned(other, "`headers` must be `\"always\"`, `\"throttled\"` or a path to a `Headers` value");
            return None;
        }
        _ => return Some(HeadersSpec::Expr(value)),
    };
    match HeaderPolicy::from_name(&lit.value()) {
        Some(HeaderPolicy::Always) => Some(HeadersSpec::Always(lit.span())),
        Some(HeaderPolicy::Throttled) => Some(HeadersSpec::Throttled(lit.span())),
        None => {
            let other = lit.value();
            let mut message = format!(
                "unknown header policy `{other}`; expected {}, or a path to a `Headers` value",
                one_of(HeaderPolicy::NAMES)
            );
            if let Some(suggestion) = did_you_mean(&other.to_ascii_lowercase(), HeaderPolicy::NAMES) {
                message.push_str(&format!(" (did you mean `{suggestion}`?)"));
            }
            errors.spanned(lit, message);
            None
        }
    }
}

fn check_strategy(value: Expr, errors: &mut Errors) -> Option<StrategySpec> {
    let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = &value else {
        return Some(StrategySpec::Expr(value));
    };
    match throttle_grammar::strategy::parse(&lit.value()) {
        Ok(spec) => Some(StrategySpec::Parsed(spec, lit.span())),
        Err(error) => {
            errors.spanned(lit, error.to_string());
            None
        }
    }
}

fn check_cost(value: Expr, errors: &mut Errors) -> Option<CostSpec> {
    const HINT: &str = "`cost` must be a whole number (e.g. `cost = 5`) or a path to a cost function";
    match value {
        Expr::Lit(ExprLit { lit: Lit::Int(int), .. }) => match int.base10_parse::<u64>() {
            Ok(cost) if cost <= MAX_VALUE => Some(CostSpec::Fixed(cost, int.span())),
            _ => {
                errors
                    .spanned(&int, format!("cost `{}` is too large; costs are at most 2^53 - 1", int.base10_digits()));
                None
            }
        },
        Expr::Unary(ExprUnary { op: UnOp::Neg(_), ref expr, .. })
            if matches!(&**expr, Expr::Lit(ExprLit { lit: Lit::Int(_) | Lit::Float(_), .. })) =>
        {
            errors.spanned(&value, "`cost` cannot be negative; costs are whole numbers from 0 (a no-op) to 2^53 - 1");
            None
        }
        Expr::Lit(ExprLit { lit: Lit::Float(float), .. }) => {
            errors.spanned(&float, format!("{HINT}; fractional costs are not supported"));
            None
        }
        Expr::Path(path) if path.qself.is_none() => Some(CostSpec::Path(path)),
        other => {
            errors.spanned(&other, HINT);
            None
        }
    }
}

fn check_scope(value: Expr, errors: &mut Errors) -> Option<LitStr> {
    let lit = string_literal(&value, "scope", "\"public\"", errors)?;
    if lit.value().is_empty() {
        errors.spanned(lit, "`scope` cannot be empty; leave it out for the default scope");
        return None;
    }
    Some(lit.clone())
}

fn check_on_error(value: Expr, errors: &mut Errors) -> Option<OnErrorSpec> {
    let Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) = &value else {
        return Some(OnErrorSpec::Expr(value));
    };
    let written = lit.value();
    if let Some(policy) = ErrorPolicy::from_name(&written) {
        return Some(OnErrorSpec::Named(policy, lit.span()));
    }
    let mut message =
        format!("unknown error policy `{written}`; expected {}, or an `OnError` value", one_of(ErrorPolicy::NAMES));
    if let Some(suggestion) = did_you_mean(&written.to_ascii_lowercase(), ErrorPolicy::NAMES) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    errors.spanned(lit, message);
    None
}

/// `shadow = true | false`, or an expression of type `bool` (checked by the compiler).
fn check_shadow(value: Expr, errors: &mut Errors) -> Option<Expr> {
    match &value {
        Expr::Lit(ExprLit { lit: Lit::Bool(_), .. }) => Some(value),
        Expr::Lit(other) => {
            let hint = match &other.lit {
                Lit::Str(lit) if matches!(lit.value().as_str(), "true" | "false") => {
                    format!("; write `shadow = {}` without quotes", lit.value())
                }
                _ => String::new(),
            };
            errors.spanned(other, format!("`shadow` must be `true` or `false` (or a `bool` expression){hint}"));
            None
        }
        _ => Some(value),
    }
}

fn check_count(value: Expr, errors: &mut Errors) -> Option<CountSpec> {
    let lit = match &value {
        Expr::Lit(ExprLit { lit: Lit::Str(lit), .. }) => lit,
        Expr::Lit(other) => {
            let message = format!("`count` must be {}, or a `CountWhen` value", one_of(CountPolicy::NAMES));
            errors.spanned(other, message);
            return None;
        }
        _ => return Some(CountSpec::Expr(value)),
    };
    let written = lit.value();
    if let Some(policy) = CountPolicy::from_name(&written) {
        return Some(CountSpec::Named(policy, lit.span()));
    }
    let mut message =
        format!("unknown count policy `{written}`; expected {}, or a `CountWhen` value", one_of(CountPolicy::NAMES));
    if let Some(suggestion) = did_you_mean(&written.to_ascii_lowercase(), CountPolicy::NAMES) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    errors.spanned(lit, message);
    None
}

/// The macro runs every shared vector table through its own checks, so the attribute
/// accepts exactly what the runtime builds.
#[cfg(test)]
mod tests {
    use super::*;
    use throttle_grammar::vectors;

    fn literal(text: &str) -> Expr {
        Expr::Lit(ExprLit { lit: Lit::Str(LitStr::new(text, Span::call_site())), attrs: Vec::new() })
    }

    #[test]
    fn rates_follow_the_shared_vectors() {
        for (input, _, _) in vectors::rate::VALID {
            assert!(parse_rate(&LitStr::new(input, Span::call_site())).is_ok(), "{input:?}");
        }
        for (input, fragment) in vectors::rate::INVALID {
            let error = parse_rate(&LitStr::new(input, Span::call_site())).expect_err(input);
            assert!(error.to_string().contains(fragment), "{input:?}: {error}");
        }
    }

    #[test]
    fn strategies_follow_the_shared_vectors() {
        for (input, name, params) in vectors::strategy::VALID {
            let mut errors = Errors::default();
            match check_strategy(literal(input), &mut errors) {
                Some(StrategySpec::Parsed(spec, _)) => {
                    assert_eq!((spec.strategy().name, spec.params.as_slice()), (*name, *params), "{input:?}")
                }
                _ => panic!("{input:?} refused"),
            }
        }
        for (input, fragment) in vectors::strategy::INVALID {
            let mut errors = Errors::default();
            assert!(check_strategy(literal(input), &mut errors).is_none(), "{input:?} accepted");
            let error = errors.finish().expect_err(input);
            assert!(error.to_string().contains(fragment), "{input:?}: {error}");
        }
    }
}
