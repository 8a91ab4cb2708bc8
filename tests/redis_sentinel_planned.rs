//! A planned `SENTINEL FAILOVER` under bounded traffic through two stores (two instances
//! of a service), each with the local cache on or off: a real master, one replica and
//! three sentinels on loopback. After a planned failover the old master keeps answering
//! as master for about 10 s, so every write it still takes is lost when Sentinel turns
//! it into a replica; the store must stop writing to it before the promotion.
//!
//! Counted (and asserted 0): acknowledged increments lost, acknowledged logouts undone,
//! stale reads (a logged-out session, or an older counter, served by the other
//! instance once it has caught up with Redis's invalidations). Printed: how long after
//! the promotion each instance wrote again.

#![allow(missing_docs, unreachable_pub)]

#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessions::{logged_out_and_lost, now, sessions_with_a_counter};
use support::SentinelGroup;
use tower_stateless::store::{HashedId, Incremented, SessionStore};
use tower_stateless::RedisStore;

const MASTER: &str = "sessions";
const USERS: usize = 20;
const LOGOUTS: usize = 10;
/// Bounds on the traffic, whatever happens.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(40);
const MAX_ROUNDS: usize = 5_000;
/// How long the test waits for the promotion and for writes to resume.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// What one instance's traffic saw.
#[derive(Default)]
struct Traffic {
    acknowledged: Vec<i64>,
    failures: usize,
    /// The first success of a call that started after the promotion.
    first_success_after_promotion: Option<Instant>,
}

/// What one run measured.
struct Figures {
    acknowledged: i64,
    lost: i64,
    logged_out_users: usize,
    logouts_acknowledged: usize,
    logouts_undone: usize,
    stale_reads: usize,
    failures: usize,
    writes_again_after_promotion: [Option<Duration>; 2],
}

impl Figures {
    fn print(&self, label: &str) {
        eprintln!(
            "planned sentinel failover, {label}: {} acknowledged increments, {} lost, {} of \
             {USERS} users logged out, {} of {LOGOUTS} logouts acknowledged, {} undone, {} \
             stale reads, {} failed calls, writing again {:?} after the promotion (A, B)",
            self.acknowledged,
            self.lost,
            self.logged_out_users,
            self.logouts_acknowledged,
            self.logouts_undone,
            self.stale_reads,
            self.failures,
            self.writes_again_after_promotion,
        );
    }
}

/// Increments every counter through `store` until `stop`, noting what was acknowledged.
fn traffic(
    store: RedisStore,
    ids: Vec<HashedId>,
    traffic: Arc<Mutex<Traffic>>,
    promoted_at: Arc<Mutex<Option<Instant>>>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let started = Instant::now();
        for _ in 0..MAX_ROUNDS {
            if stop.load(Ordering::SeqCst) || started.elapsed() > TRAFFIC_LIMIT {
                break;
            }
            let mut failed = false;
            for (user, id) in ids.iter().enumerate() {
                let call_started = Instant::now();
                let result = store.increment(id, "n", 1, now()).await;
                let promoted = *promoted_at.lock().unwrap();
                let mut traffic = traffic.lock().unwrap();
                match result {
                    Ok(Incremented::Value(_)) => {
                        traffic.acknowledged[user] += 1;
                        if promoted.is_some_and(|at| call_started >= at)
                            && traffic.first_success_after_promotion.is_none()
                        {
                            traffic.first_success_after_promotion = Some(Instant::now());
                        }
                    }
                    Ok(other) => panic!("user {user}: {other:?} (a refusal must be an error)"),
                    Err(_) => {
                        traffic.failures += 1;
                        failed = true;
                    }
                }
            }
            // While calls fail at once: don't spin.
            if failed {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
}

/// Notes when the replica first answers `ROLE` as master.
fn watch_promotion(
    replica_url: String,
    promoted_at: Arc<Mutex<Option<Instant>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = redis::Client::open(replica_url).unwrap();
        let deadline = Instant::now() + FAILOVER_LIMIT;
        while Instant::now() < deadline {
            // A new connection each time: Sentinel kills the clients of the node it promotes.
            let role = async {
                let mut connection = client.get_multiplexed_async_connection().await?;
                redis::cmd("ROLE")
                    .query_async::<redis::Value>(&mut connection)
                    .await
            };
            let Ok(role) = role.await else {
                continue;
            };
            let is_master = matches!(&role, redis::Value::Array(fields)
                if matches!(fields.first(), Some(redis::Value::BulkString(r)) if r == b"master"));
            if is_master {
                *promoted_at.lock().unwrap() = Some(Instant::now());
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Logs `id` out through `store`, retrying while the store fails; whether it was
/// acknowledged.
async fn log_out(store: &RedisStore, id: &HashedId) -> bool {
    for _ in 0..400 {
        if store.destroy(id).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Whether `store` still serves `id` once it has caught up (a failed load serves nothing).
async fn still_served(store: &RedisStore, id: &HashedId) -> bool {
    store.catch_up().await;
    matches!(store.load(id, now()).await, Ok(Some(_)))
}

/// `b_misses_leader`: B is given only the two sentinels that do not lead the failover,
/// so it hears of it only from `+switch-master` (or its own questions), as an instance
/// whose subscription to the leader is down would.
async fn planned_failover(cache: bool, fenced: bool, b_misses_leader: bool) -> Option<Figures> {
    let group = SentinelGroup::start(MASTER)?;
    if fenced {
        group
            .master
            .cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    }
    let connect = |sentinels: Vec<String>| async move {
        let store = RedisStore::connect_sentinel(sentinels, MASTER)
            .await
            .unwrap();
        if cache {
            store.with_cache(1_000).await.unwrap()
        } else {
            store
        }
    };
    let all = group.sentinel_addrs();
    let b_hears = if b_misses_leader {
        all[1..].to_vec()
    } else {
        all.clone()
    };
    let (a, b) = (connect(all).await, connect(b_hears).await);
    let ids = sessions_with_a_counter(&a, USERS).await;
    let doomed = sessions_with_a_counter(&a, LOGOUTS).await;
    assert_eq!(group.master.cli(&["WAIT", "1", "5000"]), "1");
    for id in ids.iter().chain(&doomed) {
        // A reads each session, so that its cache (if any) holds them.
        assert!(a.load(id, now()).await.unwrap().is_some());
    }

    let promoted_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: [Arc<Mutex<Traffic>>; 2] = std::array::from_fn(|_| {
        Arc::new(Mutex::new(Traffic {
            acknowledged: vec![0; USERS],
            ..Traffic::default()
        }))
    });
    let runners = [&a, &b].map(|store| store.clone()).into_iter().zip(&seen);
    let runners: Vec<_> = runners
        .map(|(store, seen)| {
            traffic(
                store,
                ids.clone(),
                seen.clone(),
                promoted_at.clone(),
                stop.clone(),
            )
        })
        .collect();
    let watcher = watch_promotion(group.replica.url(), promoted_at.clone());

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        group.sentinels[0].cli(&["SENTINEL", "FAILOVER", MASTER]),
        "OK"
    );
    // Logouts on B before, during and after the promotion; A must not serve them.
    let (mut logouts_acknowledged, mut stale_reads) = (0, 0);
    for id in &doomed {
        if log_out(&b, id).await {
            logouts_acknowledged += 1;
            if still_served(&a, id).await {
                stale_reads += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deadline = Instant::now() + FAILOVER_LIMIT;
    while seen
        .iter()
        .any(|seen| seen.lock().unwrap().first_success_after_promotion.is_none())
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A second of traffic on the new master, then stop.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    for runner in runners {
        runner.await.unwrap();
    }
    watcher.await.unwrap();
    assert!(group.promoted(), "the replica was promoted");
    let promoted = promoted_at.lock().unwrap().expect("the promotion was seen");

    // The truth, from a store without a cache, on the master the sentinels name now.
    let truth = RedisStore::connect_sentinel(group.sentinel_addrs(), MASTER)
        .await
        .unwrap();
    let seen = seen.map(|seen| std::mem::take(&mut *seen.lock().unwrap()));
    let acknowledged_per_user =
        (0..USERS).map(|user| seen.iter().map(|seen| seen.acknowledged[user]).sum::<i64>());
    let (logged_out_users, lost) = logged_out_and_lost(&truth, &ids, acknowledged_per_user).await;
    let mut logouts_undone = 0;
    for id in &doomed {
        if truth.load(id, now()).await.unwrap().is_some() {
            logouts_undone += 1;
        }
        for instance in [&a, &b] {
            if still_served(instance, id).await {
                stale_reads += 1;
            }
        }
    }
    let every_read = [&a, &b]
        .into_iter()
        .flat_map(|instance| ids.iter().map(move |id| (instance, id)));
    for (instance, id) in every_read {
        instance.catch_up().await;
        let served = instance
            .load(id, now())
            .await
            .unwrap()
            .map(|record| record.data);
        let in_redis = truth
            .load(id, now())
            .await
            .unwrap()
            .map(|record| record.data);
        if served != in_redis {
            stale_reads += 1;
        }
    }
    Some(Figures {
        acknowledged: seen.iter().flat_map(|seen| &seen.acknowledged).sum(),
        lost,
        logged_out_users,
        logouts_acknowledged,
        logouts_undone,
        stale_reads,
        failures: seen.iter().map(|seen| seen.failures).sum(),
        writes_again_after_promotion: seen.map(|seen| {
            seen.first_success_after_promotion
                .map(|at| at.saturating_duration_since(promoted))
        }),
    })
}

fn check(figures: &Figures, label: &str) {
    figures.print(label);
    assert!(
        figures
            .writes_again_after_promotion
            .iter()
            .all(Option::is_some),
        "both instances write again"
    );
    assert_eq!(figures.lost, 0, "acknowledged increments lost");
    assert_eq!(figures.logged_out_users, 0, "users logged out");
    assert_eq!(
        figures.logouts_acknowledged, LOGOUTS,
        "every logout went through"
    );
    assert_eq!(figures.logouts_undone, 0, "acknowledged logouts undone");
    assert_eq!(figures.stale_reads, 0, "stale reads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_loses_nothing_without_a_cache() {
    if let Some(figures) = planned_failover(false, false, false).await {
        check(&figures, "cache off");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_loses_nothing_with_a_cache() {
    if let Some(figures) = planned_failover(true, false, false).await {
        check(&figures, "cache on");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_planned_failover_of_a_fenced_master_loses_nothing() {
    if let Some(figures) = planned_failover(true, true, false).await {
        check(
            &figures,
            "old master fenced with min-replicas-to-write 1, cache on",
        );
    }
}

/// Without the leader's events an instance moves at `+switch-master`, about a second
/// after the promotion; until then the old master's `min-replicas-to-write` refuses its
/// writes (503s), except in the moment between the promotion and the old master seeing
/// its replica go: a write that lands there is acknowledged and lost. Printed, not
/// asserted; what is asserted is that no logout is undone and nothing stale is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_misses_the_announcement_is_fenced_by_the_old_master() {
    let Some(figures) = planned_failover(true, true, true).await else {
        return;
    };
    figures.print(
        "B misses the leader's events, old master fenced with min-replicas-to-write 1, cache on",
    );
    assert!(
        figures.writes_again_after_promotion[1].is_some(),
        "B writes again"
    );
    assert_eq!(figures.logged_out_users, 0, "users logged out");
    assert_eq!(
        figures.logouts_acknowledged, LOGOUTS,
        "every logout went through"
    );
    assert_eq!(figures.logouts_undone, 0, "acknowledged logouts undone");
    assert_eq!(figures.stale_reads, 0, "stale reads");
}
