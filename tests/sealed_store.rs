//! `Sealed` (encryption at rest): the store conformance suite on `MemoryStore` and on a
//! real Redis, and what only sealing promises: nothing readable at rest, nothing movable
//! or forgeable, key rotation.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

#[cfg(feature = "redis")]
mod support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower::ServiceExt;
use tower_stateless::store::{
    Applied, ChangeSet, Created, Expiry, HashedId, Incremented, Metadata, Record, SessionStore,
    StoreError, Timestamp,
};
use tower_stateless::{Key, Keys, MemoryStore, Sealed, Session, SessionLayer};

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).unwrap()
}

fn keys() -> Keys {
    Keys::new(key(7))
}

fn now() -> Expiry {
    Expiry::new(
        Timestamp::from_system_time(SystemTime::now()),
        Duration::from_secs(3600),
        Duration::from_secs(10 * 3600),
    )
}

fn fresh_id() -> HashedId {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    HashedId::from_stored(URL_SAFE_NO_PAD.encode(bytes))
}

/// Creates a session through `sealed` holding `pairs`, bound to `user`.
async fn create<S: SessionStore>(
    sealed: &Sealed<S>,
    pairs: &[(&str, &str)],
    user: Option<&str>,
) -> HashedId {
    let id = fresh_id();
    let mut metadata = Metadata::new(now().now);
    metadata.user_id = user.map(str::to_owned);
    let data = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let created = sealed
        .create(&id, &Record::new(data, metadata), now())
        .await
        .unwrap();
    assert_eq!(created, Created::Saved);
    id
}

/// What the wrapped store holds for `id`: stored field name -> stored value.
async fn raw(inner: &MemoryStore, id: &HashedId) -> Record {
    inner.load(id, now()).await.unwrap().expect("live")
}

/// Writes `value` under the stored name `name` behind the wrapper's back.
async fn plant(inner: &MemoryStore, id: &HashedId, name: &str, value: &str) {
    let changes = ChangeSet::default().with_set(name, value);
    assert_eq!(
        inner.apply(id, &changes, now()).await.unwrap(),
        Applied::Saved
    );
}

/// The stored name of the only field of a session created with one field.
async fn only_name(inner: &MemoryStore, id: &HashedId) -> (String, String) {
    let raw = raw(inner, id).await;
    assert_eq!(raw.data.len(), 1, "one field");
    raw.data.into_iter().next().unwrap()
}

fn is_corrupt(result: Result<Option<Record>, StoreError>) -> bool {
    matches!(result, Err(StoreError::Corrupt(_)))
}

/// Every field a counter: integers stay plain, increments are the store's own.
mod all_counters {
    tower_stateless::conformance_tests!(async {
        tower_stateless::Sealed::new(tower_stateless::MemoryStore::new(), &super::keys())
            .with_counters("")
    });
}

/// No counters: every value sealed, increments and compare-and-set emulated.
mod all_sealed {
    tower_stateless::conformance_tests!(async {
        tower_stateless::Sealed::new(tower_stateless::MemoryStore::new(), &super::keys())
    });
}

/// During a rotation: sealing under the new key, opening under both.
mod rotating {
    tower_stateless::conformance_tests!(async {
        let keys = tower_stateless::Keys::new(tower_stateless::Key::from_bytes(&[8; 32]).unwrap())
            .with_verify_only(tower_stateless::Key::from_bytes(&[7; 32]).unwrap());
        tower_stateless::Sealed::new(tower_stateless::MemoryStore::new(), &keys).with_counters("n")
    });
}

#[test]
fn debug_shows_no_key() {
    let text = format!("{:?}", Sealed::new(MemoryStore::new(), &keys()));
    assert!(
        text.contains("Sealed") && text.contains("keys: 1"),
        "{text}"
    );
}

#[tokio::test]
async fn nothing_readable_at_rest_but_counters() {
    let inner = MemoryStore::new();
    let sealed = Sealed::new(inner.clone(), &keys()).with_counters("cart:");
    let secrets = [("cart:sku-4711", "3"), ("name", "\"Alice Example\"")];
    let id = create(&sealed, &secrets, Some("alice@example.com")).await;
    let stored = raw(&inner, &id).await;
    let mut text = format!("{:?}", stored.metadata.user_id);
    for (name, value) in &stored.data {
        text.push_str(name);
        text.push_str(value);
    }
    for secret in ["sku-4711", "cart", "Alice", "alice", "name"] {
        assert!(!text.contains(secret), "{secret} readable in {text}");
    }
    assert!(
        stored.data.values().any(|value| value == "3"),
        "a counter's integer is plain"
    );
    let loaded = sealed.load(&id, now()).await.unwrap().unwrap();
    assert_eq!(loaded.data["cart:sku-4711"], "3");
    assert_eq!(loaded.data["name"], "\"Alice Example\"");
    assert_eq!(
        loaded.metadata.user_id.as_deref(),
        Some("alice@example.com")
    );
}

#[tokio::test]
async fn a_value_copied_to_another_session_does_not_open() {
    let inner = MemoryStore::new();
    let sealed = Sealed::new(inner.clone(), &keys());
    let admin = create(&sealed, &[("role", "\"admin\"")], None).await;
    let guest = create(&sealed, &[("role", "\"guest\"")], None).await;
    let (name, admins_role) = only_name(&inner, &admin).await;
    assert_eq!(
        only_name(&inner, &guest).await.0,
        name,
        "one name per field"
    );
    plant(&inner, &guest, &name, &admins_role).await;
    assert!(is_corrupt(sealed.load(&guest, now()).await));
    // Every operation that reads the field refuses it too.
    assert!(sealed.increment(&guest, "role", 1, now()).await.is_err());
    assert!(sealed
        .compare_and_set(&guest, "role", Some("\"admin\""), None, now())
        .await
        .is_err());
    assert!(sealed.load(&admin, now()).await.unwrap().is_some());
}

#[tokio::test]
async fn a_value_moved_to_another_field_does_not_open() {
    let inner = MemoryStore::new();
    let sealed = Sealed::new(inner.clone(), &keys());
    let id = create(&sealed, &[("role", "\"admin\"")], None).await;
    let (_, role) = only_name(&inner, &id).await;
    let other = create(&sealed, &[("nickname", "\"x\"")], None).await;
    let (nickname, _) = only_name(&inner, &other).await;
    plant(&inner, &id, &nickname, &role).await;
    assert!(is_corrupt(sealed.load(&id, now()).await));
}

#[tokio::test]
async fn a_forged_or_altered_value_does_not_open() {
    let inner = MemoryStore::new();
    let sealed = Sealed::new(inner.clone(), &keys()).with_counters("n");
    let id = create(&sealed, &[("level", "1")], None).await;
    let (name, value) = only_name(&inner, &id).await;
    let mut altered = value.into_bytes();
    let last = altered.len() - 1;
    altered[last] = if altered[last] == b'A' { b'B' } else { b'A' };
    plant(&inner, &id, &name, std::str::from_utf8(&altered).unwrap()).await;
    assert!(is_corrupt(sealed.load(&id, now()).await), "altered");
    plant(&inner, &id, &name, "9").await;
    assert!(
        is_corrupt(sealed.load(&id, now()).await),
        "a plain integer in a field that is not a counter"
    );
    plant(&inner, &id, "level", "\"plain\"").await;
    assert!(
        is_corrupt(sealed.load(&id, now()).await),
        "a name no key made"
    );
}

#[tokio::test]
async fn a_user_binding_cannot_be_copied_or_forged() {
    let inner = MemoryStore::new();
    let sealed = Sealed::new(inner.clone(), &keys());
    let admin = create(&sealed, &[], Some("admin")).await;
    let mallory = create(&sealed, &[], Some("mallory")).await;
    let anonymous = create(&sealed, &[], None).await;
    let admins = raw(&inner, &admin).await;
    let hashed_admin = admins.metadata.user_id.clone().unwrap();
    assert!(!hashed_admin.contains("admin"));

    // The index entry of another user, without that session's proof.
    for id in [&mallory, &anonymous] {
        let bind = ChangeSet::default().with_user(Some(hashed_admin.clone()));
        assert_eq!(inner.apply(id, &bind, now()).await.unwrap(), Applied::Saved);
        assert!(is_corrupt(sealed.load(id, now()).await));
    }
    // And with the proof copied from the admin's session: sealed for another session.
    let (proof, sealed_admin) = admins.data.into_iter().next().unwrap();
    plant(&inner, &mallory, &proof, &sealed_admin).await;
    assert!(is_corrupt(sealed.load(&mallory, now()).await));

    // Log-out-everywhere still finds the admin's session by the plain user ID (and the
    // sessions planted in the admin's index, which it ends too).
    let listed = sealed.sessions_of_user("admin", now()).await.unwrap();
    assert!(listed.iter().any(|summary| summary.id == admin));
    assert!(listed
        .iter()
        .all(|summary| summary.metadata.user_id.as_deref() == Some("admin")));
    assert_eq!(sealed.destroy_sessions_of_user("admin").await.unwrap(), 3);
    assert_eq!(sealed.load(&admin, now()).await.unwrap(), None);
}

#[tokio::test]
async fn rotation_opens_old_data_and_moves_written_fields_to_the_new_key() {
    let inner = MemoryStore::new();
    let old = Sealed::new(inner.clone(), &Keys::new(key(1))).with_counters("n");
    let id = create(&old, &[("f", "\"a\""), ("n", "5")], Some("u")).await;
    let names_before: Vec<String> = raw(&inner, &id).await.data.into_keys().collect();

    // Phase 2: the new key seals, the old one still opens.
    let rotated = Keys::new(key(2)).with_verify_only(key(1));
    let new = Sealed::new(inner.clone(), &rotated).with_counters("n");
    let loaded = new.load(&id, now()).await.unwrap().unwrap();
    assert_eq!(
        loaded.data,
        old.load(&id, now()).await.unwrap().unwrap().data
    );
    assert_eq!(loaded.metadata.user_id.as_deref(), Some("u"));

    // A write of `f` replaces its twin named under the old key.
    let set = ChangeSet::default().with_set("f", "\"b\"");
    assert_eq!(new.apply(&id, &set, now()).await.unwrap(), Applied::Saved);
    let stored = raw(&inner, &id).await;
    assert_eq!(stored.data.len(), 3, "f, n and the user's proof: no twin");
    assert_eq!(
        names_before
            .iter()
            .filter(|n| stored.data.contains_key(*n))
            .count(),
        2,
        "only f's name changed"
    );

    // A counter incremented under the new key adds up with its old-key part.
    assert_eq!(
        new.increment(&id, "n", 1, now()).await.unwrap(),
        Incremented::Value(6)
    );
    assert_eq!(raw(&inner, &id).await.data.len(), 4, "n has two parts");
    let loaded = new.load(&id, now()).await.unwrap().unwrap();
    assert_eq!(loaded.data["n"], "6");
    assert_eq!(loaded.data["f"], "\"b\"");
    // A compare-and-set merges the parts first.
    assert_eq!(
        new.compare_and_set(&id, "n", Some("6"), Some("7"), now())
            .await
            .unwrap(),
        tower_stateless::store::Swapped::Saved
    );
    assert_eq!(raw(&inner, &id).await.data.len(), 3, "n is one field again");

    // The user bound under the old key is still found, listed by the plain ID.
    assert_eq!(new.sessions_of_user("u", now()).await.unwrap().len(), 1);

    // Once the old key is gone, what only it sealed no longer opens: keep a retired key
    // for one absolute lifetime after it stopped sealing.
    let after = Sealed::new(inner.clone(), &Keys::new(key(2))).with_counters("n");
    assert!(is_corrupt(after.load(&id, now()).await), "the proof is old");
    let rebind = ChangeSet::default().with_user(Some("u".into()));
    assert_eq!(
        new.apply(&id, &rebind, now()).await.unwrap(),
        Applied::Saved
    );
    assert_eq!(
        after.load(&id, now()).await.unwrap().unwrap().data,
        HashMap::from([("f".into(), "\"b\"".into()), ("n".into(), "7".into())])
    );
    assert_eq!(after.destroy_sessions_of_user("u").await.unwrap(), 1);
}

/// What the layer does with a session that does not open: 503, as for any store failure,
/// and never an empty session in its place. Logging out needs no load, so it still works.
#[tokio::test]
async fn the_layer_answers_a_tampered_session_with_503() {
    let inner = MemoryStore::new();
    let store = Sealed::new(inner.clone(), &keys());
    let app = Router::new()
        .route(
            "/login/{role}",
            post(
                |session: Session, axum::extract::Path(role): axum::extract::Path<String>| async move {
                    session.insert("role", &role)
                },
            ),
        )
        .route(
            "/logout",
            post(|session: Session| async move { session.destroy() }),
        )
        .route(
            "/role",
            get(|session: Session| async move {
                session.get::<String>("role").await.map(|role| role.unwrap_or_default())
            }),
        )
        .layer(
            SessionLayer::builder(store, keys())
                .with_secure(false)
                .build()
                .unwrap(),
        );
    let send = |method: &str, path: &str, cookie: Option<&str>| {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };
    let login = |role: &'static str| async move {
        let response = send("POST", &format!("/login/{role}"), None).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    };
    let hashed = |cookie: &str| {
        let token = cookie.split_once('=').unwrap().1;
        let id = &token[..32];
        HashedId::from_stored(URL_SAFE_NO_PAD.encode(Sha256::digest(id.as_bytes())))
    };
    let (admin, guest) = (login("admin").await, login("guest").await);
    let read = send("GET", "/role", Some(&guest)).await.unwrap();
    assert_eq!(read.status(), StatusCode::OK);

    let (name, admins_role) = only_name(&inner, &hashed(&admin)).await;
    plant(&inner, &hashed(&guest), &name, &admins_role).await;
    let read = send("GET", "/role", Some(&guest)).await.unwrap();
    assert_eq!(read.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        read.headers().get(header::SET_COOKIE).is_none(),
        "cookie kept"
    );
}

/// The suite on a real Redis, sealed values and counters both; the shop's end-to-end
/// scan (`examples/shop/tests`) shows what a Redis holds after real traffic.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_conforms_sealed() {
    use std::sync::Arc;
    let Some(server) = support::RedisServer::start() else {
        return;
    };
    let store = tower_stateless::RedisStore::connect(&server.url())
        .await
        .unwrap();
    let sealed = Sealed::new(store.clone(), &keys());
    tower_stateless::conformance::all(Arc::new(sealed)).await;
    let counters = Sealed::new(store, &keys()).with_counters("");
    tower_stateless::conformance::all(Arc::new(counters)).await;
}

/// On a cluster `cycle_id` copies and deletes rather than moving in one script: the
/// re-sealing after it must hold there too.
#[cfg(feature = "redis")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_cluster_conforms_sealed() {
    use std::sync::Arc;
    let Some(cluster) = support::RedisCluster::start() else {
        return;
    };
    let nodes = tower_stateless::store::RedisTarget::cluster(cluster.nodes());
    let store = tower_stateless::RedisStore::connect(nodes).await.unwrap();
    let sealed = Sealed::new(store, &keys()).with_counters("n");
    tower_stateless::conformance::all(Arc::new(sealed)).await;
}

/// A fleet mid-rollout: phase-1 instances seal under the old key (the new one is
/// upcoming: it only opens), phase-2 instances under the new one (the old one retiring).
/// Whatever either writes, both read the same session, counters count every increment,
/// and log-out-everywhere from either ends sessions bound by both.
#[tokio::test]
async fn a_mixed_fleet_reads_and_counts_alike() {
    let inner = MemoryStore::new();
    let phase1 =
        Sealed::new(inner.clone(), &Keys::new(key(1)).with_upcoming(key(2))).with_counters("n");
    let phase2 =
        Sealed::new(inner.clone(), &Keys::new(key(2)).with_retiring(key(1))).with_counters("n");
    let first = create(&phase1, &[("f", "1")], Some("u")).await;
    let second = create(&phase2, &[("f", "2")], Some("u")).await;
    for round in 0..6 {
        let (writer, other) = if round % 2 == 0 {
            (&phase1, &phase2)
        } else {
            (&phase2, &phase1)
        };
        let set = ChangeSet::default().with_set("f", round.to_string());
        assert_eq!(
            writer.apply(&first, &set, now()).await.unwrap(),
            Applied::Saved
        );
        let later = ChangeSet::default().with_increment("n", 10);
        assert_eq!(
            writer.apply(&first, &later, now()).await.unwrap(),
            Applied::Saved
        );
        let added = writer.increment(&first, "n", 1, now()).await.unwrap();
        assert_eq!(added, Incremented::Value(11 * (round + 1)), "round {round}");
        let seen = other.load(&first, now()).await.unwrap().unwrap();
        assert_eq!(seen.data["f"], round.to_string());
        assert_eq!(seen.data["n"], (11 * (round + 1)).to_string());
        assert_eq!(seen, writer.load(&first, now()).await.unwrap().unwrap());
    }
    assert!(
        raw(&inner, &first).await.data.len() <= 4,
        "f once, n in at most two parts, the user's proof"
    );
    for instance in [&phase1, &phase2] {
        assert_eq!(
            instance.sessions_of_user("u", now()).await.unwrap().len(),
            2
        );
    }
    assert_eq!(phase1.destroy_sessions_of_user("u").await.unwrap(), 2);
    assert_eq!(phase2.load(&second, now()).await.unwrap(), None);
}
