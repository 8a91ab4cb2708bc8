//! Token mode's revocations in Redis, under the store's prefix so that whatever watches
//! the prefix (the coherent cache) sees them too:
//!
//! - `<prefix>revoked:{<hashed ID>}` — a string, present while the session is revoked;
//!   `PEXPIRE` at its absolute deadline, after which its token is dead anyway.
//! - `<prefix>nbf:{<digest of the user ID>}` — the user's "not before" time
//!   (ms since the epoch): bindings made earlier are revoked; a later log-out-everywhere
//!   only ever raises it (one script). TTL: the absolute lifetime. The digest is keyed
//!   with [`user_digest_keys`](super::RedisStoreBuilder::user_digest_keys) (plain SHA-256
//!   otherwise); a time under the plain name, written before, still holds.

use std::sync::LazyLock;
use std::time::Duration;

use ::redis::{FromRedisValue as _, Script};

use super::codec;
use super::store::RedisStore;
use super::tracking::Cached;
use crate::error::StoreError;
use crate::id::HashedId;
use crate::store::revocation::{RevocationState, Revocations};
use crate::time::Timestamp;

/// Sets the not-before time unless a later one is there (instances' clocks differ, and a
/// log-out-everywhere must never move the boundary back), and renews the TTL.
static RAISE_NOT_BEFORE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local wanted = tonumber(ARGV[1])
if current > wanted then wanted = current end
redis.call('SET', KEYS[1], string.format('%d', wanted), 'PX', ARGV[2])
return wanted
",
    )
});

impl RedisStore {
    /// The commands token mode's revocations add to [`ACL_COMMANDS`](Self::ACL_COMMANDS),
    /// as Redis ACL rules, for a least-privilege user of a store used as
    /// [`Revocations`](crate::store::Revocations).
    pub const TOKEN_ACL_COMMANDS: &'static str = "+get +set";

    fn revoked_key(&self, hashed: &str) -> String {
        format!("{}revoked:{{{hashed}}}", self.prefix)
    }

    fn not_before_key(&self, user_id: &str) -> String {
        self.not_before_named(&self.user_digest(user_id))
    }

    fn not_before_named(&self, digest: &str) -> String {
        format!("{}nbf:{{{digest}}}", self.prefix)
    }

    /// The per-request read: whether the session is revoked, and the user's "not before"
    /// time. Each key through the coherent cache when the store has one (a hit costs no
    /// round trip; a revocation anywhere reaches it as an invalidation), else a `GET`;
    /// the two are sent together (on a cluster they live in different slots).
    pub(super) async fn revocation_state(
        &self,
        session_key: &str,
        user_key: Option<&str>,
    ) -> Result<(bool, Option<u64>), StoreError> {
        let revoked = self.cached_value(session_key);
        let Some(user_key) = user_key else {
            return Ok((revoked.await?.is_some(), None));
        };
        let (revoked, not_before) =
            futures_util::future::try_join(revoked, self.not_before_at(user_key)).await?;
        Ok((revoked.is_some(), not_before))
    }

    /// The string at `key` (`GET`), through the local cache when there is one.
    async fn cached_value(&self, key: &str) -> Result<Option<String>, StoreError> {
        let read = || {
            let mut command = ::redis::cmd("GET");
            command.arg(key);
            command
        };
        let decode = |reply| Option::<String>::from_redis_value(reply).map_err(StoreError::backend);
        let as_value = |cached| match cached {
            Cached::Value(value) => Some(value),
            Cached::Session(_) => None,
        };
        (self.through_cache(key, read, decode, as_value, Cached::Value)).await
    }

    /// The not-before time under `key`, if there is one.
    async fn not_before_at(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let millis = self.cached_value(key).await?;
        millis
            .map(|millis| {
                millis
                    .parse::<u64>()
                    .map_err(|_| StoreError::backend("a not-before time that is not a number"))
            })
            .transpose()
    }
}

impl Revocations for RedisStore {
    async fn revoke_session(
        &self,
        id: &HashedId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let ttl = codec::millis(until.saturating_since(now));
        if ttl == 0 {
            return Ok(());
        }
        let key = self.revoked_key(id.as_str());
        let _forget = self.forgetting_keys(vec![key.clone()]);
        let mut command = ::redis::cmd("SET");
        command.arg(&key).arg(1).arg("PX").arg(ttl);
        self.revoke(|store| async move {
            command
                .query_async::<()>(&mut store.conn.clone())
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        not_before: Timestamp,
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        let key = self.not_before_key(user_id);
        let _forget = self.forgetting_keys(vec![key.clone()]);
        let mut invocation = RAISE_NOT_BEFORE.key(&key);
        invocation
            .arg(not_before.as_millis())
            .arg(codec::millis(keep_for).max(1));
        self.revoke(|store| async move {
            invocation
                .invoke_async::<u64>(&mut store.conn.clone())
                .await
                .map(drop)
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn revocation_state(
        &self,
        id: &HashedId,
        user_id: Option<&str>,
        _now: Timestamp,
    ) -> Result<RevocationState, StoreError> {
        let session_key = self.revoked_key(id.as_str());
        let user_key = user_id.map(|user| self.not_before_key(user));
        let (revoked, mut not_before) =
            RedisStore::revocation_state(self, &session_key, user_key.as_deref()).await?;
        // A time under an earlier name (another key's digest, or the plain one) still
        // holds until it expires.
        for earlier in user_id
            .map(|user| self.user_digests(user))
            .unwrap_or_default()
            .iter()
            .skip(1)
        {
            let earlier = self.not_before_at(&self.not_before_named(earlier)).await?;
            not_before = not_before.max(earlier);
        }
        Ok(RevocationState::new(
            revoked,
            not_before.map(Timestamp::from_millis),
        ))
    }
}
