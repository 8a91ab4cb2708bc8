//! Token mode's write-back: the operation [`plan`](crate::plan::plan) chose, carried out
//! by sealing a new token (and, for a logout or a new ID, recording a revocation).

use std::collections::HashMap;

use super::{bound_at, Contents, Tokens};
use crate::config::Config;
use crate::error::Error;
use crate::error::ErrorKind;
use crate::events::Clue;
use crate::expiry::Expiry;
use crate::id::SessionId;
use crate::keys::Rejected;
use crate::plan::{CookieUpdate, Outcome, Target, Write};
use crate::record::{ChangeSet, Metadata, Record};

/// Runs `write` in token mode at the request's `expiry`.
pub(crate) async fn run(config: &Config, tokens: &Tokens, write: Write, expiry: Expiry) -> Outcome {
    match execute(config, tokens, write, expiry).await {
        Ok(cookie) => Outcome::cookie(cookie),
        // As in store mode: a failure keeps the client's cookie.
        Err(error) => Outcome {
            cookie: CookieUpdate::Keep,
            failure: Some(error),
        },
    }
}

async fn execute(
    config: &Config,
    tokens: &Tokens,
    write: Write,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    match write {
        Write::Create(changes) => create(config, tokens, &changes, expiry),
        Write::Destroy(target, then) => {
            if let Some(contents) = &target.session.contents {
                tokens.revoke(contents, expiry).await?;
            }
            match then {
                Some(changes) => create(config, tokens, &changes, expiry),
                None => Ok(CookieUpdate::Remove),
            }
        }
        Write::Apply(target, changes) => match live(config, tokens, &target, expiry).await? {
            Some(contents) => reseal(
                config,
                tokens,
                contents,
                contents.id.clone(),
                &changes,
                expiry,
            ),
            None => gone(config, tokens, &target, &changes, expiry),
        },
        Write::Touch(target) => match live(config, tokens, &target, expiry).await {
            Ok(Some(contents)) => {
                let changes = ChangeSet::default();
                reseal(
                    config,
                    tokens,
                    contents,
                    contents.id.clone(),
                    &changes,
                    expiry,
                )
            }
            // Ended meanwhile: nothing to refresh, nothing to fail (as in store mode).
            Ok(None) => Ok(CookieUpdate::Keep),
            Err(error) if error.kind() == ErrorKind::Ended => Ok(CookieUpdate::Keep),
            Err(error) => Err(error),
        },
        Write::Cycle(target, changes) => {
            let Some(contents) = live(config, tokens, &target, expiry).await? else {
                return gone(config, tokens, &target, &changes, expiry);
            };
            let cookie = reseal(config, tokens, contents, fresh_id()?, &changes, expiry)?;
            // The old token must die with its ID: only then is the new one handed out.
            tokens.revoke(contents, expiry).await?;
            Ok(cookie)
        }
    }
}

/// The target's contents if its token is still live, checked now (deadlines,
/// revocations) even if the request loaded it: a login may have revoked it since. A token
/// the request saw live and that is dead now was ended meanwhile, and as in store mode
/// that wins: [`ErrorKind::Ended`] (409), and no cookie that could replace the newer one.
async fn live<'t>(
    config: &Config,
    tokens: &Tokens,
    target: &'t Target,
    expiry: Expiry,
) -> Result<Option<&'t Contents>, Error> {
    let Some(contents) = target.session.contents.as_ref() else {
        return Ok(None);
    };
    if tokens.is_live(contents, expiry).await? {
        return Ok(Some(contents));
    }
    if target.seen_live {
        let hashed = target.session.hashed();
        (config.events).rejected(Rejected::Revoked, Clue::Session(hashed.as_str()));
        return Err(Error::of_kind(ErrorKind::Ended));
    }
    Ok(None)
}

/// The session as the token carried it, with `changes`, refreshed now, under `id`.
fn reseal(
    config: &Config,
    tokens: &Tokens,
    contents: &Contents,
    id: SessionId,
    changes: &ChangeSet,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    let mut record = Record::clone(&contents.record);
    changes.apply_to(&mut record)?;
    record.metadata.refreshed_at = expiry.now;
    let sealed = Contents {
        id,
        record: record.into(),
        bound_at: bound_at(contents.bound_at, changes, expiry.now),
    };
    tokens.seal(config, &sealed).map(CookieUpdate::from)
}

/// The token was dead at write-back (expired or revoked) and the request never saw it
/// live: as a stale cookie in store mode, its writes start a new session.
fn gone(
    config: &Config,
    tokens: &Tokens,
    target: &Target,
    changes: &ChangeSet,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    let hashed = target.session.hashed();
    (config.events).rejected(Rejected::Unknown, Clue::Session(hashed.as_str()));
    if !changes.adds_anything() {
        return Ok(CookieUpdate::Keep);
    }
    create(config, tokens, changes, expiry)
}

/// A new session holding `changes`, under a fresh ID.
fn create(
    config: &Config,
    tokens: &Tokens,
    changes: &ChangeSet,
    expiry: Expiry,
) -> Result<CookieUpdate, Error> {
    let mut record = Record::new(HashMap::new(), Metadata::new(expiry.now));
    changes.apply_to(&mut record)?;
    let sealed = Contents {
        id: fresh_id()?,
        record: record.into(),
        bound_at: expiry.now,
    };
    tokens.seal(config, &sealed).map(CookieUpdate::from)
}

fn fresh_id() -> Result<SessionId, Error> {
    SessionId::generate().map_err(|error| Error::new(ErrorKind::Random, error))
}
