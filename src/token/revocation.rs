//! Revoking sealed tokens before they expire: what a revocation store records, and the
//! in-process one.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::StoreError;
use crate::expiry::Timestamp;
use crate::id::HashedId;
use crate::store::BoxFuture;

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
#[derive(Clone, Default)]
pub struct MemoryRevocations {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    /// Hashed session ID → until when it must stay revoked.
    sessions: HashMap<HashedId, Timestamp>,
    /// User ID → (not before, forgotten at).
    users: HashMap<String, (Timestamp, Timestamp)>,
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
        inner.sessions.retain(|_, until| *until > now);
        if until > now {
            inner.sessions.insert(id.clone(), until);
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
        inner.users.retain(|_, (_, until)| *until > not_before);
        let entry = inner
            .users
            .entry(user_id.to_owned())
            .or_insert((not_before, not_before));
        // A later log-out-everywhere never moves the boundary back.
        entry.0 = entry.0.max(not_before);
        entry.1 = not_before.saturating_add(keep_for);
        Ok(())
    }

    async fn revocation_state(
        &self,
        id: &HashedId,
        user_id: Option<&str>,
        now: Timestamp,
    ) -> Result<RevocationState, StoreError> {
        let inner = self.lock();
        let session_revoked = inner.sessions.get(id).is_some_and(|until| *until > now);
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
