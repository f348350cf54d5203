//! Stacked `#[throttle]` attributes: rustc expands the top one first, with the others
//! still on the item. The top one takes out the ones that are ours and expands them all
//! into one guard, so nothing coordinates at run time.
//!
//! A macro cannot resolve a path, so "ours" is decided by the path as written, and
//! only for the spellings that can name nothing else: `throttle` (the import
//! `use throttle::throttle`), and `throttle::throttle` or `::throttle::throttle` (with
//! `crate = "my_throttle"` on the top attribute: `my_throttle::throttle`). Every other
//! attribute, `#[other::throttle]` included, stays on the function untouched.

use crate::args::{ThrottleArgs, USAGE};
use crate::error::Errors;
use crate::item::HandlerFn;
use crate::validate::{At, Config, check_item, crate_path, validate};
use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::{Attribute, FnArg, Ident, LitStr, Meta, Pat, Path, Signature};

/// The argument `#[throttle]` adds first to a handler; also how an attribute that the
/// top one did not take in recognises the function it already rewrote.
pub(crate) const GUARD: &str = "__throttle_guard";

/// Takes our `#[throttle(...)]` attributes out of `attrs`, in order, each with its
/// arguments parsed; every other attribute stays in place.
pub(crate) fn take_ours(attrs: &mut Vec<Attribute>, krate: &Path) -> (Vec<Attribute>, Vec<syn::Result<ThrottleArgs>>) {
    let (ours, others): (Vec<_>, _) = std::mem::take(attrs).into_iter().partition(|attr| is_ours(attr.path(), krate));
    *attrs = others;
    let args = ours.iter().map(arguments).collect();
    (ours, args)
}

/// `throttle`, or `<crate>::throttle` with or without the leading `::`.
pub(crate) fn is_ours(path: &Path, krate: &Path) -> bool {
    let written = names(path);
    let bare_import = path.leading_colon.is_none() && written == ["throttle"];
    let mut qualified = names(krate);
    qualified.push("throttle".to_string());
    bare_import || written == qualified
}

fn names(path: &Path) -> Vec<String> {
    path.segments
        .iter()
        .map(|segment| match segment.arguments.is_none() {
            true => segment.ident.unraw().to_string(),
            // `a::<T>::throttle` names no attribute; it never equals a crate path.
            false => String::new(),
        })
        .collect()
}

/// `#[throttle(args)]`, and `#[throttle]` as empty arguments (reported as missing keys).
fn arguments(attr: &Attribute) -> syn::Result<ThrottleArgs> {
    match &attr.meta {
        Meta::List(list) => syn::parse2(list.tokens.clone()),
        Meta::Path(_) => syn::parse2(TokenStream::new()),
        Meta::NameValue(meta) => Err(syn::Error::new_spanned(&meta.value, USAGE)),
    }
}

/// Whether a `#[throttle]` above already rewrote this function: it is then stacked
/// under one that did not recognise its path.
pub(crate) fn already_guarded(sig: &Signature) -> bool {
    let Some(FnArg::Typed(first)) = sig.inputs.first() else { return false };
    matches!(&*first.pat, Pat::Ident(pat) if pat.ident == GUARD)
}

/// For a `#[throttle]` the one above it did not take in: it would be a second guard.
pub(crate) const NOT_TAKEN_IN: &str = "this `#[throttle]` is stacked below another one that does not recognise its path; \
     write stacked attributes as `#[throttle(...)]` or `#[throttle::throttle(...)]` (`#[my_throttle::throttle(...)]` \
     with `crate = \"my_throttle\"` on the top one), so the top one checks them all with one guard";

/// The top attribute's `crate = ...` as far as it parses, for recognising the stacked
/// ones; `validate` reports its mistakes.
pub(crate) fn written_crate(args: &syn::Result<ThrottleArgs>) -> Path {
    let written = args.as_ref().ok().and_then(|args| args.krate.as_ref()).map(|(_, value)| value.clone());
    let mut ignored = Errors::default();
    written.and_then(|value| crate_path(Some(value), &mut ignored)).unwrap_or_else(|| syn::parse_quote!(::throttle))
}

/// The top attribute and the ones stacked below it, each checked on its own, then
/// together: each needs its own static and its own uid. The function is checked once.
/// `krate` is the crate path of an attribute that gives none: the top one's.
pub(crate) fn validate_stack(
    attributes: Vec<(At<'_>, syn::Result<ThrottleArgs>)>,
    item: &HandlerFn,
    krate: &Path,
) -> Result<Vec<Config>, InvalidStack> {
    let mut errors = Errors::default();
    check_item(item, &mut errors);
    let mut configs = Vec::new();
    let mut statics: Vec<(Path, Ident)> = Vec::new();
    let mut uids: Vec<LitStr> = Vec::new();
    for (at, args) in attributes {
        let args = match args {
            Ok(args) => args,
            Err(error) => {
                errors.push(error);
                continue;
            }
        };
        let (config, known_krate, static_name) = match validate(args, item, at, krate) {
            Ok(config) => {
                let (krate, static_name) = (config.krate.clone(), config.static_name.clone());
                (Some(config), Some(krate), Some(static_name))
            }
            Err(invalid) => {
                errors.push(invalid.error);
                (None, invalid.krate, invalid.static_name)
            }
        };
        if let Some(static_name) = static_name {
            if statics.iter().any(|(_, taken)| *taken == static_name) {
                let message = format!(
                    "the static `{static_name}` is already generated by a `#[throttle]` above; \
                     give each stacked attribute its own `name = ...`"
                );
                errors.push(at.error(message));
            } else if let Some(known_krate) = known_krate {
                statics.push((known_krate, static_name));
            }
        }
        if let Some(config) = config {
            if let Some(earlier) = uids.iter().find(|uid| uid.value() == config.uid.value()) {
                let message = format!(
                    "uid {:?} is already used by a `#[throttle]` above; stacked limits need distinct uids",
                    earlier.value()
                );
                errors.spanned(&config.uid, message);
            }
            uids.push(config.uid.clone());
            configs.push(config);
        }
    }
    match errors.finish() {
        Ok(()) if !configs.is_empty() => Ok(configs),
        Ok(()) => Err(InvalidStack { error: At::Top.error(USAGE), statics }),
        Err(error) => Err(InvalidStack { error, statics }),
    }
}

/// Why there is no expansion, with the statics that can still be emitted (so code
/// naming them reports nothing more).
pub(crate) struct InvalidStack {
    pub(crate) error: syn::Error,
    /// Each known static with its crate path, top attribute first.
    pub(crate) statics: Vec<(Path, Ident)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(path: &str, krate: &str) -> bool {
        is_ours(&syn::parse_str(path).unwrap(), &syn::parse_str(krate).unwrap())
    }

    #[test]
    fn only_the_spellings_that_name_this_crate_are_ours() {
        for path in ["throttle", "r#throttle", "throttle::throttle", "::throttle::throttle"] {
            assert!(ours(path, "::throttle"), "{path}");
        }
        for path in ["other::throttle", "crate::throttle", "self::throttle", "::throttle", "a::throttle::throttle"] {
            assert!(!ours(path, "::throttle"), "{path}");
        }
        assert!(ours("my_throttle::throttle", "my_throttle"));
        assert!(ours("::my_throttle::throttle", "my_throttle"));
        assert!(ours("throttle", "my_throttle"));
        assert!(!ours("throttle::throttle", "my_throttle"));
    }

    #[test]
    fn takes_ours_out_in_order_and_leaves_the_rest() {
        let item: syn::ItemFn = syn::parse_quote! {
            #[inline]
            #[throttle(uid = "a", rate = "1/s")]
            #[other::throttle]
            #[throttle::throttle(uid = "b", rate = "2/s")]
            #[rustfmt::throttle]
            fn f() {}
        };
        let mut attrs = item.attrs;
        let (taken, args) = take_ours(&mut attrs, &syn::parse_quote!(::throttle));
        assert_eq!(taken.len(), 2);
        assert!(args.iter().all(Result::is_ok));
        let kept: Vec<String> = attrs.iter().map(|attr| quote::quote!(#attr).to_string()).collect();
        assert_eq!(kept, ["# [inline]", "# [other :: throttle]", "# [rustfmt :: throttle]"]);
    }
}
