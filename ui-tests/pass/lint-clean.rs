//! The expansion is warning-free under strict lints in the user's crate (clippy on
//! generated code is checked by `cargo clippy --workspace --all-targets` over the
//! tests and examples, which use the attribute).
#![deny(
    warnings,
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    unused,
    unused_qualifications,
    unused_results,
    rust_2018_idioms,
    let_underscore_drop,
    non_ascii_idents,
    trivial_casts,
    trivial_numeric_casts,
    single_use_lifetimes,
    elided_lifetimes_in_paths
)]

/// Public handlers.
pub mod handlers {
    use axum::Json;
    use axum::extract::Path;
    use throttle::throttle;

    /// A public handler.
    #[throttle(uid = "ui:lint-public", rate = "100/min", headers = "always")]
    pub async fn public(Path(id): Path<u32>) -> Json<u32> {
        Json(id)
    }

    /// A handler with a named static.
    #[throttle(uid = "ui:lint-named", rate = "100/min", name = NAMED)]
    pub async fn named() -> Result<String, String> {
        Ok("named".to_owned())
    }

    /// A public handler with stacked limits.
    #[throttle(uid = "ui:lint-burst", rate = "10/s", headers = "always", name = BURST)]
    #[throttle::throttle(uid = "ui:lint-daily", rate = "1000/day", name = DAILY)]
    pub async fn stacked() -> &'static str {
        "stacked"
    }

    #[throttle(uid = "ui:lint-private", rate = "100/min", headers = "throttled")]
    async fn private() {}

    pub(crate) fn private_router() -> axum::Router {
        axum::Router::new().route("/private", axum::routing::get(private))
    }
}

fn main() {
    let _app: axum::Router = handlers::private_router()
        .route("/public/{id}", axum::routing::get(handlers::public))
        .route("/named", axum::routing::get(handlers::named))
        .route("/stacked", axum::routing::get(handlers::stacked));
    assert_eq!(handlers::NAMED.handler(), "named");
    assert_eq!(handlers::PUBLIC_THROTTLE.name(), "PUBLIC_THROTTLE");
    assert_eq!([handlers::BURST.name(), handlers::DAILY.name()], ["BURST", "DAILY"]);
}
