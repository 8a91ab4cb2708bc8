//! After the handler: decide what to write, write it, and update the cookie.

use std::collections::HashMap;
use std::sync::Arc;

use http::header::CACHE_CONTROL;
use http::{HeaderValue, Response};

use crate::error::{Error, StoreError};
use crate::failure::{OnFailure, Protocol};
use crate::id::SessionId;
use crate::keys::Verified;
use crate::record::{ChangeSet, Lifetime, Metadata, Record};
use crate::session::{within, Session, Shared};
use crate::store::{Applied, Created, Cycled};

/// Fresh IDs tried before a store that keeps answering "in use" is declared broken.
const ID_ATTEMPTS: usize = 3;

/// What the client's cookie should become.
#[derive(Debug)]
pub(crate) enum CookieUpdate {
    Keep,
    Set(SessionId),
    Remove,
}

/// The result of write-back: the cookie change, and a failure that replaces the response.
#[derive(Debug)]
pub(crate) struct Outcome {
    cookie: CookieUpdate,
    failure: Option<Error>,
}

impl Outcome {
    fn cookie(cookie: CookieUpdate) -> Self {
        Self {
            cookie,
            failure: None,
        }
    }

    fn from_result(result: Result<CookieUpdate, Error>) -> Self {
        match result {
            Ok(cookie) => Self::cookie(cookie),
            // The session is gone for good: drop the client's copy too.
            Err(Error::Ended) => Self {
                cookie: CookieUpdate::Remove,
                failure: Some(Error::Ended),
            },
            // Keep the cookie: a store outage must never log anyone out.
            Err(error) => Self {
                cookie: CookieUpdate::Keep,
                failure: Some(error),
            },
        }
    }

    /// Applies the outcome to the handler's response.
    pub(crate) fn finish<B>(
        self,
        mut response: Response<B>,
        session: &Session,
        on_failure: &impl OnFailure<B>,
        protocol: Protocol,
    ) -> Response<B> {
        if let Some(error) = &self.failure {
            tracing::warn!(%error, "session write-back failed; replacing the response");
            response = on_failure.on_failure(error, protocol);
        }
        let config = &session.shared.config;
        let headers = response.headers_mut();
        match self.cookie {
            CookieUpdate::Keep => return response,
            CookieUpdate::Set(id) => {
                let token = config.keys.sign(config.carrier.name(), &id);
                config
                    .carrier
                    .set(headers, &token, config.expiry.absolute_lifetime);
            }
            CookieUpdate::Remove => config.carrier.remove(headers),
        }
        // A response that sets a session cookie must never be cached for someone else.
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        }
        response
    }
}

/// Either the outcome, known without I/O, or the store work still to do.
pub(crate) enum Step {
    Done(Outcome),
    Io(Job),
}

/// One write-back that needs the store.
pub(crate) struct Job {
    shared: Arc<Shared>,
    op: Op,
}

enum Op {
    /// Logout; changes made after `destroy()` go into a new session.
    Destroy {
        then: Option<ChangeSet>,
    },
    Apply(ChangeSet),
    Touch,
    Cycle(ChangeSet),
    Create(ChangeSet),
}

/// Decides what the request's session needs, without I/O.
///
/// `saved` is false when the handler failed (5xx, or a non-OK gRPC status): then
/// nothing is written, whatever the handler changed.
pub(crate) fn plan(session: &Session, saved: bool) -> Step {
    let shared = &session.shared;
    let mut state = shared.lock();
    if let Some(error) = state.failure.take() {
        return Step::Done(Outcome {
            cookie: CookieUpdate::Keep,
            failure: Some(error),
        });
    }
    let untouched =
        state.changes.is_empty() && !state.destroy && !state.cycle && shared.loaded.get().is_none();
    if !saved || untouched {
        // Untouched: not even verified. A token from a retired key is re-issued on the
        // next request that uses the session.
        return Step::Done(Outcome::cookie(CookieUpdate::Keep));
    }
    let changes = std::mem::take(&mut state.changes);
    // An incoming ID the store may still know; one it reported missing is never adopted.
    let stored = shared.incoming().filter(|_| !state.missing);
    let op = match (stored, state.destroy, state.cycle) {
        (Some(_), true, _) => Op::Destroy {
            then: (!changes.is_empty()).then_some(changes),
        },
        (Some(_), false, true) => Op::Cycle(changes),
        (Some(_), false, false) if !changes.is_empty() => Op::Apply(changes),
        (None, ..) if !changes.is_empty() => Op::Create(changes),
        (Some(_), false, false) if needs_refresh(shared) => Op::Touch,
        _ => {
            return Step::Done(Outcome::cookie(passive_cookie(
                shared,
                state.missing || state.destroy,
            )))
        }
    };
    Step::Io(Job {
        shared: shared.clone(),
        op,
    })
}

fn needs_refresh(shared: &Shared) -> bool {
    let Some(Some(record)) = shared.loaded.get() else {
        return false;
    };
    let expiry = &shared.config.expiry;
    expiry.needs_refresh(&record.metadata, &shared.lifetime())
}

/// The cookie of a request that writes nothing.
fn passive_cookie(shared: &Shared, ended: bool) -> CookieUpdate {
    match shared.incoming() {
        None => CookieUpdate::Keep,
        Some(_) if ended => CookieUpdate::Remove,
        Some(incoming) => resign(incoming.verified, &incoming.id),
    }
}

/// Tokens verified by a retired key are re-issued under the current one.
fn resign(verified: Verified, id: &SessionId) -> CookieUpdate {
    match verified {
        Verified::BySigningKey => CookieUpdate::Keep,
        Verified::ByOldKey => CookieUpdate::Set(id.clone()),
    }
}

impl Job {
    pub(crate) async fn run(self) -> Outcome {
        Outcome::from_result(self.execute().await)
    }

    async fn execute(&self) -> Result<CookieUpdate, Error> {
        let config = &self.shared.config;
        let (store, limit) = (&*config.store, config.store_timeout);
        let lifetime = self.shared.lifetime();
        let incoming = self.shared.incoming();
        let current =
            || incoming.expect("stored-session operations are planned only with an incoming ID");
        match &self.op {
            Op::Create(changes) => self.create(changes, lifetime).await,
            Op::Destroy { then } => {
                within(limit, store.destroy(current().hashed())).await?;
                match then {
                    Some(changes) => self.create(changes, lifetime).await,
                    None => Ok(CookieUpdate::Remove),
                }
            }
            Op::Apply(changes) => {
                match within(limit, store.apply(current().hashed(), changes, lifetime)).await? {
                    Applied::Saved => Ok(resign(current().verified, &current().id)),
                    // Destroyed meanwhile (a concurrent logout): drop the change, never revive.
                    Applied::Gone => Err(Error::Ended),
                }
            }
            Op::Touch => match within(limit, store.touch(current().hashed(), lifetime)).await? {
                Applied::Saved => Ok(resign(current().verified, &current().id)),
                Applied::Gone => Ok(CookieUpdate::Remove),
            },
            Op::Cycle(changes) => {
                for _ in 0..ID_ATTEMPTS {
                    let new = SessionId::generate().map_err(Error::Random)?;
                    let new_hashed = new.hashed();
                    let cycled = store.cycle_id(current().hashed(), &new_hashed, changes, lifetime);
                    match within(limit, cycled).await? {
                        Cycled::Saved => return Ok(CookieUpdate::Set(new)),
                        Cycled::IdInUse => continue,
                        // A login over a stale cookie: start afresh under a new ID.
                        Cycled::Gone => return self.create(changes, lifetime).await,
                    }
                }
                Err(ids_exhausted())
            }
        }
    }

    async fn create(&self, changes: &ChangeSet, lifetime: Lifetime) -> Result<CookieUpdate, Error> {
        let config = &self.shared.config;
        let mut record = Record::new(HashMap::new(), Metadata::new(lifetime.now));
        changes.apply_to(&mut record);
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate().map_err(Error::Random)?;
            match within(
                config.store_timeout,
                config.store.create(&id.hashed(), &record, lifetime),
            )
            .await?
            {
                Created::Saved => return Ok(CookieUpdate::Set(id)),
                Created::IdInUse => continue,
            }
        }
        Err(ids_exhausted())
    }
}

fn ids_exhausted() -> Error {
    Error::Store(StoreError::backend(format!(
        "the store reported {ID_ATTEMPTS} fresh random session IDs as in use"
    )))
}
