//! The per-user index behind "log out everywhere".

use std::time::Duration;

use super::fixture::{at, create, fresh_id, fresh_user, IDLE};
use crate::store::{Applied, ChangeSet, Cycled, Expiry, HashedId, SessionStore};

/// The IDs `sessions_of_user` lists for `user` at `expiry`, sorted.
async fn listed<S: SessionStore>(store: &S, user: &str, expiry: Expiry) -> Vec<HashedId> {
    let mut ids: Vec<HashedId> = store
        .sessions_of_user(user, expiry)
        .await
        .expect("sessions_of_user failed")
        .into_iter()
        .map(|summary| summary.id)
        .collect();
    ids.sort();
    ids
}

/// Sessions are listed under the user they are bound to (by `create` or by a change
/// set), follow their session through `cycle_id` and rebinding, are not listed once
/// expired, and `destroy_sessions_of_user` deletes exactly that user's sessions.
pub async fn user_index<S: SessionStore>(store: &S) {
    let (alice, bob) = (fresh_user("alice"), fresh_user("bob"));
    let now = at(Duration::ZERO);
    let first = create(store, &[], Some(&alice)).await;
    let second = create(store, &[], None).await;
    let bind = ChangeSet::default().with_user(Some(alice.clone()));
    assert_eq!(
        store
            .apply(&second, &bind, now)
            .await
            .expect("apply failed"),
        Applied::Saved,
        "binding a user with apply"
    );
    let bobs = create(store, &[], Some(&bob)).await;

    let mut expected = vec![first.clone(), second.clone()];
    expected.sort();
    assert_eq!(
        listed(store, &alice, now).await,
        expected,
        "sessions bound by create and by apply are listed"
    );

    // Cycling carries the binding to the new ID.
    let cycled = fresh_id();
    assert_eq!(
        store
            .cycle_id(&first, &cycled, &ChangeSet::default(), now)
            .await
            .expect("cycle_id failed"),
        Cycled::Saved,
        "cycle_id of a bound session"
    );
    let after_cycle = listed(store, &alice, now).await;
    assert!(
        after_cycle.contains(&cycled) && !after_cycle.contains(&first),
        "the new ID is listed instead of the old one: {after_cycle:?}"
    );

    // Rebinding moves the session to another user's list.
    let rebind = ChangeSet::default().with_user(Some(bob.clone()));
    assert_eq!(
        store
            .apply(&second, &rebind, now)
            .await
            .expect("apply failed"),
        Applied::Saved,
        "rebinding to another user"
    );
    assert_eq!(
        listed(store, &alice, now).await.len(),
        1,
        "a rebound session leaves its old user's list"
    );
    assert_eq!(
        listed(store, &bob, now).await.len(),
        2,
        "a rebound session joins its new user's list"
    );

    assert_eq!(
        store
            .destroy_sessions_of_user(&bob)
            .await
            .expect("destroy_sessions_of_user failed"),
        2,
        "destroy_sessions_of_user counts what it deleted"
    );
    assert_eq!(
        store.load(&bobs, now).await.expect("load failed"),
        None,
        "the user's sessions are destroyed"
    );
    assert_eq!(
        store.load(&second, now).await.expect("load failed"),
        None,
        "the rebound session is destroyed with its new user's"
    );
    assert!(
        store
            .load(&cycled, now)
            .await
            .expect("load failed")
            .is_some(),
        "other users are untouched"
    );
    assert!(
        listed(store, &bob, now).await.is_empty(),
        "nothing is listed after destroy_sessions_of_user"
    );
    assert_eq!(
        store
            .destroy_sessions_of_user(&bob)
            .await
            .expect("destroy_sessions_of_user failed"),
        0,
        "destroying an empty list deletes nothing"
    );

    // Expired sessions are not listed (checked last: a store may prune what it finds expired).
    assert!(
        listed(store, &alice, at(IDLE)).await.is_empty(),
        "expired sessions are not listed"
    );
    store
        .destroy_sessions_of_user(&alice)
        .await
        .expect("destroy_sessions_of_user failed");
    assert!(
        listed(store, &alice, now).await.is_empty(),
        "nothing is listed after destroy_sessions_of_user"
    );
}

/// `sessions_of_user` reports when a write last bound each session to its user (what the
/// session limit ranks by, so that instances racing two logins agree on the newer one): a
/// later binding is later, a write that keeps the user keeps the time, and binding again
/// makes the session the newest. The case waits a few milliseconds between writes and
/// moves its [`Expiry`] on by a second, so a store may use its own clock or the layer's.
pub async fn bindings_are_ordered<S: SessionStore>(store: &S) {
    let user = &fresh_user("ada");
    let bound_at = |listing: Vec<crate::store::SessionSummary>, id: &HashedId| {
        let summary = listing.into_iter().find(|summary| summary.id == *id);
        let summary = summary.expect("the bound session is listed");
        summary
            .bound_at
            .expect("a store reports when a session was bound")
    };
    let pause = || tokio::time::sleep(Duration::from_millis(5));
    let at_second = |n: u64| at(Duration::from_secs(n));
    let write = |id: HashedId, changes: ChangeSet, n: u64| async move {
        let applied = store.apply(&id, &changes, at_second(n)).await;
        assert_eq!(applied.expect("apply failed"), Applied::Saved, "apply");
    };
    let list = |n: u64| async move {
        (store.sessions_of_user(user, at_second(n)).await).expect("sessions_of_user failed")
    };

    let first = create(store, &[], Some(user)).await;
    pause().await;
    let second = create(store, &[], None).await;
    let bind = ChangeSet::default().with_user(Some(user.clone()));
    write(second.clone(), bind.clone(), 1).await;
    let listing = list(1).await;
    let (first_at, second_at) = (
        bound_at(listing.clone(), &first),
        bound_at(listing, &second),
    );
    assert!(first_at < second_at, "a later binding is later");

    pause().await;
    write(first.clone(), ChangeSet::default().with_set("k", "1"), 2).await;
    assert_eq!(
        bound_at(list(2).await, &first),
        first_at,
        "a write that keeps the user keeps the binding time"
    );

    pause().await;
    write(first.clone(), bind, 3).await;
    assert!(
        bound_at(list(3).await, &first) > second_at,
        "binding again makes the session the newest"
    );
    store
        .destroy_sessions_of_user(user)
        .await
        .expect("destroy_sessions_of_user failed");
}

/// `destroy_many` deletes exactly the sessions named, skips IDs that do not exist, and an
/// empty list deletes nothing.
pub async fn destroy_many_deletes_exactly_those<S: SessionStore>(store: &S) {
    let now = at(Duration::ZERO);
    let ids: Vec<HashedId> = created(store, 5).await;
    let (doomed, kept) = ids.split_at(3);
    let mut named = doomed.to_vec();
    named.push(fresh_id());
    store
        .destroy_many(&named)
        .await
        .expect("destroy_many failed");
    store
        .destroy_many(&[])
        .await
        .expect("destroy_many of nothing failed");
    for id in doomed {
        let loaded = store.load(id, now).await.expect("load failed");
        assert_eq!(loaded, None, "a session destroy_many named is gone");
    }
    for id in kept {
        let loaded = store.load(id, now).await.expect("load failed");
        assert!(
            loaded.is_some(),
            "a session destroy_many did not name is kept"
        );
    }
    store.destroy_many(kept).await.expect("destroy_many failed");
}

async fn created<S: SessionStore>(store: &S, n: usize) -> Vec<HashedId> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(create(store, &[("k", "1")], None).await);
    }
    ids
}
