//! A small axum server throttled through `RedisBackend`, for tests that run several OS
//! processes against one Redis (tests/tests/redis_processes.rs).
//!
//! ```text
//! throttled_server --port 8080 --redis redis://127.0.0.1:6379 --rate 40/h \
//!     [--strategies fixed_window,gcra] [--namespace run42] [--cluster]
//! ```
//!
//! `GET /{strategy}` is one hit of that strategy's throttle, keyed by the peer's IP:
//! 200 when admitted, 429 when not, 500 when Redis fails (errors are raised, never
//! guessed). `--redis` may repeat, and with `--cluster` names nodes of a Cluster.
//! Every option may instead come from the environment (`THROTTLE_PORT`,
//! `THROTTLE_REDIS` comma-separated, `THROTTLE_RATE`, `THROTTLE_STRATEGIES`,
//! `THROTTLE_NAMESPACE`, `THROTTLE_CLUSTER=1`). The port is bound once Redis is
//! connected, so an open port means ready.

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use throttle::backend::RedisBackend;
use throttle::strategy::StrategyKind;
use throttle::{HttpThrottle, OnError};

/// What the server was asked to run.
#[derive(Debug)]
struct Options {
    port: u16,
    redis: Vec<String>,
    cluster: bool,
    rate: String,
    strategies: Vec<String>,
    namespace: String,
}

impl Options {
    fn parse() -> Result<Self, String> {
        let env = |name: &str| std::env::var(name).ok().filter(|value| !value.is_empty());
        let list =
            |value: String| value.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        let mut port = env("THROTTLE_PORT");
        let mut redis: Vec<String> = env("THROTTLE_REDIS").map(list).unwrap_or_default();
        let mut cluster = env("THROTTLE_CLUSTER").as_deref() == Some("1");
        let mut rate = env("THROTTLE_RATE");
        let mut strategies = env("THROTTLE_STRATEGIES").map(list);
        let mut namespace = env("THROTTLE_NAMESPACE");

        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("`{flag}` needs a value"));
            match flag.as_str() {
                "--port" => port = Some(value()?),
                "--redis" => redis.push(value()?),
                "--cluster" => cluster = true,
                "--rate" => rate = Some(value()?),
                "--strategies" => strategies = Some(list(value()?)),
                "--namespace" => namespace = Some(value()?),
                other => return Err(format!("unknown argument `{other}`")),
            }
        }
        let port = port.ok_or("no port (--port or THROTTLE_PORT)")?;
        let port = port.parse().map_err(|_| format!("port `{port}` is not a number from 0 to 65535"))?;
        if redis.is_empty() {
            return Err("no Redis URL (--redis or THROTTLE_REDIS)".to_string());
        }
        let all = || StrategyKind::ALL.iter().map(|kind| kind.name().to_string()).collect();
        Ok(Options {
            port,
            redis,
            cluster,
            rate: rate.ok_or("no rate (--rate or THROTTLE_RATE), e.g. 40/h")?,
            strategies: strategies.unwrap_or_else(all),
            namespace: namespace.unwrap_or_else(|| "throttle".to_string()),
        })
    }
}

/// One throttle per strategy, by name.
type Throttles = Arc<HashMap<String, HttpThrottle>>;

async fn hit(State(throttles): State<Throttles>, Path(strategy): Path<String>, request: Request) -> Response {
    let Some(throttle) = throttles.get(&strategy) else {
        return (StatusCode::NOT_FOUND, format!("no throttle for strategy `{strategy}`")).into_response();
    };
    match throttle.hit(&request).await {
        Ok(admitted) => (admitted, "admitted").into_response(),
        Err(error) => error.into_response(),
    }
}

async fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let redis = if options.cluster {
        RedisBackend::connect_cluster(&options.redis).await?
    } else {
        RedisBackend::connect(&options.redis[0]).await?
    };
    let redis = redis.with_namespace(&options.namespace)?;
    let mut throttles = HashMap::new();
    for strategy in &options.strategies {
        let throttle = HttpThrottle::builder(strategy)
            .rate(options.rate.as_str())
            .strategy_name(strategy)
            .backend(redis.clone())
            // A loaded machine must not turn a slow answer into a guess.
            .timeout(Duration::from_secs(10))
            .on_error(OnError::Raise)
            .build()?;
        throttles.insert(strategy.clone(), throttle);
    }
    let app = Router::new().route("/{strategy}", get(hit)).with_state(Arc::new(throttles));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", options.port)).await?;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}

#[tokio::main]
async fn main() {
    let result = match Options::parse() {
        Ok(options) => run(options).await,
        Err(usage) => Err(usage.into()),
    };
    if let Err(error) = result {
        eprintln!("throttled_server: {error}");
        std::process::exit(1);
    }
}
