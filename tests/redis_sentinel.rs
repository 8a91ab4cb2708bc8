//! `RedisStore` through Redis Sentinel: a real master, one replica and three sentinels on
//! loopback. Under traffic the master is SIGKILLed; Sentinel promotes the replica and the
//! store follows. Prints the figures: acknowledged writes lost, users logged out, how long
//! writes failed, and how long after the kill they resumed.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use support::{RedisSentinel, RedisServer};
use tower_stateless::store::{
    Created, Expiry, HashedId, Incremented, Metadata, Record, SessionStore, Timestamp,
};
use tower_stateless::RedisStore;

const MASTER: &str = "sessions";
const USERS: usize = 20;
/// Bounds on the traffic, whatever happens.
const TRAFFIC_LIMIT: Duration = Duration::from_secs(40);
const MAX_ROUNDS: usize = 5_000;

fn now() -> Expiry {
    Expiry::new(
        Timestamp::from_system_time(SystemTime::now()),
        Duration::from_secs(1800),
        Duration::from_secs(12 * 3600),
    )
}

fn new_id() -> HashedId {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).unwrap();
    let raw = URL_SAFE_NO_PAD.encode(bytes);
    HashedId::from_stored(URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes())))
}

/// How many entries a `SENTINEL <what> <master>` reply lists.
fn listed(sentinel: &RedisSentinel, what: &str) -> usize {
    sentinel
        .cli(&["SENTINEL", what, MASTER])
        .lines()
        .filter(|line| *line == "name")
        .count()
}

fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

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
    let Some(mut master) = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]) else {
        return;
    };
    let port = master.port().to_string();
    let Some(replica) = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]) else {
        return;
    };
    wait_for("the replica links up", Duration::from_secs(15), || {
        replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
    });
    let sentinels: Vec<RedisSentinel> = (0..3)
        .map(|_| RedisSentinel::start(MASTER, master.port(), 2).unwrap())
        .collect();
    // Each sentinel must know the replica and the two other sentinels to fail over.
    for sentinel in &sentinels {
        wait_for("sentinels find each other", Duration::from_secs(30), || {
            listed(sentinel, "replicas") == 1 && listed(sentinel, "sentinels") == 2
        });
    }

    let store = RedisStore::connect_sentinel(sentinels.iter().map(RedisSentinel::addr), MASTER)
        .await
        .unwrap();
    assert!(format!("{store:?}").contains("sentinel master"));
    let mut ids = Vec::new();
    for user in 0..USERS {
        let expiry = now();
        let mut metadata = Metadata::new(expiry.now);
        metadata.user_id = Some(format!("user-{user}"));
        let record = Record::new([("n".to_owned(), "0".to_owned())].into(), metadata);
        let id = new_id();
        assert_eq!(
            store.create(&id, &record, expiry).await.unwrap(),
            Created::Saved
        );
        ids.push(id);
    }
    assert_eq!(master.cli(&["WAIT", "1", "5000"]), "1");

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
    master.stop();
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

    let promoted = replica.cli(&["ROLE"]);
    let traffic = std::mem::take(&mut *traffic.lock().unwrap());
    let (mut logged_out, mut lost) = (0, 0);
    for (user, id) in ids.iter().enumerate() {
        match store.load(id, now()).await.unwrap() {
            None => logged_out += 1,
            Some(record) => {
                let stored: i64 = record.data["n"].parse().unwrap();
                lost += (traffic.acknowledged[user] - stored).max(0);
            }
        }
    }
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
    assert!(
        promoted.starts_with("master"),
        "the replica was promoted: {promoted}"
    );
    assert!(recovered.is_some(), "writes resumed after the failover");
    assert_eq!(logged_out, 0, "users logged out by the failover");
}
