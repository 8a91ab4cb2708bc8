//! Per-call latency of `PostgresStore` on a real local PostgreSQL (started by the bench,
//! as the tests start theirs), each call beside a bare tokio-postgres round trip of a
//! prepared statement of the same kind on a connection of its own.
//!
//! `cargo bench --features postgres --bench postgres_store`

mod common;
#[path = "../tests/support/mod.rs"]
#[allow(missing_docs, missing_debug_implementations)]
mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{fresh_id, now, record, timed};
use criterion::{criterion_group, criterion_main, Criterion};
use tower_stateless::store::{ChangeSet, HashedId, SessionStore};
use tower_stateless::PostgresStore;

/// A new ID each call: criterion runs a routine several times, and a create under an ID
/// taken by an earlier run would measure the "in use" path.
fn next_id() -> HashedId {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    fresh_id(NEXT.fetch_add(1, Ordering::Relaxed))
}

fn bench_postgres_store(c: &mut Criterion) {
    let Some(server) = support::PostgresServer::start() else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = runtime
        .block_on(
            PostgresStore::builder(server.url())
                .sweep_every(None)
                .connect(),
        )
        .unwrap();
    let (bare, connection) = runtime
        .block_on(tokio_postgres::connect(
            &server.url(),
            tokio_postgres::NoTls,
        ))
        .unwrap();
    let connection = runtime.spawn(connection);
    let id = fresh_id(0);
    let (select, update, delete) = runtime.block_on(async {
        let _ = store
            .create(&id, &record(Some("alice")), now())
            .await
            .unwrap();
        // Prepare every statement once on a pooled connection.
        let _ = store
            .apply(&id, &ChangeSet::default().with_set("warm", "1"), now())
            .await
            .unwrap();
        let _ = store.load(&id, now()).await.unwrap();
        (
            bare.prepare("SELECT data FROM tower_stateless_sessions WHERE id = $1")
                .await
                .unwrap(),
            bare.prepare(
                "UPDATE tower_stateless_sessions SET refreshed_at = refreshed_at WHERE id = $1",
            )
            .await
            .unwrap(),
            bare.prepare("DELETE FROM tower_stateless_sessions WHERE id = $1")
                .await
                .unwrap(),
        )
    });
    let mut group = c.benchmark_group("postgres_store");
    group.bench_function("bare SELECT by id", |b| {
        b.to_async(&runtime)
            .iter(|| async { bare.query_one(&select, &[&id.as_str()]).await.unwrap() })
    });
    group.bench_function("load", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.load(&id, now()).await.unwrap().unwrap() })
    });
    group.bench_function("bare UPDATE by id", |b| {
        b.to_async(&runtime)
            .iter(|| async { bare.execute(&update, &[&id.as_str()]).await.unwrap() })
    });
    let changes = ChangeSet::default().with_set("cart:socks", "3");
    group.bench_function("apply (one field)", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.apply(&id, &changes, now()).await.unwrap() })
    });
    group.bench_function("touch", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.touch(&id, now()).await.unwrap() })
    });
    group.bench_function("increment", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.increment(&id, "cart:hat", 1, now()).await.unwrap() })
    });
    group.bench_function("compare_and_set", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .compare_and_set(&id, "cart:scarf", Some("3"), Some("3"), now())
                .await
                .unwrap()
        })
    });
    group.bench_function("sessions_of_user (one)", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.sessions_of_user("alice", now()).await.unwrap() })
    });
    group.bench_function("create", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let store = store.clone();
            async move {
                timed(
                    iters,
                    |_| async { next_id() },
                    |new| {
                        let store = store.clone();
                        async move {
                            store
                                .create(&new, &record(Some("bob")), now())
                                .await
                                .unwrap()
                        }
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
                    |_| {
                        let store = store.clone();
                        async move {
                            let old = next_id();
                            let _ = store
                                .create(&old, &record(Some("carol")), now())
                                .await
                                .unwrap();
                            (old, next_id())
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
    group.bench_function("bare DELETE by id", |b| {
        b.to_async(&runtime)
            .iter(|| async { bare.execute(&delete, &[&"no-such-id"]).await.unwrap() })
    });
    group.bench_function("destroy", |b| {
        b.to_async(&runtime).iter_custom(|iters| {
            let store = store.clone();
            async move {
                timed(
                    iters,
                    |_| {
                        let store = store.clone();
                        async move {
                            let doomed = next_id();
                            let _ = store
                                .create(&doomed, &record(Some("dave")), now())
                                .await
                                .unwrap();
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
    group.finish();
    drop(bare);
    let _ = runtime.block_on(connection);
    drop(server);
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = bench_postgres_store
}
criterion_main!(benches);
