//! A store inside one process, for tests and single-instance development.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::{
    Applied, Created, Cycled, Incremented, SessionStore, SessionSummary, Swapped, MAX_LISTED,
};
use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::record::{add_to_stored, ChangeSet, Record, UserChange};
use crate::time::Timestamp;

/// Below this many sessions, never sweep.
const MIN_SWEEP_AT: usize = 1024;

/// Sessions kept in this process's memory.
///
/// **Not for production fleets.** State here lives and dies with one process:
/// another instance cannot see it, and a restart or crash loses every session —
/// exactly what this crate exists to avoid. Use it for tests and for a single
/// development instance; use a shared store (Redis) anywhere else.
///
/// Clones share the same sessions. `Debug` shows only counts.
#[derive(Clone, Default)]
pub struct MemoryStore {
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    sessions: HashMap<HashedId, Record>,
    /// Each user's sessions, with when a write last bound each one to the user.
    by_user: HashMap<String, HashMap<HashedId, Timestamp>>,
    /// Sweep expired sessions when the map reaches this size: twice its size after the
    /// last sweep, so sweeping costs O(1) per creation however many sessions are live.
    sweep_at: usize,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many sessions are held, expired ones not yet swept included.
    pub fn len(&self) -> usize {
        self.lock().sessions.len()
    }

    /// Whether no session is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied change set:
        // every mutation below completes before returning, so recover the guard.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

// Debug output may reach logs: counts only, never an ID, a user or a value.
impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryStore")
            .field("sessions", &inner.sessions.len())
            .field("users", &inner.by_user.len())
            .finish()
    }
}

impl Inner {
    /// The session if it is live; an expired one is removed on sight.
    fn live(&mut self, id: &HashedId, expiry: Expiry) -> Option<&mut Record> {
        let expired = !expiry.is_live(&self.sessions.get(id)?.metadata);
        if expired {
            self.remove(id);
            return None;
        }
        self.sessions.get_mut(id)
    }

    /// Stores a session written whole at `now` (by `create` or `cycle_id`), which binds it
    /// to its user if it has one.
    fn insert(&mut self, id: HashedId, record: Record, now: Timestamp) {
        if let Some(user) = &record.metadata.user_id {
            self.bind(user.clone(), id.clone(), now);
        }
        self.sessions.insert(id, record);
    }

    fn bind(&mut self, user: String, id: HashedId, now: Timestamp) {
        self.by_user.entry(user).or_default().insert(id, now);
    }

    fn remove(&mut self, id: &HashedId) -> Option<Record> {
        let record = self.sessions.remove(id)?;
        if let Some(user) = &record.metadata.user_id {
            self.unindex(user, id);
        }
        Some(record)
    }

    fn unindex(&mut self, user: &str, id: &HashedId) {
        if let Some(ids) = self.by_user.get_mut(user) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(user);
            }
        }
    }

    fn apply(&mut self, id: &HashedId, changes: &ChangeSet, expiry: Expiry) -> Applied {
        let Some(record) = self.live(id, expiry) else {
            return Applied::Gone;
        };
        let old_user = record.metadata.user_id.clone();
        if let Err(error) = changes.apply_to(record) {
            return Applied::Rejected(error);
        }
        record.metadata.refreshed_at = expiry.now;
        let new_user = record.metadata.user_id.clone();
        let rebound = old_user != new_user;
        if let (true, Some(old)) = (rebound, old_user) {
            self.unindex(&old, id);
        }
        // Any write that names a user binds anew, as a login that repeats itself does.
        let binds = rebound || matches!(changes.user, UserChange::Bind(_));
        if let (true, Some(new)) = (binds, new_user) {
            self.bind(new, id.clone(), expiry.now);
        }
        Applied::Saved
    }

    fn sweep_now_and_then(&mut self, expiry: Expiry) {
        if self.sessions.len() < self.sweep_at.max(MIN_SWEEP_AT) {
            return;
        }
        let expired: Vec<HashedId> = self
            .sessions
            .iter()
            .filter(|(_, record)| !expiry.is_live(&record.metadata))
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.remove(id);
        }
        self.sweep_at = self.sessions.len() * 2;
    }
}

impl SessionStore for MemoryStore {
    async fn load(&self, id: &HashedId, expiry: Expiry) -> Result<Option<Record>, StoreError> {
        Ok(self.lock().live(id, expiry).cloned())
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        let mut inner = self.lock();
        inner.sweep_now_and_then(expiry);
        if inner.live(id, expiry).is_some() {
            return Ok(Created::IdInUse);
        }
        inner.insert(id.clone(), record.clone(), expiry.now);
        Ok(Created::Saved)
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, StoreError> {
        Ok(self.lock().apply(id, changes, expiry))
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        let mut inner = self.lock();
        if inner.live(old, expiry).is_none() {
            return Ok(Cycled::Gone);
        }
        if inner.live(new, expiry).is_some() {
            return Ok(Cycled::IdInUse);
        }
        let mut record = inner
            .live(old, expiry)
            .cloned()
            .expect("checked live above");
        if let Err(error) = changes.apply_to(&mut record) {
            return Ok(Cycled::Rejected(error));
        }
        inner.remove(old);
        record.metadata.refreshed_at = expiry.now;
        inner.insert(new.clone(), record, expiry.now);
        Ok(Cycled::Saved)
    }

    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        let mut inner = self.lock();
        let Some(record) = inner.live(id, expiry) else {
            return Ok(Incremented::Gone);
        };
        match add_to_stored(record.data.get(field).map(String::as_str), delta) {
            Ok(sum) => {
                record.data.insert(field.to_owned(), sum.to_string());
                record.metadata.refreshed_at = expiry.now;
                Ok(Incremented::Value(sum))
            }
            Err(error) => Ok(Incremented::Rejected(error)),
        }
    }

    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        let mut inner = self.lock();
        let Some(record) = inner.live(id, expiry) else {
            return Ok(Swapped::Gone);
        };
        let current = record.data.get(field).map(String::as_str);
        if current != expected {
            return Ok(Swapped::Conflict(current.map(str::to_owned)));
        }
        match new {
            Some(value) => record.data.insert(field.to_owned(), value.to_owned()),
            None => record.data.remove(field),
        };
        record.metadata.refreshed_at = expiry.now;
        Ok(Swapped::Saved)
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.lock().remove(id);
        Ok(())
    }

    async fn destroy_many(&self, ids: &[HashedId]) -> Result<(), StoreError> {
        let mut inner = self.lock();
        for id in ids {
            inner.remove(id);
        }
        Ok(())
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut inner = self.lock();
        let ids: Vec<(HashedId, Timestamp)> = inner
            .by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .map(|(id, bound_at)| (id.clone(), *bound_at))
            .collect();
        let mut sessions = Vec::with_capacity(ids.len());
        for (id, bound_at) in ids {
            if let Some(record) = inner.live(&id, expiry) {
                let summary = SessionSummary::new(id, record.metadata.clone());
                sessions.push(summary.with_bound_at(bound_at));
            }
        }
        if sessions.len() > MAX_LISTED {
            sessions.sort_by_key(|summary| std::cmp::Reverse(summary.bound_at));
            sessions.truncate(MAX_LISTED);
        }
        Ok(sessions)
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut inner = self.lock();
        let ids = inner.by_user.remove(user_id).unwrap_or_default();
        Ok(ids
            .keys()
            .filter(|id| inner.sessions.remove(*id).is_some())
            .count())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::ExpirySettings;
    use crate::id::SessionId;
    use crate::record::Metadata;

    #[tokio::test]
    async fn debug_shows_only_counts() {
        let store = MemoryStore::new();
        let expiry = ExpirySettings::default().at_now();
        let id = SessionId::generate().unwrap().hashed();
        let mut record = Record::new(
            HashMap::from([("cart:socks".to_owned(), "\"secret\"".to_owned())]),
            Metadata::new(expiry.now),
        );
        record.metadata.user_id = Some("alice".to_owned());
        let created = store.create(&id, &record, expiry).await.unwrap();
        assert_eq!(created, Created::Saved);
        let text = format!("{store:?}");
        assert_eq!(text, "MemoryStore { sessions: 1, users: 1 }");
        for secret in ["socks", "secret", "alice", &id.as_str()[..8]] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}
