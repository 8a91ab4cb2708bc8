//! An object-safe mirror of [`SessionStore`], so that `Session` and `SessionLayer` carry
//! no store type parameter. Boxing happens only on calls that do I/O anyway.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::{
    Applied, ChangeSet, Created, Cycled, Expiry, HashedId, Incremented, Record, SessionStore,
    SessionSummary, StoreError, Swapped, Timestamp,
};

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The per-request half of [`SessionStore`], with boxed futures.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn load_shared<'a>(
        &'a self,
        id: &'a HashedId,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Option<Arc<Record>>, StoreError>>;
    fn create<'a>(
        &'a self,
        id: &'a HashedId,
        record: &'a Record,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Created, StoreError>>;
    fn apply<'a>(
        &'a self,
        id: &'a HashedId,
        changes: &'a ChangeSet,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Applied, StoreError>>;
    fn touch<'a>(
        &'a self,
        id: &'a HashedId,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Applied, StoreError>>;
    fn cycle_id<'a>(
        &'a self,
        old: &'a HashedId,
        new: &'a HashedId,
        changes: &'a ChangeSet,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Cycled, StoreError>>;
    fn increment<'a>(
        &'a self,
        id: &'a HashedId,
        field: &'a str,
        delta: i64,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Incremented, StoreError>>;
    fn compare_and_set<'a>(
        &'a self,
        id: &'a HashedId,
        field: &'a str,
        expected: Option<&'a str>,
        new: Option<&'a str>,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Swapped, StoreError>>;
    fn destroy<'a>(&'a self, id: &'a HashedId) -> BoxFuture<'a, Result<(), StoreError>>;
    fn destroy_many<'a>(&'a self, ids: &'a [HashedId]) -> BoxFuture<'a, Result<(), StoreError>>;
    fn sessions_of_user<'a>(
        &'a self,
        user_id: &'a str,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, StoreError>>;
    fn time(&self) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>>;
}

impl<S: SessionStore> DynStore for S {
    fn load_shared<'a>(
        &'a self,
        id: &'a HashedId,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Option<Arc<Record>>, StoreError>> {
        Box::pin(SessionStore::load_shared(self, id, expiry))
    }
    fn create<'a>(
        &'a self,
        id: &'a HashedId,
        record: &'a Record,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Created, StoreError>> {
        Box::pin(SessionStore::create(self, id, record, expiry))
    }
    fn apply<'a>(
        &'a self,
        id: &'a HashedId,
        changes: &'a ChangeSet,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Applied, StoreError>> {
        Box::pin(SessionStore::apply(self, id, changes, expiry))
    }
    fn touch<'a>(
        &'a self,
        id: &'a HashedId,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Applied, StoreError>> {
        Box::pin(SessionStore::touch(self, id, expiry))
    }
    fn cycle_id<'a>(
        &'a self,
        old: &'a HashedId,
        new: &'a HashedId,
        changes: &'a ChangeSet,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Cycled, StoreError>> {
        Box::pin(SessionStore::cycle_id(self, old, new, changes, expiry))
    }
    fn increment<'a>(
        &'a self,
        id: &'a HashedId,
        field: &'a str,
        delta: i64,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Incremented, StoreError>> {
        Box::pin(SessionStore::increment(self, id, field, delta, expiry))
    }
    fn compare_and_set<'a>(
        &'a self,
        id: &'a HashedId,
        field: &'a str,
        expected: Option<&'a str>,
        new: Option<&'a str>,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Swapped, StoreError>> {
        Box::pin(SessionStore::compare_and_set(
            self, id, field, expected, new, expiry,
        ))
    }
    fn destroy<'a>(&'a self, id: &'a HashedId) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::destroy(self, id))
    }
    fn destroy_many<'a>(&'a self, ids: &'a [HashedId]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(SessionStore::destroy_many(self, ids))
    }
    fn sessions_of_user<'a>(
        &'a self,
        user_id: &'a str,
        expiry: Expiry,
    ) -> BoxFuture<'a, Result<Vec<SessionSummary>, StoreError>> {
        Box::pin(SessionStore::sessions_of_user(self, user_id, expiry))
    }
    fn time(&self) -> BoxFuture<'_, Result<Option<Timestamp>, StoreError>> {
        Box::pin(SessionStore::time(self))
    }
}
