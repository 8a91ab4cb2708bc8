//! A session store defined outside tower-stateless, through its public API only, to prove
//! that another crate can implement [`SessionStore`] and run the conformance suite on it
//! (`tests/conformance.rs`).

#![warn(missing_docs)]

use tower_stateless::store::{
    Applied, ChangeSet, Created, Cycled, Expiry, HashedId, Incremented, Record, SessionStore,
    SessionSummary, StoreError, Swapped,
};
use tower_stateless::MemoryStore;

/// A [`MemoryStore`] behind a newtype: every [`SessionStore`] method delegates to it.
#[derive(Debug, Clone, Default)]
pub struct WrappedStore(pub MemoryStore);

impl SessionStore for WrappedStore {
    async fn load(&self, id: &HashedId, expiry: Expiry) -> Result<Option<Record>, StoreError> {
        self.0.load(id, expiry).await
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        self.0.create(id, record, expiry).await
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, StoreError> {
        self.0.apply(id, changes, expiry).await
    }

    async fn touch(&self, id: &HashedId, expiry: Expiry) -> Result<Applied, StoreError> {
        self.0.touch(id, expiry).await
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        self.0.cycle_id(old, new, changes, expiry).await
    }

    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        self.0.increment(id, field, delta, expiry).await
    }

    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        self.0
            .compare_and_set(id, field, expected, new, expiry)
            .await
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.0.destroy(id).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.0.sessions_of_user(user_id, expiry).await
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.0.destroy_sessions_of_user(user_id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.0.ping().await
    }
}
