//! The per-user index behind log-out-everywhere: a sorted set of the user's hashed
//! session IDs, added to before any write that binds a session, pruned when read.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::try_join_all;

use super::codec;
use super::scripts::{DESTROY_IF_USER, INDEX_ADD, INDEX_PRUNE};
use super::store::RedisStore;
use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::store::{SessionSummary, MAX_LISTED};
use crate::time::Timestamp;

/// A user-index entry younger than this is never pruned, even if its session is not
/// (yet) there: it may belong to a write still in flight. Far longer than any request.
const INDEX_GRACE: Duration = Duration::from_secs(60);
/// Listings of a user's index that log-out-everywhere makes at most, chasing sessions
/// that move to new IDs while it runs.
const DESTROY_PASSES: usize = 8;
/// Pages of [`MAX_LISTED`] index entries a listing reads at most, past entries of
/// sessions deleted within [`INDEX_GRACE`].
const LIST_PAGES: usize = 4;

impl RedisStore {
    /// Adds `id` to `user`'s index; done before any write that binds `id` to `user`.
    pub(super) async fn index_add(
        &self,
        user: &str,
        id: &HashedId,
        expiry: Expiry,
    ) -> Result<(), StoreError> {
        // Every session in the index dies within its absolute expiry from now.
        let ttl = codec::millis(expiry.absolute_lifetime) + codec::millis(INDEX_GRACE);
        let mut invocation = INDEX_ADD.key(self.user_key(user));
        invocation.arg(id.as_str()).arg(ttl);
        invocation
            .invoke_async::<()>(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }

    /// Drops `id` from `user`'s index after the session left that user. Only tidies up:
    /// a stale entry is harmless, so a failure is logged, not returned.
    pub(super) async fn index_remove(&self, user: &str, id: &HashedId) {
        for index in self.user_keys(user) {
            let mut command = ::redis::cmd("ZREM");
            command.arg(index).arg(id.as_str());
            if let Err(error) = command.query_async::<()>(&mut self.conn.clone()).await {
                tracing::debug!(%error, session = ?id, "could not drop a stale user-index entry");
            }
        }
    }

    /// Drops index entries: `deleted` outright, `maybe_stale` only past [`INDEX_GRACE`].
    /// Also only tidying up, so failures are logged.
    async fn index_prune(&self, index: String, deleted: &[String], maybe_stale: &[String]) {
        if deleted.is_empty() && maybe_stale.is_empty() {
            return;
        }
        let mut invocation = INDEX_PRUNE.key(index);
        invocation
            .arg(codec::millis(INDEX_GRACE))
            .arg(deleted.len())
            .arg(deleted)
            .arg(maybe_stale);
        if let Err(error) = invocation.invoke_async::<()>(&mut self.conn.clone()).await {
            tracing::debug!(%error, "could not prune a user index");
        }
    }

    async fn members(&self, index: &str) -> Result<Vec<String>, StoreError> {
        let mut command = ::redis::cmd("ZRANGE");
        command.arg(index).arg(0).arg(-1);
        command
            .query_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }

    /// [`MAX_LISTED`] members of the index from the `page`th, newest first, with their
    /// scores: when each was bound, by this server's clock.
    async fn members_bound_at(
        &self,
        index: &str,
        page: usize,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        let mut command = ::redis::cmd("ZREVRANGE");
        let start = page * MAX_LISTED;
        command
            .arg(index)
            .arg(start)
            .arg(start + MAX_LISTED - 1)
            .arg("WITHSCORES");
        command
            .query_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }

    /// The live sessions bound to `user_id`, at most [`MAX_LISTED`], the most recently
    /// bound, pruning stale index entries. Entries of sessions just deleted stay in the
    /// index for [`INDEX_GRACE`] (they cannot be told from a write in flight), so the
    /// index is read a page further past them, up to [`LIST_PAGES`] pages.
    pub(super) async fn list_user_sessions(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut indexes = self.user_keys(user_id).into_iter();
        let current = indexes.next().expect("the current index name");
        let mut sessions = self.list_index(current, user_id, expiry).await?;
        // An index under the legacy name (see `RedisStoreBuilder::user_digest_keys`), until
        // it expires.
        for legacy in indexes {
            for summary in self.list_index(legacy, user_id, expiry).await? {
                if !sessions.iter().any(|listed| listed.id == summary.id) {
                    sessions.push(summary);
                }
            }
            sessions.sort_by_key(|summary| std::cmp::Reverse(summary.bound_at));
            sessions.truncate(MAX_LISTED);
        }
        Ok(sessions)
    }

    /// The live sessions of `user_id` that `index` lists (see `list_user_sessions`).
    async fn list_index(
        &self,
        index: String,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let mut sessions = Vec::new();
        let mut stale = Vec::new();
        for page in 0..LIST_PAGES {
            let members = self.members_bound_at(&index, page).await?;
            let last_page = members.len() < MAX_LISTED;
            self.read_listed(user_id, expiry, members, &mut sessions, &mut stale)
                .await?;
            if last_page || sessions.len() >= MAX_LISTED {
                break;
            }
        }
        sessions.truncate(MAX_LISTED);
        self.index_prune(index, &[], &stale).await;
        Ok(sessions)
    }

    /// Reads the sessions of `members`: the live ones bound to `user_id` go to
    /// `sessions`, the others to `stale`.
    async fn read_listed(
        &self,
        user_id: &str,
        expiry: Expiry,
        members: Vec<(String, f64)>,
        sessions: &mut Vec<SessionSummary>,
        stale: &mut Vec<String>,
    ) -> Result<(), StoreError> {
        // One request per session, all in flight at once on the multiplexed connection.
        let reads = members.iter().map(|(member, _)| {
            let mut command = ::redis::cmd("HMGET");
            command
                .arg(self.session_key(member))
                .arg(&codec::METADATA_FIELDS[..]);
            let mut conn = self.conn.clone();
            async move { command.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await }
        });
        let replies = try_join_all(reads).await.map_err(StoreError::backend)?;
        for ((member, bound_at), reply) in members.into_iter().zip(replies) {
            match codec::decode_metadata(reply)? {
                Some(metadata)
                    if metadata.user_id.as_deref() == Some(user_id)
                        && expiry.is_live(&metadata) =>
                {
                    // Scores are whole milliseconds (index_add.lua), far below 2^53.
                    let bound_at = Timestamp::from_millis(bound_at as u64);
                    let summary = SessionSummary::new(HashedId::from_stored(member), metadata);
                    sessions.push(summary.with_bound_at(bound_at));
                }
                _ => stale.push(member),
            }
        }
        Ok(())
    }

    /// Deletes every session still bound to `user_id`; returns how many.
    ///
    /// A session may be moving to a new ID (`cycle_id`) meanwhile. Its new ID is always
    /// in the index before the move completes, so if the move beat our delete of the old
    /// ID, the new ID is in the next listing. A pass deletes its members concurrently, so
    /// the move can also land between the delete of the new ID (not there yet) and that
    /// of the old (gone by then): a pass that finds a member it has not seen, or deletes
    /// anything, is followed by another over every member not yet deleted, until a pass
    /// finds nothing new and deletes nothing. A login that lands during such a further
    /// pass is logged out too: it raced this call.
    pub(super) async fn destroy_user_sessions(&self, user_id: &str) -> Result<usize, StoreError> {
        let mut destroyed = 0;
        for index in self.user_keys(user_id) {
            destroyed += self.destroy_indexed(index, user_id).await?;
        }
        Ok(destroyed)
    }

    /// `destroy_user_sessions` for the sessions one index lists.
    async fn destroy_indexed(&self, index: String, user_id: &str) -> Result<usize, StoreError> {
        let (mut seen, mut gone) = (HashSet::new(), HashSet::new());
        let mut others = Vec::new();
        for _ in 0..DESTROY_PASSES {
            let members = self.members(&index).await?;
            let mut found_new = false;
            for member in &members {
                found_new |= seen.insert(member.clone());
            }
            let pending: Vec<String> = (members.into_iter())
                .filter(|member| !gone.contains(member))
                .collect();
            if pending.is_empty() {
                break;
            }
            let deletions = pending.iter().map(|member| {
                let mut invocation = DESTROY_IF_USER.key(self.session_key(member));
                invocation.arg(user_id);
                let mut conn = self.conn.clone();
                async move {
                    let _forget = self.forgetting(&[member]);
                    invocation.invoke_async::<i64>(&mut conn).await
                }
            });
            let deleted = try_join_all(deletions).await.map_err(StoreError::backend)?;
            others.clear();
            let mut deleted_any = false;
            for (member, deleted) in pending.into_iter().zip(deleted) {
                if deleted > 0 {
                    deleted_any = true;
                    gone.insert(member);
                } else {
                    others.push(member);
                }
            }
            if !found_new && !deleted_any {
                break;
            }
        }
        let gone: Vec<String> = gone.into_iter().collect();
        // A member left in place belongs to another user, is gone, or is being bound
        // right now (that login counts as after this call): pruned only past the grace.
        self.index_prune(index, &gone, &others).await;
        Ok(gone.len())
    }
}
