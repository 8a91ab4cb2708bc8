//! What `Session` does differently in token mode: the size budget at the point of a
//! change, and immediate operations folded into the request's own changes (the token
//! is the only copy of the session, so there is no store call to make at once).

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::Tokens;
use crate::error::{Error, ErrorKind};
use crate::record::{add_to_stored, Metadata, Record};
use crate::session::{decode, encode, Session, State};
use crate::snapshot::Seen;

impl Session {
    /// Whether the session, with the request's pending changes, still fits in its cookie.
    /// Counted against the token as the request brought it (before any liveness check):
    /// a dead token's data only makes the estimate larger.
    pub(crate) fn fits_in_token(&self, tokens: &Tokens, state: &State) -> Result<(), Error> {
        let shared = &self.shared;
        let base = match shared.incoming() {
            Some(incoming) if !state.destroy && state.seen != Seen::Missing => {
                incoming.contents.as_ref().map(|c| Record::clone(&c.record))
            }
            _ => None,
        };
        let mut record =
            base.unwrap_or_else(|| Record::new(HashMap::new(), Metadata::new(shared.expiry().now)));
        // A rejected increment fails the write-back (409) anyway; nothing to measure.
        if state.changes.apply_to(&mut record).is_err() {
            return Ok(());
        }
        tokens.check_budget(&shared.config, &record)
    }

    /// Token mode's [`increment`](Session::increment): the sum, computed now from the
    /// token's value, becomes the key's pending value.
    pub(crate) async fn increment_sealed(&self, key: &str, delta: i64) -> Result<i64, Error> {
        let current = self.current(key).await?;
        self.change(|changes| {
            let pending = changes.increments.get(key).copied().unwrap_or(0);
            let sum = add_to_stored(current.as_deref(), pending)?
                .checked_add(delta)
                .ok_or_else(|| Error::of_kind(ErrorKind::Overflow))?;
            changes.increments.remove(key);
            changes.fields.insert(key.to_owned(), Some(sum.to_string()));
            Ok(sum)
        })
    }

    /// Token mode's [`update`](Session::update): `change` runs once on the current value
    /// (the token's, plus this request's deferred increments), and its result becomes the
    /// key's pending value.
    pub(crate) async fn update_sealed<T, F>(&self, key: &str, change: F) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnOnce(Option<T>) -> Option<T>,
    {
        let current = self.current(key).await?;
        let pending = self.shared.lock().changes.increments.get(key).copied();
        let current = match pending {
            Some(delta) => Some(add_to_stored(current.as_deref(), delta)?.to_string()),
            None => current,
        };
        let value = change(decode(current.as_deref())?);
        let json = value.as_ref().map(encode).transpose()?;
        self.change(|changes| {
            changes.increments.remove(key);
            changes.fields.insert(key.to_owned(), json);
            Ok(())
        })?;
        Ok(value)
    }
}
