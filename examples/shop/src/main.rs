//! `cargo run -p shop`: the shop on one port. See the crate README for settings.

use std::net::SocketAddr;

use shop::{Config, StoreChoice};
use tower_stateless::{MemoryStore, SessionLayer, SessionStore};

#[tokio::main]
async fn main() {
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
            serve(config, MemoryStore::new()).await;
        }
        StoreChoice::Redis(_) | StoreChoice::Cluster(_) => {
            eprintln!("shop: the Redis store is not available in this build");
            std::process::exit(2);
        }
    }
}

async fn serve<S: SessionStore + Clone>(config: Config, store: S) {
    let layer =
        SessionLayer::new(store.clone(), config.keys.clone()).with_secure(config.secure_cookies);
    let app = shop::router(store, layer, &config.instance);
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
