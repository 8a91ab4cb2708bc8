//! Concurrent writers to one session.

use std::sync::Arc;
use std::time::Duration;

use super::fixture::{at, create, data, fresh_id, fresh_user};
use crate::store::{Applied, ChangeSet, SessionStore};

/// 64 `apply` calls to one session, run as concurrent tasks, each setting its own field:
/// every one lands (no read-modify-write of the whole record).
///
/// Spawns the tasks on the current tokio runtime; on a multi-threaded runtime they also run
/// in parallel.
pub async fn concurrent_applies_all_land<S: SessionStore>(store: Arc<S>) {
    let id = create(&*store, &[], None).await;
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..64 {
        let (store, id) = (store.clone(), id.clone());
        tasks.spawn(async move {
            let changes = ChangeSet::default().with_set(format!("key-{n}"), n.to_string());
            store
                .apply(&id, &changes, at(Duration::from_secs(1)))
                .await
                .expect("apply failed")
        });
    }
    while let Some(applied) = tasks.join_next().await {
        assert_eq!(
            applied.expect("an apply task panicked"),
            Applied::Saved,
            "a concurrent apply to a live session"
        );
    }
    let loaded = data(&*store, &id, at(Duration::from_secs(1)))
        .await
        .expect("the session is still live");
    assert_eq!(loaded.len(), 64, "every concurrent change set landed");
    store.destroy(&id).await.expect("destroy failed");
}

/// Rounds of [`log_out_everywhere_catches_a_moving_session`].
const MOVING_ROUNDS: usize = 300;

/// `destroy_sessions_of_user` racing a `cycle_id` of one of the user's sessions: once it
/// returns, the old ID is dead; once the cycle returns too, the new ID is dead, whichever
/// finished first. (A store that moves a session by copying, as `RedisStore` does on a
/// cluster, may briefly hold the copy of a cycle that then fails; no token for it is ever
/// handed out, and the cycle deletes it before it returns.)
pub async fn log_out_everywhere_catches_a_moving_session<S: SessionStore>(store: Arc<S>) {
    let now = at(Duration::from_secs(1));
    let mut survived = 0;
    for _ in 0..MOVING_ROUNDS {
        let user = fresh_user("moving");
        let old = create(&*store, &[("k", "1")], Some(&user)).await;
        let new = fresh_id();
        let cycle = {
            let (store, old, new) = (store.clone(), old.clone(), new.clone());
            tokio::spawn(async move {
                let changes = ChangeSet::default().with_set("cycled", "1");
                store.cycle_id(&old, &new, &changes, now).await
            })
        };
        store
            .destroy_sessions_of_user(&user)
            .await
            .expect("destroy_sessions_of_user failed");
        let old_alive = data(&*store, &old, now).await.is_some();
        let _moved_or_not = cycle
            .await
            .expect("the cycle task panicked")
            .expect("cycle_id failed");
        let new_alive = data(&*store, &new, now).await.is_some();
        if old_alive || new_alive {
            survived += 1;
        }
        store.destroy(&old).await.expect("destroy failed");
        store.destroy(&new).await.expect("destroy failed");
    }
    assert_eq!(
        survived, 0,
        "sessions alive after log-out-everywhere, of {MOVING_ROUNDS} rounds"
    );
}
