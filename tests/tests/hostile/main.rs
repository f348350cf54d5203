//! The adversarial suite: every attack a hostile client can try, through real Routers
//! (and a real Redis where the claim is about Redis). Each test asserts that the client
//! gets no more than the limit and that keys and state stay bounded.

#[path = "../support/mod.rs"]
mod support;

mod glob;
mod identity;
mod keys;
mod redis_cost;
mod stack;
