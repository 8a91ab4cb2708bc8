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
use tower_stateless::store::{Incremented, RedisTarget, SessionStore};
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
    let store = RedisStore::connect(RedisTarget::sentinel(group.sentinel_addrs(), MASTER))
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
                    let call_started = Instant::now();
                    let result = store.increment(id, "n", 1, now()).await;
                    // A call answered after the kill may have been answered before it: only
                    // one that started after the kill shows the new master writing.
                    let after_kill = killed_at
                        .lock()
                        .unwrap()
                        .is_some_and(|kill| call_started >= kill);
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

/// Servers and sentinels that require passwords: the master and replica `requirepass`
/// plus a least-privilege ACL user for the store, the sentinels a password of their own.
/// The store finds, uses and follows the master through a planned failover, with its
/// cache on; without the credentials it does not start; `Debug` shows no password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_with_passwords_and_a_least_privilege_user() {
    let Some(group) = SentinelGroup::start(MASTER) else {
        return;
    };
    let (server_pw, sentinel_pw, app_pw) = ("server-pw", "sentinel-pw", "app-s3cret");
    let servers = [&group.master, &group.replica];
    for server in servers {
        server.cli(&["CONFIG", "SET", "masterauth", server_pw]);
    }
    for sentinel in &group.sentinels {
        sentinel.cli(&["SENTINEL", "SET", MASTER, "auth-pass", server_pw]);
    }
    let app_password = format!(">{app_pw}");
    let mut acl = vec!["ACL", "SETUSER", "app", "on", &app_password, "resetkeys"];
    acl.extend(["~session:*", "+role", "+client|tracking"]);
    acl.extend(RedisStore::ACL_COMMANDS.split_whitespace());
    for server in servers {
        // ACL users are per server: the replica needs it once promoted.
        server.cli(&acl);
        server.cli(&["CONFIG", "SET", "requirepass", server_pw]);
    }
    for sentinel in &group.sentinels {
        sentinel.cli(&["SENTINEL", "CONFIG", "SET", "sentinel-pass", sentinel_pw]);
    }
    let sentinel_password = format!(">{sentinel_pw}");
    for sentinel in &group.sentinels {
        sentinel.cli(&["ACL", "SETUSER", "default", "resetpass", &sentinel_password]);
    }
    let as_admin = |password: &'static str, args: &[&'static str]| {
        let mut all = vec!["-a", password, "--no-auth-warning"];
        all.extend_from_slice(args);
        all
    };

    let sentinels: Vec<String> = group
        .sentinels
        .iter()
        .map(|sentinel| format!("redis://:{sentinel_pw}@{}", sentinel.addr()))
        .collect();
    let master = format!("redis://app:{app_pw}@{MASTER}");
    let refused = RedisStore::connect(RedisTarget::sentinel(group.sentinel_addrs(), &master)).await;
    assert!(refused.is_err(), "sentinels without their password");
    let refused = RedisStore::connect(RedisTarget::sentinel(&sentinels, MASTER)).await;
    assert!(refused.is_err(), "a master without credentials");
    let wrong = format!("redis://app:wrong-pw@{MASTER}");
    let refused = RedisStore::connect(RedisTarget::sentinel(&sentinels, &wrong)).await;
    let error = refused.unwrap_err();
    assert!(!format!("{error:?} {error}").contains("wrong-pw"));

    let store = RedisStore::builder(RedisTarget::sentinel(&sentinels, &master))
        .cache(100)
        .connect()
        .await
        .unwrap();
    let debug = format!("{store:?}");
    assert!(
        !debug.contains(app_pw) && !debug.contains(sentinel_pw) && debug.contains(MASTER),
        "{debug}"
    );
    let failover = as_admin(sentinel_pw, &["SENTINEL", "FAILOVER", MASTER]);
    let on_replica = |args: &[&str]| {
        let mut all = vec!["-a", server_pw, "--no-auth-warning"];
        all.extend_from_slice(args);
        group.replica.cli(&all)
    };
    counts_through_a_planned_failover(&store, || group.sentinels[0].cli(&failover), on_replica)
        .await;
}

/// Servers and sentinels that speak TLS: the store asks the sentinels over `rediss://`
/// and reaches the master (and, after a planned failover, the promoted replica) over
/// TLS, with its cache on, the certificates checked against a private CA. The client
/// reads its trusted roots from `SSL_CERT_FILE`, which is process-wide, so the client
/// half runs in a child process of this test binary.
#[tokio::test]
async fn sentinel_over_tls() {
    let Some(group) = SentinelGroup::start_tls(MASTER) else {
        return;
    };
    let sentinels: Vec<String> = group.sentinels.iter().map(|s| s.tls_url()).collect();
    support::run_in_child(
        "sentinel_tls_client",
        &[
            ("SSL_CERT_FILE", group.tls_ca().display().to_string()),
            ("TOWER_STATELESS_SENTINELS", sentinels.join(",")),
            (
                "TOWER_STATELESS_SENTINEL_PORT",
                group.sentinels[0].port().to_string(),
            ),
            (
                "TOWER_STATELESS_REPLICA_PORT",
                group.replica.port().to_string(),
            ),
        ],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the client half of sentinel_over_tls, which runs it"]
async fn sentinel_tls_client() {
    let var = |name: &str| std::env::var(name).expect("run by sentinel_over_tls");
    let sentinels: Vec<String> = (var("TOWER_STATELESS_SENTINELS").split(','))
        .map(str::to_owned)
        .collect();
    let sentinel_port: u16 = var("TOWER_STATELESS_SENTINEL_PORT").parse().unwrap();
    let replica_port: u16 = var("TOWER_STATELESS_REPLICA_PORT").parse().unwrap();
    let master = format!("rediss://{MASTER}");

    // The ports are TLS only: plain connections to them get nowhere.
    let plain: Vec<String> = (sentinels.iter())
        .map(|url| url.replace("rediss://", "redis://"))
        .collect();
    assert!(RedisStore::connect(RedisTarget::sentinel(&plain, &master))
        .await
        .is_err());
    // A master given without `rediss://` is spoken to in plain text: refused too.
    assert!(
        RedisStore::connect(RedisTarget::sentinel(&sentinels, MASTER))
            .await
            .is_err()
    );

    let store = RedisStore::builder(RedisTarget::sentinel(&sentinels, &master))
        .cache(100)
        .connect()
        .await
        .unwrap();
    let failover = || support::cli(sentinel_port, &["SENTINEL", "FAILOVER", MASTER]);
    let on_replica = |args: &[&str]| support::cli(replica_port, args);
    counts_through_a_planned_failover(&store, failover, on_replica).await;
}

/// Ten increments of one session, a planned failover (`fail_over` starts it and answers
/// `OK`), writes until they land on the promoted replica (`on_replica` runs `redis-cli`
/// on it); every acknowledged increment is counted and the session is on the replica.
async fn counts_through_a_planned_failover(
    store: &RedisStore,
    fail_over: impl FnOnce() -> String,
    on_replica: impl Fn(&[&str]) -> String,
) {
    let ids = sessions_with_a_counter(store, 1).await;
    let mut acknowledged = 0;
    for _ in 0..10 {
        assert!(matches!(
            store.increment(&ids[0], "n", 1, now()).await.unwrap(),
            Incremented::Value(_)
        ));
        acknowledged += 1;
    }
    assert_eq!(fail_over(), "OK");
    support::wait_for("the replica is promoted", Duration::from_secs(30), || {
        on_replica(&["ROLE"]).starts_with("master")
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut moved = false;
    while !moved && Instant::now() < deadline {
        match store.increment(&ids[0], "n", 1, now()).await {
            Ok(Incremented::Value(_)) => {
                acknowledged += 1;
                moved = true;
            }
            Ok(other) => panic!("{other:?}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert!(moved, "writes resumed on the promoted replica");
    let key = format!("session:{{{}}}", ids[0].as_str());
    assert_eq!(
        on_replica(&["EXISTS", &key]),
        "1",
        "the session is on the promoted replica"
    );
    let record = store.load(&ids[0], now()).await.unwrap().unwrap();
    assert_eq!(record.data["n"], acknowledged.to_string());
}
