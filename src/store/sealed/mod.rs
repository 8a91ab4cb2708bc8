//! `Sealed`: any store, with session data encrypted at rest.

mod cipher;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use self::cipher::{Cipher, Field, SEALED_PREFIX};
use super::{Applied, Created, Cycled, Incremented, SessionStore, SessionSummary, Swapped};
use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::keys::Keys;
use crate::record::{add_to_stored, ChangeSet, IncrementError, Record, UserChange};
use crate::time::Timestamp;

/// Compare-and-set rounds before an emulated increment or compare-and-set gives up on a
/// field that keeps changing. Every round that fails means another writer succeeded.
const ROUNDS: usize = 1000;

/// Wraps a store so that what it keeps reveals nothing but counts, timestamps and the
/// values of declared counters, and so that nothing it keeps can be forged or moved.
///
/// * **Values** are sealed with XChaCha20-Poly1305 (random 192-bit nonce), with the
///   session's [`HashedId`] and the stored field name as associated data: a value copied
///   to another session or field, changed, or truncated does not open.
/// * **Field names** are encrypted deterministically with AES-SIV, so a field keeps one
///   stored name and per-field deltas still work; equal names in two sessions have equal
///   stored names (the store sees which sessions share a field, never which field).
/// * **The user binding** reaches the store as a keyed hash (HMAC-SHA256), which the
///   per-user index is keyed by, so log-out-everywhere works; the user ID itself is kept
///   sealed in the session, and a binding whose sealed proof is missing, belongs to
///   another session, or names another user is rejected.
/// * **Counters**: fields whose name starts with a prefix given to
///   [`with_counters`](Self::with_counters) keep an integer value in plain text (their
///   name is still encrypted), so the store adds to them atomically: `increment` and
///   `increment_later` stay one exact store call. Someone who can write to the store can
///   read and change those integers, and only those.
///
/// Other fields are incremented by compare-and-set on the sealed value: `Session::increment`
/// and `Session::update` stay exact and atomic, at one more store call (two, per key
/// still to be retired). `increment_later` on a field that is not a counter reads the
/// session before the write-back, so a concurrent write of that field between the two is
/// lost: declare a field that concurrent requests increment as a counter.
///
/// A record that fails any check makes the call fail with [`StoreError::Corrupt`]: the
/// layer answers 503, as for any store failure, and never falls back to an empty session.
///
/// Keys are derived (HKDF-SHA256) from the layer's [`Keys`] and rotate with them: data
/// sealed or named under any of the keys opens; new data is sealed and named under the
/// signing key, and a write of a field removes its twin named under an older key. During
/// a rotation a counter can live under two names (one per key) and loads as their sum.
/// `cycle_id` re-seals the session for its new ID (it loads the session first).
///
/// Wrap the store once and use the wrapper everywhere, for the layer and for
/// log-out-everywhere (the user index is keyed by the hashed user ID):
///
/// ```
/// use tower_stateless::{Key, Keys, MemoryStore, Sealed, SessionLayer};
///
/// let keys = Keys::new(Key::generate());
/// let store = Sealed::new(MemoryStore::new(), &keys).with_counters("cart:");
/// let layer = SessionLayer::new(store.clone(), keys);
/// # let _ = layer;
/// ```
pub struct Sealed<S> {
    inner: S,
    cipher: Arc<Cipher>,
    counters: Arc<[String]>,
}

impl<S> Sealed<S> {
    /// Seals the data `inner` keeps under keys derived from `keys` (pass the layer's).
    pub fn new(inner: S, keys: &Keys) -> Self {
        Self {
            inner,
            cipher: Arc::new(Cipher::new(keys)),
            counters: Arc::from([]),
        }
    }

    /// Fields whose name starts with `prefix` are counters: an integer value is kept in
    /// plain text, so that increments are single atomic store calls. May be called more
    /// than once; `""` makes every field a counter.
    pub fn with_counters(mut self, prefix: impl Into<String>) -> Self {
        let mut counters = self.counters.to_vec();
        counters.push(prefix.into());
        self.counters = counters.into();
        self
    }

    /// The wrapped store.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn is_counter(&self, field: &str) -> bool {
        self.counters
            .iter()
            .any(|prefix| field.starts_with(prefix.as_str()))
    }

    fn name(&self, key: usize, field: &str) -> String {
        self.cipher.name(key, &Field::Data(field.to_owned()))
    }

    /// What `field`'s value is stored as under `stored_name`: a counter's integer as it
    /// is, anything else sealed.
    fn encode(&self, id: &HashedId, field: &str, stored_name: &str, value: &str) -> String {
        if self.is_counter(field) && add_to_stored(Some(value), 0).is_ok() {
            value.to_owned()
        } else {
            self.cipher.seal(id, stored_name, value)
        }
    }

    /// The value in one stored field, checked.
    fn decode(&self, id: &HashedId, field: &str, stored: &Stored) -> Result<String, StoreError> {
        if stored.raw.starts_with(SEALED_PREFIX) {
            self.cipher
                .open(id, &stored.name, &stored.raw)
                .ok_or_else(|| corrupt("a sealed value does not open for this session and field"))
        } else if self.is_counter(field) && add_to_stored(Some(&stored.raw), 0).is_ok() {
            Ok(stored.raw.clone())
        } else {
            Err(corrupt("a plain value in a field that is not a counter"))
        }
    }

    /// A field's value from its stored twins (one per key that named it, usually one):
    /// a counter's integer parts add up; otherwise the newest key's twin counts.
    fn value(
        &self,
        id: &HashedId,
        field: &str,
        twins: &[Stored],
    ) -> Result<Option<String>, StoreError> {
        let values = twins
            .iter()
            .map(|stored| self.decode(id, field, stored))
            .collect::<Result<Vec<_>, _>>()?;
        if values.len() > 1 && self.is_counter(field) {
            let parts: Result<Vec<i64>, _> = values
                .iter()
                .map(|value| add_to_stored(Some(value), 0))
                .collect();
            if let Ok(parts) = parts {
                let sum = parts.into_iter().try_fold(0i64, i64::checked_add);
                return sum
                    .map(|sum| Some(sum.to_string()))
                    .ok_or_else(|| corrupt("a counter's parts overflow"));
            }
        }
        Ok(values.into_iter().next())
    }

    /// Opens and checks a stored record: every name, every value, the user binding.
    fn open(&self, id: &HashedId, raw: Record) -> Result<Opened, StoreError> {
        let mut twins: BTreeMap<String, Vec<Stored>> = BTreeMap::new();
        let mut proof: Option<(usize, String)> = None;
        for (name, raw) in raw.data {
            let (key, field) = self
                .cipher
                .open_name(&name)
                .ok_or_else(|| corrupt("a field name that no key opens"))?;
            match field {
                Field::Data(field) => {
                    twins
                        .entry(field)
                        .or_default()
                        .push(Stored { key, name, raw });
                }
                Field::User => {
                    let user = self
                        .cipher
                        .open(id, &name, &raw)
                        .ok_or_else(|| corrupt("a user binding sealed for another session"))?;
                    if proof.as_ref().is_none_or(|(old, _)| key < *old) {
                        proof = Some((key, user));
                    }
                }
            }
        }
        let mut data = HashMap::with_capacity(twins.len());
        for (field, mut twins) in twins {
            twins.sort_by_key(|stored| stored.key);
            if let Some(value) = self.value(id, &field, &twins)? {
                data.insert(field, value);
            }
        }
        let mut metadata = raw.metadata;
        metadata.user_id = match (metadata.user_id.take(), proof) {
            (None, None) => None,
            (Some(hashed), Some((_, user)))
                if (0..self.cipher.key_count())
                    .any(|key| self.cipher.user(key, &user) == hashed) =>
            {
                Some(user)
            }
            _ => {
                return Err(corrupt(
                    "a user binding that its sealed proof does not match",
                ))
            }
        };
        Ok(Opened(Record::new(data, metadata)))
    }

    /// Sets `field` to `value` under the signing key's name, removing older twins.
    fn set(&self, out: &mut ChangeSet, id: &HashedId, field: &str, value: &str) {
        for key in 1..self.cipher.key_count() {
            out.fields.insert(self.name(key, field), None);
        }
        let name = self.name(0, field);
        let stored = self.encode(id, field, &name, value);
        out.fields.insert(name, Some(stored));
    }

    fn remove(&self, out: &mut ChangeSet, field: &str) {
        for key in 0..self.cipher.key_count() {
            out.fields.insert(self.name(key, field), None);
        }
    }

    /// Seals `user` as the session's proof of its binding, removing older twins.
    fn set_user_proof(&self, out: &mut ChangeSet, id: &HashedId, user: &str) {
        for key in 1..self.cipher.key_count() {
            out.fields.insert(self.cipher.name(key, &Field::User), None);
        }
        let name = self.cipher.name(0, &Field::User);
        let sealed = self.cipher.seal(id, &name, user);
        out.fields.insert(name, Some(sealed));
    }

    /// Whether encoding `changes` needs the stored session: increments of sealed fields
    /// are computed here, and `clear` must keep the user's proof.
    fn needs_session(&self, changes: &ChangeSet) -> bool {
        changes
            .increments
            .keys()
            .any(|field| !self.is_counter(field))
            || (changes.clear && changes.user == UserChange::Keep)
    }

    /// `changes` as the store must apply them for session `id`; `stored` is the session
    /// as stored when [`needs_session`](Self::needs_session) says so.
    fn encode_changes(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        stored: Option<&Opened>,
    ) -> Result<ChangeSet, IncrementError> {
        let mut out = ChangeSet {
            clear: changes.clear,
            ..ChangeSet::default()
        };
        for (field, value) in &changes.fields {
            match value {
                Some(value) => self.set(&mut out, id, field, value),
                None => self.remove(&mut out, field),
            }
        }
        for (field, delta) in &changes.increments {
            if self.is_counter(field) {
                out.increments.insert(self.name(0, field), *delta);
                continue;
            }
            let current = match stored {
                Some(stored) if !changes.clear && !changes.fields.contains_key(field) => {
                    stored.0.data.get(field).cloned()
                }
                _ => None,
            };
            match add_to_stored(current.as_deref(), *delta) {
                Ok(sum) => self.set(&mut out, id, field, &sum.to_string()),
                Err(error) => return Err(error),
            }
        }
        match &changes.user {
            UserChange::Keep => {
                let user = stored.and_then(|stored| stored.0.metadata.user_id.as_ref());
                if let Some(user) = user.filter(|_| changes.clear) {
                    self.set_user_proof(&mut out, id, user);
                }
            }
            UserChange::Bind(user) => {
                out.user = UserChange::Bind(self.cipher.user(0, user));
                self.set_user_proof(&mut out, id, user);
            }
            UserChange::Unbind => {
                out.user = UserChange::Unbind;
                for key in 0..self.cipher.key_count() {
                    out.fields.insert(self.cipher.name(key, &Field::User), None);
                }
            }
        }
        Ok(out)
    }
}

impl<S: SessionStore> Sealed<S> {
    /// The stored twins of `field` named by the keys in `keys` (all: `0..`), read
    /// through compare-and-set with an expectation no stored value meets: it writes
    /// nothing. `None` if the session is gone.
    async fn read(
        &self,
        id: &HashedId,
        field: &str,
        keys: std::ops::RangeFrom<usize>,
        expiry: Expiry,
    ) -> Result<Option<Vec<Stored>>, StoreError> {
        let mut twins = Vec::new();
        for key in keys.start..self.cipher.key_count() {
            let name = self.name(key, field);
            // No stored value is empty: a sealed one starts with `s`, an integer has digits.
            let probe = self
                .inner
                .compare_and_set(id, &name, Some(""), Some(""), expiry);
            let raw = match probe.await? {
                Swapped::Gone => return Ok(None),
                Swapped::Conflict(None) => continue,
                Swapped::Conflict(Some(raw)) => raw,
                Swapped::Saved => String::new(),
            };
            twins.push(Stored { key, name, raw });
        }
        Ok(Some(twins))
    }

    /// Rewrites a field that has twins as one field under the signing key's name (only
    /// during a key rotation).
    async fn merge_twins(
        &self,
        id: &HashedId,
        field: &str,
        twins: &[Stored],
        expiry: Expiry,
    ) -> Result<(), StoreError> {
        let mut out = ChangeSet::default();
        match self.value(id, field, twins)? {
            Some(value) => self.set(&mut out, id, field, &value),
            None => self.remove(&mut out, field),
        }
        let _saved_or_gone = self.inner.apply(id, &out, expiry).await?;
        Ok(())
    }

    /// Compare-and-set on the plain value: `change` maps the current value to the new
    /// one (`None` removes), or to `Err` to stop with that answer.
    async fn swap<T>(
        &self,
        id: &HashedId,
        field: &str,
        expiry: Expiry,
        mut change: impl FnMut(Option<String>) -> Result<(Option<String>, T), T>,
        gone: T,
    ) -> Result<T, StoreError> {
        // What a conflict answered, when it is all there is to know (one key, one name).
        let mut known: Option<Vec<Stored>> = None;
        for _ in 0..ROUNDS {
            let twins = match known.take() {
                Some(twins) => twins,
                None => match self.read(id, field, 0.., expiry).await? {
                    Some(twins) => twins,
                    None => return Ok(gone),
                },
            };
            if twins.len() > 1 {
                self.merge_twins(id, field, &twins, expiry).await?;
                continue;
            }
            let current = self.value(id, field, &twins)?;
            let (new, answer) = match change(current) {
                Ok(next) => next,
                Err(answer) => return Ok(answer),
            };
            let (target, expected) = match twins.into_iter().next() {
                Some(stored) => (stored.name, Some(stored.raw)),
                None => (self.name(0, field), None),
            };
            let new = new.map(|value| self.encode(id, field, &target, &value));
            let swap = self.inner.compare_and_set(
                id,
                &target,
                expected.as_deref(),
                new.as_deref(),
                expiry,
            );
            match swap.await? {
                Swapped::Saved => return Ok(answer),
                Swapped::Gone => return Ok(gone),
                Swapped::Conflict(current) if self.cipher.key_count() == 1 => {
                    known = Some(Vec::from_iter(current.map(|raw| Stored {
                        key: 0,
                        name: target,
                        raw,
                    })));
                }
                Swapped::Conflict(_) => {}
            }
        }
        Err(StoreError::backend(
            "a sealed field kept changing during a compare-and-set",
        ))
    }

    /// The session stored under `id`, opened and checked.
    async fn load_opened(
        &self,
        id: &HashedId,
        expiry: Expiry,
    ) -> Result<Option<Opened>, StoreError> {
        match self.inner.load(id, expiry).await? {
            Some(raw) => self.open(id, raw).map(Some),
            None => Ok(None),
        }
    }
}

impl<S: SessionStore> SessionStore for Sealed<S> {
    async fn load(&self, id: &HashedId, expiry: Expiry) -> Result<Option<Record>, StoreError> {
        Ok(self.load_opened(id, expiry).await?.map(|opened| opened.0))
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        let mut changes = ChangeSet::default();
        for (field, value) in &record.data {
            self.set(&mut changes, id, field, value);
        }
        if let Some(user) = &record.metadata.user_id {
            self.set_user_proof(&mut changes, id, user);
        }
        let data = changes
            .fields
            .into_iter()
            .filter_map(|(name, value)| Some((name, value?)))
            .collect();
        let mut metadata = record.metadata.clone();
        metadata.user_id = metadata.user_id.map(|user| self.cipher.user(0, &user));
        self.inner
            .create(id, &Record::new(data, metadata), expiry)
            .await
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, StoreError> {
        let stored = if self.needs_session(changes) {
            match self.load_opened(id, expiry).await? {
                Some(stored) => Some(stored),
                None => return Ok(Applied::Gone),
            }
        } else {
            None
        };
        match self.encode_changes(id, changes, stored.as_ref()) {
            Ok(encoded) => self.inner.apply(id, &encoded, expiry).await,
            Err(error) => Ok(Applied::Rejected(error)),
        }
    }

    async fn touch(&self, id: &HashedId, expiry: Expiry) -> Result<Applied, StoreError> {
        self.inner.touch(id, expiry).await
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        let stored = if self.needs_session(changes) {
            match self.load_opened(old, expiry).await? {
                Some(stored) => Some(stored),
                None => return Ok(Cycled::Gone),
            }
        } else {
            None
        };
        let encoded = match self.encode_changes(new, changes, stored.as_ref()) {
            Ok(encoded) => encoded,
            Err(error) => return Ok(Cycled::Rejected(error)),
        };
        let cycled = self.inner.cycle_id(old, new, &encoded, expiry).await?;
        if cycled == Cycled::Saved {
            self.reseal(old, new, expiry).await?;
        }
        Ok(cycled)
    }

    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        if !self.is_counter(field) {
            let add = |current: Option<String>| match add_to_stored(current.as_deref(), delta) {
                Ok(sum) => Ok((Some(sum.to_string()), Incremented::Value(sum))),
                Err(error) => Err(Incremented::Rejected(error)),
            };
            return self.swap(id, field, expiry, add, Incremented::Gone).await;
        }
        let added = self
            .inner
            .increment(id, &self.name(0, field), delta, expiry)
            .await?;
        let Incremented::Value(mut total) = added else {
            return Ok(added);
        };
        // During a rotation, parts of the counter named under older keys add up.
        if self.cipher.key_count() > 1 {
            if let Some(twins) = self.read(id, field, 1.., expiry).await? {
                for twin in &twins {
                    let part = add_to_stored(Some(&self.decode(id, field, twin)?), 0)
                        .map_err(|_| corrupt("a counter part is not an integer"))?;
                    total = total
                        .checked_add(part)
                        .ok_or_else(|| corrupt("a counter's parts overflow"))?;
                }
            }
        }
        Ok(Incremented::Value(total))
    }

    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        let check = |current: Option<String>| {
            if current.as_deref() == expected {
                Ok((new.map(str::to_owned), Swapped::Saved))
            } else {
                Err(Swapped::Conflict(current))
            }
        };
        self.swap(id, field, expiry, check, Swapped::Gone).await
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.inner.destroy(id).await
    }

    async fn destroy_many(&self, ids: &[HashedId]) -> Result<(), StoreError> {
        self.inner.destroy_many(ids).await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut seen = HashSet::new();
        let mut sessions = Vec::new();
        for key in 0..self.cipher.key_count() {
            let hashed = self.cipher.user(key, user_id);
            for mut summary in self.inner.sessions_of_user(&hashed, expiry).await? {
                if seen.insert(summary.id.clone()) {
                    summary.metadata.user_id = Some(user_id.to_owned());
                    sessions.push(summary);
                }
            }
        }
        Ok(sessions)
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut destroyed = 0;
        for key in 0..self.cipher.key_count() {
            let hashed = self.cipher.user(key, user_id);
            destroyed += self.inner.destroy_sessions_of_user(&hashed).await?;
        }
        Ok(destroyed)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }

    async fn time(&self) -> Result<Option<Timestamp>, StoreError> {
        self.inner.time().await
    }
}

impl<S: SessionStore> Sealed<S> {
    /// After a cycle, sealed values moved to the new ID are still bound to the old one:
    /// seal them anew. Only now, when the session has left the old ID (so no request
    /// writes there any more) and before any token for the new ID is handed out (so none
    /// writes there yet), is a rewrite sure to lose no concurrent write.
    async fn reseal(
        &self,
        old: &HashedId,
        new: &HashedId,
        expiry: Expiry,
    ) -> Result<(), StoreError> {
        let Some(moved) = self.inner.load(new, expiry).await? else {
            return Ok(());
        };
        let mut fixes = ChangeSet::default();
        for (name, raw) in &moved.data {
            if raw.starts_with(SEALED_PREFIX) && self.cipher.open(new, name, raw).is_none() {
                if let Some(value) = self.cipher.open(old, name, raw) {
                    let resealed = self.cipher.seal(new, name, &value);
                    fixes.fields.insert(name.clone(), Some(resealed));
                }
            }
        }
        if !fixes.is_empty() {
            let _saved_or_gone = self.inner.apply(new, &fixes, expiry).await?;
        }
        Ok(())
    }
}

/// One stored field: which key named it, its stored name, its stored value.
struct Stored {
    key: usize,
    name: String,
    raw: String,
}

/// A stored record, opened and checked: what the layer sees.
struct Opened(Record);

fn corrupt(why: &str) -> StoreError {
    StoreError::Corrupt(format!("sealed session data: {why}"))
}

impl<S: Clone> Clone for Sealed<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            cipher: self.cipher.clone(),
            counters: self.counters.clone(),
        }
    }
}

impl<S: fmt::Debug> fmt::Debug for Sealed<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("inner", &self.inner)
            .field("keys", &self.cipher.key_count())
            .field("counter_prefixes", &self.counters.len())
            .finish()
    }
}
