//! The optional limit on each user's live sessions
//! ([`with_max_sessions_per_user`](crate::SessionLayerBuilder::with_max_sessions_per_user)).

use crate::error::Error;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::store::StoreHandle;

/// Ends `user`'s least recently used sessions beyond `limit`, never `current` (the session
/// that was just bound to the user). Returns how many it ended.
///
/// Runs after a write that bound a session to a user, so each login enforces the limit.
/// Least recently used: the oldest last refresh goes first, then the oldest creation.
pub(crate) async fn enforce(
    store: &StoreHandle,
    user: &str,
    current: &HashedId,
    limit: usize,
    expiry: Expiry,
) -> Result<usize, Error> {
    let mut others: Vec<_> = store
        .sessions_of_user(user, expiry)
        .await?
        .into_iter()
        .filter(|session| session.id != *current)
        .collect();
    // The current session takes one place.
    let keep = limit.saturating_sub(1);
    if others.len() <= keep {
        return Ok(0);
    }
    others.sort_by_key(|session| {
        let metadata = &session.metadata;
        std::cmp::Reverse((metadata.refreshed_at, metadata.created_at))
    });
    let excess = others.split_off(keep);
    for session in &excess {
        store.destroy(&session.id).await?;
    }
    Ok(excess.len())
}
