//! Revoking sealed tokens before they expire: what a revocation store records, and the
//! in-process one.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::StoreError;
use crate::id::HashedId;
use crate::store::BoxFuture;
use crate::time::Timestamp;

/// What a request's token is up against: whether its session was revoked, and the
/// user's "not before" time, if log-out-everywhere set one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RevocationState {
    /// The session was ended (`destroy()`, or an ID cycled away) before it expired.
    pub session_revoked: bool,
    /// Bindings of the user made before this time are revoked.
    pub user_not_before: Option<Timestamp>,
}

impl RevocationState {
    /// The state a store found.
    pub fn new(session_revoked: bool, user_not_before: Option<Timestamp>) -> Self {
        Self {
            session_revoked,
            user_not_before,
        }
    }
}

/// Where token mode records revocations, shared by every instance: see
/// [`TokenSessions::with_revocations`](crate::TokenSessions::with_revocations).
///
/// Implemented by [`MemoryRevocations`] (one process) and, with feature `redis`, by
/// `RedisStore`. Session IDs arrive hashed, as stores see them.
pub trait Revocations: Send + Sync + 'static {
    /// Records that session `id` is revoked. Forgetting it from `until` (its absolute
    /// deadline, after which the token is dead anyway) is allowed; the layer's clock
    /// reads `now`.
    fn revoke_session(
        &self,
        id: &HashedId,
        until: Timestamp,
        now: Timestamp,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that every binding of `user_id` made before `not_before` is revoked;
    /// forgetting it after `keep_for` (the absolute lifetime) is allowed.
    fn revoke_user(
        &self,
        user_id: &str,
        not_before: Timestamp,
        keep_for: Duration,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Both checks for one request, in one call.
    fn revocation_state(
        &self,
        id: &HashedId,
        user_id: Option<&str>,
        now: Timestamp,
    ) -> impl Future<Output = Result<RevocationState, StoreError>> + Send;
}

/// The object-safe mirror of [`Revocations`], so the layer carries no type parameter.
pub(crate) trait DynRevocations: Send + Sync + 'static {
    fn revoke_session<'a>(
        &'a self,
        id: &'a HashedId,
        until: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn revoke_user<'a>(
        &'a self,
        user_id: &'a str,
        not_before: Timestamp,
        keep_for: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn revocation_state<'a>(
        &'a self,
        id: &'a HashedId,
        user_id: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<RevocationState, StoreError>>;
}

impl<R: Revocations> DynRevocations for R {
    fn revoke_session<'a>(
        &'a self,
        id: &'a HashedId,
        until: Timestamp,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Revocations::revoke_session(self, id, until, now))
    }

    fn revoke_user<'a>(
        &'a self,
        user_id: &'a str,
        not_before: Timestamp,
        keep_for: Duration,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(Revocations::revoke_user(
            self, user_id, not_before, keep_for,
        ))
    }

    fn revocation_state<'a>(
        &'a self,
        id: &'a HashedId,
        user_id: Option<&'a str>,
        now: Timestamp,
    ) -> BoxFuture<'a, Result<RevocationState, StoreError>> {
        Box::pin(Revocations::revocation_state(self, id, user_id, now))
    }
}

/// Revocations kept in this process: real for a single instance, lost on restart, and
/// invisible to other instances (use `RedisStore` for a fleet). Clones share the state.
///
/// Each call costs O(log n) in the number of revocations held, plus the ones it forgets:
/// they are kept ordered by the time they may be forgotten, and a call looks only at
/// those that are due, never at the whole map.
#[derive(Clone, Default)]
pub struct MemoryRevocations {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Hashed session ID → until when it must stay revoked.
    sessions: Expiring<HashedId, ()>,
    /// User ID → not before, forgotten at its deadline.
    users: Expiring<String, Timestamp>,
}

/// Entries forgotten at their deadlines: a map for lookups, and the same keys ordered by
/// deadline, so that pruning looks only at the entries that are due.
struct Expiring<K, V> {
    entries: HashMap<K, (V, Timestamp)>,
    deadlines: BTreeSet<(Timestamp, K)>,
    /// Entries looked at while pruning, for the tests.
    #[cfg(test)]
    examined: usize,
}

impl<K, V> Default for Expiring<K, V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
            deadlines: BTreeSet::new(),
            #[cfg(test)]
            examined: 0,
        }
    }
}

impl<K: Clone + Eq + Hash + Ord, V> Expiring<K, V> {
    fn get<Q>(&self, key: &Q) -> Option<&(V, Timestamp)>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + Hash + ?Sized,
    {
        self.entries.get(key)
    }

    /// Sets `key` to `value` until `until`, replacing its entry and deadline if any.
    fn insert(&mut self, key: K, value: V, until: Timestamp) {
        if let Some((_, before)) = self.entries.insert(key.clone(), (value, until)) {
            self.deadlines.remove(&(before, key.clone()));
        }
        self.deadlines.insert((until, key));
    }

    /// Forgets every entry whose deadline is not after `now`, earliest first, stopping
    /// at the first one still due later: each entry is pruned once, O(log n) each.
    fn prune(&mut self, now: Timestamp) {
        while let Some((until, _)) = self.deadlines.first() {
            #[cfg(test)]
            {
                self.examined += 1;
            }
            if *until > now {
                break;
            }
            if let Some((_, key)) = self.deadlines.pop_first() {
                self.entries.remove(&key);
            }
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}

impl MemoryRevocations {
    /// No revocations yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Each critical section is a few map operations that cannot panic halfway.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Revocations for MemoryRevocations {
    async fn revoke_session(
        &self,
        id: &HashedId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.sessions.prune(now);
        if until > now {
            inner.sessions.insert(id.clone(), (), until);
        }
        Ok(())
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        not_before: Timestamp,
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        let mut inner = self.lock();
        inner.users.prune(not_before);
        // A later log-out-everywhere never moves the boundary back.
        let kept = match inner.users.get(user_id) {
            Some((earlier, _)) => (*earlier).max(not_before),
            None => not_before,
        };
        let until = not_before.saturating_add(keep_for);
        inner.users.insert(user_id.to_owned(), kept, until);
        Ok(())
    }

    async fn revocation_state(
        &self,
        id: &HashedId,
        user_id: Option<&str>,
        now: Timestamp,
    ) -> Result<RevocationState, StoreError> {
        let inner = self.lock();
        let session_revoked = inner
            .sessions
            .get(id)
            .is_some_and(|(_, until)| *until > now);
        let user_not_before = user_id
            .and_then(|user| inner.users.get(user))
            .filter(|(_, until)| *until > now)
            .map(|(not_before, _)| *not_before);
        Ok(RevocationState::new(session_revoked, user_not_before))
    }
}

impl fmt::Debug for MemoryRevocations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryRevocations")
            .field("sessions", &inner.sessions.len())
            .field("users", &inner.users.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{MemoryRevocations, Revocations as _};
    use crate::id::{HashedId, SessionId};
    use crate::time::Timestamp;

    const HOUR: Duration = Duration::from_secs(3600);

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    fn hashed() -> HashedId {
        SessionId::generate().unwrap().hashed()
    }

    impl MemoryRevocations {
        /// Entries looked at by pruning so far, sessions and users.
        fn examined(&self) -> usize {
            let inner = self.lock();
            inner.sessions.examined + inner.users.examined
        }
    }

    #[tokio::test]
    async fn a_revocation_looks_only_at_what_is_due_not_at_the_whole_map() {
        let revocations = MemoryRevocations::new();
        let mut costs = Vec::new();
        for held in [100, 10_000] {
            // `held` revocations, none due for an hour.
            for n in 0..held {
                let (id, user) = (hashed(), format!("user-{held}-{n}"));
                revocations
                    .revoke_session(&id, at(3_600_000), at(1))
                    .await
                    .unwrap();
                revocations.revoke_user(&user, at(1), HOUR).await.unwrap();
            }
            let before = revocations.examined();
            revocations
                .revoke_session(&hashed(), at(3_600_000), at(2))
                .await
                .unwrap();
            revocations
                .revoke_user("one more", at(2), HOUR)
                .await
                .unwrap();
            costs.push(revocations.examined() - before);
        }
        // One entry looked at per map (the earliest, not yet due), however many are held.
        assert_eq!(costs, [2, 2]);
        assert_eq!(
            format!("{revocations:?}"),
            "MemoryRevocations { sessions: 10102, users: 10101 }"
        );
    }

    async fn revoked(revocations: &MemoryRevocations, id: &HashedId, now: u64) -> bool {
        let state = revocations.revocation_state(id, None, at(now)).await;
        state.unwrap().session_revoked
    }

    #[tokio::test]
    async fn what_is_due_is_forgotten_and_the_rest_kept() {
        let revocations = MemoryRevocations::new();
        let (early, late, moved) = (hashed(), hashed(), hashed());
        revocations
            .revoke_session(&early, at(100), at(1))
            .await
            .unwrap();
        revocations
            .revoke_session(&late, at(300), at(1))
            .await
            .unwrap();
        // Revoked again with a later deadline: the earlier one no longer forgets it.
        revocations
            .revoke_session(&moved, at(100), at(1))
            .await
            .unwrap();
        revocations
            .revoke_session(&moved, at(400), at(2))
            .await
            .unwrap();
        // A deadline already past records nothing.
        revocations
            .revoke_session(&hashed(), at(2), at(2))
            .await
            .unwrap();
        assert!(
            revoked(&revocations, &early, 99).await && !revoked(&revocations, &early, 100).await
        );
        assert!(
            revoked(&revocations, &moved, 399).await && !revoked(&revocations, &moved, 400).await
        );
        // A call at 150 forgets `early` only.
        revocations
            .revoke_session(&hashed(), at(1000), at(150))
            .await
            .unwrap();
        assert_eq!(
            format!("{revocations:?}"),
            "MemoryRevocations { sessions: 3, users: 0 }"
        );
        assert!(
            revoked(&revocations, &late, 299).await && revoked(&revocations, &moved, 399).await
        );
        revocations
            .revoke_session(&hashed(), at(1000), at(400))
            .await
            .unwrap();
        assert_eq!(
            format!("{revocations:?}"),
            "MemoryRevocations { sessions: 2, users: 0 }"
        );

        // Users: the boundary never moves back; the deadline is the latest call's.
        revocations.revoke_user("u", at(50), HOUR).await.unwrap();
        revocations
            .revoke_user("u", at(20), Duration::from_millis(100))
            .await
            .unwrap();
        let state = revocations
            .revocation_state(&early, Some("u"), at(110))
            .await
            .unwrap();
        assert_eq!(state.user_not_before, Some(at(50)));
        let state = revocations
            .revocation_state(&early, Some("u"), at(120))
            .await
            .unwrap();
        assert_eq!(state.user_not_before, None, "forgotten at 20 + 100 ms");
        revocations.revoke_user("v", at(130), HOUR).await.unwrap();
        assert_eq!(
            format!("{revocations:?}"),
            "MemoryRevocations { sessions: 2, users: 1 }"
        );
    }
}
