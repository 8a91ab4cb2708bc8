//! `cargo run -p grpc-cart`: the cart service on 127.0.0.1:$PORT (default 50051).
//! Settings: `PORT`, `INSTANCE`, `SESSION_KEYS`, `REDIS_URL`, `RUST_LOG`.

use std::net::Ipv4Addr;

use grpc_cart::{CartService, Config};
use tokio::net::TcpListener;
use tower_stateless::{MemoryStore, RedisStore};

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_stateless=info".into()),
        )
        .init();
    let config = Config::from_env().unwrap_or_else(|error| fail(2, &error));
    if config.keys_generated {
        tracing::warn!(
            "SESSION_KEYS is not set: using a random key, so instances will not share sessions \
             and every session dies with this process"
        );
    }
    let layer = match &config.redis_url {
        Some(url) => match RedisStore::connect(url).await {
            Ok(store) => {
                tracing::info!(?store, "sessions in Redis");
                grpc_cart::session_layer(store, config.keys.clone())
            }
            Err(error) => {
                let cause = std::error::Error::source(&error)
                    .map(|cause| format!(": {cause}"))
                    .unwrap_or_default();
                fail(1, &format!("cannot connect to REDIS_URL: {error}{cause}"))
            }
        },
        None => {
            tracing::warn!(
                "REDIS_URL is not set: sessions are kept in this process's memory (MemoryStore), \
                 which one instance only can see and a restart loses"
            );
            grpc_cart::session_layer(MemoryStore::new(), config.keys.clone())
        }
    };
    let service = CartService::new(&config.instance)
        .unwrap_or_else(|error| fail(2, &format!("INSTANCE={}: {error}", config.instance)));
    let address = (Ipv4Addr::LOCALHOST, config.port);
    let listener = TcpListener::bind(address).await.unwrap_or_else(|error| {
        fail(
            1,
            &format!("cannot listen on 127.0.0.1:{}: {error}", config.port),
        )
    });
    tracing::info!(instance = %config.instance, "grpc-cart listening on http://127.0.0.1:{}", config.port);
    if let Err(error) = grpc_cart::serve(listener, layer, service, shutdown()).await {
        fail(1, &format!("server failed: {error}"));
    }
}

#[expect(clippy::exit, reason = "the binary's one way out on a startup failure")]
fn fail(code: i32, message: &str) -> ! {
    eprintln!("grpc-cart: {message}");
    std::process::exit(code)
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
