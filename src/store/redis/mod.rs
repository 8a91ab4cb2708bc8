//! The production store: sessions in Redis, a single server or a Redis Cluster.
//!
//! One concept per file: `builder.rs` where a store connects and with what settings,
//! `store.rs` the store and its per-session calls, `user_index.rs` the per-user index
//! behind log-out-everywhere, `cycle.rs` the two `cycle_id` algorithms, `durable.rs`
//! waiting for replicas after revocations, `revocation.rs` token mode's revocations,
//! `eviction.rs` the eviction-policy check, `scripts.rs` the Lua scripts, `codec.rs` the
//! hash layout, `cache.rs` the coherent local cache and `tracking.rs` the invalidation
//! stream that keeps it coherent, `conn.rs` single, cluster and Sentinel connections and
//! where more are opened (`sentinel.rs` follows a failover).

mod builder;
mod cache;
mod codec;
mod conn;
mod cycle;
mod durable;
mod eviction;
#[cfg(feature = "token")]
mod revocation;
mod scripts;
mod sentinel;
mod store;
mod tracking;
mod user_index;

pub use self::builder::{RedisStoreBuilder, RedisTarget};
pub use self::cache::CacheStats;
#[cfg(feature = "__fuzz")]
pub(crate) use self::codec::fuzz as codec_fuzz;
pub use self::conn::RedisConnection;
pub use self::store::RedisStore;
