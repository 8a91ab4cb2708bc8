//! The store contract and the stores that implement it.

use std::future::Future;
use std::pin::Pin;

use crate::error::StoreError;
use crate::id::HashedId;
use crate::record::{ChangeSet, Lifetime, Metadata, Record};

mod memory;
#[cfg(feature = "redis")]
mod redis;

#[cfg(feature = "redis")]
pub use self::redis::{RedisConnection, RedisStore};
pub use memory::MemoryStore;

/// Outcome of [`SessionStore::create`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Created {
    /// The session was stored.
    Saved,
    /// A session with this ID already exists; nothing was written.
    IdInUse,
}

/// Outcome of [`SessionStore::apply`] and [`SessionStore::touch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Applied {
    /// The changes were applied and the session refreshed.
    Saved,
    /// The session no longer exists (destroyed or expired); nothing was written.
    Gone,
}

/// Outcome of [`SessionStore::cycle_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Cycled {
    /// The session now lives under the new ID only.
    Saved,
    /// The old session no longer exists; nothing was written.
    Gone,
    /// The new ID is taken; nothing was written.
    IdInUse,
}

/// One session of a user, as listed by [`SessionStore::sessions_of_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session's hashed ID.
    pub id: HashedId,
    /// Its creation time, last refresh and user.
    pub metadata: Metadata,
}

impl SessionSummary {
    /// A summary of session `id`.
    pub fn new(id: HashedId, metadata: Metadata) -> Self {
        Self { id, metadata }
    }
}

/// Where sessions live: shared by every instance of a service.
///
/// Stores only ever see [`HashedId`]s. Every call takes the layer's [`Lifetime`]:
/// a session it reports as expired must behave exactly like a missing one, and
/// writes refresh the session's expiry. Writes that target an existing session
/// (`apply`, `touch`, `cycle_id`) are atomic and never recreate a session that has
/// been destroyed or has expired: that is what keeps a logout from being undone by
/// a request still in flight.
///
/// Every store must pass the crate's conformance suite (`tests/conformance/`).
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a live session, or `None` if it is missing or expired.
    fn load(
        &self,
        id: &HashedId,
        lifetime: Lifetime,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// Stores a new session; never overwrites an existing one.
    fn create(
        &self,
        id: &HashedId,
        record: &Record,
        lifetime: Lifetime,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Applies `changes` and refreshes the session, atomically, only if it is live.
    fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Refreshes a live session's idle timeout without touching its data.
    fn touch(
        &self,
        id: &HashedId,
        lifetime: Lifetime,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send {
        self.apply(id, &EMPTY_CHANGES, lifetime)
    }

    /// Moves a live session from `old` to `new` with `changes` applied; `old` is dead
    /// as soon as this returns [`Cycled::Saved`].
    fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> impl Future<Output = Result<Cycled, StoreError>> + Send;

    /// Deletes a session (a no-op if it does not exist).
    fn destroy(&self, id: &HashedId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live sessions bound to `user_id`.
    fn sessions_of_user(
        &self,
        user_id: &str,
        lifetime: Lifetime,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, StoreError>> + Send;

    /// Deletes every session bound to `user_id` ("log out everywhere"); returns how many.
    fn destroy_sessions_of_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Checks that the store answers (for health checks).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;
}

static EMPTY_CHANGES: ChangeSet = ChangeSet {
    clear: false,
    fields: std::collections::BTreeMap::new(),
    user_id: None,
};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe mirror of the per-request half of [`SessionStore`], so that `Session` and `SessionLayer` need no
/// store type parameter. Boxing happens only on calls that do I/O anyway.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn load<'a>(
        &'a self,
        id: &'a HashedId,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>>;
    fn create<'a>(
        &'a self,
        id: &'a HashedId,
        record: &'a Record,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Created, StoreError>>;
    fn apply<'a>(
        &'a self,
        id: &'a HashedId,
        changes: &'a ChangeSet,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Applied, StoreError>>;
    fn touch<'a>(
        &'a self,
        id: &'a HashedId,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Applied, StoreError>>;
    fn cycle_id<'a>(
        &'a self,
        old: &'a HashedId,
        new: &'a HashedId,
        changes: &'a ChangeSet,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Cycled, StoreError>>;
    fn destroy<'a>(&'a self, id: &'a HashedId) -> BoxFuture<'a, Result<(), StoreError>>;
}

impl<S: SessionStore> DynStore for S {
    fn load<'a>(
        &'a self,
        id: &'a HashedId,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Option<Record>, StoreError>> {
        Box::pin(SessionStore::load(self, id, lifetime))
    }
    fn create<'a>(
        &'a self,
        id: &'a HashedId,
        record: &'a Record,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Created, StoreError>> {
        Box::pin(SessionStore::create(self, id, record, lifetime))
    }
    fn apply<'a>(
        &'a self,
        id: &'a HashedId,
        changes: &'a ChangeSet,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Applied, StoreError>> {
        Box::pin(SessionStore::apply(self, id, changes, lifetime))
    }
    fn touch<'a>(
        &'a self,
        id: &'a HashedId,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Applied, StoreError>> {
        Box::pin(SessionStore::touch(self, id, lifetime))
    }
    fn cycle_id<'a>(
        &'a self,
        old: &'a HashedId,
        new: &'a HashedId,
        changes: &'a ChangeSet,
        lifetime: Lifetime,
    ) -> BoxFuture<'a, Result<Cycled, StoreError>> {
        Box::pin(SessionStore::cycle_id(self, old, new, changes, lifetime))
    }
    fn destroy<'a>(&'a self, id: &'a HashedId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::destroy(self, id))
    }
}
