//! Generated code names everything by absolute path: user items called `Result`,
//! `Option`, `Box`, `Guard`, `core` or `throttle`-like names do not break it, and
//! parameters named like the generated locals do not clash.
#![allow(dead_code, non_camel_case_types)]

use axum::Router;
use axum::routing::get;

struct Result;
struct Option;
struct Box;
struct Guard;
struct Ok;
struct Err;
struct Send;
struct StaticThrottle;
mod core {}
mod std {}
mod __private {}
mod attribute {}
struct Site;

#[throttle::throttle(uid = "ui:shadowing", rate = "1/s", headers = "always")]
async fn shadowed(
    axum::extract::Path(__throttle_output): axum::extract::Path<u32>,
) -> ::core::result::Result<::std::string::String, ::std::string::String> {
    let __throttle_guard = __throttle_output + 1;
    ::core::result::Result::Ok(__throttle_guard.to_string())
}

fn main() {
    let _app: Router = Router::new().route("/{n}", get(shadowed));
}
