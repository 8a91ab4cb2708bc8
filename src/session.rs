//! The `Session` handle that handlers use.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::Poll;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::OnceCell;

use crate::carrier::RawToken;
use crate::error::{Error, StoreError};
use crate::id::{HashedId, SessionId};
use crate::keys::Verified;
use crate::layer::Config;
use crate::record::{ChangeSet, Lifetime, Record};

/// The current request's session: a cheap handle (one `Arc`) found in request extensions.
///
/// Nothing is loaded until a read needs it, and writes are only recorded: after the
/// handler answers, the layer sends the store the changed keys alone, in one call.
/// Values are stored as JSON through serde.
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
    token: Option<RawToken>,
    incoming: OnceLock<Option<Incoming>>,
    pub(crate) state: Mutex<State>,
    /// The stored record, once something read it; `None` inside if the store had none.
    pub(crate) loaded: OnceCell<Option<Record>>,
    /// The request's clock reading, taken once: every store call of a request happens
    /// at the same `now`.
    lifetime: OnceLock<Lifetime>,
}

pub(crate) struct Incoming {
    pub(crate) id: SessionId,
    pub(crate) verified: Verified,
    hashed: OnceLock<HashedId>,
}

impl Incoming {
    pub(crate) fn new(id: SessionId, verified: Verified) -> Self {
        Self {
            id,
            verified,
            hashed: OnceLock::new(),
        }
    }

    /// Hashed on first use: requests that never touch the session never hash.
    pub(crate) fn hashed(&self) -> &HashedId {
        self.hashed.get_or_init(|| self.id.hashed())
    }
}

/// What the handler asked for, waiting for write-back.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) changes: ChangeSet,
    pub(crate) cycle: bool,
    pub(crate) destroy: bool,
    /// The store does not know the incoming ID (missing or expired).
    pub(crate) missing: bool,
    /// A store failure seen while serving the handler; the response becomes a 503.
    pub(crate) failure: Option<Error>,
}

impl Session {
    pub(crate) fn new(config: Arc<Config>, token: Option<RawToken>) -> Self {
        Self {
            shared: Arc::new(Shared {
                config,
                token,
                incoming: OnceLock::new(),
                state: Mutex::new(State::default()),
                loaded: OnceCell::new(),
                lifetime: OnceLock::new(),
            }),
        }
    }

    /// The value under `key`, loading the session on first use.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Error> {
        {
            let state = self.shared.lock();
            if let Some(change) = state.changes.fields.get(key) {
                return decode(change.as_deref());
            }
            if state.changes.clear {
                return Ok(None);
            }
        }
        let record = self.record().await?;
        decode(
            record
                .and_then(|record| record.data.get(key))
                .map(String::as_str),
        )
    }

    /// Sets `key` to `value`. Recorded now, saved after the handler answers; no store call
    /// happens here, and writing without reading costs a single store call in all.
    pub fn insert<T: Serialize + ?Sized>(
        &self,
        key: impl Into<String>,
        value: &T,
    ) -> Result<(), Error> {
        let json = serde_json::to_string(value).map_err(Error::Serde)?;
        self.shared
            .lock()
            .changes
            .fields
            .insert(key.into(), Some(json));
        Ok(())
    }

    /// Removes `key`.
    pub fn remove(&self, key: impl Into<String>) {
        self.shared.lock().changes.fields.insert(key.into(), None);
    }

    /// Removes every key (the session itself, its ID and user stay).
    pub fn clear(&self) {
        let mut state = self.shared.lock();
        state.changes.clear = true;
        state.changes.fields.clear();
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
        for (key, value) in &self.shared.lock().changes.fields {
            if value.is_some() {
                keys.insert(key.clone());
            } else {
                keys.remove(key);
            }
        }
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
    }

    /// Ties the session to `user_id`, so that the store can list the user's sessions
    /// and log them all out ([`SessionStore::destroy_sessions_of_user`](crate::SessionStore::destroy_sessions_of_user)).
    pub fn set_user_id(&self, user_id: impl Into<String>) {
        self.shared.lock().changes.user_id = Some(Some(user_id.into()));
    }

    /// The user the session is tied to, loading the session on first use.
    pub async fn user_id(&self) -> Result<Option<String>, Error> {
        if let Some(user) = &self.shared.lock().changes.user_id {
            return Ok(user.clone());
        }
        Ok(self
            .record()
            .await?
            .and_then(|record| record.metadata.user_id.clone()))
    }

    /// The stored record, loaded once per request.
    async fn record(&self) -> Result<Option<&Record>, Error> {
        let shared = &*self.shared;
        let Some(incoming) = shared.incoming() else {
            return Ok(None);
        };
        if shared.lock().destroy {
            return Ok(None);
        }
        let loaded = shared
            .loaded
            .get_or_try_init(|| async {
                let config = &shared.config;
                let load = config.store.load(incoming.hashed(), shared.lifetime());
                match within(config.store_timeout, load).await {
                    Ok(record) => {
                        shared.lock().missing = record.is_none();
                        Ok(record)
                    }
                    Err(error) => {
                        shared.remember_failure(&error);
                        Err(error)
                    }
                }
            })
            .await?;
        Ok(loaded.as_ref())
    }
}

impl Shared {
    /// The expiry rules at this request's `now`.
    pub(crate) fn lifetime(&self) -> Lifetime {
        *self.lifetime.get_or_init(|| self.config.expiry.lifetime())
    }

    /// The request's verified ID. The tag is checked here, before any store call, so a
    /// forged token never causes I/O.
    pub(crate) fn incoming(&self) -> Option<&Incoming> {
        self.incoming
            .get_or_init(|| {
                let token = self.token.as_ref()?;
                let (id, verified) = self.config.keys.verify(self.config.carrier.name(), token)?;
                Some(Incoming::new(id, verified))
            })
            .as_ref()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section is a few field updates that cannot panic halfway.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember_failure(&self, error: &Error) {
        let mut state = self.lock();
        if state.failure.is_none() {
            state.failure = error.copy_if_unavailable();
        }
    }
}

/// Runs one store call under the layer's timeout.
pub(crate) async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Error> {
    let mut call = std::pin::pin!(call);
    // A store that answers on the first poll (one in memory) needs no timer; one that
    // does I/O has only just sent its request when the timer starts.
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    let result = match first {
        Poll::Ready(result) => result,
        Poll::Pending => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => return Err(Error::Timeout(limit)),
        },
    };
    result.map_err(Error::Store)
}

fn decode<T: DeserializeOwned>(json: Option<&str>) -> Result<Option<T>, Error> {
    json.map(serde_json::from_str)
        .transpose()
        .map_err(Error::Serde)
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.lock();
        f.debug_struct("Session")
            .field("token", &self.shared.token.as_ref().map(|_| "<redacted>"))
            .field("changed_keys", &state.changes.fields.len())
            .field("cycle", &state.cycle)
            .field("destroy", &state.destroy)
            .finish_non_exhaustive()
    }
}
