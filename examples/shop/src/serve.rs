//! `shop`: one instance serving the HTTP app until SIGINT or SIGTERM.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use axum::extract::Request;
use axum::ServiceExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use tower_stateless::store::{RedisStoreBuilder, RedisTarget, SessionStore, StoreError};
use tower_stateless::{
    Keys, MemoryStore, PostgresStore, RedisStore, Sealed, SessionLayer, TokenSessions,
};

use crate::cli::SessionMode;
use crate::error::chain;
use crate::signals::StopSignals;
use crate::{AppState, Chunks, Config, StoreChoice};

/// Serves as `config` says. A store that cannot be reached or a port that cannot be
/// bound at start is said on stderr, and the exit code is 1.
pub fn run(config: Config) -> ExitCode {
    tracing_subscriber::fmt()
        // Colour codes only for a terminal, not for a log file or a pipe.
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_stateless=info".into()),
        )
        .init();
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match runtime.block_on(serve_on_its_store(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("shop: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve_on_its_store(config: Config) -> Result<(), String> {
    if config.keys_generated {
        tracing::warn!(
            "SESSION_KEYS is not set: using a random key, so instances will not share sessions \
             and every session dies with this process"
        );
    }
    if config.encrypt_sessions {
        tracing::info!("session data is encrypted at rest (SESSION_ENCRYPT)");
    }
    match (config.store.clone(), config.session_mode) {
        (StoreChoice::Memory, SessionMode::Token) => {
            tracing::warn!(
                "token mode without REDIS_URL: sessions are sealed in their cookies and \
                 cannot be revoked, so a logged-out cookie stays valid until it expires"
            );
            serve_on(config, MemoryStore::new(), Chunks::memory(), None).await
        }
        (StoreChoice::Memory, SessionMode::Store) => {
            tracing::warn!(
                "no REDIS_URL or REDIS_CLUSTER_NODES: sessions are kept in this process's memory \
                 (MemoryStore), which one instance only can see and a restart loses"
            );
            serve(config, MemoryStore::new(), Chunks::memory()).await
        }
        (StoreChoice::Redis(url), _) => {
            serve_redis(config, RedisTarget::single(url), "REDIS_URL").await
        }
        (StoreChoice::Cluster(nodes), _) => {
            let target = RedisTarget::cluster(&nodes);
            serve_redis(config, target, "REDIS_CLUSTER_NODES").await
        }
        (StoreChoice::Sentinel { sentinels, master }, _) => {
            let target = RedisTarget::sentinel(&sentinels, master);
            serve_redis(config, target, "REDIS_SENTINELS").await
        }
        (StoreChoice::Postgres(url), _) => {
            // Like Redis: a database that cannot be reached at start stops the shop.
            let store = PostgresStore::connect(&url)
                .await
                .map_err(|error| format!("DATABASE_URL: {}", chain(&error)))?;
            // Where upload chunks go is said by `objects::start`.
            tracing::info!("sessions in PostgreSQL (DATABASE_URL)");
            serve(config, store, Chunks::memory()).await
        }
    }
}

/// Sessions and upload chunks share the store's connection. A Redis that cannot be
/// reached at start (or a session cache that cannot start) is a configuration error: say
/// so and stop.
async fn serve_redis(config: Config, target: RedisTarget, setting: &str) -> Result<(), String> {
    // No plain digest of a user name at rest: keyed by SESSION_KEYS.
    let mut builder = RedisStore::builder(target)
        .user_digest_keys(&config.keys)
        .cache(config.session_cache);
    if config.encrypt_sessions {
        builder = builder.prefix(SEALED_PREFIX);
    }
    let store =
        (builder.connect().await).map_err(|error| format!("{setting}: {}", chain(&error)))?;
    tracing::info!(?store, "sessions in Redis ({setting})");
    let chunks = Chunks::redis(store.connection(), config.user_digests.clone());
    if config.session_cache > 0 {
        tracing::info!(
            capacity = config.session_cache,
            "session cache on (SESSION_CACHE)"
        );
        tokio::spawn(report_cache_stats(store.clone()));
    }
    if config.session_mode == SessionMode::Token {
        tracing::info!("token mode: sessions sealed in their cookies, revocations in Redis");
        let revocations = store.clone();
        return serve_on(config, store, chunks, Some(revocations)).await;
    }
    if config.encrypt_sessions {
        let store = sealed(store, &config.keys);
        return serve_on(config, store, chunks, None).await;
    }
    serve_on(config, store, chunks, None).await
}

/// The cache's counts as metrics on `GET /metrics` (`session_cache_*`), updated every
/// second, and at debug level (`RUST_LOG=tower_stateless=info,shop=debug`) every 10 s
/// when they changed.
async fn report_cache_stats(store: RedisStore) {
    let mut last_logged = None;
    for second in 0u64.. {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let Some(stats) = store.cache_stats() else {
            return;
        };
        for (name, count) in [
            ("session_cache_hits_total", stats.hits),
            ("session_cache_misses_total", stats.misses),
            ("session_cache_bypasses_total", stats.bypasses),
            ("session_cache_invalidations_total", stats.invalidations),
            ("session_cache_flushes_total", stats.flushes),
            ("session_cache_copies_total", stats.copies),
        ] {
            metrics::counter!(name).absolute(count);
        }
        metrics::gauge!("session_cache_sessions").set(stats.len as f64);
        metrics::gauge!("session_cache_bytes").set(stats.bytes as f64);
        if second % 10 == 9 && last_logged != Some(stats) {
            tracing::debug!(
                len = stats.len,
                bytes = stats.bytes,
                tracking = stats.tracking,
                hits = stats.hits,
                misses = stats.misses,
                bypasses = stats.bypasses,
                invalidations = stats.invalidations,
                flushes = stats.flushes,
                copies = stats.copies,
                "session cache"
            );
            last_logged = Some(stats);
        }
    }
}

/// Sealed sessions live under their own key prefix: turning `SESSION_ENCRYPT` on (or
/// off) then starts everyone on fresh sessions, where the other kind's records would
/// fail to load (a 503 until each expires). `session:*` still matches both, for ACLs.
pub const SEALED_PREFIX: &str = "session:sealed:";

/// The shop's Redis store with encryption at rest, as `SESSION_ENCRYPT=1` runs it.
pub async fn sealed_on_redis(
    builder: RedisStoreBuilder,
    keys: &Keys,
) -> Result<Sealed<RedisStore>, StoreError> {
    let store = builder.prefix(SEALED_PREFIX).connect().await?;
    Ok(sealed(store, keys))
}

/// `store` with session data encrypted at rest under keys derived from `keys`; the
/// cart's lines are counters, so that adds stay single atomic store calls.
pub fn sealed<S: SessionStore>(store: S, keys: &Keys) -> Sealed<S> {
    Sealed::new(store, keys).with_counters(crate::cart::ITEM_PREFIX)
}

async fn serve<S: SessionStore + Clone>(
    config: Config,
    store: S,
    chunks: Chunks,
) -> Result<(), String> {
    if config.encrypt_sessions {
        let store = sealed(store, &config.keys);
        return serve_on(config, store, chunks, None).await;
    }
    serve_on(config, store, chunks, None).await
}

/// Serves with sessions in `store`, or in token mode sealed in cookies, revocations in
/// `revocations` if given (`store` then only answers the health check).
async fn serve_on<S: SessionStore + Clone>(
    config: Config,
    store: S,
    chunks: Chunks,
    revocations: Option<RedisStore>,
) -> Result<(), String> {
    let token_mode = config.session_mode == SessionMode::Token;
    let layer = if token_mode {
        let mut tokens = TokenSessions::new();
        if let Some(revocations) = revocations {
            tokens = tokens.with_revocations(revocations);
        }
        SessionLayer::tokens_builder(tokens, config.keys.clone())
    } else {
        SessionLayer::builder(store.clone(), config.keys.clone())
    };
    let mut layer = layer.with_secure(config.secure_cookies);
    if let Some(limit) = config.max_sessions_per_user {
        layer = layer.with_max_sessions_per_user(limit);
    }
    let layer = layer
        .build()
        .map_err(|error| format!("session settings: {error}"))?;
    let recorder = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|error| format!("cannot install the metrics recorder: {error}"))?;
    let objects = crate::objects::start(&config, &chunks)?;
    let state = AppState {
        store,
        chunks,
        objects,
        token_mode,
        uploads_seal: config.uploads_seal.clone(),
    };
    let app = crate::app(state, layer, &config.instance, Some(recorder));
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .map_err(|error| {
            format!(
                "cannot listen on {}:{}: {error} (HOST, PORT)",
                config.host, config.port
            )
        })?;
    let address = listener
        .local_addr()
        .map_err(|error| format!("cannot read the listening address: {error}"))?;
    let mut stop = StopSignals::catch(false);
    tracing::info!(instance = %config.instance, "shop listening on http://{address}");
    axum::serve(listener, ServiceExt::<Request>::into_make_service(app))
        .with_graceful_shutdown(async move {
            stop.recv().await;
            tracing::info!("shutting down");
        })
        .await
        .map_err(|error| format!("server failed: {error}"))
}
