//! What the store benchmarks share: expiry rules at the current time, IDs shaped like the
//! layer's, a shop-like session, and timing an operation apart from its setup.

#![allow(dead_code)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tower_stateless::store::{Expiry, HashedId, Metadata, Record, Timestamp};

pub const IDLE: Duration = Duration::from_secs(3600);
pub const ABSOLUTE: Duration = Duration::from_secs(86_400);

pub fn now() -> Expiry {
    Expiry::new(
        Timestamp::from_system_time(std::time::SystemTime::now()),
        IDLE,
        ABSOLUTE,
    )
}

pub fn fresh_id(n: u64) -> HashedId {
    // 43 base64url characters, like a real hashed ID.
    HashedId::from_stored(format!(
        "{:0>43}",
        format!("bench{n}x{}", std::process::id())
    ))
}

/// A session like the shop's: a user and a few cart lines, bound to `user` if given.
pub fn record(user: Option<&str>) -> Record {
    let data: HashMap<String, String> = [
        ("user", "\"alice\""),
        ("cart:socks", "2"),
        ("cart:hat", "1"),
        ("cart:scarf", "3"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let mut metadata = Metadata::new(now().now);
    metadata.user_id = user.map(str::to_owned);
    Record::new(data, metadata)
}

/// Runs `setup` (untimed) and `op` (timed) `iters` times.
pub async fn timed<S, Fs, O, Fo>(
    iters: u64,
    mut setup: impl FnMut(u64) -> Fs,
    mut op: impl FnMut(S) -> Fo,
) -> Duration
where
    Fs: std::future::Future<Output = S>,
    Fo: std::future::Future<Output = O>,
{
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let state = setup(i).await;
        let started = Instant::now();
        std::hint::black_box(op(state).await);
        total += started.elapsed();
    }
    total
}
