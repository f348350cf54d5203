//! The backend the Redis suites test: a `RedisBackend`, behind a `DenyCache` when
//! `THROTTLE_TEST_DENY_CACHE=1`, so every Redis test also runs with the cache on.

use throttle::backend::{Backend, BackendError, DenyCache, Hit, Key, RedisBackend, Reply, Route, Since};
use throttle::strategy::{Decision, DynStrategy, Snapshot};
use throttle::{ConfigError, Rate, backend::ManualClock};

/// Whether the Redis suites run behind the deny cache.
pub fn deny_cache_on() -> bool {
    std::env::var("THROTTLE_TEST_DENY_CACHE").as_deref() == Ok("1")
}

#[derive(Debug, Clone)]
pub enum TestRedis {
    Plain(RedisBackend),
    Cached(DenyCache<RedisBackend>),
}

impl TestRedis {
    /// `redis`, cached when the switch is on.
    pub fn wrap(redis: RedisBackend) -> Self {
        if deny_cache_on() { TestRedis::Cached(DenyCache::new(redis)) } else { TestRedis::Plain(redis) }
    }

    pub async fn connect(url: &str) -> Result<Self, BackendError> {
        Ok(Self::wrap(RedisBackend::connect(url).await?))
    }

    pub async fn connect_cluster(urls: Vec<String>) -> Result<Self, BackendError> {
        Ok(Self::wrap(RedisBackend::connect_cluster(urls).await?))
    }

    pub fn redis(&self) -> &RedisBackend {
        match self {
            TestRedis::Plain(redis) => redis,
            TestRedis::Cached(cached) => cached.inner(),
        }
    }

    /// Decisions on `clock`; a cache measures its deadlines on it too.
    pub fn with_clock(self, clock: ManualClock) -> Self {
        let redis = self.redis().clone().with_clock(clock.clone());
        match self {
            TestRedis::Plain(_) => TestRedis::Plain(redis),
            TestRedis::Cached(_) => {
                TestRedis::Cached(DenyCache::builder(redis).clock(clock).build().expect("valid cache"))
            }
        }
    }

    pub fn with_namespace(self, namespace: &str) -> Result<Self, ConfigError> {
        let redis = self.redis().clone().with_namespace(namespace)?;
        Ok(match self {
            TestRedis::Plain(_) => TestRedis::Plain(redis),
            TestRedis::Cached(_) => TestRedis::Cached(DenyCache::new(redis)),
        })
    }

    /// `RedisBackend::reset_namespace`, and the cache forgets its rejections.
    pub async fn reset_namespace(&self) -> Result<u64, BackendError> {
        let deleted = self.redis().reset_namespace().await?;
        if let TestRedis::Cached(cached) = self {
            cached.clear();
        }
        Ok(deleted)
    }

    fn backend(&self) -> &dyn Backend {
        match self {
            TestRedis::Plain(redis) => redis,
            TestRedis::Cached(cached) => cached,
        }
    }
}

impl Backend for TestRedis {
    fn namespace(&self) -> &str {
        self.backend().namespace()
    }

    fn hit<'a>(&'a self, hit: Hit<'a>) -> Reply<'a, Decision> {
        self.backend().hit(hit)
    }

    fn stat<'a>(&'a self, key: Key<'a>, strategy: &'a dyn DynStrategy, rate: Rate) -> Reply<'a, Snapshot> {
        self.backend().stat(key, strategy, rate)
    }

    fn reset<'a>(&'a self, key: Key<'a>) -> Reply<'a, ()> {
        self.backend().reset(key)
    }

    fn hit_all<'a>(&'a self, hits: &'a [Hit<'a>]) -> Option<Reply<'a, Vec<Decision>>> {
        self.backend().hit_all(hits)
    }

    /// The wrapped backend's store, and that of any other `TestRedis` on it.
    fn shares_store_with(&self, other: &dyn Backend) -> bool {
        let other = other.downcast_ref::<TestRedis>().map_or(other, TestRedis::backend);
        self.backend().shares_store_with(other)
    }

    fn since_now(&self) -> Since {
        self.backend().since_now()
    }

    fn refund<'a>(&'a self, hit: Hit<'a>, since: Since, route: Route) -> Reply<'a, bool> {
        self.backend().refund(hit, since, route)
    }
}
