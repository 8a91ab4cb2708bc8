//! Per-request store latency on a real local redis-server, each operation beside a
//! bare redis-rs round trip of the same kind on the store's own connection.
//!
//! `cargo bench --features redis --bench store` (starts its own redis-server).

mod common;
#[path = "../tests/support/mod.rs"]
#[allow(missing_docs, missing_debug_implementations)]
mod support;

use std::collections::HashMap;
use std::time::Duration;

use common::{fresh_id, now, record, timed};
use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion};
use tower_stateless::store::{ChangeSet, SessionStore};
use tower_stateless::RedisStore;

fn bench_store(c: &mut Criterion) {
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // BENCH_URL_QUERY, e.g. `?protocol=resp2`, picks connection options to compare.
    let url = format!(
        "{}/{}",
        server.url(),
        std::env::var("BENCH_URL_QUERY").unwrap_or_default()
    );
    let store = runtime.block_on(RedisStore::connect(&url)).unwrap();
    // Bare commands go over the store's own connection: the ratio is what the store adds.
    let bare = store.connection();
    let id = fresh_id(0);
    let key = format!("{}{{{}}}", RedisStore::DEFAULT_PREFIX, id.as_str());
    runtime.block_on(async {
        let _ = store.create(&id, &record(None), now()).await.unwrap();
        // Load every script once, so no measurement includes a NOSCRIPT round trip.
        let _ = store
            .apply(&id, &ChangeSet::default().with_set("warm", "1"), now())
            .await
            .unwrap();
        let warm = fresh_id(1);
        let _ = store.create(&warm, &record(None), now()).await.unwrap();
        let _ = store
            .cycle_id(&warm, &fresh_id(2), &ChangeSet::default(), now())
            .await
            .unwrap();
    });
    let script = redis::Script::new("return redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])");
    let mut group = c.benchmark_group("store");
    group.bench_function("bare HGETALL", |b| {
        b.to_async(&runtime).iter(|| {
            let (mut bare, key) = (bare.clone(), key.clone());
            async move {
                redis::cmd("HGETALL")
                    .arg(&key)
                    .query_async::<HashMap<Vec<u8>, Vec<u8>>>(&mut bare)
                    .await
                    .unwrap()
            }
        })
    });
    group.bench_function("load", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.load(&id, now()).await.unwrap().unwrap() })
    });
    // The same load on a store with the coherent cache: every call after the first is a
    // hit (nothing writes the session meanwhile).
    let cached = RedisStore::builder(&url).cache(10_000).connect();
    let cached = runtime.block_on(cached).unwrap();
    group.bench_function("load, cached (hit)", |b| {
        b.to_async(&runtime)
            .iter(|| async { cached.load(&id, now()).await.unwrap().unwrap() })
    });
    group.bench_function("bare EVALSHA (one HSET)", |b| {
        b.to_async(&runtime).iter(|| {
            let (mut bare, key, script) = (bare.clone(), key.clone(), script.clone());
            async move {
                script
                    .key(&key)
                    .arg("cart:socks")
                    .arg("3")
                    .invoke_async::<i64>(&mut bare)
                    .await
                    .unwrap()
            }
        })
    });
    let changes = ChangeSet::default().with_set("cart:socks", "3");
    group.bench_function("apply (one field)", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.apply(&id, &changes, now()).await.unwrap() })
    });
    let base = 1_000_000;
    group.bench_function("create", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let store = store.clone();
            async move {
                timed(
                    iters,
                    |i| async move { fresh_id(base + i) },
                    |new| {
                        let store = store.clone();
                        async move { store.create(&new, &record(None), now()).await.unwrap() }
                    },
                )
                .await
            }
        })
    });
    group.bench_function("cycle_id", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let store = store.clone();
            async move {
                timed(
                    iters,
                    |i| {
                        let store = store.clone();
                        async move {
                            let old = fresh_id(2 * base + i);
                            let _ = store.create(&old, &record(None), now()).await.unwrap();
                            (old, fresh_id(3 * base + i))
                        }
                    },
                    |(old, new)| {
                        let store = store.clone();
                        async move {
                            store
                                .cycle_id(&old, &new, &ChangeSet::default(), now())
                                .await
                                .unwrap()
                        }
                    },
                )
                .await
            }
        })
    });
    group.bench_function("bare DEL", |b| {
        b.to_async(&runtime).iter(|| {
            let mut bare = bare.clone();
            async move {
                redis::cmd("DEL")
                    .arg("no-such-key")
                    .query_async::<i64>(&mut bare)
                    .await
                    .unwrap()
            }
        })
    });
    bench_destroy(&mut group, &runtime, "destroy", &store, 4 * base);
    group.finish();
    drop(server);
}

/// `destroy` of a session created (untimed) just before, under IDs from `base` on.
fn bench_destroy(
    group: &mut BenchmarkGroup<'_, WallTime>,
    runtime: &tokio::runtime::Runtime,
    name: &str,
    store: &RedisStore,
    base: u64,
) {
    group.bench_function(name, |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let store = store.clone();
            async move {
                timed(
                    iters,
                    |i| {
                        let store = store.clone();
                        async move {
                            let doomed = fresh_id(base + i);
                            let _ = store.create(&doomed, &record(None), now()).await.unwrap();
                            doomed
                        }
                    },
                    |doomed| {
                        let store = store.clone();
                        async move { store.destroy(&doomed).await.unwrap() }
                    },
                )
                .await
            }
        })
    });
}

/// `destroy` on a primary with one healthy replica, as is and with durable revocations
/// (a `WAIT 1` on a connection of its own after the delete).
fn bench_durable_revocations(c: &mut Criterion) {
    let Some(primary) = support::RedisServer::start_with(&["--repl-diskless-sync-delay", "0"])
    else {
        return;
    };
    let port = primary.port().to_string();
    let Some(replica) = support::RedisServer::start_with(&["--replicaof", "127.0.0.1", &port])
    else {
        return;
    };
    while !replica
        .cli(&["INFO", "replication"])
        .contains("master_link_status:up")
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let plain = runtime
        .block_on(RedisStore::connect(&primary.url()))
        .unwrap();
    let durable = RedisStore::builder(primary.url())
        .durable_revocations(1, Duration::from_secs(1))
        .connect();
    let durable = runtime.block_on(durable).unwrap();
    let mut group = c.benchmark_group("durable revocations");
    bench_destroy(&mut group, &runtime, "destroy", &plain, 1 << 40);
    bench_destroy(&mut group, &runtime, "destroy, durable", &durable, 2 << 40);
    group.finish();
    drop((replica, primary));
}

/// The coherent cache's memory per cached session: resident memory of this process before
/// and after 20,000 shop-like sessions were read through a cached store (printed; not a
/// timing).
fn cache_footprint(_: &mut Criterion) {
    const SESSIONS: u64 = 20_000;
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let writer = RedisStore::connect(&server.url()).await.unwrap();
        for n in 0..SESSIONS {
            let _ = writer
                .create(&fresh_id(n), &record(None), now())
                .await
                .unwrap();
        }
        let cached = RedisStore::builder(server.url())
            .cache(SESSIONS as usize)
            .connect()
            .await
            .unwrap();
        let before = resident_bytes();
        for n in 0..SESSIONS {
            cached.load(&fresh_id(n), now()).await.unwrap().unwrap();
        }
        let after = resident_bytes();
        let held = cached.cache_stats().unwrap().len as u64;
        println!(
            "cache footprint: {held} sessions cached, resident memory {before} -> {after} bytes: \
             {} bytes per cached session",
            (after.saturating_sub(before)) / held.max(1)
        );
    });
}

/// This process's resident memory, from `/proc/self/statm` (pages of 4 KiB).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|pages| pages.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(4)).warm_up_time(Duration::from_secs(1));
    targets = bench_store, bench_durable_revocations, cache_footprint
}
criterion_main!(benches);
