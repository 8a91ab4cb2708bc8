//! `RedisStore` against real `redis-server` processes: the conformance suite on a single
//! server and on a cluster, plus what only Redis has (TTLs, key layout, scripts,
//! reconnection, eviction policy).

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

#[path = "clocks/mod.rs"]
mod clocks;
#[path = "logins/mod.rs"]
mod logins;
mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use support::{RedisCluster, RedisServer};
use tower_stateless::store::{
    Applied, ChangeSet, Created, Cycled, Expiry, HashedId, Incremented, Metadata, Record,
    RedisTarget, SessionStore, StoreError, Timestamp,
};
use tower_stateless::{conformance, RedisStore};

const IDLE: Duration = Duration::from_secs(30 * 60);
const ABSOLUTE: Duration = Duration::from_secs(12 * 3600);

fn now() -> Expiry {
    Expiry::new(
        Timestamp::from_system_time(SystemTime::now()),
        IDLE,
        ABSOLUTE,
    )
}

/// A raw session ID shaped like the layer's (24 random bytes, base64url) and its hash,
/// the only form a store may see.
fn raw_and_hashed() -> (String, HashedId) {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).unwrap();
    let raw = URL_SAFE_NO_PAD.encode(bytes);
    let hashed = HashedId::from_stored(URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes())));
    (raw, hashed)
}

fn record(pairs: &[(&str, &str)], user: Option<&str>, lifetime: Expiry) -> Record {
    let data = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut metadata = Metadata::new(lifetime.now);
    metadata.user_id = user.map(str::to_owned);
    Record::new(data, metadata)
}

/// A store on `server` holding one new session with `pairs` (bound to `user`).
async fn store_with_session(
    server: &RedisServer,
    pairs: &[(&str, &str)],
    user: Option<&str>,
) -> (RedisStore, HashedId, Expiry) {
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let lifetime = now();
    let (_, id) = raw_and_hashed();
    let created = store
        .create(&id, &record(pairs, user, lifetime), lifetime)
        .await
        .unwrap();
    assert_eq!(created, Created::Saved);
    (store, id, lifetime)
}

/// `ACL SETUSER app` with `password`, keys matching `keys`, and the store's commands
/// (`RedisStore::ACL_COMMANDS`) plus `extra`.
fn acl_user(password: &str, keys: &str, extra: &[&str]) -> Vec<String> {
    let mut acl: Vec<String> = ["ACL", "SETUSER", "app", "on"].map(String::from).to_vec();
    acl.push(format!(">{password}"));
    acl.push("resetkeys".into());
    acl.push(keys.into());
    acl.extend(extra.iter().map(|rule| rule.to_string()));
    acl.extend(
        RedisStore::ACL_COMMANDS
            .split_whitespace()
            .map(String::from),
    );
    acl
}

fn inspect(server: &RedisServer) -> redis::Connection {
    redis::Client::open(server.url())
        .unwrap()
        .get_connection()
        .unwrap()
}

fn keys(connection: &mut redis::Connection) -> Vec<String> {
    redis::cmd("KEYS").arg("*").query(connection).unwrap()
}

fn pttl(connection: &mut redis::Connection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query(connection).unwrap()
}

/// Whether `key` is `<prefix>{<43 base64url characters>}` after `start`.
fn is_hash_tag(key: &str, start: &str) -> bool {
    let Some(tag) = key
        .strip_prefix(start)
        .and_then(|rest| rest.strip_prefix('{'))
        .and_then(|rest| rest.strip_suffix('}'))
    else {
        return false;
    };
    tag.len() == 43
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_server_conforms() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    conformance::all(Arc::new(store.clone())).await;
    writes_racing_a_cycle_are_kept(&store).await;

    // Whatever the suite left behind is laid out as documented: session keys under the
    // default prefix and user indexes named by a digest, never by the user ID.
    let mut connection = inspect(&server);
    for key in keys(&mut connection) {
        // A prefix and a 43-character digest, nothing else: no room for a user ID. (A
        // substring check for short user names would match digests by chance.)
        assert!(
            is_hash_tag(&key, "session:") || is_hash_tag(&key, "session:user:"),
            "unexpected key {key:?}"
        );
    }
}

/// Two simultaneous logins of one user under a limit of one session: one stays, every
/// time (they used to end each other in most rounds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_under_a_limit_of_one_leave_one_session() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(logins::rounds_left_without_a_session(store, 100).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_under_a_limit_of_one_leave_one_session_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let urls = (cluster.nodes().into_iter()).map(|node| format!("redis://{node}"));
    let store = RedisStore::connect(RedisTarget::cluster(urls))
        .await
        .unwrap();
    assert_eq!(logins::rounds_left_without_a_session(store, 100).await, 0);
}

/// Two instances whose clocks differ by 20 minutes time sessions alike by following the
/// store's clock; on their own clocks the fast one ends a fresh session and the slow
/// one keeps one past its lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_instances_time_sessions_by_the_stores_clock() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let seen = clocks::two_skewed_instances(store.clone(), true).await;
    assert_eq!(seen, clocks::Seen::agreeing());
    let seen = clocks::two_skewed_instances(store, false).await;
    assert_eq!(seen, clocks::Seen::on_own_clocks());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_conforms() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    // A least-privilege ACL user on every node, allowed to read the eviction policy.
    let acl = acl_user("pw", "~c:*", &["+config|get"]);
    for server in cluster.servers() {
        server.cli(&acl.iter().map(String::as_str).collect::<Vec<_>>());
    }
    let urls = cluster
        .nodes()
        .into_iter()
        .map(|node| format!("redis://app:pw@{node}"));
    let store = RedisStore::builder(RedisTarget::cluster(urls))
        .prefix("c:")
        .connect()
        .await
        .unwrap();
    let debug = format!("{store:?}");
    assert!(
        debug.contains("cluster: true") && !debug.contains("pw@"),
        "{debug}"
    );
    assert_eq!(
        store.check_eviction_policy().await.as_deref(),
        Some("noeviction")
    );
    conformance::all(Arc::new(store.clone())).await;
    user_index_spans_nodes(&cluster, &store).await;
    writes_racing_a_cycle_are_kept(&store).await;
}

/// An apply that reports `Saved` while `cycle_id` runs is never lost: it shows under the
/// new ID, or under the old one if the cycle gave up. On a cluster this exercises the
/// copy-then-delete path, which starts over when a write lands during the copy.
async fn writes_racing_a_cycle_are_kept(store: &RedisStore) {
    for _ in 0..10 {
        let lifetime = now();
        let (_, old) = raw_and_hashed();
        let (_, new) = raw_and_hashed();
        let created = store
            .create(&old, &record(&[], None, lifetime), lifetime)
            .await
            .unwrap();
        assert_eq!(created, Created::Saved);
        let mut writers = tokio::task::JoinSet::new();
        for n in 0..8 {
            let (store, old) = (store.clone(), old.clone());
            writers.spawn(async move {
                let changes = ChangeSet::default().with_set(format!("k{n}"), "1");
                (n, store.apply(&old, &changes, lifetime).await.unwrap())
            });
        }
        let cycled = store
            .cycle_id(
                &old,
                &new,
                &ChangeSet::default().with_set("moved", "1"),
                lifetime,
            )
            .await;
        let saved: Vec<String> = writers
            .join_all()
            .await
            .into_iter()
            .filter(|(_, applied)| *applied == Applied::Saved)
            .map(|(n, _)| format!("k{n}"))
            .collect();
        let holder = match cycled {
            Ok(Cycled::Saved) => {
                assert_eq!(
                    store.load(&old, lifetime).await.unwrap(),
                    None,
                    "the old ID is dead"
                );
                &new
            }
            Err(StoreError::Backend(_)) => &old,
            other => panic!("unexpected cycle outcome {other:?}"),
        };
        let data = store
            .load(holder, lifetime)
            .await
            .unwrap()
            .expect("the session survives")
            .data;
        for key in &saved {
            assert!(
                data.contains_key(key),
                "{key} was saved but is lost: {data:?}"
            );
        }
        store.destroy(holder).await.unwrap();
    }
}

/// Sessions of one user land on different nodes from its index; listing and "log out
/// everywhere" still find them all.
async fn user_index_spans_nodes(cluster: &RedisCluster, store: &RedisStore) {
    let lifetime = now();
    let user = "carol@example.com";
    let mut ids = Vec::new();
    for n in 0..12 {
        let (_, id) = raw_and_hashed();
        let bound = if n % 2 == 0 { Some(user) } else { None };
        assert_eq!(
            store
                .create(&id, &record(&[("n", "1")], bound, lifetime), lifetime)
                .await
                .unwrap(),
            Created::Saved
        );
        if bound.is_none() {
            let bind = ChangeSet::default().with_user(Some(user.to_owned()));
            assert_eq!(
                store.apply(&id, &bind, lifetime).await.unwrap(),
                Applied::Saved
            );
        }
        ids.push(id);
    }
    // Cycling a bound session keeps it in the index under its new ID.
    let (_, cycled) = raw_and_hashed();
    assert_eq!(
        store
            .cycle_id(&ids[0], &cycled, &ChangeSet::default(), lifetime)
            .await
            .unwrap(),
        Cycled::Saved
    );
    ids[0] = cycled;

    let mut nodes_with_sessions = 0;
    for server in cluster.servers() {
        let mut connection = inspect(server);
        let keys = keys(&mut connection);
        if keys.iter().any(|key| {
            ids.iter()
                .any(|id| key == &format!("c:{{{}}}", id.as_str()))
        }) {
            nodes_with_sessions += 1;
        }
        for key in &keys {
            assert!(
                is_hash_tag(key, "c:") || is_hash_tag(key, "c:user:"),
                "unexpected key {key:?}"
            );
            assert!(!key.contains("carol"), "a user ID in a key name: {key:?}");
        }
    }
    assert!(
        nodes_with_sessions >= 2,
        "12 sessions should spread over the nodes"
    );

    let mut listed: Vec<HashedId> = store
        .sessions_of_user(user, lifetime)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(store.destroy_sessions_of_user(user).await.unwrap(), 12);
    for id in &ids {
        assert_eq!(store.load(id, lifetime).await.unwrap(), None);
    }
    assert!(store
        .sessions_of_user(user, lifetime)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn ttls_follow_the_lifetime() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut connection = inspect(&server);
    let lifetime = now();
    let (_, id) = raw_and_hashed();
    let key = format!("session:{{{}}}", id.as_str());

    assert_eq!(
        store
            .create(
                &id,
                &record(&[("a", "1")], Some("dave"), lifetime),
                lifetime
            )
            .await
            .unwrap(),
        Created::Saved
    );
    let ttl = pttl(&mut connection, &key);
    assert!(
        ttl > 0 && ttl <= IDLE.as_millis() as i64,
        "after create: {ttl}"
    );

    // Near the end of the absolute lifetime, the key lives only until then.
    // (An idle timeout as long as the absolute lifetime keeps it alive until then.)
    let late = Expiry::new(
        lifetime
            .now
            .saturating_add(ABSOLUTE - Duration::from_secs(60)),
        ABSOLUTE,
        ABSOLUTE,
    );
    assert_eq!(store.touch(&id, late).await.unwrap(), Applied::Saved);
    let ttl = pttl(&mut connection, &key);
    assert!(
        ttl > 50_000 && ttl <= 60_000,
        "near the absolute end: {ttl}"
    );

    // A write sets the full idle timeout again.
    let changes = ChangeSet::default().with_set("b", "2");
    let mid = Expiry::new(
        lifetime.now.saturating_add(Duration::from_secs(60)),
        IDLE,
        ABSOLUTE,
    );
    assert_eq!(
        store.apply(&id, &changes, mid).await.unwrap(),
        Applied::Saved
    );
    let ttl = pttl(&mut connection, &key);
    assert!(
        ttl > IDLE.as_millis() as i64 - 5_000 && ttl <= IDLE.as_millis() as i64,
        "after apply: {ttl}"
    );

    // The user's index outlives every session in it.
    let index = keys(&mut connection)
        .into_iter()
        .find(|key| key.starts_with("session:user:"))
        .unwrap();
    assert!(pttl(&mut connection, &index) >= ABSOLUTE.as_millis() as i64 - 5_000);
}

#[tokio::test]
async fn keys_and_values_hold_no_raw_ids() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("ts:")
        .connect()
        .await
        .unwrap();
    let lifetime = now();
    let user = "erin-4242";
    let (raw_a, a) = raw_and_hashed();
    let (raw_b, b) = raw_and_hashed();
    let (raw_c, c) = raw_and_hashed();
    assert_eq!(
        store
            .create(&a, &record(&[("cart", "[1,2]")], None, lifetime), lifetime)
            .await
            .unwrap(),
        Created::Saved
    );
    let login = ChangeSet::default()
        .with_user(Some(user.to_owned()))
        .with_set("role", "\"admin\"");
    assert_eq!(
        store.cycle_id(&a, &b, &login, lifetime).await.unwrap(),
        Cycled::Saved
    );
    assert_eq!(
        store
            .create(&c, &record(&[], Some(user), lifetime), lifetime)
            .await
            .unwrap(),
        Created::Saved
    );
    assert_eq!(
        store.sessions_of_user(user, lifetime).await.unwrap().len(),
        2
    );

    let mut connection = inspect(&server);
    let keys = keys(&mut connection);
    assert_eq!(keys.len(), 3, "{keys:?}");
    let mut everything = String::new();
    for key in &keys {
        if is_hash_tag(key, "ts:user:") {
            let members: Vec<String> = redis::cmd("ZRANGE")
                .arg(key)
                .arg(0)
                .arg(-1)
                .query(&mut connection)
                .unwrap();
            let mut members = members.clone();
            members.sort();
            let mut expected = vec![b.as_str().to_owned(), c.as_str().to_owned()];
            expected.sort();
            assert_eq!(members, expected, "the index holds hashed IDs");
            everything.push_str(&members.join(" "));
        } else {
            assert!(is_hash_tag(key, "ts:"), "unexpected key {key:?}");
            let fields: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(key)
                .query(&mut connection)
                .unwrap();
            for (field, value) in fields {
                everything.push_str(&format!("{field} {value} "));
            }
        }
        everything.push_str(key);
    }
    for raw in [&raw_a, &raw_b, &raw_c] {
        assert!(
            !everything.contains(raw.as_str()),
            "a raw session ID reached Redis"
        );
    }
    assert!(
        !keys.iter().any(|key| key.contains(user)),
        "a user ID in a key name"
    );
}

#[tokio::test]
async fn scripts_are_reloaded_after_script_flush() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (store, id, lifetime) = store_with_session(&server, &[("a", "1")], None).await;
    server.cli(&["SCRIPT", "FLUSH"]);
    let changes = ChangeSet::default().with_set("a", "2");
    assert_eq!(
        store.apply(&id, &changes, lifetime).await.unwrap(),
        Applied::Saved
    );
    server.cli(&["SCRIPT", "FLUSH"]);
    let (_, moved) = raw_and_hashed();
    assert_eq!(
        store
            .cycle_id(&id, &moved, &ChangeSet::default(), lifetime)
            .await
            .unwrap(),
        Cycled::Saved
    );
    assert_eq!(
        store.load(&moved, lifetime).await.unwrap().unwrap().data["a"],
        "2"
    );
    // With the cache, a write goes over its tracking connection, as the writer's copy
    // variant of the script.
    let cached = RedisStore::builder(server.url())
        .cache(16)
        .connect()
        .await
        .unwrap();
    assert!(cached.load(&moved, lifetime).await.unwrap().is_some());
    server.cli(&["SCRIPT", "FLUSH"]);
    assert_eq!(
        cached.increment(&moved, "n", 2, lifetime).await.unwrap(),
        Incremented::Value(2)
    );
    assert_eq!(
        cached.load(&moved, lifetime).await.unwrap().unwrap().data["n"],
        "2"
    );
    assert_eq!(
        cached.cache_stats().unwrap().copies,
        1,
        "the writer's copy variant ran"
    );
}

#[tokio::test]
async fn reconnects_after_an_outage() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let (store, id, lifetime) = store_with_session(&server, &[("a", "1")], None).await;

    server.stop();
    for _ in 0..3 {
        let outcome = tokio::time::timeout(Duration::from_secs(5), store.load(&id, lifetime)).await;
        let error = outcome
            .expect("a call to a dead server fails, in bounded time")
            .unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    }
    assert!(store.ping().await.is_err());

    server.restart();
    let back = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.ping()).await {
            Ok(Ok(())) => break,
            _ if back.elapsed() < Duration::from_secs(2) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            outcome => panic!(
                "still failing {:?} after the restart: {outcome:?}",
                back.elapsed()
            ),
        }
    }
    // The data did not survive (no persistence), but the same store works again.
    assert_eq!(store.load(&id, lifetime).await.unwrap(), None);
    let (_, fresh) = raw_and_hashed();
    assert_eq!(
        store
            .create(&fresh, &record(&[], None, lifetime), lifetime)
            .await
            .unwrap(),
        Created::Saved
    );
}

#[tokio::test]
async fn connecting_to_nothing_fails_quickly() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    server.stop();
    let started = Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(10), RedisStore::connect(&url)).await;
    assert!(outcome.expect("connect gives up").is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn warns_about_an_evicting_redis() {
    let Some(server) = RedisServer::start_with(&["--maxmemory-policy", "allkeys-lru"]) else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(
        store.check_eviction_policy().await.as_deref(),
        Some("allkeys-lru")
    );

    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    assert_eq!(
        store.check_eviction_policy().await.as_deref(),
        Some("noeviction")
    );
}

#[tokio::test]
async fn acl_user_without_config_rights_and_a_redacted_password() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    // The least a store needs, as documented on RedisStore: no CONFIG, only its own keys.
    let acl = acl_user("s3cret-pw", "~session:*", &[]);
    server.cli(&acl.iter().map(String::as_str).collect::<Vec<_>>());
    let url = format!("redis://app:s3cret-pw@127.0.0.1:{}", server.port());
    let store = RedisStore::connect(&url).await.unwrap();
    assert_eq!(
        store.check_eviction_policy().await,
        None,
        "CONFIG is denied: not checked, no error"
    );
    let debug = format!("{store:?}");
    assert!(
        !debug.contains("s3cret-pw") && debug.contains("127.0.0.1"),
        "{debug}"
    );
    conformance::all(Arc::new(store.clone())).await;
    writes_racing_a_cycle_are_kept(&store).await;

    let wrong = format!("redis://app:wrong-pw@127.0.0.1:{}", server.port());
    let error = RedisStore::connect(&wrong).await.unwrap_err();
    assert!(
        !format!("{error:?} {error}").contains("wrong-pw"),
        "{error:?}"
    );
}

#[tokio::test]
async fn index_entries_of_dead_sessions_are_pruned_after_a_grace() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let mut connection = inspect(&server);
    let lifetime = now();
    let user = "frank";
    let (_, live) = raw_and_hashed();
    assert_eq!(
        store
            .create(&live, &record(&[], Some(user), lifetime), lifetime)
            .await
            .unwrap(),
        Created::Saved
    );
    let index = keys(&mut connection)
        .into_iter()
        .find(|key| key.starts_with("session:user:"))
        .unwrap();

    // An entry added long ago whose session is gone, and one just added (its write may be
    // in flight): only the old one goes.
    let (_, old_dead) = raw_and_hashed();
    let (_, new_dead) = raw_and_hashed();
    redis::cmd("ZADD")
        .arg(&index)
        .arg(0)
        .arg(old_dead.as_str())
        .exec(&mut connection)
        .unwrap();
    redis::cmd("ZADD")
        .arg(&index)
        .arg(4_000_000_000_000u64)
        .arg(new_dead.as_str())
        .exec(&mut connection)
        .unwrap();
    let listed = store.sessions_of_user(user, lifetime).await.unwrap();
    assert_eq!(
        listed.iter().map(|s| &s.id).collect::<Vec<_>>(),
        vec![&live]
    );
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(-1)
        .query(&mut connection)
        .unwrap();
    assert!(
        !members.contains(&old_dead.as_str().to_owned()),
        "{members:?}"
    );
    assert!(
        members.contains(&new_dead.as_str().to_owned()),
        "{members:?}"
    );

    // Destroying the user's sessions drops the entries of what it deleted.
    assert_eq!(store.destroy_sessions_of_user(user).await.unwrap(), 1);
    let members: Vec<String> = redis::cmd("ZRANGE")
        .arg(&index)
        .arg(0)
        .arg(-1)
        .query(&mut connection)
        .unwrap();
    assert_eq!(members, vec![new_dead.as_str().to_owned()]);
}

#[tokio::test]
async fn rebinding_moves_the_index_entry() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (store, id, lifetime) = store_with_session(&server, &[], Some("gina")).await;
    let rebind = ChangeSet::default().with_user(Some("hank".into()));
    assert_eq!(
        store.apply(&id, &rebind, lifetime).await.unwrap(),
        Applied::Saved
    );
    let mut connection = inspect(&server);
    let indexes: Vec<String> = keys(&mut connection)
        .into_iter()
        .filter(|key| key.starts_with("session:user:"))
        .collect();
    assert_eq!(
        indexes.len(),
        1,
        "gina's index emptied and vanished: {indexes:?}"
    );
    assert_eq!(
        store
            .sessions_of_user("hank", lifetime)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(store.destroy_sessions_of_user("gina").await.unwrap(), 0);

    let unbind = ChangeSet::default().with_user(None);
    assert_eq!(
        store.apply(&id, &unbind, lifetime).await.unwrap(),
        Applied::Saved
    );
    assert!(store
        .sessions_of_user("hank", lifetime)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .load(&id, lifetime)
        .await
        .unwrap()
        .unwrap()
        .metadata
        .user_id
        .is_none());
}

#[tokio::test]
async fn corrupt_hashes_are_reported() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let (_, id) = raw_and_hashed();
    let key = format!("session:{{{}}}", id.as_str());
    server.cli(&[
        "HSET",
        &key,
        ":created",
        "yesterday",
        ":refreshed",
        "1",
        ":v",
        "1",
    ]);
    assert!(matches!(
        store.load(&id, now()).await,
        Err(StoreError::Corrupt(_))
    ));
    server.cli(&["DEL", &key]);
    server.cli(&["SET", &key, "not a hash"]);
    assert!(matches!(
        store.load(&id, now()).await,
        Err(StoreError::Backend(_))
    ));
}

/// `rediss://` end to end, certificate checked against a private CA. The client reads its
/// trusted roots from `SSL_CERT_FILE`, which is process-wide, so the client half runs in a
/// child process of this test binary.
#[tokio::test]
async fn rediss_with_a_private_ca() {
    let Some(server) = RedisServer::start_tls() else {
        return;
    };
    support::run_in_child(
        "tls_client",
        &[
            ("SSL_CERT_FILE", server.tls_ca().display().to_string()),
            ("TOWER_STATELESS_TLS_URL", server.tls_url()),
        ],
    );
}

#[tokio::test]
#[ignore = "the client half of rediss_with_a_private_ca, which runs it"]
async fn tls_client() {
    let url = std::env::var("TOWER_STATELESS_TLS_URL").expect("run by rediss_with_a_private_ca");
    let store = RedisStore::connect(&url).await.unwrap();
    let lifetime = now();
    let (_, id) = raw_and_hashed();
    assert_eq!(
        store
            .create(&id, &record(&[("a", "1")], None, lifetime), lifetime)
            .await
            .unwrap(),
        Created::Saved
    );
    assert_eq!(
        store.load(&id, lifetime).await.unwrap().unwrap().data["a"],
        "1"
    );

    // The certificate is really checked: it is not valid for another host name.
    let plain = url.replace("rediss://127.0.0.1", "rediss://localhost");
    assert!(
        RedisStore::connect(&plain).await.is_err(),
        "wrong host name accepted"
    );
}

#[tokio::test]
async fn touch_writes_no_data() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (store, id, lifetime) = store_with_session(&server, &[("a", "1")], None).await;
    let key = format!("session:{{{}}}", id.as_str());
    let before: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query(&mut inspect(&server))
        .unwrap();
    let later = Expiry::new(
        lifetime.now.saturating_add(Duration::from_secs(5)),
        IDLE,
        ABSOLUTE,
    );
    assert_eq!(store.touch(&id, later).await.unwrap(), Applied::Saved);
    let mut after: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query(&mut inspect(&server))
        .unwrap();
    let meta = |hash: &mut HashMap<String, String>| -> Vec<String> {
        let packed = hash.remove(":m").expect("layout 2 metadata");
        packed.split('.').map(str::to_owned).collect()
    };
    let (was, now) = (meta(&mut before.clone()), meta(&mut after));
    assert_eq!(now[1], later.now.as_millis().to_string(), "refreshed now");
    assert_eq!(
        (&now[0], &now[2]),
        (&was[0], &was[2]),
        "creation time and write counter untouched"
    );
    let mut unchanged = before;
    unchanged.remove(":m");
    assert_eq!(after, unchanged, "only the refresh time moved");
}

/// A session written in layout 1 (by the previous version) is read, updated, cycled,
/// listed, logged out everywhere and destroyed by this version; its first write turns it
/// into layout 2, keeping its data, user and deadlines.
#[tokio::test]
async fn layout_1_sessions_survive_the_upgrade() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let expiry = now();
    let created = expiry.now.as_millis() - 1000;
    let user = format!("upgraded-{created}");
    let mut old_ids = Vec::new();
    for _ in 0..2 {
        let (_, id) = raw_and_hashed();
        let key = format!("session:{{{}}}", id.as_str());
        // Exactly what the previous version wrote: reserved fields, the user index entry.
        server.cli(&[
            "HSET",
            &key,
            ":created",
            &created.to_string(),
            ":refreshed",
            &created.to_string(),
            ":user",
            &user,
            ":v",
            "1",
            ":gen",
            "4",
            "cart:socks",
            "2",
            "::odd",
            "\"x\"",
        ]);
        server.cli(&["PEXPIRE", &key, "3600000"]);
        let index = format!(
            "session:user:{{{}}}",
            URL_SAFE_NO_PAD.encode(Sha256::digest(user.as_bytes()))
        );
        server.cli(&["ZADD", &index, &created.to_string(), id.as_str()]);
        old_ids.push(id);
    }
    let (first, second) = (&old_ids[0], &old_ids[1]);

    let loaded = store.load(first, expiry).await.unwrap().expect("read");
    assert_eq!(loaded.metadata.user_id.as_deref(), Some(user.as_str()));
    assert_eq!(loaded.metadata.created_at.as_millis(), created);
    assert_eq!(loaded.data["cart:socks"], "2");
    assert_eq!(loaded.data[":odd"], "\"x\"");

    let changes = ChangeSet::default().with_set("note", "1");
    assert_eq!(
        store.apply(first, &changes, expiry).await.unwrap(),
        Applied::Saved
    );
    assert_eq!(
        store
            .increment(first, "cart:socks", 3, expiry)
            .await
            .unwrap(),
        Incremented::Value(5)
    );
    let key = format!("session:{{{}}}", first.as_str());
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&key)
        .query(&mut inspect(&server))
        .unwrap();
    for old in [":created", ":refreshed", ":user", ":v", ":gen"] {
        assert!(!fields.contains_key(old), "{old} is gone after a write");
    }
    assert_eq!(fields[":u"], user);
    assert!(
        fields[":m"].starts_with(&format!("{created}.")),
        "{}",
        fields[":m"]
    );
    let reloaded = store
        .load(first, expiry)
        .await
        .unwrap()
        .expect("still live");
    assert_eq!(reloaded.metadata.user_id.as_deref(), Some(user.as_str()));
    assert_eq!(reloaded.metadata.created_at.as_millis(), created);
    assert_eq!(reloaded.data["cart:socks"], "5");
    assert_eq!(reloaded.data["note"], "1");

    // The second one, still in layout 1: cycled, then found by log-out-everywhere.
    let (_, moved) = raw_and_hashed();
    let cycled = store
        .cycle_id(second, &moved, &ChangeSet::default(), expiry)
        .await
        .unwrap();
    assert_eq!(cycled, Cycled::Saved);
    let listed = store.sessions_of_user(&user, expiry).await.unwrap();
    assert_eq!(listed.len(), 2, "both sessions listed under the user");
    assert_eq!(store.destroy_sessions_of_user(&user).await.unwrap(), 2);
    for id in [first, second, &moved] {
        assert_eq!(store.load(id, expiry).await.unwrap(), None);
    }
}

/// The harness's extra arguments reach the server: with an fsynced append-only file, a
/// killed and restarted server still has the session.
#[tokio::test]
async fn a_persistent_server_keeps_sessions_across_a_restart() {
    let Some(mut server) =
        RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"])
    else {
        return;
    };
    let (store, id, lifetime) = store_with_session(&server, &[("a", "1")], Some("ivy")).await;
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(2);
    let loaded = loop {
        match store.load(&id, lifetime).await {
            Ok(loaded) => break loaded,
            Err(error) if Instant::now() < deadline => {
                eprintln!("not back yet: {error}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(error) => panic!("not back after the restart: {error:?}"),
        }
    };
    assert_eq!(loaded.expect("the session survived").data["a"], "1");
    assert_eq!(
        store.sessions_of_user("ivy", lifetime).await.unwrap().len(),
        1
    );
}

/// The store prefers RESP3 but still talks to a server without `HELLO` (as Redis 5),
/// and keeps to the protocol a URL asks for.
#[tokio::test]
async fn falls_back_to_resp2_without_hello() {
    let Some(server) = RedisServer::start_with(&["--rename-command", "HELLO", ""]) else {
        return;
    };
    for url in [server.url(), format!("{}/?protocol=resp2", server.url())] {
        let store = RedisStore::connect(&url).await.unwrap();
        let lifetime = now();
        let (_, id) = raw_and_hashed();
        let created = store
            .create(&id, &record(&[("a", "1")], Some("jo"), lifetime), lifetime)
            .await
            .unwrap();
        assert_eq!(created, Created::Saved);
        assert_eq!(
            store.load(&id, lifetime).await.unwrap().unwrap().data["a"],
            "1"
        );
        let listed = store.sessions_of_user("jo", lifetime).await.unwrap();
        assert!(listed.iter().any(|session| session.id == id));
    }
    assert!(
        RedisStore::connect(&format!("{}/?protocol=resp3", server.url()))
            .await
            .is_err()
    );
}

/// With `RedisStoreBuilder::user_digest_keys`, Redis holds no plain SHA-256 of a user name: the user
/// index and token mode's not-before key are named by a keyed digest. What a store
/// without the key wrote before (the plain names) is still listed, destroyed by
/// log-out-everywhere and, for a not-before time, enforced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_names_are_keyed_at_rest_and_plain_names_written_before_still_hold() {
    use tower_stateless::store::Revocations;
    use tower_stateless::{Key, Keys};
    let Some(server) = RedisServer::start() else {
        return;
    };
    let plain = RedisStore::connect(&server.url()).await.unwrap();
    let keyed = RedisStore::builder(server.url())
        .user_digest_keys(&Keys::new(Key::from_bytes(&[9; 32]).unwrap()))
        .connect()
        .await
        .unwrap();
    let user = "ada@example.com";
    let plain_digest = URL_SAFE_NO_PAD.encode(Sha256::digest(user.as_bytes()));
    let now = SystemTime::now();
    let expiry = Expiry::new(
        Timestamp::from_system_time(now),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    );
    let bound = |store: &RedisStore, name: &str| {
        let store = store.clone();
        let id = HashedId::from_stored(format!("{name:0>43}"));
        async move {
            let mut metadata = Metadata::new(expiry.now);
            metadata.user_id = Some(user.to_owned());
            let record = Record::new(HashMap::new(), metadata);
            assert_eq!(
                store.create(&id, &record, expiry).await.unwrap(),
                Created::Saved
            );
            id
        }
    };
    let mut connection = inspect(&server);
    let named_plainly = |connection: &mut redis::Connection| {
        keys(connection)
            .into_iter()
            .filter(|key| key.contains(&plain_digest))
            .count()
    };

    // Before: a store without the key names the index by the plain digest.
    let old = bound(&plain, "old").await;
    assert_eq!(
        named_plainly(&mut connection),
        1,
        "the plain digest at rest"
    );
    // The keyed store writes new bindings under a keyed name, and still lists the old.
    let new = bound(&keyed, "new").await;
    let mut listed: Vec<HashedId> = (keyed.sessions_of_user(user, expiry).await.unwrap())
        .into_iter()
        .map(|summary| summary.id)
        .collect();
    listed.sort();
    let mut expected = vec![old.clone(), new.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert_eq!(keyed.destroy_sessions_of_user(user).await.unwrap(), 2);
    redis::cmd("DEL")
        .arg(format!("session:user:{{{plain_digest}}}"))
        .query::<()>(&mut connection)
        .unwrap();

    // A not-before time written under the plain name still revokes older bindings.
    let not_before = Timestamp::from_system_time(now + Duration::from_secs(1));
    plain
        .revoke_user(user, not_before, Duration::from_secs(60))
        .await
        .unwrap();
    let state = Revocations::revocation_state(&keyed, &old, Some(user), expiry.now)
        .await
        .unwrap();
    assert_eq!(state.user_not_before, Some(not_before));
    redis::cmd("DEL")
        .arg(format!("session:nbf:{{{plain_digest}}}"))
        .query::<()>(&mut connection)
        .unwrap();

    // After: everything the keyed store writes for the user, and no plain digest.
    bound(&keyed, "newer").await;
    keyed
        .revoke_user(user, not_before, Duration::from_secs(60))
        .await
        .unwrap();
    let written = keys(&mut connection);
    assert!(written.iter().any(|key| key.starts_with("session:user:")));
    assert!(written.iter().any(|key| key.starts_with("session:nbf:")));
    assert_eq!(named_plainly(&mut connection), 0, "{written:?}");
}
