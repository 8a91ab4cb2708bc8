//! Expiry: the idle timeout and the absolute lifetime, judged by the `Expiry` passed in.

use std::time::Duration;

use super::fixture::{at, create, ABSOLUTE, IDLE};
use crate::store::{Applied, ChangeSet, SessionStore};

/// A session dies at its idle timeout, and, however often it is refreshed, at its
/// absolute lifetime; a dead session loads nothing and takes no writes.
pub async fn idle_and_absolute_expiry<S: SessionStore>(store: &S) {
    let id = create(store, &[("a", "1")], None).await;
    assert!(
        store
            .load(&id, at(IDLE - Duration::from_millis(1)))
            .await
            .expect("load failed")
            .is_some(),
        "alive 1 ms before the idle timeout"
    );
    assert_eq!(
        store.load(&id, at(IDLE)).await.expect("load failed"),
        None,
        "dead at the idle timeout"
    );
    let changes = ChangeSet::default().with_set("b", "2");
    assert_eq!(
        store
            .apply(&id, &changes, at(IDLE))
            .await
            .expect("apply failed"),
        Applied::Gone,
        "no write to an idle-expired session"
    );

    // Refreshed every half idle timeout, it still dies at the absolute lifetime.
    let id = create(store, &[("a", "1")], None).await;
    let mut elapsed = Duration::ZERO;
    while elapsed + IDLE / 2 < ABSOLUTE {
        elapsed += IDLE / 2;
        assert_eq!(
            store.touch(&id, at(elapsed)).await.expect("touch failed"),
            Applied::Saved,
            "alive at {elapsed:?}"
        );
    }
    assert!(
        store
            .load(&id, at(ABSOLUTE - Duration::from_millis(1)))
            .await
            .expect("load failed")
            .is_some(),
        "alive 1 ms before the absolute lifetime"
    );
    assert_eq!(
        store.load(&id, at(ABSOLUTE)).await.expect("load failed"),
        None,
        "dead at the absolute lifetime"
    );
    assert_eq!(
        store
            .apply(&id, &changes, at(ABSOLUTE))
            .await
            .expect("apply failed"),
        Applied::Gone,
        "no write past the absolute lifetime"
    );
    assert_eq!(
        store.touch(&id, at(ABSOLUTE)).await.expect("touch failed"),
        Applied::Gone,
        "no touch past the absolute lifetime"
    );
}
