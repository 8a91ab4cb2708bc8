//! `RedisStore` on a Redis Cluster with a replica per primary (`cluster-node-timeout
//! 1000`): under traffic one primary is SIGKILLed and its replica promoted. Prints the
//! figures: acknowledged writes lost, users logged out, how long failed calls took, when
//! the replica was promoted, and when writes for users on the killed primary resumed.

#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessions::{logged_out_and_lost, now, sessions_with_a_counter};
use support::RedisCluster;
use tower_stateless::store::{Incremented, RedisTarget, SessionStore};
use tower_stateless::RedisStore;

const USERS: usize = 30;
/// Bounds on the traffic, whatever happens.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(40);
const MAX_ROUNDS: usize = 5_000;

/// What the traffic saw of one user.
#[derive(Default, Clone)]
struct UserTraffic {
    acknowledged: i64,
    failed_after_kill: bool,
    resumed: Option<Instant>,
}

#[derive(Default)]
struct Traffic {
    users: Vec<UserTraffic>,
    failures: usize,
    /// The slowest call after the kill, whatever its outcome.
    slowest_call: Duration,
    /// Calls after the kill that took longer than the layer's default store timeout (1 s),
    /// which the layer would have answered with a 503.
    over_a_second: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_traffic_logs_nobody_out() {
    let Some(mut cluster) = RedisCluster::start_with_replicas() else {
        return;
    };
    let victim = (0..6).find(|&i| cluster.is_primary(i)).expect("a primary");
    let heir = cluster
        .replica_of(victim)
        .expect("the primary has a replica");
    let replica = &cluster.servers()[heir];
    support::wait_for("the replica links up", Duration::from_secs(20), || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });

    let store = RedisStore::connect(RedisTarget::cluster(cluster.nodes()))
        .await
        .unwrap();
    let ids = sessions_with_a_counter(&store, USERS).await;
    assert_eq!(cluster.servers()[victim].cli(&["WAIT", "1", "5000"]), "1");

    let traffic = Arc::new(Mutex::new(Traffic {
        users: vec![UserTraffic::default(); USERS],
        ..Traffic::default()
    }));
    let killed = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let (store, ids) = (store.clone(), ids.clone());
        let (traffic, killed, stop) = (traffic.clone(), killed.clone(), stop.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            for _ in 0..MAX_ROUNDS {
                if stop.load(Ordering::SeqCst) || started.elapsed() > TRAFFIC_LIMIT {
                    break;
                }
                let mut failed = false;
                for (user, id) in ids.iter().enumerate() {
                    let call = Instant::now();
                    let result = store.increment(id, "n", 1, now()).await;
                    let took = call.elapsed();
                    let after_kill = killed.load(Ordering::SeqCst);
                    let mut traffic = traffic.lock().unwrap();
                    if after_kill {
                        traffic.slowest_call = traffic.slowest_call.max(took);
                        traffic.over_a_second += usize::from(took > Duration::from_secs(1));
                    }
                    match result {
                        Ok(Incremented::Value(_)) => {
                            let slow = after_kill && took > Duration::from_millis(100);
                            let user = &mut traffic.users[user];
                            user.acknowledged += 1;
                            if slow && user.resumed.is_none() {
                                // Waited out the failover inside the call: it counts as
                                // affected, and resumed only with a prompt call.
                                user.failed_after_kill = true;
                                continue;
                            }
                            if user.failed_after_kill && user.resumed.is_none() {
                                user.resumed = Some(Instant::now());
                            }
                        }
                        Ok(other) => panic!("user {user}: {other:?}"),
                        Err(_) => {
                            failed = true;
                            traffic.failures += 1;
                            if after_kill {
                                traffic.users[user].failed_after_kill = true;
                            }
                        }
                    }
                }
                if failed {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(1)).await;
    cluster.servers_mut()[victim].stop();
    let kill = Instant::now();
    killed.store(true, Ordering::SeqCst);
    let promoted = loop {
        if cluster.servers()[heir].cli(&["ROLE"]).starts_with("master") {
            break Some(Instant::now());
        }
        if kill.elapsed() > Duration::from_secs(30) {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    // Until every user whose writes failed writes again (or a bound), then one more second.
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let pending = traffic
            .lock()
            .unwrap()
            .users
            .iter()
            .any(|user| user.failed_after_kill && user.resumed.is_none());
        if !pending {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    runner.await.unwrap();

    let traffic = std::mem::take(&mut *traffic.lock().unwrap());
    let (logged_out, lost) = logged_out_and_lost(
        &store,
        &ids,
        traffic.users.iter().map(|user| user.acknowledged),
    )
    .await;
    let affected: Vec<&UserTraffic> = traffic
        .users
        .iter()
        .filter(|user| user.failed_after_kill)
        .collect();
    let resumed = affected
        .iter()
        .map(|user| user.resumed)
        .collect::<Option<Vec<_>>>()
        .and_then(|times| times.into_iter().max());
    let acknowledged: i64 = traffic.users.iter().map(|user| user.acknowledged).sum();
    eprintln!(
        "cluster failover: {acknowledged} acknowledged increments, {lost} lost, {logged_out} of \
         {USERS} users logged out; {} users on the killed primary; {} failed calls; after the \
         kill the slowest call took {:?} and {} took over 1 s; replica promoted {:?} after the \
         kill; all writes resumed {:?} after the kill, {:?} after the promotion",
        affected.len(),
        traffic.failures,
        traffic.slowest_call,
        traffic.over_a_second,
        promoted.map(|at| at - kill),
        resumed.map(|at| at - kill),
        resumed
            .zip(promoted)
            .map(|(resumed, promoted)| resumed.saturating_duration_since(promoted)),
    );
    assert!(promoted.is_some(), "the replica was promoted");
    assert!(
        !affected.is_empty(),
        "some users lived on the killed primary"
    );
    assert!(resumed.is_some(), "writes resumed for every user");
    assert_eq!(logged_out, 0, "users logged out by the failover");
}
