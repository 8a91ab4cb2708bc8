//! The `Session` handle that handlers use: reads, and writes recorded for write-back.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::carrier::Found;
use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::events::Clue;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::keys::{Rejected, Verified};
use crate::record::{add_to_stored, ChangeSet, Record, UserChange};
use crate::snapshot::{Incoming, Seen, Snapshot};

/// The current request's session: a cheap handle (one `Arc`) found in request extensions.
///
/// Nothing is loaded until a read needs it, and writes are only recorded: after the
/// handler answers, the layer sends the store the changed keys alone, in one call.
/// Values are stored as JSON through serde.
///
/// Two requests writing *different* keys of one session both land; two plain
/// [`insert`](Self::insert)s of the *same* key are last-writer-wins. For a key that
/// concurrent requests change, use [`increment`](Self::increment) or
/// [`update`](Self::update), which run at once and lose no concurrent update.
///
/// ```
/// # async fn handler(session: tower_stateless::Session) -> Result<(), tower_stateless::Error> {
/// let visits: u32 = session.get("visits").await?.unwrap_or(0);
/// session.insert("visits", &(visits + 1))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub(crate) config: Arc<Config>,
    /// The token the request carried, verified on first use: requests that never
    /// touch the session never pay for the HMAC.
    token: Found,
    incoming: OnceLock<Option<Incoming>>,
    state: Mutex<State>,
    /// The stored record, once something read it; `None` inside if the store had none.
    /// Shared with the store's cache (or the token's contents): reading it copies nothing.
    loaded: OnceCell<Option<Arc<Record>>>,
    /// The request's clock reading, taken once: every store call of a request happens
    /// at the same `now`.
    expiry: OnceLock<Expiry>,
}

/// What the handler did to the session, waiting for write-back.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) changes: ChangeSet,
    pub(crate) cycle: bool,
    pub(crate) destroy: bool,
    /// What the request learned of its stored session, by loading it or writing to it.
    pub(crate) seen: Seen,
    /// A session this request created at once, because an immediate operation had no
    /// live session to work on; write-back continues with it and hands out its token.
    pub(crate) fresh: Option<Incoming>,
    /// Values immediate operations already wrote: newer than the loaded record.
    pub(crate) committed: HashMap<String, Option<String>>,
    /// A store failure seen while serving the handler; the response becomes a 503.
    pub(crate) failure: Option<Error>,
}

impl Session {
    pub(crate) fn new(config: Arc<Config>, token: Found) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                token,
                incoming: OnceLock::new(),
                state: Mutex::new(State::default()),
                loaded: OnceCell::new(),
                expiry: OnceLock::new(),
            }),
        }
    }

    /// The value under `key`, loading the session on first use. It includes what this
    /// request changed, deferred increments too.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        let (pending, increment) = {
            let state = self.shared.lock();
            match state.changes.fields.get(key) {
                Some(change) => return decode(change.as_deref()),
                None => (
                    state.changes.clear.then_some(None),
                    state.changes.increments.get(key).copied(),
                ),
            }
        };
        let current = match pending {
            Some(cleared) => cleared,
            None => self.current(key).await?,
        };
        match increment {
            None => decode(current.as_deref()),
            Some(delta) => {
                let sum = add_to_stored(current.as_deref(), delta)?;
                decode(Some(&sum.to_string()))
            }
        }
    }

    /// Sets `key` to `value`. Recorded now, saved after the handler answers; no store call
    /// happens here, and writing without reading costs a single store call in all.
    pub fn insert<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), Error> {
        let json = encode(value)?;
        let key = key.into();
        self.change(|changes| {
            changes.increments.remove(&key);
            changes.fields.insert(key, Some(json));
            Ok(())
        })
    }

    /// Removes `key`.
    pub fn remove(&self, key: impl Into<String>) {
        let key = key.into();
        let mut state = self.shared.lock();
        state.changes.increments.remove(&key);
        state.changes.fields.insert(key, None);
    }

    /// Removes every key (the session itself, its ID and user stay).
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.changes.clear = true;
        state.changes.fields.clear();
        state.changes.increments.clear();
    }

    /// Adds `delta` to the integer under `key` (absent counts as 0) when the session is
    /// saved, in the same store call as the request's other changes, all or nothing:
    /// after a 5xx nothing is added, and if the stored value is not an integer or the sum
    /// would overflow, nothing of the request is saved and the response becomes a 409.
    /// Concurrent increments of one key all count. For an increment that happens at once
    /// and returns the new value, see [`increment`](Self::increment).
    pub fn increment_later(&self, key: impl Into<String>, delta: i64) -> Result<(), Error> {
        let key = key.into();
        self.change(|changes| {
            // A value this request set (or removed) is final: add to it here.
            if let Some(pending) = changes.fields.get(&key) {
                let sum = add_to_stored(pending.as_deref(), delta)?;
                changes.fields.insert(key, Some(sum.to_string()));
                return Ok(());
            }
            let total = changes.increments.get(&key).copied().unwrap_or(0);
            let total = total
                .checked_add(delta)
                .ok_or_else(|| Error::of_kind(ErrorKind::Overflow))?;
            changes.increments.insert(key, total);
            Ok(())
        })
    }

    /// Records a change for write-back. A change after which the session would pass its
    /// size bound (in token mode: no longer fit in its cookie) is undone and fails with
    /// [`ErrorKind::TooLarge`], here, where the handler can still react. In store mode the
    /// bound is exact once the request has read the session; a request that writes
    /// without reading is measured by its own writes only.
    pub(crate) fn change<R>(
        &self,
        change: impl FnOnce(&mut ChangeSet) -> Result<R, Error>,
    ) -> Result<R, Error> {
        let mut state = self.shared.lock();
        // A change that fails, or would take the session past its bound, leaves nothing.
        let before = state.changes.clone();
        let result = change(&mut state.changes);
        let fits = (result.as_ref().map_err(Clone::clone)).and_then(|_| self.fits(&state));
        if let Err(error) = fits {
            state.changes = before;
            return Err(error);
        }
        result
    }

    /// Whether the session, with the request's pending changes, stays within its bound:
    /// the cookie's budget in token mode, the size bound in store mode.
    fn fits(&self, state: &State) -> Result<(), Error> {
        self.shared.config.backend.fits(self, state)
    }

    /// The session's keys, sorted, loading the session on first use.
    pub async fn keys(&self) -> Result<Vec<String>, Error> {
        let record = if self.shared.lock().changes.clear {
            None
        } else {
            self.record().await?
        };
        let mut keys: BTreeSet<String> = record
            .map(|record| record.data.keys().cloned().collect())
            .unwrap_or_default();
        let state = self.shared.lock();
        let committed = state.committed.iter().filter(|_| !state.changes.clear);
        for (key, value) in committed.chain(&state.changes.fields) {
            if value.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
        keys.extend(state.changes.increments.keys().cloned());
        Ok(keys.into_iter().collect())
    }

    /// Gives the session a new ID; the old one is dead once the response is sent.
    /// Call it at login and at every privilege change, against session fixation.
    pub fn cycle_id(&self) {
        self.shared.lock().cycle = true;
    }

    /// Ends the session: it is deleted from the store and the client's cookie removed.
    /// Anything inserted afterwards in the same request starts a new session.
    pub fn destroy(&self) {
        let mut state = self.shared.lock();
        state.destroy = true;
        state.cycle = false;
        // Reads now see nothing stored (see `record`), only what is inserted afterwards.
        state.changes = ChangeSet::default();
        state.committed.clear();
    }

    /// Ties the session to `user_id`, so that the store can list the user's sessions
    /// and log them all out
    /// ([`SessionStore::destroy_sessions_of_user`](crate::store::SessionStore::destroy_sessions_of_user)).
    pub fn set_user_id(&self, user_id: impl Into<String>) {
        self.shared.lock().changes.user = UserChange::Bind(user_id.into());
    }

    /// The hashed ID under which the store knows this request's session: the one its
    /// token names, or one this request already created. `None` without a valid token.
    ///
    /// Lets a handler mark the current device among the user's sessions
    /// ([`SessionStore::sessions_of_user`](crate::store::SessionStore::sessions_of_user))
    /// or end all the others. It names the session as the request found it: after
    /// [`cycle_id`](Self::cycle_id) or a login, the next request carries a new one.
    pub fn hashed_id(&self) -> Option<HashedId> {
        if let Some(fresh) = &self.shared.lock().fresh {
            return Some(fresh.hashed().clone());
        }
        self.shared
            .incoming()
            .map(|incoming| incoming.hashed().clone())
    }

    /// The user the session is tied to, loading the session on first use.
    pub async fn user_id(&self) -> Result<Option<String>, Error> {
        match &self.shared.lock().changes.user {
            UserChange::Bind(user) => return Ok(Some(user.clone())),
            UserChange::Unbind => return Ok(None),
            UserChange::Keep => {}
        }
        Ok(self
            .record()
            .await?
            .and_then(|record| record.metadata.user_id.clone()))
    }

    /// The stored value of `key`, as immediate operations left it or as loaded.
    pub(crate) async fn current(&self, key: &str) -> Result<Option<String>, Error> {
        if let Some(value) = self.shared.lock().committed.get(key) {
            return Ok(value.clone());
        }
        let record = self.record().await?;
        Ok(record.and_then(|record| record.data.get(key).cloned()))
    }

    /// The stored record, loaded once per request; `None` for a session that this
    /// request destroyed or created, or that the store does not know.
    async fn record(&self) -> Result<Option<&Record>, Error> {
        let shared = &*self.shared;
        let Some(incoming) = shared.incoming() else {
            return Ok(None);
        };
        {
            let state = shared.lock();
            if state.destroy || state.fresh.is_some() || state.seen == Seen::Missing {
                return Ok(None);
            }
        }
        let loaded = shared
            .loaded
            .get_or_try_init(|| async {
                let expiry = shared.expiry();
                let loaded = (shared.config.backend)
                    .load(incoming, expiry)
                    .await
                    .inspect_err(|error| shared.remember_failure(error))?;
                let mut state = shared.lock();
                match &loaded {
                    Some(record) => {
                        if state.seen == Seen::NotLoaded {
                            // A token a retiring key sealed is re-sealed: a refresh does it.
                            let needs_refresh = (shared.config.expiry)
                                .needs_refresh(&record.metadata, &expiry)
                                || reseals(incoming);
                            state.seen = Seen::Live { needs_refresh };
                        }
                    }
                    None => {
                        // Seen live by an earlier write: it ended during the request.
                        let reason = if state.seen == Seen::NotLoaded {
                            state.seen = Seen::Missing;
                            Rejected::Unknown
                        } else {
                            Rejected::Revoked
                        };
                        drop(state);
                        shared.rejected(reason, incoming);
                    }
                }
                Ok::<_, Error>(loaded)
            })
            .await?;
        Ok(loaded.as_deref())
    }

    /// What the handler left for write-back: the session's state, taken once the
    /// handler's response is ready. A session the handler never touched is not even
    /// verified.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let shared = &*self.shared;
        let mut state = shared.lock();
        let changed = !state.changes.is_empty()
            || state.destroy
            || state.cycle
            || state.fresh.is_some()
            || state.failure.is_some();
        // Write-back needs the incoming session only for a request that changed it, or
        // whose reading found it due for a refresh or re-signing. A session never touched
        // is not even verified; one only read, live and current keeps its cookie as it is
        // (`plan` decides the same without it), and this copy, with its hashed ID, is the
        // one allocation such a request would still make here.
        let needed = changed
            || match state.seen {
                Seen::NotLoaded | Seen::Missing => false,
                Seen::Live { needs_refresh } => {
                    needs_refresh
                        || shared
                            .incoming()
                            .is_some_and(|incoming| incoming.verified == Verified::Retiring)
                }
            };
        Snapshot {
            failure: state.failure.take(),
            incoming: if needed {
                shared.incoming().cloned()
            } else {
                None
            },
            fresh: state.fresh.take(),
            seen: state.seen,
            changes: std::mem::take(&mut state.changes),
            cycle: state.cycle,
            destroy: state.destroy,
        }
    }

    /// The layer's configuration, for write-back.
    pub(crate) fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The layer's configuration, for a write-back that outlives this borrow.
    pub(crate) fn config_arc(&self) -> Arc<Config> {
        self.shared.config.clone()
    }

    /// The layer's lifetime rules at this request's time (read once per request): what
    /// store calls made by the handler itself take, e.g.
    /// [`SessionStore::sessions_of_user`](crate::store::SessionStore::sessions_of_user).
    pub fn expiry(&self) -> Expiry {
        self.shared.expiry()
    }
}

impl Shared {
    /// The stored fields, if a read loaded them (none if the store had no session).
    pub(crate) fn loaded_fields(&self) -> crate::size::Base<'_> {
        match self.loaded.get() {
            Some(loaded) => crate::size::Base::Known(loaded.as_deref().map(|r| &r.data)),
            None => crate::size::Base::Unknown,
        }
    }

    /// The expiry rules at this request's `now`.
    pub(crate) fn expiry(&self) -> Expiry {
        *self.expiry.get_or_init(|| self.config.expiry_now())
    }

    /// The request's verified ID. The tag is checked here, before any store call, so a
    /// forged token never causes I/O.
    pub(crate) fn incoming(&self) -> Option<&Incoming> {
        self.incoming
            .get_or_init(|| {
                let verdict = match &self.token {
                    Found::Absent => return None,
                    Found::Malformed => Err((Rejected::Malformed, Clue::None)),
                    Found::Token(token) => (self.config.keys)
                        .verify(self.config.carrier.name(), token)
                        .map_err(|reason| (reason, Clue::Token(token))),
                    Found::Sealed(token) => return self.config.backend.open(&self.config, token),
                };
                match verdict {
                    Ok((id, verified)) => Some(Incoming::new(id, verified)),
                    Err((reason, clue)) => {
                        self.config.events.rejected(reason, clue);
                        None
                    }
                }
            })
            .as_ref()
    }

    /// Reports the request's verified token as rejected: its session is unknown to the
    /// store, or ended while the request ran.
    pub(crate) fn rejected(&self, reason: Rejected, incoming: &Incoming) {
        (self.config.events).rejected(reason, Clue::Session(incoming.hashed().as_str()));
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few field updates that cannot panic halfway.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps a store failure so that the response becomes a 503 even if the handler
    /// swallows the error.
    pub(crate) fn remember_failure(&self, error: &Error) {
        let mut state = self.lock();
        if state.failure.is_none() && error.is_unavailable() {
            state.failure = Some(error.clone());
        }
    }
}

/// Whether the request's token must be re-sealed even if nothing changed: token mode,
/// opened by a retiring key.
fn reseals(incoming: &Incoming) -> bool {
    incoming.contents.is_some() && incoming.verified == Verified::Retiring
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    serde_json::to_string(value).map_err(Error::serde)
}

pub(crate) fn decode<T: DeserializeOwned>(json: Option<&str>) -> Result<Option<T>, Error> {
    json.map(serde_json::from_str)
        .transpose()
        .map_err(Error::serde)
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Session")
            .field("token", &self.shared.token)
            .field("changes", &state.changes)
            .field("seen", &state.seen)
            .field("cycle", &state.cycle)
            .field("destroy", &state.destroy)
            .finish_non_exhaustive()
    }
}
