//! For store authors: the [`SessionStore`] contract and its vocabulary, and the parts of
//! this crate's stores that only their own settings mention (a Redis connection, cache
//! statistics, token mode's revocation stores).
//!
//! Applications need little of this beyond picking a store ([`MemoryStore`](crate::MemoryStore),
//! `RedisStore`); a crate that keeps sessions somewhere else implements [`SessionStore`]
//! and runs the conformance suite (feature `conformance`) against it.

use std::future::Future;
use std::sync::Arc;

mod clock;
#[cfg(any(feature = "postgres", feature = "redis"))]
mod connect_failed;
mod dyn_store;
pub(crate) mod handle;
pub(crate) mod memory;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
#[cfg(feature = "redis")]
pub(crate) mod redis;
#[cfg(feature = "token")]
pub(crate) mod revocation;
#[cfg(feature = "encryption")]
pub(crate) mod sealed;

pub(crate) use self::clock::StoreClock;
#[cfg(any(feature = "postgres", feature = "redis"))]
pub(crate) use self::connect_failed::connect_failed;
pub(crate) use self::dyn_store::BoxFuture;
pub(crate) use self::handle::StoreHandle;
#[cfg(feature = "postgres")]
pub use self::postgres::PostgresStoreBuilder;
#[cfg(feature = "redis")]
pub use self::redis::{CacheStats, RedisConnection, RedisStoreBuilder, RedisTarget};
#[cfg(feature = "token")]
pub use self::revocation::{MemoryRevocations, RevocationState, Revocations};
pub use crate::error::StoreError;
pub use crate::expiry::Expiry;
pub use crate::id::HashedId;
pub use crate::record::{ChangeSet, IncrementError, Metadata, Record, UserChange};
pub use crate::time::Timestamp;

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
#[non_exhaustive]
pub enum Applied {
    /// The changes were applied and the session refreshed.
    Saved,
    /// The session no longer exists (destroyed or expired); nothing was written.
    Gone,
    /// An increment in the change set met a stored value that is not an integer, or
    /// would overflow; nothing was written.
    Rejected(IncrementError),
}

/// Outcome of [`SessionStore::cycle_id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Cycled {
    /// The session now lives under the new ID only.
    Saved,
    /// The old session no longer exists; nothing was written.
    Gone,
    /// The new ID is taken; nothing was written.
    IdInUse,
    /// An increment in the change set was rejected; nothing was written.
    Rejected(IncrementError),
}

/// Outcome of [`SessionStore::increment`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Incremented {
    /// The field now holds this value; the session was refreshed.
    Value(i64),
    /// The session no longer exists; nothing was written.
    Gone,
    /// The increment was rejected; nothing was written.
    Rejected(IncrementError),
}

/// Outcome of [`SessionStore::compare_and_set`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum Swapped {
    /// The field held the expected value and now holds the new one; the session was refreshed.
    Saved,
    /// The field held something else (here, `None` for absent); nothing was written.
    Conflict(Option<String>),
    /// The session no longer exists; nothing was written.
    Gone,
}

/// The most sessions of one user that this crate's stores list
/// ([`SessionStore::sessions_of_user`]): the most recently bound.
/// [`destroy_sessions_of_user`](SessionStore::destroy_sessions_of_user) ends them all.
pub const MAX_LISTED: usize = 1_000;

/// One session of a user, as listed by [`SessionStore::sessions_of_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionSummary {
    /// The session's hashed ID.
    pub id: HashedId,
    /// Its creation time, last refresh and user.
    pub metadata: Metadata,
    /// When a write last bound it to its user (a login), by the store's clock where it
    /// has one. Never changed by any other write, so that every instance ranks a user's
    /// sessions alike: the session limit ends the oldest bindings first, and two
    /// simultaneous logins agree on which one is newer. `None` if the store cannot tell;
    /// the limit then ranks the session by its creation time.
    pub bound_at: Option<Timestamp>,
}

impl SessionSummary {
    /// A summary of session `id`, with no binding time (see [`bound_at`](Self::bound_at)).
    pub fn new(id: HashedId, metadata: Metadata) -> Self {
        Self {
            id,
            metadata,
            bound_at: None,
        }
    }

    /// Sets when the session was last bound to its user.
    pub fn with_bound_at(mut self, bound_at: Timestamp) -> Self {
        self.bound_at = Some(bound_at);
        self
    }
}

/// Where sessions live: shared by every instance of a service.
///
/// Stores only ever see [`HashedId`]s. Every call takes the layer's [`Expiry`]:
/// a session it reports as expired must behave exactly like a missing one, and
/// writes refresh the session's expiry. Writes that target an existing session
/// (`apply`, `touch`, `cycle_id`) are atomic and never recreate a session that has
/// been destroyed or has expired: that is what keeps a logout from being undone by
/// a request still in flight.
///
/// Every store must pass the conformance suite: see `tower_stateless::conformance`
/// (feature `conformance`).
pub trait SessionStore: Send + Sync + 'static {
    /// Loads a live session, or `None` if it is missing or expired.
    fn load(
        &self,
        id: &HashedId,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Option<Record>, StoreError>> + Send;

    /// [`load`](Self::load), answering a shared record: what the layer calls on every
    /// read. A store that keeps records shared (a cache of them) overrides it to hand
    /// out its own copy without cloning it; the default wraps what `load` answers.
    fn load_shared(
        &self,
        id: &HashedId,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Option<Arc<Record>>, StoreError>> + Send {
        async move { Ok(self.load(id, expiry).await?.map(Arc::new)) }
    }

    /// Stores a new session; never overwrites an existing one.
    fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Created, StoreError>> + Send;

    /// Applies `changes` and refreshes the session, atomically, only if it is live.
    fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Refreshes a live session's idle timeout without touching its data.
    fn touch(
        &self,
        id: &HashedId,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send {
        self.apply(id, &EMPTY_CHANGES, expiry)
    }

    /// Moves a live session from `old` to `new` with `changes` applied; `old` is dead
    /// as soon as this returns [`Cycled::Saved`].
    fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Cycled, StoreError>> + Send;

    /// Adds `delta` to the integer under `field` (absent counts as 0) and refreshes the
    /// session, atomically, only if it is live; returns the new value. A stored value
    /// that is not a JSON integer within `i64`, or a result outside `i64`, is rejected
    /// and nothing is written.
    fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Incremented, StoreError>> + Send;

    /// Sets `field` to `new` (`None` removes it) and refreshes the session, atomically,
    /// only if the session is live and `field` holds exactly `expected` (`None`: absent).
    /// Otherwise nothing is written and the current value comes back, so a caller can
    /// retry a read-modify-write without losing a concurrent update.
    fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Swapped, StoreError>> + Send;

    /// Deletes a session (a no-op if it does not exist).
    fn destroy(&self, id: &HashedId) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes these sessions (those that exist), in as few round trips as the store can:
    /// "log out my other devices" and the session limit end many at once. The default
    /// calls [`destroy`](Self::destroy) for each.
    fn destroy_many(
        &self,
        ids: &[HashedId],
    ) -> impl Future<Output = Result<(), StoreError>> + Send {
        async move {
            for id in ids {
                self.destroy(id).await?;
            }
            Ok(())
        }
    }

    /// The live sessions bound to `user_id`. A store may cap the list: this crate's
    /// stores list at most [`MAX_LISTED`], the most recently bound first, so that one
    /// user with thousands of sessions cannot make a listing (or a login under a session
    /// limit) arbitrarily slow.
    fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> impl Future<Output = Result<Vec<SessionSummary>, StoreError>> + Send;

    /// Deletes every session bound to `user_id` ("log out everywhere"); returns how many.
    fn destroy_sessions_of_user(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;

    /// Checks that the store answers (for health checks).
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The store's clock, read now, if sessions should be timed by it. The layer reads
    /// it when it is built and again when a request finds the last reading a minute old
    /// (in a spawned task: no request waits for it), and runs its own clock at the offset
    /// it measured, so that instances whose clocks differ still agree on when a session
    /// ends. The default, `None`, leaves each instance's own clock; a store that wraps
    /// another should forward it.
    fn time(&self) -> impl Future<Output = Result<Option<Timestamp>, StoreError>> + Send {
        async { Ok(None) }
    }
}

static EMPTY_CHANGES: ChangeSet = ChangeSet {
    clear: false,
    fields: std::collections::BTreeMap::new(),
    increments: std::collections::BTreeMap::new(),
    user: UserChange::Keep,
};
