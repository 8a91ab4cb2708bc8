//! The optional limit on each user's live sessions
//! ([`with_max_sessions_per_user`](crate::SessionLayerBuilder::with_max_sessions_per_user)).

use crate::error::Error;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::store::{SessionSummary, StoreHandle};

/// What one enforcement did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Enforced {
    /// How many sessions it ended.
    pub(crate) ended: usize,
    /// Whether `current` was among them: a newer login of the same user won.
    pub(crate) ended_current: bool,
}

/// Ends `user`'s sessions beyond `limit`, the oldest bindings first.
///
/// Runs after a write that bound `current` to the user, so each login enforces the limit.
/// The newest binding wins, `current` included: every instance ranks the sessions by the
/// binding time the store reports (then by ID), which no later write changes, so two
/// simultaneous logins agree on which one stays and never end each other. Preferring
/// `current` instead would let each of them end the other.
pub(crate) async fn enforce(
    store: &StoreHandle,
    user: &str,
    current: &HashedId,
    limit: usize,
    expiry: Expiry,
) -> Result<Enforced, Error> {
    let mut sessions = store.sessions_of_user(user, expiry).await?;
    if sessions.len() <= limit {
        return Ok(Enforced::default());
    }
    sessions.sort_by(|a, b| rank(b).cmp(&rank(a)));
    let excess: Vec<HashedId> = (sessions.split_off(limit).into_iter())
        .map(|session| session.id)
        .collect();
    store.destroy_many(&excess).await?;
    Ok(Enforced {
        ended: excess.len(),
        ended_current: excess.contains(current),
    })
}

/// Newer bindings rank higher; ties (one millisecond) go by ID, so all instances agree.
fn rank(session: &SessionSummary) -> (crate::time::Timestamp, &HashedId) {
    let bound_at = (session.bound_at).unwrap_or(session.metadata.created_at);
    (bound_at, &session.id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Metadata;
    use crate::time::Timestamp;

    fn session(id: &str, bound_at: Option<u64>, created_at: u64) -> SessionSummary {
        let summary = SessionSummary::new(
            HashedId::from_stored(id.to_owned()),
            Metadata::new(Timestamp::from_millis(created_at)),
        );
        match bound_at {
            Some(millis) => summary.with_bound_at(Timestamp::from_millis(millis)),
            None => summary,
        }
    }

    fn ranked(mut sessions: Vec<SessionSummary>) -> Vec<String> {
        sessions.sort_by(|a, b| rank(b).cmp(&rank(a)));
        sessions.iter().map(|s| s.id.as_str().to_owned()).collect()
    }

    #[test]
    fn newest_binding_first_then_id_then_creation_time_for_stores_that_cannot_tell() {
        let sessions = vec![
            session("a", Some(10), 1),
            session("c", Some(30), 2),
            session("b", Some(30), 3),
            session("old", None, 20),
        ];
        assert_eq!(ranked(sessions), ["c", "b", "old", "a"]);
    }

    #[test]
    fn the_ranking_does_not_depend_on_who_ranks() {
        // Two enforcers listing the same sessions in different orders keep the same ones.
        let one = vec![session("x", Some(5), 1), session("y", Some(5), 1)];
        let other = vec![session("y", Some(5), 1), session("x", Some(5), 1)];
        assert_eq!(ranked(one), ranked(other));
    }
}
