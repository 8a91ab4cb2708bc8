//! Peers of the shop for `scripts/loadtest.sh` and `scripts/stale_peers.sh`: servers doing
//! the shop's work by other means, measured on the same machine and the same Redis.
//!
//! * `bench-peers no-io`: axum answering `GET /me` with the shop's logged-in JSON body and
//!   no I/O at all: the HTTP limit.
//! * `bench-peers baseline`: axum and one `HGETALL` of a fixed key per request, no cookie
//!   and no session: the physical limit of the read path.
//! * `bench-peers tower-sessions`: the shop's `/login`, `/logout`, `/me`, `/cart/items` and
//!   `/cart/items/{sku}` on tower-sessions 0.14 with tower-sessions-redis-store.
//! * `bench-peers tower-sessions-moka`: the same with tower-sessions' `CachingSessionStore`,
//!   a per-instance moka cache (tower-sessions-moka-store) in front of the Redis store.
//! * `bench-peers tower-sessions-sqlx`: the same routes on tower-sessions-sqlx-store's
//!   PostgreSQL store, at `DATABASE_URL`.
//! * `bench-peers sha256-cost SHORT|LONG N`: N SHA-256 digests and nothing else, for the
//!   SHA-NI correction of `scripts/instructions.sh`.
//!
//! All take `--redis-url URL --port N` (or `REDIS_URL`, `PORT`; `no-io` needs no Redis URL)
//! and listen on 127.0.0.1.

mod baseline;
mod common;
mod no_io;
mod sha256_cost;
mod tower_sessions_peer;

use common::Settings;
use tower_sessions_peer::Cache;

fn main() {
    let mut args = std::env::args().skip(1);
    let peer = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    if peer == "sha256-cost" {
        // No runtime: the digests alone.
        if let Err(error) = sha256_cost::run(&rest) {
            eprintln!("sha256-cost: {error}");
            std::process::exit(2);
        }
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    match peer.as_str() {
        "no-io" => {
            let settings = Settings::from_args_or_env("no-io", rest, false);
            runtime.block_on(no_io::run(settings));
        }
        "baseline" => {
            let settings = Settings::from_args_or_env("baseline", rest, true);
            runtime.block_on(baseline::run(settings));
        }
        "tower-sessions" | "tower-sessions-moka" => {
            let cache = if peer == "tower-sessions" {
                Cache::None
            } else {
                Cache::moka_from_env()
            };
            let settings = Settings::from_args_or_env(cache.program(), rest, true);
            runtime.block_on(tower_sessions_peer::run(settings, cache));
        }
        "tower-sessions-sqlx" => {
            let settings = Settings::from_args_or_env("tower-sessions-sqlx", rest, false);
            runtime.block_on(tower_sessions_peer::run_sqlx(settings));
        }
        _ => {
            eprintln!(
                "usage: bench-peers no-io|baseline|tower-sessions|tower-sessions-moka|tower-sessions-sqlx|sha256-cost \
                 [--redis-url URL] [--port N]   (or REDIS_URL, PORT)"
            );
            std::process::exit(2);
        }
    }
}
