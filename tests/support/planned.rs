//! A planned failover under bounded traffic through two stores (instances A and B):
//! both increment counters while B logs sessions out and A must not serve them; then the
//! counts of acknowledged increments lost, logouts undone and stale reads, and how long
//! after the promotion each instance wrote again. Used by the Sentinel and Cluster tests
//! with `#[path = "support/planned.rs"] mod planned;` (after `mod sessions;`).

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sessions::{logged_out_and_lost, now};
use tower_stateless::store::{HashedId, Incremented, SessionStore};
use tower_stateless::RedisStore;

/// Bounds on the traffic, whatever happens.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(40);
const MAX_ROUNDS: usize = 5_000;
/// How long to wait for the promotion and for writes to resume.
const FAILOVER_LIMIT: Duration = Duration::from_secs(30);

/// What one instance's traffic saw.
#[derive(Default)]
struct Traffic {
    acknowledged: Vec<i64>,
    pub failures: usize,
    /// The first success of a call that started after the promotion.
    first_success_after_promotion: Option<Instant>,
}

/// What one run measured.
pub struct Figures {
    pub users: usize,
    pub logouts: usize,
    pub acknowledged: i64,
    pub lost: i64,
    pub logged_out_users: usize,
    pub logouts_acknowledged: usize,
    pub logouts_undone: usize,
    pub stale_reads: usize,
    failures: usize,
    pub writes_again_after_promotion: [Option<Duration>; 2],
}

impl Figures {
    pub fn print(&self, label: &str) {
        eprintln!(
            "{label}: {} acknowledged increments, {} lost, {} of {} users logged out, {} of \
             {} logouts acknowledged, {} undone, {} stale reads, {} failed calls, writing \
             again {:?} after the promotion (A, B)",
            self.acknowledged,
            self.lost,
            self.logged_out_users,
            self.users,
            self.logouts_acknowledged,
            self.logouts,
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

/// Runs traffic through `a` and `b` on the counters `ids`, calls `fail_over` (which
/// promotes the server at `heir_url`), logs `doomed` out through B, and measures against
/// `truth` (a store without a cache, connected after the failover). A holds every
/// session in its cache (if any) beforehand.
pub async fn measure<T: std::future::Future<Output = RedisStore>>(
    a: &RedisStore,
    b: &RedisStore,
    ids: &[HashedId],
    doomed: &[HashedId],
    heir_url: String,
    fail_over: impl FnOnce(),
    truth: impl FnOnce() -> T,
) -> Figures {
    let (a, b) = (a.clone(), b.clone());
    for id in ids.iter().chain(doomed) {
        assert!(a.load(id, now()).await.unwrap().is_some());
    }
    let promoted_at: Arc<Mutex<Option<Instant>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let seen: [Arc<Mutex<Traffic>>; 2] = std::array::from_fn(|_| {
        Arc::new(Mutex::new(Traffic {
            acknowledged: vec![0; ids.len()],
            ..Traffic::default()
        }))
    });
    let runners = [&a, &b].map(|store| store.clone()).into_iter().zip(&seen);
    let runners: Vec<_> = runners
        .map(|(store, seen)| {
            traffic(
                store,
                ids.to_vec(),
                seen.clone(),
                promoted_at.clone(),
                stop.clone(),
            )
        })
        .collect();
    let watcher = watch_promotion(heir_url, promoted_at.clone());

    tokio::time::sleep(Duration::from_millis(500)).await;
    fail_over();
    // Logouts on B before, during and after the promotion; A must not serve them.
    let (mut logouts_acknowledged, mut stale_reads) = (0, 0);
    for id in doomed {
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
    let promoted = promoted_at.lock().unwrap().expect("the promotion was seen");

    // The truth, from a store without a cache, on the nodes that hold the data now.
    let truth = truth().await;
    let seen = seen.map(|seen| std::mem::take(&mut *seen.lock().unwrap()));
    let acknowledged_per_user =
        (0..ids.len()).map(|user| seen.iter().map(|seen| seen.acknowledged[user]).sum::<i64>());
    let (logged_out_users, lost) = logged_out_and_lost(&truth, ids, acknowledged_per_user).await;
    let mut logouts_undone = 0;
    for id in doomed {
        if truth.load(id, now()).await.unwrap().is_some() {
            // The logout itself was lost (a forced failover may lose acknowledged
            // writes): serving the session matches Redis, so it is counted as undone,
            // not as a stale read.
            logouts_undone += 1;
            continue;
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
    Figures {
        users: ids.len(),
        logouts: doomed.len(),
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
    }
}

/// Prints `figures` and asserts the goals: both instances write again; nothing lost,
/// undone or stale.
pub fn check(figures: &Figures, label: &str) {
    figures.print(label);
    assert_eq!(figures.lost, 0, "acknowledged increments lost");
    check_nothing_stale_or_revived(figures);
}

/// Asserts that both instances write again, no user was logged out, every logout went
/// through and none was undone, and nothing stale was served.
pub fn check_nothing_stale_or_revived(figures: &Figures) {
    assert!(
        figures
            .writes_again_after_promotion
            .iter()
            .all(Option::is_some),
        "both instances write again"
    );
    assert_eq!(figures.logged_out_users, 0, "users logged out");
    assert_eq!(
        figures.logouts_acknowledged, figures.logouts,
        "every logout went through"
    );
    assert_eq!(figures.logouts_undone, 0, "acknowledged logouts undone");
    assert_eq!(figures.stale_reads, 0, "stale reads");
}
