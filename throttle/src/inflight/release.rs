//! Releases that wait on a remote store, run in the background and counted, so a
//! caller can wait for all of them ([`InFlightLimit::settle`](super::InFlightLimit::settle)).

use crate::backend::{BackendError, BoxFuture};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::runtime::Handle;
use tokio::sync::Notify;

/// Background releases of one limit.
#[derive(Debug, Default)]
pub(crate) struct Releases {
    state: Arc<State>,
}

#[derive(Debug, Default)]
struct State {
    pending: AtomicUsize,
    idle: Notify,
    /// The runtime of the first acquire, for permits dropped off the runtime.
    runtime: OnceLock<Handle>,
}

/// Counts a release as pending until it is dropped: completed, failed, or cancelled
/// with its runtime.
struct Pending(Arc<State>);

impl Drop for Pending {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

impl Releases {
    /// Remembers the current runtime (once) for releases started off it.
    pub(crate) fn remember_runtime(&self) {
        if self.state.runtime.get().is_none() {
            if let Ok(handle) = Handle::try_current() {
                let _ = self.state.runtime.set(handle);
            }
        }
    }

    /// Runs `release` in the background; a failure is logged (the lease expires by
    /// itself).
    pub(crate) fn spawn(&self, release: BoxFuture<'static, Result<(), BackendError>>) {
        let handle = match Handle::try_current() {
            Ok(handle) => handle,
            Err(_) => match self.state.runtime.get() {
                Some(handle) => handle.clone(),
                None => {
                    crate::log::event!(
                        warn,
                        "in-flight limit: a release started outside any runtime; its lease will expire"
                    );
                    return;
                }
            },
        };
        self.state.pending.fetch_add(1, Ordering::AcqRel);
        let pending = Pending(self.state.clone());
        handle.spawn(async move {
            let _pending = pending;
            if let Err(error) = release.await {
                crate::log::event!(warn, "in-flight limit: a release failed, the lease will expire: {error}");
            }
        });
    }

    /// Waits until no release is pending.
    pub(crate) async fn settle(&self) {
        loop {
            let mut idle = std::pin::pin!(self.state.idle.notified());
            idle.as_mut().enable();
            if self.state.pending.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}
