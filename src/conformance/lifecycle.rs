//! A session's life: created, loaded, changed, touched, moved to a new ID, destroyed.

use std::time::Duration;

use super::fixture::{at, create, data, fresh_id, map, record, IDLE, T0};
use crate::store::{Applied, ChangeSet, Created, Cycled, SessionStore};

/// `ping` answers.
pub async fn ping_answers<S: SessionStore>(store: &S) {
    store.ping().await.expect("ping failed");
}

/// `load` finds nothing under an unknown ID and the record under a created one;
/// `create` never overwrites; `destroy` deletes, and destroying twice is fine.
pub async fn create_and_load<S: SessionStore>(store: &S) {
    assert_eq!(
        store
            .load(&fresh_id(), at(Duration::ZERO))
            .await
            .expect("load failed"),
        None,
        "an unknown ID loads nothing"
    );

    let id = create(store, &[("a", "1"), ("b", "\"two\"")], Some("alice")).await;
    let loaded = store
        .load(&id, at(Duration::from_secs(1)))
        .await
        .expect("load failed")
        .expect("a created session loads");
    assert_eq!(
        loaded,
        record(&[("a", "1"), ("b", "\"two\"")], Some("alice")),
        "load returns the record as created"
    );

    let clash = store
        .create(&id, &record(&[("x", "9")], None), at(Duration::ZERO))
        .await
        .expect("create failed");
    assert_eq!(clash, Created::IdInUse, "create never overwrites");
    assert_eq!(
        data(store, &id, at(Duration::ZERO)).await,
        Some(map(&[("a", "1"), ("b", "\"two\"")])),
        "a refused create leaves the session alone"
    );

    store.destroy(&id).await.expect("destroy failed");
    assert_eq!(
        store
            .load(&id, at(Duration::ZERO))
            .await
            .expect("load failed"),
        None,
        "a destroyed session loads nothing"
    );
    store.destroy(&id).await.expect("destroying twice is fine");
}

/// `apply` sets and removes exactly the fields in the change set, keeps the others and
/// the creation time, sets `refreshed_at`; with `clear`, only the fields it sets remain.
pub async fn apply_changes_only_what_changed<S: SessionStore>(store: &S) {
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
        store
            .apply(&id, &changes, later)
            .await
            .expect("apply failed"),
        Applied::Saved,
        "apply to a live session"
    );
    let loaded = store
        .load(&id, later)
        .await
        .expect("load failed")
        .expect("the session is still live after apply");
    assert_eq!(
        loaded.data,
        map(&[("keep", "1"), ("change", "20"), ("new", "4")]),
        "only the changed fields changed"
    );
    assert_eq!(loaded.metadata.created_at, T0, "creation time is kept");
    assert_eq!(loaded.metadata.refreshed_at, later.now, "a write refreshes");

    let mut cleared = ChangeSet::default().with_set("only", "5");
    cleared.clear = true;
    assert_eq!(
        store
            .apply(&id, &cleared, later)
            .await
            .expect("apply failed"),
        Applied::Saved,
        "apply with clear"
    );
    assert_eq!(
        data(store, &id, later).await,
        Some(map(&[("only", "5")])),
        "clear removes every field the change set does not set"
    );
    store.destroy(&id).await.expect("destroy failed");
}

/// `apply`, `touch` and `cycle_id` never create a session that does not exist or has
/// been destroyed: that is what keeps a logout from being undone by a request in flight.
pub async fn writes_never_revive<S: SessionStore>(store: &S) {
    let never = fresh_id();
    let changes = ChangeSet::default().with_set("a", "1");
    assert_eq!(
        store
            .apply(&never, &changes, at(Duration::ZERO))
            .await
            .expect("apply failed"),
        Applied::Gone,
        "apply to an unknown ID"
    );
    assert_eq!(
        store
            .load(&never, at(Duration::ZERO))
            .await
            .expect("load failed"),
        None,
        "apply does not create"
    );

    let id = create(store, &[("a", "1")], None).await;
    store.destroy(&id).await.expect("destroy failed");
    assert_eq!(
        store
            .apply(&id, &changes, at(Duration::ZERO))
            .await
            .expect("apply failed"),
        Applied::Gone,
        "apply to a destroyed session"
    );
    assert_eq!(
        store
            .touch(&id, at(Duration::ZERO))
            .await
            .expect("touch failed"),
        Applied::Gone,
        "touch of a destroyed session"
    );
    let cycled = store
        .cycle_id(&id, &fresh_id(), &changes, at(Duration::ZERO))
        .await
        .expect("cycle_id failed");
    assert_eq!(cycled, Cycled::Gone, "cycle_id of a destroyed session");
    assert_eq!(
        store
            .load(&id, at(Duration::ZERO))
            .await
            .expect("load failed"),
        None,
        "a destroyed session stays destroyed"
    );
}

/// `touch` extends the idle timeout and sets `refreshed_at`, and leaves the data alone.
pub async fn touch_refreshes_the_idle_timeout<S: SessionStore>(store: &S) {
    let id = create(store, &[("a", "1")], None).await;
    let later = at(IDLE / 2);
    assert_eq!(
        store.touch(&id, later).await.expect("touch failed"),
        Applied::Saved,
        "touch of a live session"
    );
    let loaded = store
        .load(&id, at(IDLE + IDLE / 4))
        .await
        .expect("load failed")
        .expect("touch extended the idle timeout");
    assert_eq!(
        loaded.metadata.refreshed_at, later.now,
        "touch sets refreshed_at"
    );
    assert_eq!(loaded.data, map(&[("a", "1")]), "touch leaves data alone");
    store.destroy(&id).await.expect("destroy failed");
}

/// `cycle_id` moves a live session to a free ID with the changes applied and the
/// creation time kept, and the old ID dies; it refuses a taken ID and then changes nothing.
pub async fn cycle_id_moves_the_session<S: SessionStore>(store: &S) {
    let old = create(store, &[("a", "1"), ("b", "2")], None).await;
    let new = fresh_id();
    let changes = ChangeSet::default()
        .with_set("user", "\"alice\"")
        .with_removed("b");
    let later = at(Duration::from_secs(5));
    assert_eq!(
        store
            .cycle_id(&old, &new, &changes, later)
            .await
            .expect("cycle_id failed"),
        Cycled::Saved,
        "cycle_id of a live session to a free ID"
    );
    assert_eq!(
        store.load(&old, later).await.expect("load failed"),
        None,
        "the old ID is dead"
    );
    let moved = store
        .load(&new, later)
        .await
        .expect("load failed")
        .expect("the new ID holds the session");
    assert_eq!(
        moved.data,
        map(&[("a", "1"), ("user", "\"alice\"")]),
        "the changes are applied on the way"
    );
    assert_eq!(
        moved.metadata.created_at, T0,
        "cycling keeps the absolute lifetime"
    );

    let taken = create(store, &[("other", "1")], None).await;
    let clash = store
        .cycle_id(&new, &taken, &ChangeSet::default(), later)
        .await
        .expect("cycle_id failed");
    assert_eq!(clash, Cycled::IdInUse, "cycle_id to a taken ID");
    assert_eq!(
        data(store, &taken, later).await,
        Some(map(&[("other", "1")])),
        "cycle_id never overwrites"
    );
    assert!(
        store
            .load(&new, later)
            .await
            .expect("load failed")
            .is_some(),
        "a refused cycle keeps the session"
    );
    store.destroy(&new).await.expect("destroy failed");
    store.destroy(&taken).await.expect("destroy failed");
}
