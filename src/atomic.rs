//! Operations that run at once, atomically in the store, and lose no concurrent update:
//! [`Session::increment`] and [`Session::update`].

use std::collections::HashMap;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::keys::{Rejected, Verified};
use crate::record::{add_to_stored, Metadata, Record};
use crate::session::{decode, encode, Session};
use crate::snapshot::Incoming;
use crate::snapshot::Seen;
use crate::store::{Created, Incremented, StoreHandle, Swapped};
use crate::writeback::with_fresh_id;

/// Compare-and-set rounds before [`Session::update`] gives up on a key that keeps changing.
const UPDATE_ATTEMPTS: usize = 16;
/// The bound on the wait after the first conflict of [`Session::update`], doubled after
/// each further one up to the second value. Each wait is drawn at random below its bound
/// (full jitter): writers that collided spread out instead of colliding again in step.
const UPDATE_BACKOFF: (Duration, Duration) = (Duration::from_millis(1), Duration::from_millis(32));

/// Where an immediate operation writes.
enum Target {
    /// The request's session (or one it created), believed live.
    Live(Incoming),
    /// None: the request has no live session, so the operation starts a new one.
    NewSession,
}

impl Session {
    /// Adds `delta` to the integer under `key` (absent counts as 0) **now**, in one store
    /// call and without loading the session, and returns the new value. Concurrent
    /// increments of one key, from any instance, all count.
    ///
    /// It runs at once, so a later 5xx from the handler does not undo it (use
    /// [`increment_later`](Self::increment_later) for all-or-nothing with the rest of the
    /// request). A stored value that is not an integer is
    /// [`ErrorKind::NotAnInteger`], a sum outside `i64` is [`ErrorKind::Overflow`]; then
    /// nothing is written. A request without a live session gets a new one, holding
    /// `delta`. If the session ends while the request uses it, this is [`ErrorKind::Ended`].
    pub async fn increment(&self, key: &str, delta: i64) -> Result<i64, Error> {
        if let Some(sum) = self.fold_into_pending(key, |pending| add_to_stored(pending, delta))? {
            return Ok(sum);
        }
        self.shared.config.backend.increment(self, key, delta).await
    }

    /// Store mode's [`increment`](Self::increment): one atomic store call on the live
    /// session, or a new session holding `delta`.
    pub(crate) async fn increment_stored(
        &self,
        store: &StoreHandle,
        key: &str,
        delta: i64,
    ) -> Result<i64, Error> {
        self.check_immediate(key, |current| {
            add_to_stored(current, delta)
                .ok()
                .map(|sum| sum.to_string())
        })?;
        loop {
            let Target::Live(target) = self.target(store).await? else {
                self.start_session(store, key, delta.to_string()).await?;
                return Ok(delta);
            };
            let shared = &self.shared;
            let expiry = shared.expiry();
            let call = store.increment(target.hashed(), key, delta, expiry);
            match call
                .await
                .inspect_err(|error| shared.remember_failure(error))?
            {
                Incremented::Value(value) => {
                    self.committed(key, Some(value.to_string()));
                    return Ok(value);
                }
                Incremented::Rejected(error) => return Err(error.into()),
                Incremented::Gone => self.lost(&target)?,
            }
        }
    }

    /// Changes the value under `key` with `change` **now**, as a read-modify-write that
    /// loses no concurrent update: the new value is stored only if the key still holds
    /// what `change` saw (compare-and-set); otherwise `change` runs again on the newer
    /// value, after a short random wait that grows with each conflict (at most 32 ms),
    /// up to 16 times ([`ErrorKind::Contended`] after that). `None` in or out means
    /// absent. Returns what was stored. For a counter, prefer
    /// [`increment`](Self::increment): one atomic call, never contended.
    ///
    /// `change` may run more than once, so keep it free of side effects. Costs one store
    /// call when the session is already loaded (one more otherwise), plus one per retry.
    /// Like [`increment`](Self::increment), it is not undone by a later 5xx.
    pub async fn update<T, F>(&self, key: &str, mut change: F) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Option<T>,
    {
        let mut folded = None;
        let folding = self.fold_into_pending(key, |pending| {
            let value = change(decode(pending)?);
            let json = value.as_ref().map(encode).transpose()?;
            folded = Some(value);
            Ok::<_, Error>(json)
        })?;
        if folding.is_some() {
            return Ok(folded.flatten());
        }
        self.shared.config.backend.update(self, key, change).await
    }

    /// Store mode's [`update`](Self::update): compare-and-set rounds with backoff until
    /// one lands (`UPDATE_ATTEMPTS` at most).
    pub(crate) async fn update_stored<T, F>(
        &self,
        store: &StoreHandle,
        key: &str,
        mut change: F,
    ) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Option<T>,
    {
        let mut current = self.current(key).await?;
        for attempt in 0..UPDATE_ATTEMPTS {
            let value = change(decode(current.as_deref())?);
            let json = value.as_ref().map(encode).transpose()?;
            self.check_immediate(key, |_| json.clone())?;
            let Target::Live(target) = self.target(store).await? else {
                if let Some(json) = json {
                    self.start_session(store, key, json).await?;
                }
                return Ok(value);
            };
            let shared = &self.shared;
            let expiry = shared.expiry();
            let call = store.compare_and_set(
                target.hashed(),
                key,
                current.as_deref(),
                json.as_deref(),
                expiry,
            );
            match call
                .await
                .inspect_err(|error| shared.remember_failure(error))?
            {
                Swapped::Saved => {
                    self.committed(key, json);
                    return Ok(value);
                }
                Swapped::Conflict(now) => {
                    current = now;
                    if attempt + 1 < UPDATE_ATTEMPTS {
                        back_off(attempt).await;
                    }
                }
                Swapped::Gone => {
                    self.lost(&target)?;
                    current = None;
                }
            }
        }
        Err(Error::of_kind(ErrorKind::Contended))
    }

    /// A key this request already set, removed or cleared has its final value here:
    /// the operation applies to that pending value, without a store call.
    fn fold_into_pending<T, E>(
        &self,
        key: &str,
        apply: impl FnOnce(Option<&str>) -> Result<T, E>,
    ) -> Result<Option<T>, Error>
    where
        T: PendingValue,
        Error: From<E>,
    {
        // Through `change`: in token mode the new value must still fit in the cookie.
        self.change(|changes| {
            let pending = match changes.fields.get(key) {
                Some(value) => value.clone(),
                None if changes.clear => None,
                None => return Ok(None),
            };
            let result = apply(pending.as_deref())?;
            changes.fields.insert(key.to_owned(), result.as_json());
            Ok(Some(result))
        })
    }

    /// The live session to write to, if any. A pending `destroy()` is carried out first:
    /// the operation must not land in the session being ended.
    async fn target(&self, store: &StoreHandle) -> Result<Target, Error> {
        let shared = &self.shared;
        let doomed = {
            let state = shared.lock();
            if let Some(fresh) = &state.fresh {
                return Ok(Target::Live(fresh.clone()));
            }
            if state.seen == Seen::Missing {
                return Ok(Target::NewSession);
            }
            state.destroy
        };
        let Some(incoming) = shared.incoming() else {
            return Ok(Target::NewSession);
        };
        if !doomed {
            return Ok(Target::Live(incoming.clone()));
        }
        let destroy = store.destroy(incoming.hashed());
        destroy
            .await
            .inspect_err(|error| shared.remember_failure(error))?;
        let mut state = shared.lock();
        state.destroy = false;
        state.seen = Seen::Missing;
        Ok(Target::NewSession)
    }

    /// The target answered "gone". If this request had seen it live, a concurrent logout
    /// ended it and wins; if not, the request's cookie was stale, and the operation
    /// starts a new session instead.
    fn lost(&self, target: &Incoming) -> Result<(), Error> {
        let mut state = self.shared.lock();
        let is_fresh = state
            .fresh
            .as_ref()
            .is_some_and(|fresh| fresh.id == target.id);
        if is_fresh || matches!(state.seen, Seen::Live { .. }) {
            drop(state);
            self.shared.rejected(Rejected::Revoked, target);
            return Err(Error::of_kind(ErrorKind::Ended));
        }
        state.seen = Seen::Missing;
        drop(state);
        self.shared.rejected(Rejected::Unknown, target);
        Ok(())
    }

    /// Notes a value an immediate operation wrote; the session was live and refreshed.
    fn committed(&self, key: &str, value: Option<String>) {
        let mut state = self.shared.lock();
        if state.fresh.is_none() {
            state.seen = Seen::Live {
                needs_refresh: false,
            };
        }
        state.committed.insert(key.to_owned(), value);
    }

    /// Creates a new session now holding `key` = `json`; write-back continues with it.
    async fn start_session(
        &self,
        store: &StoreHandle,
        key: &str,
        json: String,
    ) -> Result<(), Error> {
        let shared = &self.shared;
        let expiry = shared.expiry();
        let record = Record::new(
            HashMap::from([(key.to_owned(), json.clone())]),
            Metadata::new(expiry.now),
        );
        let record = &record;
        let fresh = with_fresh_id(|id| async move {
            let fresh = Incoming::new(id, Verified::Signing);
            let create = store.create(fresh.hashed(), record, expiry);
            match create
                .await
                .inspect_err(|error| shared.remember_failure(error))?
            {
                Created::Saved => Ok(Some(fresh)),
                Created::IdInUse => Ok(None),
            }
        })
        .await?;
        let mut state = shared.lock();
        state.fresh = Some(fresh);
        state.committed.insert(key.to_owned(), Some(json));
        Ok(())
    }
}

/// A result that can stand as a pending value in the change set.
trait PendingValue {
    fn as_json(&self) -> Option<String>;
}

impl PendingValue for i64 {
    fn as_json(&self) -> Option<String> {
        Some(self.to_string())
    }
}

impl PendingValue for Option<String> {
    fn as_json(&self) -> Option<String> {
        self.clone()
    }
}

/// Waits before the retry that follows conflict number `conflict` (from 0) of an update.
async fn back_off(conflict: usize) {
    let doubled = UPDATE_BACKOFF.0.saturating_mul(1 << conflict.min(16));
    let bound = doubled.min(UPDATE_BACKOFF.1);
    let mut bytes = [0u8; 4];
    // Without randomness, half the bound: still a growing wait.
    let fraction = match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    };
    tokio::time::sleep(bound.mul_f64(fraction)).await;
}
