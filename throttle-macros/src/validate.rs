//! Checking [`ThrottleArgs`] and the annotated function: every value, every relation
//! between keys, every constraint on the signature. The result, [`Config`], cannot
//! fail to expand.

use crate::args::{ThrottleArgs, USAGE};
use crate::error::{Errors, did_you_mean, one_of};
use crate::item::HandlerFn;
use crate::rate::{MAX_VALUE, ParsedRate};
use proc_macro2::Span;
use syn::ext::IdentExt;
use syn::{Expr, ExprLit, ExprPath, ExprUnary, FnArg, Ident, Lit, LitStr, Path, Signature, Type, UnOp};

/// Strategy names `strategy = "..."` accepts (with parameters: `STRATEGY_PARAMS`).
pub(crate) const STRATEGIES: &[&str] = &[
    "fixed_window",
    "sliding_window_counter",
    "sliding_window_log",
    "token_bucket",
    "token_bucket_debt",
    "leaky_bucket",
    "leaky_bucket_queue",
    "gcra",
];

/// The parameters each strategy takes in `"name(param = value, ...)"`.
const STRATEGY_PARAMS: &[(&str, &[&str])] =
    &[("token_bucket", &["burst"]), ("token_bucket_debt", &["burst", "max_debt"]), ("gcra", &["burst"])];

const HEADER_POLICIES: &[&str] = &["always", "throttled"];
const ERROR_POLICIES: &[&str] = &["allow", "throttle", "raise"];

/// axum calls handlers with at most 16 extractors.
const MAX_EXTRACTORS: usize = 16;

/// Longest uid the runtime accepts, in bytes: `throttle::key::MAX_UID_LEN` (a test
/// checks they agree; this crate cannot depend on the runtime).
const MAX_UID_LEN: usize = 64;

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
    Name(LitStr),
    Expr(Expr),
}

pub(crate) enum CostSpec {
    Fixed(u64, Span),
    /// A cost function, or a constant of an integer type.
    Path(ExprPath),
}

pub(crate) enum OnErrorSpec {
    Named(&'static str, Span),
    Expr(Expr),
}

/// Why there is no [`Config`], with what is still known for the fallback expansion.
pub(crate) struct Invalid {
    pub(crate) error: syn::Error,
    /// The crate path, unless it is itself the mistake.
    pub(crate) krate: Option<Path>,
    pub(crate) static_name: Option<Ident>,
}

pub(crate) fn validate(args: ThrottleArgs, item: &HandlerFn) -> Result<Config, Invalid> {
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
        name,
        krate,
        mut errors,
    } = args;

    let krate = crate_path(krate.map(|(_, v)| v), &mut errors);
    let static_name = static_name(name.map(|(_, v)| v), item, &mut errors);
    check_item(item, &mut errors);

    // A misspelled key is likely the missing one: report the spelling only.
    let misspelled = errors.has_errors();
    let uid = match uid {
        Some((_, value)) => check_uid(value, &mut errors),
        None if misspelled => None,
        None => {
            errors.push(syn::Error::new(Span::call_site(), format!("missing `uid`; {USAGE}")));
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
            errors.push(syn::Error::new(Span::call_site(), message));
            None
        }
    };
    let headers = headers.and_then(|(_, value)| check_headers(value, &mut errors));
    let strategy = strategy.and_then(|(_, value)| check_strategy(value, &mut errors));
    let cost = cost.and_then(|(_, value)| check_cost(value, &mut errors));
    let scope = scope.and_then(|(_, value)| check_scope(value, &mut errors));
    let on_error = on_error.and_then(|(_, value)| check_on_error(value, &mut errors));

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
        }),
        // Every `None` above pushed an error, so this arm is never taken; it keeps the
        // expansion total without a panic.
        (krate, static_name, ..) => Err(invalid(syn::Error::new(Span::call_site(), USAGE), krate, static_name)),
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

fn check_item(item: &HandlerFn, errors: &mut Errors) {
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
            MAX_EXTRACTORS - 1 - leading_guards(sig)
        );
        errors.spanned(&sig.inputs, message);
    }
}

/// Guards injected by `#[throttle]` attributes above this one (stacked throttles).
pub(crate) fn leading_guards(sig: &Signature) -> usize {
    sig.inputs.iter().take_while(|arg| is_guard(arg)).count()
}

fn is_guard(arg: &FnArg) -> bool {
    let FnArg::Typed(pat) = arg else { return false };
    let Type::Path(ty) = &*pat.ty else { return false };
    let segments = &ty.path.segments;
    segments.len() >= 2
        && segments.last().is_some_and(|s| s.ident == "Guard")
        && segments.iter().any(|s| s.ident == "__private")
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
    let problem = if uid.is_empty() {
        Some("`uid` cannot be empty; name the throttle, e.g. `uid = \"api:data\"`".to_string())
    } else if uid.len() > MAX_UID_LEN {
        Some(format!("`uid` is {} bytes long; a uid is at most {MAX_UID_LEN} bytes", uid.len()))
    } else {
        uid.chars().find(|c| !(c.is_ascii_alphanumeric() || "_-.:/".contains(*c))).map(|c| {
            format!("character {c:?} is not allowed in a uid; use letters, digits and `_`, `-`, `.`, `:`, `/`")
        })
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
    crate::rate::parse(&text).map_err(|error| syn::Error::new(lit.span(), format!("invalid rate {text:?}: {error}")))
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
    match lit.value().as_str() {
        "always" => Some(HeadersSpec::Always(lit.span())),
        "throttled" => Some(HeadersSpec::Throttled(lit.span())),
        other => {
            let mut message = format!(
                "unknown header policy `{other}`; expected {}, or a path to a `Headers` value",
                one_of(HEADER_POLICIES)
            );
            if let Some(suggestion) = did_you_mean(&other.to_ascii_lowercase(), HEADER_POLICIES) {
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
    match check_strategy_spec(&lit.value()) {
        Ok(()) => Some(StrategySpec::Name(lit.clone())),
        Err(message) => {
            errors.spanned(lit, message);
            None
        }
    }
}

/// `"name"` or `"name(param = value, ...)"`, as the runtime's `strategy::from_name`
/// reads it: the name, the parameter names and whole-number values are checked here.
fn check_strategy_spec(spec: &str) -> Result<(), String> {
    let spec = spec.trim();
    let (name, args) = match spec.split_once('(') {
        None => (spec, None),
        Some((name, rest)) => match rest.strip_suffix(')') {
            Some(args) => (name.trim(), Some(args)),
            None => return Err(format!("strategy `{spec}` is missing the closing `)`")),
        },
    };
    if !STRATEGIES.contains(&name) {
        let mut message = format!("unknown strategy `{name}`; expected one of {}", one_of(STRATEGIES));
        let normalized = name.to_ascii_lowercase().replace(['-', ' '], "_");
        if let Some(suggestion) = did_you_mean(&normalized, STRATEGIES) {
            message.push_str(&format!(" (did you mean `{suggestion}`?)"));
        }
        return Err(message);
    }
    let allowed = STRATEGY_PARAMS.iter().find(|(n, _)| *n == name).map_or(&[][..], |(_, params)| *params);
    let args = args.unwrap_or("").trim();
    let args = args.strip_suffix(',').unwrap_or(args);
    let mut seen: Vec<&str> = Vec::new();
    for piece in args.split(',').filter(|_| !args.is_empty()) {
        let Some((param, value)) = piece.split_once('=') else {
            return Err(format!("expected `param = value` in strategy `{spec}`, e.g. \"token_bucket(burst = 15)\""));
        };
        let (param, value) = (param.trim(), value.trim());
        if !allowed.contains(&param) {
            let takes = match allowed {
                [] => "takes no parameters".to_string(),
                params => format!("takes {}", one_of(params)),
            };
            let mut message = format!("strategy `{name}` has no parameter `{param}`; it {takes}");
            if let Some(suggestion) = did_you_mean(param, allowed) {
                message.push_str(&format!(" (did you mean `{suggestion}`?)"));
            }
            return Err(message);
        }
        if seen.contains(&param) {
            return Err(format!("parameter `{param}` is given twice in strategy `{spec}`"));
        }
        seen.push(param);
        let digits = value.replace('_', "");
        let number = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
            .then(|| digits.parse::<u64>().ok())
            .flatten()
            .filter(|n| *n <= MAX_VALUE);
        match number {
            None => return Err(format!("`{param}` must be a whole number from 1 to 2^53 - 1, not `{value}`")),
            Some(0) if param == "burst" => return Err("`burst` must be at least 1".to_string()),
            Some(_) => {}
        }
    }
    Ok(())
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
    if let Some(policy) = ERROR_POLICIES.iter().find(|p| **p == written) {
        return Some(OnErrorSpec::Named(policy, lit.span()));
    }
    let mut message =
        format!("unknown error policy `{written}`; expected {}, or an `OnError` value", one_of(ERROR_POLICIES));
    if let Some(suggestion) = did_you_mean(&written.to_ascii_lowercase(), ERROR_POLICIES) {
        message.push_str(&format!(" (did you mean `{suggestion}`?)"));
    }
    errors.spanned(lit, message);
    None
}

#[cfg(test)]
mod tests {
    use super::{MAX_UID_LEN, check_strategy_spec};

    #[test]
    fn the_uid_limit_is_the_runtime_one() {
        assert_eq!(MAX_UID_LEN, throttle::key::MAX_UID_LEN);
    }

    #[test]
    fn strategy_specs_follow_the_runtime_grammar() {
        for ok in ["gcra", "token_bucket(burst = 15)", " token_bucket_debt(burst = 2, max_debt = 0,) ", "gcra()"] {
            assert_eq!(check_strategy_spec(ok), Ok(()), "{ok}");
        }
        let err = |spec| check_strategy_spec(spec).unwrap_err();
        assert!(err("token-bucket").ends_with("(did you mean `token_bucket`?)"));
        assert!(err("gcra(brust = 5)").contains("has no parameter `brust`; it takes `burst` (did you mean `burst`?)"));
        assert!(err("fixed_window(burst = 5)").contains("takes no parameters"));
        assert!(err("gcra(burst = 0)").contains("at least 1"));
        assert!(err("gcra(burst = many)").contains("whole number"));
        assert!(err("gcra(burst = 1, burst = 2)").contains("twice"));
        assert!(err("gcra(burst = 1").contains("closing `)`"));
    }
}
