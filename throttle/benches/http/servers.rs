//! The servers under test, each one `GET /` answering `"hello"`: bare axum, throttle's
//! four ways in (attribute with and without headers, layer, direct API) and the two
//! governor-based peers. Shared by the `http` and `instructions` benches.
//!
//! Only the public API is used, so the benches keep measuring whatever the hot path
//! becomes. Every limiter is configured alike: one quota that never runs out (allow) or
//! 1 per hour (deny), and clients identified by the `x-client` header (HTTP bench: wrk
//! connects from one address) or by the peer address (instruction count).

use axum::Router;
use axum::extract::Request;
use axum::routing::get;
use http::HeaderName;
use std::num::NonZeroU32;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;
use throttle::{
    Admitted, HttpThrottle, Rate, ThrottleError, ThrottleLayer, headers::DEFAULT_HEADERS_ALWAYS, identity::Identifier,
    throttle,
};

/// The request header that names the client when [`Identify::Header`] is in force.
pub(crate) const CLIENT_HEADER: &str = "x-client";
static CLIENT_HEADER_NAME: HeaderName = HeaderName::from_static(CLIENT_HEADER);

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Server {
    /// `GET /` with no limiter: the baseline.
    Bare,
    /// `#[throttle(.., headers = "always")]`.
    AttributeHeaders,
    /// `#[throttle(..)]`: `Retry-After` on 429 only.
    Attribute,
    /// `ThrottleLayer` on the router, headers always.
    Layer,
    /// `THROTTLE.hit(&request).await?` in the handler, headers always.
    Direct,
    /// tower_governor's `GovernorLayer` with `use_headers()`.
    TowerGovernor,
    /// axum-governor's `GovernorLayer` (it always sends its headers).
    AxumGovernor,
}

impl Server {
    pub(crate) const ALL: [Server; 7] = [
        Server::Bare,
        Server::AttributeHeaders,
        Server::Attribute,
        Server::Layer,
        Server::Direct,
        Server::TowerGovernor,
        Server::AxumGovernor,
    ];

    /// The name used on the command line.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Server::Bare => "bare",
            Server::AttributeHeaders => "attribute-headers",
            Server::Attribute => "attribute",
            Server::Layer => "layer",
            Server::Direct => "direct",
            Server::TowerGovernor => "tower-governor",
            Server::AxumGovernor => "axum-governor",
        }
    }

    /// The name in tables and charts.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Server::Bare => "bare axum `GET /`",
            Server::AttributeHeaders => "`#[throttle(headers = \"always\")]`",
            Server::Attribute => "`#[throttle]`, no headers",
            Server::Layer => "`ThrottleLayer`, headers always",
            Server::Direct => "direct `THROTTLE.hit(&request)`, headers always",
            Server::TowerGovernor => "tower_governor 0.8, with headers",
            Server::AxumGovernor => "axum-governor 2.1",
        }
    }

    /// The name in the chart (plain text).
    pub(crate) fn short(self) -> &'static str {
        match self {
            Server::Bare => "bare axum",
            Server::AttributeHeaders => "#[throttle] + headers",
            Server::Attribute => "#[throttle], no headers",
            Server::Layer => "ThrottleLayer",
            Server::Direct => "direct API",
            Server::TowerGovernor => "tower_governor",
            Server::AxumGovernor => "axum-governor",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Server> {
        Server::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the server is throttle's (and so can run on either backend).
    pub(crate) fn is_throttle(self) -> bool {
        matches!(self, Server::AttributeHeaders | Server::Attribute | Server::Layer | Server::Direct)
    }

    /// Whether the server limits at all (bare axum has no allow or deny path).
    pub(crate) fn limits(self) -> bool {
        self != Server::Bare
    }
}

/// Which side of the limiter every measured request takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Path {
    /// A quota that never runs out: every request is admitted and updates the state.
    Allow,
    /// 1 per hour, spent by the first request: every later request gets 429.
    Deny,
}

impl Path {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Path::Allow => "allow",
            Path::Deny => "deny",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Path> {
        [Path::Allow, Path::Deny].into_iter().find(|p| p.name() == name)
    }

    fn rate(self) -> Rate {
        match self {
            Path::Allow => Rate::per_second(1_000_000_000),
            Path::Deny => Rate::per_hour(1),
        }
    }
}

/// How every limiter tells clients apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Identify {
    /// The `x-client` request header.
    Header,
    /// The peer address from axum's `ConnectInfo<SocketAddr>`.
    #[allow(dead_code, reason = "the HTTP bench cannot: wrk has one source address")]
    PeerIp,
}

/// What one server process runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Setup {
    pub(crate) server: Server,
    pub(crate) path: Path,
    pub(crate) identify: Identify,
}

/// The process's setup: the `#[throttle]` statics read it when first built.
static SETUP: OnceLock<Setup> = OnceLock::new();

fn setup() -> Setup {
    *SETUP.get().expect("servers::router sets the setup first")
}

fn rate() -> Rate {
    setup().path.rate()
}

fn identifier() -> Identifier {
    match setup().identify {
        Identify::Header => Identifier::header(CLIENT_HEADER).expect("a valid header name"),
        Identify::PeerIp => Identifier::peer_ip(),
    }
}

fn built(uid: &str, headers: bool) -> HttpThrottle {
    let builder = HttpThrottle::builder(uid).rate(rate()).identifier(identifier());
    let builder = if headers { builder.headers(&*DEFAULT_HEADERS_ALWAYS) } else { builder };
    builder.build().expect("a valid throttle")
}

async fn hello() -> &'static str {
    "hello"
}

#[throttle(uid = "bench:attribute:headers", rate = rate(), headers = "always", identifier = identifier())]
async fn attribute_headers() -> &'static str {
    "hello"
}

#[throttle(uid = "bench:attribute", rate = rate(), identifier = identifier())]
async fn attribute() -> &'static str {
    "hello"
}

static DIRECT: LazyLock<HttpThrottle> = LazyLock::new(|| built("bench:direct", true));

async fn direct(request: Request) -> Result<(Admitted, &'static str), ThrottleError> {
    let admitted = DIRECT.hit(&request).await?;
    Ok((admitted, "hello"))
}

/// The router for `setup`; call once per process.
pub(crate) fn router(setup: Setup) -> Router {
    SETUP.set(setup).expect("one setup per process");
    let route = Router::new();
    match setup.server {
        Server::Bare => route.route("/", get(hello)),
        Server::AttributeHeaders => route.route("/", get(attribute_headers)),
        Server::Attribute => route.route("/", get(attribute)),
        Server::Layer => route.route("/", get(hello)).layer(ThrottleLayer::new(built("bench:layer", true))),
        Server::Direct => route.route("/", get(direct)),
        Server::TowerGovernor => tower_governor_router(setup),
        Server::AxumGovernor => axum_governor_router(setup),
    }
}

/// tower_governor's key from the same header, as a `String` like ours.
#[derive(Debug, Clone, Copy)]
struct ClientHeader;

impl tower_governor::key_extractor::KeyExtractor for ClientHeader {
    type Key = String;

    fn extract<T>(&self, request: &http::Request<T>) -> Result<String, tower_governor::GovernorError> {
        let value = request.headers().get(&CLIENT_HEADER_NAME);
        let value = value.and_then(|v| v.to_str().ok());
        value.map(str::to_owned).ok_or(tower_governor::GovernorError::UnableToExtractKey)
    }
}

fn tower_governor_router(setup: Setup) -> Router {
    use tower_governor::governor::GovernorConfigBuilder;
    use tower_governor::key_extractor::PeerIpKeyExtractor;
    use tower_governor::{GovernorLayer, key_extractor::KeyExtractor};

    fn layered<K: KeyExtractor + Send + Sync + 'static>(key: K, path: Path) -> Router
    where
        K::Key: Send + Sync,
    {
        let mut builder = GovernorConfigBuilder::default().key_extractor(key);
        match path {
            // One cell per nanosecond, a burst of 2^32 - 1: never runs out.
            Path::Allow => builder.period(Duration::from_nanos(1)).burst_size(u32::MAX),
            Path::Deny => builder.period(Duration::from_secs(3600)).burst_size(1),
        };
        let config = builder.use_headers().finish().expect("a valid governor config");
        Router::new().route("/", get(hello)).layer(GovernorLayer::new(config))
    }
    match setup.identify {
        Identify::Header => layered(ClientHeader, setup.path),
        Identify::PeerIp => layered(PeerIpKeyExtractor, setup.path),
    }
}

fn axum_governor_router(setup: Setup) -> Router {
    use axum_governor::extractor::{Header, PeerIp};
    use axum_governor::{GovernorConfigBuilder, GovernorLayer, Quota};

    let quota = match setup.path {
        Path::Allow => Quota::requests_per_second(NonZeroU32::MAX),
        Path::Deny => Quota::requests_per_hour(NonZeroU32::MIN),
    };
    let route = Router::new().route("/", get(hello));
    match setup.identify {
        Identify::Header => {
            let config = GovernorConfigBuilder::default().with_extractor(Header(&CLIENT_HEADER_NAME));
            route.layer(GovernorLayer::new(config.quota_default(quota).finish().expect("a valid config")))
        }
        Identify::PeerIp => {
            let config = GovernorConfigBuilder::default().with_extractor(PeerIp::default()).expect_connect_info();
            route.layer(GovernorLayer::new(config.quota_default(quota).finish().expect("a valid config")))
        }
    }
}
