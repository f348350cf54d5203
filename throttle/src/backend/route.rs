//! [`Route`]: which store of a backend decided a hit, so that its refund goes there.

/// Which store of a backend decided a hit, for its [`refund`](super::Backend::refund).
///
/// A backend that decides on one store ignores it (and returns [`Route::default`]); a
/// backend that picks a store per hit, such as a [`Failover`](super::Failover), records
/// its pick with [`through`](Self::through) in
/// [`hit_routed`](super::Backend::hit_routed) and reads it back with
/// [`split`](Self::split) in `refund`. Picks nest: a failover inside a failover
/// records both, as digits of one number (exact while the product of the choices at
/// every level stays below 2^64).
///
/// ```
/// use throttle::backend::Route;
///
/// let inner = Route::default().through(1, 2); // an inner failover's fallback decided
/// let outer = inner.through(0, 2); // inside the outer failover's primary
/// assert_eq!(outer.split(2), (0, inner));
/// assert_eq!(inner.split(2), (1, Route::default()));
/// assert_eq!(Route::UNKNOWN.through(0, 2), Route::UNKNOWN);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Route(u64);

impl Route {
    /// A route no refund can follow: a backend answers it for a joint call whose hits
    /// it decided on different stores, and nesting too deep to record ends in it. A
    /// routing backend gives nothing back on it (in doubt, the hit stays counted).
    pub const UNKNOWN: Route = Route(u64::MAX);

    /// This route (the one taken inside a store) through store `index` of `stores`.
    /// `index` must be below `stores`.
    #[must_use]
    pub fn through(self, index: u64, stores: u64) -> Route {
        debug_assert!(index < stores);
        if self == Route::UNKNOWN {
            return self;
        }
        match self.0.checked_mul(stores.max(1)).and_then(|path| path.checked_add(index)) {
            Some(path) => Route(path),
            None => Route::UNKNOWN,
        }
    }

    /// The store of `stores` the route goes through, and the route taken inside it.
    pub fn split(self, stores: u64) -> (u64, Route) {
        let stores = stores.max(1);
        (self.0 % stores, Route(self.0 / stores))
    }
}
