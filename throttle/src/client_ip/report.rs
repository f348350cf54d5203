//! Misconfiguration reported once per [`ClientIp`](super::ClientIp) (and its clones)
//! through `tracing`, in the spirit of express-rate-limit's `validate`: each of these
//! makes clients share a bucket or ignores a header, and none is visible otherwise.

use http::HeaderName;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub(super) struct Reports {
    untrusted_peer: AtomicBool,
    silent_proxy: AtomicBool,
    no_connect_info: AtomicBool,
}

impl Reports {
    /// The source header came from a peer that is not a trusted proxy: either a client
    /// forging it (ignored, rightly) or a proxy that is missing from the trusted ranges.
    pub(super) fn untrusted_peer(&self, peer: IpAddr, header: &HeaderName) {
        if first(&self.untrusted_peer) {
            crate::log::event!(
                warn,
                "throttle: a request from {peer}, which is not a trusted proxy, carried `{header}`; the header was \
                 ignored and {peer} counts as the client. If {peer} is your proxy, trust it with `ClientIp::trust`"
            );
        }
    }

    /// A trusted proxy sent no source header: every client behind it shares its bucket.
    pub(super) fn silent_proxy(&self, peer: IpAddr, header: &HeaderName) {
        if first(&self.silent_proxy) {
            crate::log::event!(
                warn,
                "throttle: trusted proxy {peer} sent no `{header}`, so its clients share one bucket; make the proxy \
                 set `{header}` or choose the header it writes"
            );
        }
    }

    pub(super) fn no_connect_info(&self) {
        if first(&self.no_connect_info) {
            crate::log::event!(
                warn,
                "throttle: no ConnectInfo<SocketAddr> on the request, so every client shares one bucket; serve the \
                 app with `into_make_service_with_connect_info::<SocketAddr>()` or give the throttle an identifier"
            );
        }
    }
}

/// True the first time only; a plain load first keeps the hot path free of writes.
fn first(flag: &AtomicBool) -> bool {
    !flag.load(Ordering::Relaxed) && !flag.swap(true, Ordering::Relaxed)
}
