//! Running throttle in production, through real Routers (and a real Redis where the
//! claim is about Redis): in-flight limits, quota contexts, the limits file and
//! problem-details rejections.

#[path = "../support/mod.rs"]
mod support;

mod inflight;
mod limits_file;
mod problem;
mod quota;
