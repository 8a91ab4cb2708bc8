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
