//! Doc comments, outer and inner attributes and visibility are kept; the static and
//! the handler are reachable from outside their module with the handler's visibility.
#![deny(missing_docs, unused)]

mod api {
    use throttle::throttle;

    /// Returns the data.
    ///
    /// The doc comment survives the rewrite.
    #[throttle(uid = "ui:kept-data", rate = "100/min", headers = "always")]
    #[allow(clippy::unused_async)]
    #[cfg_attr(all(), must_use)]
    pub async fn get_data() -> String {
        #![allow(unused_variables)]
        let unused = 1;
        "data".to_string()
    }

    #[throttle(uid = "ui:kept-crate", rate = "100/min")]
    pub(crate) async fn crate_visible() -> &'static str {
        "crate"
    }

    #[cfg(any())]
    #[throttle(uid = "ui:kept-removed", rate = "1/s")]
    pub async fn compiled_out() -> &'static str {
        "never"
    }
}

fn main() {
    let _app: axum::Router = axum::Router::new()
        .route("/data", axum::routing::get(api::get_data))
        .route("/crate", axum::routing::get(api::crate_visible));
    assert_eq!(api::GET_DATA_THROTTLE.handler(), "get_data");
    assert_eq!(api::CRATE_VISIBLE_THROTTLE.name(), "CRATE_VISIBLE_THROTTLE");
}
