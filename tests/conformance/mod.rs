//! The store conformance suite: every `SessionStore` must pass `run`.
//!
//! It uses fresh random IDs and user names, so it can run against a shared server,
//! and passes explicit `Lifetime`s, so expiry is tested without waiting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tower_stateless::{
    Applied, ChangeSet, Created, Cycled, HashedId, Lifetime, Metadata, Record, SessionStore,
    Timestamp,
};

const IDLE: Duration = Duration::from_secs(3600);
const ABSOLUTE: Duration = Duration::from_secs(10 * 3600);
const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

fn at(after: Duration) -> Lifetime {
    Lifetime::new(T0.saturating_add(after), IDLE, ABSOLUTE)
}

fn random_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut text = String::new();
    for _ in 0..4 {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos(),
        );
        text.push_str(&format!("{:016x}", hasher.finish()));
    }
    text
}

fn fresh_id() -> HashedId {
    HashedId::from_stored(random_token())
}

fn record(pairs: &[(&str, &str)], user: Option<&str>) -> Record {
    let data: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut metadata = Metadata::new(T0);
    metadata.user_id = user.map(str::to_owned);
    Record::new(data, metadata)
}

async fn create<S: SessionStore>(
    store: &S,
    pairs: &[(&str, &str)],
    user: Option<&str>,
) -> HashedId {
    let id = fresh_id();
    assert_eq!(
        store
            .create(&id, &record(pairs, user), at(Duration::ZERO))
            .await
            .unwrap(),
        Created::Saved
    );
    id
}

async fn data<S: SessionStore>(
    store: &S,
    id: &HashedId,
    lifetime: Lifetime,
) -> Option<HashMap<String, String>> {
    store
        .load(id, lifetime)
        .await
        .unwrap()
        .map(|record| record.data)
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Runs every conformance check against `store`.
pub async fn run<S: SessionStore>(store: Arc<S>) {
    store.ping().await.expect("ping");
    create_and_load(&*store).await;
    apply_changes_only_what_changed(&*store).await;
    writes_never_revive(&*store).await;
    expiry(&*store).await;
    touch(&*store).await;
    cycle_id(&*store).await;
    users(&*store).await;
    values_survive_byte_for_byte(&*store).await;
    large_change_sets(&*store).await;
    concurrent_applies_all_land(store).await;
}

async fn create_and_load<S: SessionStore>(store: &S) {
    assert_eq!(
        store.load(&fresh_id(), at(Duration::ZERO)).await.unwrap(),
        None,
        "unknown ID"
    );

    let id = create(store, &[("a", "1"), ("b", "\"two\"")], Some("alice")).await;
    let loaded = store
        .load(&id, at(Duration::from_secs(1)))
        .await
        .unwrap()
        .expect("created session loads");
    assert_eq!(
        loaded,
        record(&[("a", "1"), ("b", "\"two\"")], Some("alice"))
    );

    let clash = store
        .create(&id, &record(&[("x", "9")], None), at(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(clash, Created::IdInUse, "create never overwrites");
    assert_eq!(
        data(store, &id, at(Duration::ZERO)).await,
        Some(map(&[("a", "1"), ("b", "\"two\"")]))
    );

    store.destroy(&id).await.unwrap();
    assert_eq!(
        store.load(&id, at(Duration::ZERO)).await.unwrap(),
        None,
        "destroyed"
    );
    store.destroy(&id).await.expect("destroying twice is fine");
}

async fn apply_changes_only_what_changed<S: SessionStore>(store: &S) {
    let id = create(
        store,
        &[("keep", "1"), ("change", "2"), ("drop", "3")],
        None,
    )
    .await;
    let changes = ChangeSet::default()
        .with_set("change", "20")
        .with_removed("drop")
        .with_set("new", "4");
    let later = at(Duration::from_secs(60));
    assert_eq!(
        store.apply(&id, &changes, later).await.unwrap(),
        Applied::Saved
    );
    let loaded = store.load(&id, later).await.unwrap().unwrap();
    assert_eq!(
        loaded.data,
        map(&[("keep", "1"), ("change", "20"), ("new", "4")])
    );
    assert_eq!(loaded.metadata.created_at, T0, "creation time is kept");
    assert_eq!(loaded.metadata.refreshed_at, later.now, "a write refreshes");

    let mut cleared = ChangeSet::default().with_set("only", "5");
    cleared.clear = true;
    assert_eq!(
        store.apply(&id, &cleared, later).await.unwrap(),
        Applied::Saved
    );
    assert_eq!(data(store, &id, later).await, Some(map(&[("only", "5")])));
    store.destroy(&id).await.unwrap();
}

async fn writes_never_revive<S: SessionStore>(store: &S) {
    let never = fresh_id();
    let changes = ChangeSet::default().with_set("a", "1");
    assert_eq!(
        store
            .apply(&never, &changes, at(Duration::ZERO))
            .await
            .unwrap(),
        Applied::Gone
    );
    assert_eq!(
        store.load(&never, at(Duration::ZERO)).await.unwrap(),
        None,
        "apply does not create"
    );

    let id = create(store, &[("a", "1")], None).await;
    store.destroy(&id).await.unwrap();
    assert_eq!(
        store
            .apply(&id, &changes, at(Duration::ZERO))
            .await
            .unwrap(),
        Applied::Gone
    );
    assert_eq!(
        store.touch(&id, at(Duration::ZERO)).await.unwrap(),
        Applied::Gone
    );
    let cycled = store
        .cycle_id(&id, &fresh_id(), &changes, at(Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(cycled, Cycled::Gone);
    assert_eq!(
        store.load(&id, at(Duration::ZERO)).await.unwrap(),
        None,
        "a destroyed session stays destroyed"
    );
}

async fn expiry<S: SessionStore>(store: &S) {
    let id = create(store, &[("a", "1")], None).await;
    assert!(store
        .load(&id, at(IDLE - Duration::from_millis(1)))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.load(&id, at(IDLE)).await.unwrap(),
        None,
        "idle timeout"
    );
    let changes = ChangeSet::default().with_set("b", "2");
    assert_eq!(
        store.apply(&id, &changes, at(IDLE)).await.unwrap(),
        Applied::Gone,
        "no write to an idle-expired session"
    );

    // Refreshed every half idle timeout, it still dies at the absolute lifetime.
    let id = create(store, &[("a", "1")], None).await;
    let mut elapsed = Duration::ZERO;
    while elapsed + IDLE / 2 < ABSOLUTE {
        elapsed += IDLE / 2;
        assert_eq!(
            store.touch(&id, at(elapsed)).await.unwrap(),
            Applied::Saved,
            "alive at {elapsed:?}"
        );
    }
    assert!(store
        .load(&id, at(ABSOLUTE - Duration::from_millis(1)))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        store.load(&id, at(ABSOLUTE)).await.unwrap(),
        None,
        "absolute lifetime"
    );
    assert_eq!(
        store.apply(&id, &changes, at(ABSOLUTE)).await.unwrap(),
        Applied::Gone
    );
    assert_eq!(store.touch(&id, at(ABSOLUTE)).await.unwrap(), Applied::Gone);
}

async fn touch<S: SessionStore>(store: &S) {
    let id = create(store, &[("a", "1")], None).await;
    let later = at(IDLE / 2);
    assert_eq!(store.touch(&id, later).await.unwrap(), Applied::Saved);
    let loaded = store
        .load(&id, at(IDLE + IDLE / 4))
        .await
        .unwrap()
        .expect("touch extended the idle timeout");
    assert_eq!(loaded.metadata.refreshed_at, later.now);
    assert_eq!(loaded.data, map(&[("a", "1")]), "touch leaves data alone");
    store.destroy(&id).await.unwrap();
}

async fn cycle_id<S: SessionStore>(store: &S) {
    let old = create(store, &[("a", "1"), ("b", "2")], None).await;
    let new = fresh_id();
    let changes = ChangeSet::default()
        .with_set("user", "\"alice\"")
        .with_removed("b");
    let later = at(Duration::from_secs(5));
    assert_eq!(
        store.cycle_id(&old, &new, &changes, later).await.unwrap(),
        Cycled::Saved
    );
    assert_eq!(
        store.load(&old, later).await.unwrap(),
        None,
        "old ID is dead"
    );
    let moved = store
        .load(&new, later)
        .await
        .unwrap()
        .expect("new ID holds the session");
    assert_eq!(moved.data, map(&[("a", "1"), ("user", "\"alice\"")]));
    assert_eq!(
        moved.metadata.created_at, T0,
        "cycling keeps the absolute lifetime"
    );

    let taken = create(store, &[("other", "1")], None).await;
    let clash = store
        .cycle_id(&new, &taken, &ChangeSet::default(), later)
        .await
        .unwrap();
    assert_eq!(clash, Cycled::IdInUse);
    assert_eq!(
        data(store, &taken, later).await,
        Some(map(&[("other", "1")])),
        "never overwrites"
    );
    assert!(
        store.load(&new, later).await.unwrap().is_some(),
        "a refused cycle keeps the session"
    );
    store.destroy(&new).await.unwrap();
    store.destroy(&taken).await.unwrap();
}

async fn users<S: SessionStore>(store: &S) {
    let (alice, bob) = (
        format!("alice-{}", random_token()),
        format!("bob-{}", random_token()),
    );
    let now = at(Duration::ZERO);
    let first = create(store, &[], Some(&alice)).await;
    let second = create(store, &[], None).await;
    let bind = ChangeSet::default().with_user(Some(alice.clone()));
    assert_eq!(
        store.apply(&second, &bind, now).await.unwrap(),
        Applied::Saved
    );
    let bobs = create(store, &[], Some(&bob)).await;

    let mut listed: Vec<HashedId> = store
        .sessions_of_user(&alice, now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    listed.sort();
    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(listed, expected);

    // Cycling carries the binding to the new ID.
    let cycled = fresh_id();
    assert_eq!(
        store
            .cycle_id(&first, &cycled, &ChangeSet::default(), now)
            .await
            .unwrap(),
        Cycled::Saved
    );
    let listed: Vec<HashedId> = store
        .sessions_of_user(&alice, now)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert!(
        listed.contains(&cycled) && !listed.contains(&first),
        "{listed:?}"
    );

    // Rebinding moves the session to another user's list.
    let unbind = ChangeSet::default().with_user(Some(bob.clone()));
    assert_eq!(
        store.apply(&second, &unbind, now).await.unwrap(),
        Applied::Saved
    );
    assert_eq!(store.sessions_of_user(&alice, now).await.unwrap().len(), 1);
    assert_eq!(store.sessions_of_user(&bob, now).await.unwrap().len(), 2);

    assert_eq!(store.destroy_sessions_of_user(&bob).await.unwrap(), 2);
    assert_eq!(store.load(&bobs, now).await.unwrap(), None);
    assert_eq!(store.load(&second, now).await.unwrap(), None);
    assert!(
        store.load(&cycled, now).await.unwrap().is_some(),
        "other users are untouched"
    );
    assert!(store.sessions_of_user(&bob, now).await.unwrap().is_empty());
    assert_eq!(store.destroy_sessions_of_user(&bob).await.unwrap(), 0);

    // Expired sessions are not listed (checked last: a store may prune what it finds expired).
    assert!(store
        .sessions_of_user(&alice, at(IDLE))
        .await
        .unwrap()
        .is_empty());
    store.destroy_sessions_of_user(&alice).await.unwrap();
    assert!(store
        .sessions_of_user(&alice, now)
        .await
        .unwrap()
        .is_empty());
}

async fn values_survive_byte_for_byte<S: SessionStore>(store: &S) {
    let awkward = [
        ("", "\"empty key\""),
        (":meta-looking", "1"),
        ("::double", "2"),
        ("unicode ключ 🗝", "\"значение \\u0000 \\n\""),
        ("big", &"7".repeat(100_000)),
    ];
    let id = create(store, &awkward, None).await;
    assert_eq!(
        data(store, &id, at(Duration::ZERO)).await,
        Some(map(&awkward))
    );
    store.destroy(&id).await.unwrap();
}

/// Thousands of fields in one change set (scripts must chunk what they unpack).
async fn large_change_sets<S: SessionStore>(store: &S) {
    let id = create(store, &[], None).await;
    let mut changes = ChangeSet::default();
    for n in 0..2500 {
        changes = changes.with_set(format!("f{n}"), n.to_string());
    }
    assert_eq!(
        store
            .apply(&id, &changes, at(Duration::ZERO))
            .await
            .unwrap(),
        Applied::Saved
    );
    let mut changes = ChangeSet::default().with_set("last", "1");
    for n in 0..1500 {
        changes = changes.with_removed(format!("f{n}"));
    }
    assert_eq!(
        store
            .apply(&id, &changes, at(Duration::ZERO))
            .await
            .unwrap(),
        Applied::Saved
    );
    let data = data(store, &id, at(Duration::ZERO)).await.unwrap();
    assert_eq!(data.len(), 1001);
    assert_eq!(data.get("f2499").map(String::as_str), Some("2499"));
    assert!(!data.contains_key("f0"));
    store.destroy(&id).await.unwrap();
}

async fn concurrent_applies_all_land<S: SessionStore>(store: Arc<S>) {
    let id = create(&*store, &[], None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let (store, id) = (store.clone(), id.clone());
        tasks.spawn(async move {
            let changes = ChangeSet::default().with_set(format!("key-{n}"), n.to_string());
            store
                .apply(&id, &changes, at(Duration::from_secs(1)))
                .await
                .unwrap()
        });
    }
    while let Some(applied) = tasks.join_next().await {
        assert_eq!(applied.unwrap(), Applied::Saved);
    }
    let loaded = data(&*store, &id, at(Duration::from_secs(1)))
        .await
        .unwrap();
    assert_eq!(loaded.len(), 64, "every concurrent change set landed");
    store.destroy(&id).await.unwrap();
}
