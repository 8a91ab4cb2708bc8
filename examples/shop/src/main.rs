//! `cargo run -p shop`: the shop on one port (settings: see the README).
//! `cargo run -p shop -- fleet [--instances N] [--port P]`: Redis, N shops and nginx.

use std::net::SocketAddr;

use shop::{AppState, Chunks, Config, StoreChoice};
use tower_stateless::{MemoryStore, RedisStore, SessionLayer, SessionStore, StoreError};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("fleet") {
        std::process::exit(run_fleet(&args[1..]));
    }
    tokio::runtime::Runtime::new()
        .expect("tokio runtime")
        .block_on(run_shop());
}

async fn run_shop() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_stateless=info".into()),
        )
        .init();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("shop: {error}");
            std::process::exit(2);
        }
    };
    if config.keys_generated {
        tracing::warn!(
            "SESSION_KEYS is not set: using a random key, so instances will not share sessions \
             and every session dies with this process"
        );
    }
    match config.store.clone() {
        StoreChoice::Memory => {
            tracing::warn!(
                "no REDIS_URL or REDIS_CLUSTER_NODES: sessions are kept in this process's memory \
                 (MemoryStore), which one instance only can see and a restart loses"
            );
            serve(config, MemoryStore::new(), Chunks::memory()).await;
        }
        StoreChoice::Redis(url) => serve_redis(config, RedisStore::connect(&url).await).await,
        StoreChoice::Cluster(nodes) => {
            serve_redis(config, RedisStore::connect_cluster(&nodes).await).await;
        }
    }
}

/// Sessions and upload chunks share the store's connection. A Redis that cannot be
/// reached at start is a configuration error: say so and stop.
async fn serve_redis(config: Config, store: Result<RedisStore, StoreError>) {
    let store = store.unwrap_or_else(|error| {
        let cause = std::error::Error::source(&error)
            .map(|cause| format!(": {cause}"))
            .unwrap_or_default();
        eprintln!("shop: cannot connect to Redis: {error}{cause}");
        std::process::exit(1);
    });
    let chunks = Chunks::Redis(store.connection());
    serve(config, store, chunks).await;
}

async fn serve<S: SessionStore + Clone>(config: Config, store: S, chunks: Chunks) {
    let layer =
        SessionLayer::new(store.clone(), config.keys.clone()).with_secure(config.secure_cookies);
    let app = shop::router(AppState { store, chunks }, layer, &config.instance);
    let address = SocketAddr::new(config.host, config.port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("shop: cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    tracing::info!(instance = %config.instance, "shop listening on http://{address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .expect("server failed");
}

async fn shutdown() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("shutting down");
}

/// `shop fleet`: starts Redis (unless `REDIS_URL` is set), the instances and nginx,
/// prints the URL, and stops everything on Ctrl-C.
fn run_fleet(args: &[String]) -> i32 {
    use shop::fleet::{Fleet, FleetConfig, FleetStore};
    let mut config = FleetConfig {
        shop_binary: std::env::current_exe().expect("path of this binary"),
        instances: 3,
        store: match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => FleetStore::Redis(url),
            _ => FleetStore::OwnRedis(Vec::new()),
        },
        port: 8080,
        env: Vec::new(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let value = args.next().and_then(|v| v.parse().ok());
        match (arg.as_str(), value) {
            ("--instances", Some(n)) if n > 0 => config.instances = n,
            ("--port", Some(port)) => config.port = u16::try_from(port).unwrap_or(8080),
            _ => {
                eprintln!(
                    "usage: shop fleet [--instances N] [--port P]   (REDIS_URL: use this Redis)"
                );
                return 2;
            }
        }
    }
    let fleet = match Fleet::start(config) {
        Ok(fleet) => fleet,
        Err(error) => {
            eprintln!("fleet: {error}");
            return 1;
        }
    };
    println!(
        "fleet: {} shop instances behind nginx at {}",
        fleet.instances.len(),
        fleet.url()
    );
    for instance in &fleet.instances {
        println!(
            "  {} on 127.0.0.1:{}  (log: {})",
            instance.name,
            instance.port,
            instance.log().display()
        );
    }
    if let Some(redis) = &fleet.redis {
        println!("  redis-server on {}", redis.url());
    }
    println!("Ctrl-C stops everything.");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(shutdown());
    drop(fleet);
    0
}
