//! A real `MemoryStore` behind a recorder: counts calls, and can be made to fail or stall.

// Shared by several test crates, each using part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_stateless::store::{
    Applied, ChangeSet, Created, Cycled, Expiry, HashedId, Incremented, Record, SessionStore,
    SessionSummary, StoreError, Swapped,
};
use tower_stateless::MemoryStore;

/// Code run inside a store call, to interleave another request's effect.
type Hook = Box<dyn Fn() + Send + Sync>;

#[derive(Clone, Default)]
pub struct Instrumented {
    pub memory: MemoryStore,
    calls: Arc<Mutex<Vec<&'static str>>>,
    failing: Arc<AtomicBool>,
    stall: Arc<Mutex<Option<Duration>>>,
    /// Runs just before a write to a stored session (`apply`, `cycle_id`, `increment`,
    /// `compare_and_set`), to interleave a concurrent logout.
    before_write: Arc<Mutex<Option<Hook>>>,
}

impl Instrumented {
    pub fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().unwrap().clone()
    }

    /// Forgets the calls seen so far, returning how many there were.
    pub fn take_calls(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.calls.lock().unwrap())
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    pub fn set_stall(&self, stall: Option<Duration>) {
        *self.stall.lock().unwrap() = stall;
    }

    pub fn before_write(&self, hook: impl Fn() + Send + Sync + 'static) {
        *self.before_write.lock().unwrap() = Some(Box::new(hook));
    }

    /// Before each write reaches the store, logs `user` out everywhere, as a request on
    /// another instance would: the race that a write must lose.
    pub fn log_out_before_write(&self, user: &'static str) {
        let memory = self.memory.clone();
        self.before_write(move || {
            let memory = memory.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    use tower_stateless::store::SessionStore;
                    memory.destroy_sessions_of_user(user).await.unwrap();
                });
            })
            .join()
            .unwrap();
        });
    }

    async fn enter(&self, call: &'static str) -> Result<(), StoreError> {
        self.calls.lock().unwrap().push(call);
        let stall = *self.stall.lock().unwrap();
        if let Some(stall) = stall {
            tokio::time::sleep(stall).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend("injected store failure"));
        }
        if matches!(call, "apply" | "cycle_id" | "increment" | "compare_and_set") {
            if let Some(hook) = &*self.before_write.lock().unwrap() {
                hook();
            }
        }
        Ok(())
    }
}

impl SessionStore for Instrumented {
    async fn load(&self, id: &HashedId, lifetime: Expiry) -> Result<Option<Record>, StoreError> {
        self.enter("load").await?;
        self.memory.load(id, lifetime).await
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        lifetime: Expiry,
    ) -> Result<Created, StoreError> {
        self.enter("create").await?;
        self.memory.create(id, record, lifetime).await
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        lifetime: Expiry,
    ) -> Result<Applied, StoreError> {
        self.enter("apply").await?;
        self.memory.apply(id, changes, lifetime).await
    }

    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        self.enter("increment").await?;
        self.memory.increment(id, field, delta, expiry).await
    }

    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        self.enter("compare_and_set").await?;
        self.memory
            .compare_and_set(id, field, expected, new, expiry)
            .await
    }

    async fn touch(&self, id: &HashedId, lifetime: Expiry) -> Result<Applied, StoreError> {
        self.enter("touch").await?;
        self.memory.touch(id, lifetime).await
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        lifetime: Expiry,
    ) -> Result<Cycled, StoreError> {
        self.enter("cycle_id").await?;
        self.memory.cycle_id(old, new, changes, lifetime).await
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.enter("destroy").await?;
        self.memory.destroy(id).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        lifetime: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.enter("sessions_of_user").await?;
        self.memory.sessions_of_user(user_id, lifetime).await
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.enter("destroy_sessions_of_user").await?;
        self.memory.destroy_sessions_of_user(user_id).await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.enter("ping").await
    }
}
