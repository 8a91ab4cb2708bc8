//! The atomic operations: `increment`, `compare_and_set`, and deferred increments in a
//! change set.

use std::sync::Arc;
use std::time::Duration;

use super::fixture::{at, create, data, fresh_id, map, IDLE};
use crate::store::{
    Applied, ChangeSet, Cycled, IncrementError, Incremented, SessionStore, Swapped,
};

/// `increment` adds exactly (64-bit), counts an absent field as 0, refreshes the session,
/// rejects a non-integer value or an overflow without writing, and never revives a
/// session that is gone.
pub async fn increments_add_exactly<S: SessionStore>(store: &S) {
    let id = create(store, &[("word", "\"hello\"")], None).await;
    let now = at(IDLE - Duration::from_secs(60));
    let add = |field: &'static str, delta: i64| {
        let id = id.clone();
        async move {
            store
                .increment(&id, field, delta, now)
                .await
                .expect("increment failed")
        }
    };
    assert_eq!(
        add("n", 5).await,
        Incremented::Value(5),
        "absent counts as 0"
    );
    assert_eq!(add("n", -7).await, Incremented::Value(-2));
    let big = (1 << 53) + 1;
    assert_eq!(
        add("big", big).await,
        Incremented::Value(big),
        "exact beyond 2^53"
    );
    assert_eq!(add("big", 1).await, Incremented::Value(big + 1));
    assert_eq!(add("max", i64::MAX).await, Incremented::Value(i64::MAX));
    assert_eq!(
        add("max", 1).await,
        Incremented::Rejected(IncrementError::Overflow),
        "an overflow is rejected"
    );
    assert_eq!(add("min", i64::MIN).await, Incremented::Value(i64::MIN));
    assert_eq!(
        add("min", -1).await,
        Incremented::Rejected(IncrementError::Overflow)
    );
    assert_eq!(
        add("word", 1).await,
        Incremented::Rejected(IncrementError::NotAnInteger),
        "a string is not an integer"
    );
    let expected = map(&[
        ("word", "\"hello\""),
        ("n", "-2"),
        ("big", &(big + 1).to_string()),
        ("max", &i64::MAX.to_string()),
        ("min", &i64::MIN.to_string()),
    ]);
    assert_eq!(
        data(store, &id, at(IDLE + Duration::from_secs(60))).await,
        Some(expected),
        "rejected increments wrote nothing, and the session was refreshed"
    );

    store.destroy(&id).await.expect("destroy failed");
    assert_eq!(add("n", 1).await, Incremented::Gone, "no increment revives");
    assert_eq!(data(store, &id, now).await, None);
    let unknown = fresh_id();
    assert_eq!(
        store
            .increment(&unknown, "n", 1, now)
            .await
            .expect("increment failed"),
        Incremented::Gone,
        "nor creates"
    );
    assert_eq!(data(store, &unknown, now).await, None);
}

/// `compare_and_set` writes only over the expected value (`None`: absent), answers a
/// conflict with the current value, can remove, refreshes, and never revives.
pub async fn compare_and_set_swaps_only_the_expected_value<S: SessionStore>(store: &S) {
    let id = create(store, &[("k", "1")], None).await;
    let now = at(IDLE - Duration::from_secs(60));
    let swap = |expected: Option<&'static str>, new: Option<&'static str>| {
        let id = id.clone();
        async move {
            store
                .compare_and_set(&id, "k", expected, new, now)
                .await
                .expect("compare_and_set failed")
        }
    };
    assert_eq!(
        swap(Some("2"), Some("3")).await,
        Swapped::Conflict(Some("1".into())),
        "a wrong expectation gets the current value"
    );
    assert_eq!(
        swap(None, Some("3")).await,
        Swapped::Conflict(Some("1".into()))
    );
    assert_eq!(swap(Some("1"), Some("2")).await, Swapped::Saved);
    assert_eq!(swap(Some("2"), None).await, Swapped::Saved, "removes");
    assert_eq!(
        swap(Some("2"), Some("9")).await,
        Swapped::Conflict(None),
        "an absent field conflicts as None"
    );
    assert_eq!(swap(None, Some("4")).await, Swapped::Saved);
    assert_eq!(
        data(store, &id, at(IDLE + Duration::from_secs(60))).await,
        Some(map(&[("k", "4")])),
        "and the session was refreshed"
    );
    store.destroy(&id).await.expect("destroy failed");
    assert_eq!(swap(Some("4"), Some("5")).await, Swapped::Gone);
    assert_eq!(data(store, &id, now).await, None, "never revived");
}

/// Increments in a change set apply with the rest of it, all or nothing: one that meets
/// a non-integer value or overflows rejects the whole change set, in `apply` and in
/// `cycle_id`. After `clear`, an incremented field starts from nothing.
pub async fn deferred_increments_are_all_or_nothing<S: SessionStore>(store: &S) {
    let id = create(store, &[("n", "40"), ("word", "\"w\"")], None).await;
    let now = at(Duration::from_secs(1));
    let applied = store
        .apply(
            &id,
            &ChangeSet::default()
                .with_set("a", "1")
                .with_increment("n", 2)
                .with_increment("m", -1),
            now,
        )
        .await
        .expect("apply failed");
    assert_eq!(applied, Applied::Saved);
    let after_first = map(&[("a", "1"), ("n", "42"), ("m", "-1"), ("word", "\"w\"")]);
    assert_eq!(data(store, &id, now).await, Some(after_first.clone()));

    for (bad, why) in [
        ("word", IncrementError::NotAnInteger),
        ("n", IncrementError::Overflow),
    ] {
        let delta = if bad == "n" { i64::MAX } else { 1 };
        let changes = ChangeSet::default()
            .with_set("b", "2")
            .with_removed("a")
            .with_increment("m", 1)
            .with_increment(bad, delta);
        assert_eq!(
            store.apply(&id, &changes, now).await.expect("apply failed"),
            Applied::Rejected(why),
            "{bad}: rejected"
        );
        assert_eq!(
            data(store, &id, now).await,
            Some(after_first.clone()),
            "{bad}: nothing of a rejected change set is written"
        );
        let new = fresh_id();
        assert_eq!(
            store
                .cycle_id(&id, &new, &changes, now)
                .await
                .expect("cycle_id failed"),
            Cycled::Rejected(why),
            "{bad}: a cycle with a rejected increment"
        );
        assert_eq!(data(store, &new, now).await, None, "{bad}: no new session");
        assert_eq!(
            data(store, &id, now).await,
            Some(after_first.clone()),
            "{bad}: the old session is untouched"
        );
    }

    let cleared = ChangeSet {
        clear: true,
        ..ChangeSet::default()
    }
    .with_increment("n", 5);
    assert_eq!(
        store.apply(&id, &cleared, now).await.expect("apply failed"),
        Applied::Saved
    );
    assert_eq!(
        data(store, &id, now).await,
        Some(map(&[("n", "5")])),
        "after clear, an increment starts from nothing"
    );
    let new = fresh_id();
    let moved = store
        .cycle_id(&id, &new, &ChangeSet::default().with_increment("n", 1), now)
        .await
        .expect("cycle_id failed");
    assert_eq!(moved, Cycled::Saved);
    assert_eq!(data(store, &new, now).await, Some(map(&[("n", "6")])));
    store.destroy(&new).await.expect("destroy failed");
}

/// 64 concurrent `increment`s of one field all count, and 16 concurrent
/// compare-and-set loops appending to one list all land.
pub async fn concurrent_increments_all_count<S: SessionStore>(store: Arc<S>) {
    let id = create(&*store, &[], None).await;
    let now = at(Duration::from_secs(1));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (store, id) = (store.clone(), id.clone());
        tasks.spawn(async move {
            let added = store.increment(&id, "n", 1, now).await;
            assert!(
                matches!(added.expect("increment failed"), Incremented::Value(_)),
                "a concurrent increment of a live session"
            );
        });
    }
    for n in 0..16 {
        let (store, id) = (store.clone(), id.clone());
        tasks.spawn(async move {
            let mut current = None::<String>;
            loop {
                let mut list: Vec<u32> = current
                    .as_deref()
                    .map(|json| serde_json::from_str(json).expect("a JSON list"))
                    .unwrap_or_default();
                list.push(n);
                let new = serde_json::to_string(&list).expect("serializable");
                let swapped = store
                    .compare_and_set(&id, "list", current.as_deref(), Some(&new), now)
                    .await
                    .expect("compare_and_set failed");
                match swapped {
                    Swapped::Saved => break,
                    Swapped::Conflict(now) => current = now,
                    other => panic!("a live session answered {other:?}"),
                }
            }
        });
    }
    while let Some(task) = tasks.join_next().await {
        task.expect("a writer panicked");
    }
    let loaded = data(&*store, &id, now).await.expect("still live");
    assert_eq!(loaded["n"], "64", "every concurrent increment counted");
    let mut list: Vec<u32> = serde_json::from_str(&loaded["list"]).expect("a JSON list");
    list.sort_unstable();
    assert_eq!(list, (0..16).collect::<Vec<_>>(), "every update landed");
    store.destroy(&id).await.expect("destroy failed");
}
