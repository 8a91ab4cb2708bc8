//! `cycle_id` on Redis: atomic in one script on a single server; copy-then-delete on a
//! cluster, where the old and new keys live in different slots.

use ::redis::Value;

use super::codec;
use super::scripts::{CYCLE, CYCLE_FINISH};
use super::store::{unexpected_reply, RedisStore};
use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::record::{ChangeSet, UserChange};
use crate::store::{Created, Cycled, SessionStore};

/// How often `cycle_id` retries when the session changes under it, before giving up.
const CYCLE_ATTEMPTS: usize = 8;

impl RedisStore {
    /// `cycle_id` on a single server: one script moves the session atomically.
    pub(super) async fn cycle_atomically(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        if let UserChange::Bind(user) = &changes.user {
            self.index_add(user, new, expiry).await?;
        }
        // The session may already be bound to a user, unknown here: the script then asks
        // for the new ID to be indexed under that user first, and is run again.
        let mut indexed: Option<String> = None;
        for _ in 0..CYCLE_ATTEMPTS {
            let mut invocation = CYCLE.key(self.session_key(old.as_str()));
            invocation.key(self.session_key(new.as_str()));
            codec::push_expiry(&mut invocation, expiry);
            match &indexed {
                Some(user) => invocation.arg("1").arg(user.as_str()),
                None => invocation.arg("0").arg(""),
            };
            codec::push_changes(&mut invocation, changes);
            let reply: Vec<String> = invocation
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::backend)?;
            match (reply.first().map(String::as_str), reply.get(1)) {
                (Some("gone"), _) => return Ok(Cycled::Gone),
                (Some("rejected"), why) => return Ok(Cycled::Rejected(codec::rejection(why)?)),
                (Some("in-use"), _) => return Ok(Cycled::IdInUse),
                (Some("index"), Some(user)) => {
                    self.index_add(user, new, expiry).await?;
                    indexed = Some(user.clone());
                }
                (Some("saved"), previous) => {
                    if let Some(previous) = previous {
                        self.index_remove(previous, old).await;
                    }
                    return Ok(Cycled::Saved);
                }
                _ => return Err(unexpected_reply()),
            }
        }
        Err(StoreError::backend(
            "the session's user kept changing during cycle_id",
        ))
    }

    /// `cycle_id` on a cluster, where the two keys live in different slots: copy, then
    /// delete the old key only if nothing changed it meanwhile.
    pub(super) async fn cycle_by_copy(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        let old_key = self.session_key(old.as_str());
        for _ in 0..CYCLE_ATTEMPTS {
            let mut read = ::redis::cmd("HGETALL");
            read.arg(&old_key);
            let reply: Value = read
                .query_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::backend)?;
            let Some((mut record, generation)) = codec::decode_record(codec::hash_entries(reply)?)?
            else {
                return Ok(Cycled::Gone);
            };
            if !expiry.is_live(&record.metadata) {
                return Ok(Cycled::Gone);
            }
            let previous = record.metadata.user_id.clone();
            if let Err(error) = changes.apply_to(&mut record) {
                return Ok(Cycled::Rejected(error));
            }
            record.metadata.refreshed_at = expiry.now;
            if let Some(user) = &record.metadata.user_id {
                self.index_add(user, new, expiry).await?;
            }
            if self.write_new(new, &record, expiry).await? == Created::IdInUse {
                return Ok(Cycled::IdInUse);
            }
            let mut finish = CYCLE_FINISH.key(&old_key);
            finish.arg(generation);
            let outcome: String = finish
                .invoke_async(&mut self.conn.clone())
                .await
                .map_err(StoreError::backend)?;
            match outcome.as_str() {
                "moved" => {
                    if let Some(previous) = previous {
                        self.index_remove(&previous, old).await;
                    }
                    return Ok(Cycled::Saved);
                }
                // Destroyed meanwhile: the copy must not outlive it.
                "gone" => {
                    self.destroy(new).await?;
                    return Ok(Cycled::Gone);
                }
                // Written meanwhile: drop the copy and start over from the newer data.
                "changed" => self.destroy(new).await?,
                _ => return Err(unexpected_reply()),
            }
        }
        Err(StoreError::backend(
            "the session kept changing during cycle_id",
        ))
    }
}
