//! After the handler: run the one store operation that [`plan`](crate::plan::plan)
//! chose, then put its outcome on the response.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use http::header::CACHE_CONTROL;
use http::{HeaderMap, HeaderValue, Response};

use crate::config::Config;
use crate::error::{Error, ErrorKind};
use crate::events::Clue;
use crate::expiry::Expiry;
use crate::failure::OnFailure;
use crate::id::{HashedId, SessionId};
use crate::keys::Rejected;
use crate::limit::{self, Enforced};
use crate::plan::{CookieUpdate, Outcome, Target, Write};
use crate::protocol::Protocol;
use crate::record::{ChangeSet, Metadata, Record};
use crate::store::{Applied, Created, Cycled, StoreHandle};

/// Fresh IDs tried before a store that keeps answering "in use" is declared broken.
const FRESH_ID_ATTEMPTS: usize = 3;

/// The one create-with-retry loop: runs `attempt` with fresh random IDs until it answers
/// `Some` (`None`: the store has that ID already, astronomically unlikely), at most
/// three times.
pub(crate) async fn with_fresh_id<T, F, Fut>(mut attempt: F) -> Result<T, Error>
where
    F: FnMut(SessionId) -> Fut,
    Fut: Future<Output = Result<Option<T>, Error>>,
{
    for _ in 0..FRESH_ID_ATTEMPTS {
        let id = SessionId::generate().map_err(|error| Error::new(ErrorKind::Random, error))?;
        if let Some(done) = attempt(id).await? {
            return Ok(done);
        }
    }
    Err(Error::new(
        ErrorKind::Store,
        format!("the store reported {FRESH_ID_ATTEMPTS} fresh random session IDs as in use"),
    ))
}

/// Runs `write` against the layer's backend at the request's `expiry`.
pub(crate) async fn run(config: Arc<Config>, write: Write, expiry: Expiry) -> Outcome {
    config.backend.write_back(&config, write, expiry).await
}

/// Store mode's write-back: `write` against `store`, then the limit on a user's
/// sessions if the write bound one.
pub(crate) async fn in_store(
    config: &Config,
    store: &StoreHandle,
    write: Write,
    expiry: Expiry,
) -> Outcome {
    let binding = config.max_sessions_per_user.and_then(|limit| {
        let user = write.bound_user()?.to_owned();
        let target = write.target().map(|target| target.session.hashed().clone());
        Some((limit, user, target))
    });
    match execute(config, store, write, expiry).await {
        Ok(cookie) => {
            if let Some((limit, user, target)) = binding {
                let current = match &cookie {
                    CookieUpdate::Set(id) => Some(id.hashed()),
                    CookieUpdate::Keep => target,
                    // A sealed token is token mode's, which has no store to limit.
                    CookieUpdate::Remove | CookieUpdate::Sealed(_) => None,
                };
                if let Some(current) = current {
                    limit_sessions(store, &user, &current, limit, expiry).await;
                }
            }
            Outcome::cookie(cookie)
        }
        // Keep the cookie: an outage must never log anyone out, and a session that ended
        // meanwhile was ended by a request that removed the cookie itself; removing it
        // again here could delete a newer one (a login that raced this request).
        Err(error) => Outcome {
            cookie: CookieUpdate::Keep,
            failure: Some(error),
        },
    }
}

async fn execute(
    config: &Config,
    store: &StoreHandle,
    write: Write,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    match write {
        Write::Create(changes) => create(store, &changes, expiry).await,
        Write::Destroy(target, then) => {
            store.destroy(target.session.hashed()).await?;
            match then {
                Some(changes) => create(store, &changes, expiry).await,
                None => Ok(CookieUpdate::Remove),
            }
        }
        Write::Apply(target, changes) => {
            match store
                .apply(target.session.hashed(), &changes, expiry)
                .await?
            {
                Applied::Saved => Ok(target.kept()),
                Applied::Gone => gone(config, store, &target, &changes, expiry).await,
                // A deferred increment met a value it cannot add to: all or nothing.
                Applied::Rejected(error) => Err(error.into()),
            }
        }
        Write::Touch(target) => match store.touch(target.session.hashed(), expiry).await? {
            Applied::Saved => Ok(target.kept()),
            // Loaded live, gone now: ended meanwhile. Nothing to refresh, nothing to fail.
            Applied::Gone => {
                rejected(config, Rejected::Revoked, &target);
                Ok(CookieUpdate::Keep)
            }
            Applied::Rejected(_) => Ok(CookieUpdate::Keep),
        },
        Write::Cycle(target, changes) => {
            let (old, changes_ref) = (target.session.hashed(), &changes);
            // `Some(None)`: the session was gone.
            let cycled = with_fresh_id(|new| async move {
                match store
                    .cycle_id(old, &new.hashed(), changes_ref, expiry)
                    .await?
                {
                    Cycled::Saved => Ok(Some(Some(new))),
                    Cycled::IdInUse => Ok(None),
                    Cycled::Gone => Ok(Some(None)),
                    Cycled::Rejected(error) => Err(error.into()),
                }
            })
            .await?;
            match cycled {
                Some(new) => Ok(CookieUpdate::Set(new)),
                None => gone(config, store, &target, &changes, expiry).await,
            }
        }
    }
}

/// The target session was gone at write-back. If the request saw it live, it ended
/// meanwhile (a concurrent logout), and the logout wins: nothing is written. If not, the
/// request's cookie was stale (expired, or ended before the request began): its writes
/// go into a new session, and removals alone need nothing.
async fn gone(
    config: &Config,
    store: &StoreHandle,
    target: &Target,
    changes: &ChangeSet,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    if target.seen_live {
        rejected(config, Rejected::Revoked, target);
        return Err(Error::of_kind(ErrorKind::Ended));
    }
    rejected(config, Rejected::Unknown, target);
    if !changes.adds_anything() {
        return Ok(CookieUpdate::Keep);
    }
    create(store, changes, expiry).await
}

/// Enforces the limit on the user's sessions after a binding was saved. The binding
/// stands either way, so a failure here is logged, not answered.
async fn limit_sessions(
    store: &StoreHandle,
    user: &str,
    current: &HashedId,
    limit: usize,
    expiry: Expiry,
) {
    match limit::enforce(store, user, current, limit, expiry).await {
        Ok(Enforced { ended: 0, .. }) => {}
        Ok(Enforced {
            ended,
            ended_current,
        }) => tracing::debug!(
            ended,
            ended_current,
            "ended a user's sessions beyond the limit"
        ),
        Err(error) => tracing::warn!(
            error = %error.chain(),
            "could not enforce the limit on a user's sessions; the next login will"
        ),
    }
}

fn rejected(config: &Config, reason: Rejected, target: &Target) {
    let hashed = target.session.hashed();
    (config.events).rejected(reason, Clue::Session(hashed.as_str()));
}

/// Stores `changes` as a new session under a fresh ID.
async fn create(
    store: &StoreHandle,
    changes: &ChangeSet,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    let mut record = Record::new(HashMap::new(), Metadata::new(expiry.now));
    changes.apply_to(&mut record)?;
    let record = &record;
    let id = with_fresh_id(|id| async move {
        match store.create(&id.hashed(), record, expiry).await? {
            Created::Saved => Ok(Some(id)),
            Created::IdInUse => Ok(None),
        }
    })
    .await?;
    Ok(CookieUpdate::Set(id))
}

/// Writes the token change into `headers` (a response head, or a gRPC stream's
/// trailers); whether there was one.
pub(crate) fn put_token(cookie: CookieUpdate, headers: &mut HeaderMap, config: &Config) -> bool {
    let carrier = &config.carrier;
    let lifetime = config.expiry.absolute_lifetime;
    match cookie {
        CookieUpdate::Keep => return false,
        CookieUpdate::Set(id) => {
            carrier.set(headers, &config.keys.sign(carrier.name(), &id), lifetime);
        }
        CookieUpdate::Sealed(token) => carrier.set(headers, &token, lifetime),
        CookieUpdate::Remove => carrier.remove(headers),
    }
    true
}

impl Outcome {
    /// Puts the outcome on the handler's response: the failure response in its place if
    /// there is a failure, and the token change.
    pub(crate) fn finish<B>(
        self,
        mut response: Response<B>,
        config: &Config,
        on_failure: &impl OnFailure<B>,
        protocol: Protocol,
    ) -> Response<B> {
        if let Some(error) = &self.failure {
            tracing::warn!(
                error = %error.chain(),
                "session store call failed; answering with the failure response"
            );
            crate::metrics::failure_response(error.kind());
            response = on_failure.on_failure(error, protocol);
        }
        let headers = response.headers_mut();
        if !put_token(self.cookie, headers, config) {
            return response;
        }
        // A response that sets a session cookie must never be cached for someone else:
        // a shared cache would hand the token to the next client.
        if !headers.contains_key(CACHE_CONTROL) {
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        } else if headers.get_all(CACHE_CONTROL).iter().any(shared_cacheable) {
            tracing::warn!(
                "the handler made a response that sets or removes the session token cacheable \
                 by shared caches (public or s-maxage); sending Cache-Control: private, no-store"
            );
            headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-store"));
        }
        response
    }
}

/// Whether a `Cache-Control` value lets a shared cache store the response: `public` or
/// `s-maxage`, in any case. Works on bytes: a non-UTF-8 value cannot hide a directive.
fn shared_cacheable(value: &HeaderValue) -> bool {
    value.as_bytes().split(|&b| b == b',').any(|directive| {
        let name = directive.split(|&b| b == b'=').next().unwrap_or_default();
        let name = name.trim_ascii();
        name.eq_ignore_ascii_case(b"public") || name.eq_ignore_ascii_case(b"s-maxage")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_s_maxage_are_shared_cacheable() {
        for value in [
            "public",
            "public, max-age=3600",
            "max-age=60,PUBLIC",
            "s-maxage=60",
            "private, S-MaxAge = 5",
            " public ",
        ] {
            let value = HeaderValue::from_static(value);
            assert!(shared_cacheable(&value), "{value:?}");
        }
        for value in [
            "private, max-age=5",
            "no-store",
            "no-cache",
            "max-age=60",
            "",
            "publicity",
            "x-public=1",
        ] {
            let value = HeaderValue::from_static(value);
            assert!(!shared_cacheable(&value), "{value:?}");
        }
    }
}
