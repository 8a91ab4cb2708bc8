//! `RedisStore` through Redis Sentinel: a real master, one replica and three sentinels on
//! loopback. Under traffic the master is SIGKILLed; Sentinel promotes the replica and the
//! store follows. Prints the figures: acknowledged writes lost, users logged out, how long
//! writes failed, and how long after the kill they resumed.

#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessions::{logged_out_and_lost, now, sessions_with_a_counter};
use support::SentinelGroup;
use tower_stateless::store::{Incremented, SessionStore};
use tower_stateless::RedisStore;

const MASTER: &str = "sessions";
const USERS: usize = 20;
/// Bounds on the traffic, whatever happens.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(40);
const MAX_ROUNDS: usize = 5_000;

/// What the traffic saw.
#[derive(Default)]
struct Traffic {
    acknowledged: Vec<i64>,
    failures: usize,
    first_failure_after_kill: Option<Instant>,
    first_success_after_kill: Option<Instant>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_traffic_logs_nobody_out() {
    let Some(mut group) = SentinelGroup::start(MASTER) else {
        return;
    };
    let store = RedisStore::connect_sentinel(group.sentinel_addrs(), MASTER)
        .await
        .unwrap();
    assert!(format!("{store:?}").contains("sentinel master"));
    let ids = sessions_with_a_counter(&store, USERS).await;
    assert_eq!(group.master.cli(&["WAIT", "1", "5000"]), "1");

    let traffic = Arc::new(Mutex::new(Traffic {
        acknowledged: vec![0; USERS],
        ..Traffic::default()
    }));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (store, ids) = (store.clone(), ids.clone());
        let (traffic, killed_at, stop) = (traffic.clone(), killed_at.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..MAX_ROUNDS {
                if stop.load(Ordering::SeqCst) || started.elapsed() > TRAFFIC_LIMIT {
                    break;
                }
                for (user, id) in ids.iter().enumerate() {
                    let result = store.increment(id, "n", 1, now()).await;
                    let after_kill = killed_at.lock().unwrap().is_some();
                    let mut traffic = traffic.lock().unwrap();
                    match result {
                        Ok(Incremented::Value(_)) => {
                            traffic.acknowledged[user] += 1;
                            if after_kill && traffic.first_success_after_kill.is_none() {
                                traffic.first_success_after_kill = Some(Instant::now());
                            }
                        }
                        Ok(other) => panic!("user {user}: {other:?}"),
                        Err(_) => {
                            traffic.failures += 1;
                            if after_kill && traffic.first_failure_after_kill.is_none() {
                                traffic.first_failure_after_kill = Some(Instant::now());
                            }
                        }
                    }
                }
                // While the master is unreachable, calls fail at once: don't spin.
                if traffic.lock().unwrap().failures > 0 {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    group.master.stop();
    let kill = Instant::now();
    *killed_at.lock().unwrap() = Some(kill);
    let recovered = {
        let deadline = kill + Duration::from_secs(30);
        loop {
            if let Some(at) = traffic.lock().unwrap().first_success_after_kill {
                break Some(at);
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    // A second of traffic on the new master, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    runner.await.unwrap();

    let promoted = group.promoted();
    let traffic = std::mem::take(&mut *traffic.lock().unwrap());
    let (logged_out, lost) =
        logged_out_and_lost(&store, &ids, traffic.acknowledged.iter().copied()).await;
    let acknowledged: i64 = traffic.acknowledged.iter().sum();
    let failing = traffic
        .first_failure_after_kill
        .zip(recovered)
        .map(|(first, last)| last.saturating_duration_since(first));
    eprintln!(
        "sentinel failover: {acknowledged} acknowledged increments, {lost} lost, \
         {logged_out} of {USERS} users logged out, {} failed calls, writes failing for \
         {failing:?}, writing again {:?} after the kill",
        traffic.failures,
        recovered.map(|at| at - kill),
    );
    assert!(promoted, "the replica was promoted");
    assert!(recovered.is_some(), "writes resumed after the failover");
    assert_eq!(logged_out, 0, "users logged out by the failover");
}
