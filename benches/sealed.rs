//! What encryption at rest costs per store call: each operation on `MemoryStore` (no
//! I/O, so only the store's own work and the sealing show) plain and through `Sealed`.
//!
//! `cargo bench --features encryption --bench sealed -- --warm-up-time 1 --measurement-time 3`

use std::cell::Cell;
use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use tower_stateless::store::{
    ChangeSet, Created, Expiry, HashedId, Metadata, Record, SessionStore, Timestamp,
};
use tower_stateless::{Key, Keys, MemoryStore, Sealed};

fn now() -> Expiry {
    Expiry::new(
        Timestamp::from_system_time(SystemTime::now()),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    )
}

fn id(n: u64) -> HashedId {
    HashedId::from_stored(format!("{n:0>43}"))
}

/// A session like the shop's: a user binding and a few cart lines.
fn record() -> Record {
    let data: HashMap<String, String> = [
        ("cart:socks", "2"),
        ("cart:hat", "1"),
        ("cart:scarf", "3"),
        ("address", "\"1 Main Street, Springfield\""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut metadata = Metadata::new(now().now);
    metadata.user_id = Some("alice@example.com".into());
    Record::new(data, metadata)
}

fn bench_store<S: SessionStore>(c: &mut Criterion, name: &str, store: S) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let session = id(1);
    let created = runtime.block_on(store.create(&session, &record(), now()));
    assert_eq!(created.unwrap(), Created::Saved);
    let mut group = c.benchmark_group(name);
    group.bench_function("load (4 fields + user)", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.load(&session, now()).await.unwrap().unwrap() });
    });
    let set = ChangeSet::default().with_set("address", "\"2 Elm Street, Springfield\"");
    group.bench_function("apply, set one field", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.apply(&session, &set, now()).await.unwrap() });
    });
    let later = ChangeSet::default().with_increment("cart:socks", 1);
    group.bench_function("apply, deferred increment of a cart line", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.apply(&session, &later, now()).await.unwrap() });
    });
    group.bench_function("increment a cart line", |b| {
        b.to_async(&runtime).iter(|| async {
            store
                .increment(&session, "cart:hat", 1, now())
                .await
                .unwrap()
        });
    });
    group.bench_function("increment a field that is not a counter", |b| {
        b.to_async(&runtime)
            .iter(|| async { store.increment(&session, "visits", 1, now()).await.unwrap() });
    });
    let next = Cell::new(2);
    let current = Cell::new(1);
    group.bench_function("cycle_id (login)", |b| {
        b.to_async(&runtime).iter(|| async {
            let (old, new) = (current.get(), next.get());
            next.set(new + 1);
            current.set(new);
            store
                .cycle_id(&id(old), &id(new), &ChangeSet::default(), now())
                .await
                .unwrap()
        });
    });
    group.finish();
}

fn sealing(c: &mut Criterion) {
    let keys = Keys::new(Key::from_bytes(&[7; 32]).unwrap());
    bench_store(c, "plain", MemoryStore::new());
    bench_store(
        c,
        "sealed",
        Sealed::new(MemoryStore::new(), &keys).with_counters("cart:"),
    );
    let rotating = Keys::new(Key::from_bytes(&[8; 32]).unwrap())
        .with_verify_only(Key::from_bytes(&[7; 32]).unwrap());
    bench_store(
        c,
        "sealed, rotating (2 keys)",
        Sealed::new(MemoryStore::new(), &rotating).with_counters("cart:"),
    );
}

criterion_group!(benches, sealing);
criterion_main!(benches);
