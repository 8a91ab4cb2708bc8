//! The production store: sessions in Redis, a single server or a Redis Cluster.

use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use ::redis::cluster_routing::{MultipleNodeRoutingInfo, RoutingInfo};
use ::redis::{Script, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::future::try_join_all;
use sha2::{Digest, Sha256};

use super::{Applied, Created, Cycled, SessionStore, SessionSummary};
use crate::error::StoreError;
use crate::id::HashedId;
use crate::record::{ChangeSet, Lifetime, Record};

mod codec;
mod conn;

use conn::Conn;
pub use conn::RedisConnection;

/// Scripts that read and write one session key, with the helpers they share prepended.
macro_rules! session_script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(concat!(include_str!("lua/common.lua"), include_str!($file))))
    };
}

static CREATE: LazyLock<Script> = session_script!("lua/create.lua");
static APPLY: LazyLock<Script> = session_script!("lua/apply.lua");
static CYCLE: LazyLock<Script> = session_script!("lua/cycle.lua");
static CYCLE_FINISH: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/cycle_finish.lua")));
static DESTROY_IF_USER: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/destroy_if_user.lua")));
static INDEX_ADD: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_add.lua")));
static INDEX_PRUNE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("lua/index_prune.lua")));

/// A user-index entry younger than this is never pruned, even if its session is not
/// (yet) there: it may belong to a write still in flight. Far longer than any request.
const INDEX_GRACE: Duration = Duration::from_secs(60);
/// How often `cycle_id` retries when the session changes under it, before giving up.
const CYCLE_ATTEMPTS: usize = 3;

/// Sessions in Redis: one hash per session, shared by every instance of a service.
///
/// Connects to a single server ([`connect`](Self::connect)) or to a Redis Cluster
/// ([`connect_cluster`](Self::connect_cluster)) over one multiplexed connection that
/// reconnects by itself: while Redis is down every call fails fast with a
/// [`StoreError`], and calls succeed again once it is back, with the same store.
/// Clones are cheap and share the connection.
///
/// # Layout
///
/// With the default prefix `session:`:
///
/// - `session:{<hashed ID>}` — a hash per session: each data field under its own name
///   (a name starting with `:` gets one more `:` in front), plus the reserved fields
///   `:created` and `:refreshed` (milliseconds since the epoch), `:user`, `:v` (layout
///   version) and `:gen` (a write counter). Its TTL is what is left of the session's
///   life, so Redis drops dead sessions by itself.
/// - `session:user:{<base64url SHA-256 of the user ID>}` — a sorted set of the user's
///   hashed session IDs, for [`sessions_of_user`](SessionStore::sessions_of_user) and
///   [`destroy_sessions_of_user`](SessionStore::destroy_sessions_of_user), scored by
///   when the entry was added (the index node's clock). Listing or destroying a user's
///   sessions prunes entries whose session is gone or rebound, once they are a minute
///   old: a younger one may belong to a login still being written. Its TTL outlasts
///   every session in it. Raw session IDs and user IDs never appear in key names.
///
/// The braces are cluster hash tags. Every write to a session is one Lua script (one
/// round trip), checked against the layer's [`Lifetime`], so a destroyed or expired
/// session is never revived. Binding a session to a user first adds it to the user's
/// index (one more round trip), so that "log out everywhere" cannot miss it.
///
/// # Requirements
///
/// Redis 5 or later (scripts replicated by effect); tested with Redis 7. Run Redis with
/// `maxmemory-policy noeviction`: an evicting Redis silently logs users out. The store
/// checks this when it connects (see [`check_eviction_policy`](Self::check_eviction_policy)).
/// `rediss://` uses rustls with the *ring* provider; if another crate in the program
/// enables rustls's aws-lc-rs provider too, install a process-wide default provider.
#[derive(Clone)]
pub struct RedisStore {
    conn: Conn,
    prefix: Arc<str>,
    /// Where it connects, credentials redacted, for `Debug`.
    target: Arc<str>,
}

impl RedisStore {
    /// The key prefix used unless [`with_prefix`](Self::with_prefix) sets another.
    pub const DEFAULT_PREFIX: &'static str = "session:";

    /// The commands a store runs, directly or in its scripts, as Redis ACL rules: a
    /// least-privilege user is `ACL SETUSER <user> on ><password> resetkeys ~<prefix>*`
    /// followed by these. Add `+config|get` to let it check the eviction policy.
    pub const ACL_COMMANDS: &'static str = "+ping +time +evalsha +script|load +cluster|slots \
        +hgetall +hmget +hget +hset +hdel +hkeys +hincrby +exists +del +rename +pexpire \
        +zadd +zrem +zrange +zscore";

    /// Connects to a single Redis server.
    ///
    /// `url` is `redis://[user:password@]host[:port][/db]`, or `rediss://…` for TLS. Fails
    /// if the server cannot be reached now, so that a misconfigured service does not start.
    ///
    /// Speaks RESP3 where the server offers it (Redis 6+): the connection then hears of a
    /// server restart even while idle and reconnects before the next call, instead of
    /// failing it. `?protocol=resp2` in the URL keeps to RESP2.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let conn = Conn::single(url).await?;
        let store = Self::new(conn, conn::redact(url));
        store.check_eviction_policy().await;
        Ok(store)
    }

    /// Connects to a Redis Cluster through some of its nodes (`host:port`, or URLs for
    /// credentials or TLS); the rest of the cluster is discovered from them.
    ///
    /// On a cluster, [`cycle_id`](SessionStore::cycle_id) is not atomic: the old and new
    /// keys live in different slots. It copies the session to the new key (only if that
    /// is free) and then deletes the old key, only if no write changed it meanwhile
    /// (else it starts over). For that moment both keys exist; the old one dies right after.
    pub async fn connect_cluster<I, S>(nodes: I) -> Result<Self, StoreError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let urls: Vec<String> = nodes
            .into_iter()
            .map(|node| conn::node_url(node.as_ref()))
            .collect();
        let conn = Conn::cluster(&urls).await?;
        let target = urls
            .iter()
            .map(|url| conn::redact(url))
            .collect::<Vec<_>>()
            .join(", ");
        let store = Self::new(conn, target);
        store.check_eviction_policy().await;
        Ok(store)
    }

    fn new(conn: Conn, target: String) -> Self {
        Self {
            conn,
            prefix: Self::DEFAULT_PREFIX.into(),
            target: target.into(),
        }
    }

    /// Puts every key under `prefix` instead of [`DEFAULT_PREFIX`](Self::DEFAULT_PREFIX),
    /// e.g. to share one Redis between services. Keep braces out of it: they would
    /// change the cluster hash tags.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().into();
        self
    }

    /// The key prefix in use.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The store's connection, for the application's own commands. Keep them out of the
    /// store's prefix.
    pub fn connection(&self) -> RedisConnection {
        RedisConnection(self.conn.clone())
    }

    /// Reads Redis's `maxmemory-policy` (of every primary, on a cluster) and logs a
    /// warning if it lets Redis evict keys: an evicted session silently logs its user out.
    ///
    /// Returns the policy found (an evicting one first), or `None` if it could not be read,
    /// e.g. because the ACL user may not run `CONFIG GET`; that is only logged at debug
    /// level. [`connect`](Self::connect) and [`connect_cluster`](Self::connect_cluster)
    /// call it once.
    pub async fn check_eviction_policy(&self) -> Option<String> {
        let mut command = ::redis::cmd("CONFIG");
        command.arg("GET").arg("maxmemory-policy");
        let reply = match &self.conn {
            Conn::Single(_) => command.query_async::<Value>(&mut self.conn.clone()).await,
            Conn::Cluster(cluster) => {
                let all = RoutingInfo::MultiNode((MultipleNodeRoutingInfo::AllMasters, None));
                cluster.clone().route_command(command, all).await
            }
        };
        let reply = match reply {
            Ok(reply) => reply,
            Err(error) => {
                tracing::debug!(%error, "cannot read Redis maxmemory-policy; eviction not checked");
                return None;
            }
        };
        let mut strings = Vec::new();
        flatten_strings(&reply, &mut strings);
        let policies: Vec<&String> = strings
            .windows(2)
            .filter(|pair| pair[0].eq_ignore_ascii_case("maxmemory-policy"))
            .map(|pair| &pair[1])
            .collect();
        match policies
            .iter()
            .find(|policy| policy.as_str() != "noeviction")
        {
            Some(policy) => {
                tracing::warn!(
                    maxmemory_policy = %policy,
                    "Redis may evict session keys under memory pressure, which silently logs users out; \
                     set maxmemory-policy to noeviction"
                );
                Some((*policy).clone())
            }
            None => policies.first().map(|policy| (*policy).clone()),
        }
    }

    fn session_key(&self, hashed: &str) -> String {
        format!("{}{{{hashed}}}", self.prefix)
    }

    fn user_key(&self, user_id: &str) -> String {
        let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(user_id.as_bytes()));
        format!("{}user:{{{digest}}}", self.prefix)
    }

    /// Adds `id` to `user`'s index; done before any write that binds `id` to `user`.
    async fn index_add(
        &self,
        user: &str,
        id: &HashedId,
        lifetime: Lifetime,
    ) -> Result<(), StoreError> {
        // Every session in the index dies within its absolute lifetime from now.
        let ttl = codec::millis(lifetime.absolute_lifetime) + codec::millis(INDEX_GRACE);
        let mut invocation = INDEX_ADD.key(self.user_key(user));
        invocation.arg(id.as_str()).arg(ttl);
        invocation
            .invoke_async::<()>(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }

    /// Drops `id` from `user`'s index after the session left that user. Only tidies up:
    /// a stale entry is harmless, so a failure is logged, not returned.
    async fn index_remove(&self, user: &str, id: &HashedId) {
        let mut command = ::redis::cmd("ZREM");
        command.arg(self.user_key(user)).arg(id.as_str());
        if let Err(error) = command.query_async::<()>(&mut self.conn.clone()).await {
            tracing::debug!(%error, session = ?id, "could not drop a stale user-index entry");
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

    /// Writes a new session unless a live one has its ID; touches no index.
    async fn write_new(
        &self,
        id: &HashedId,
        record: &Record,
        lifetime: Lifetime,
    ) -> Result<Created, StoreError> {
        let ttl = codec::millis(
            lifetime
                .expires_at(&record.metadata)
                .saturating_since(lifetime.now),
        );
        let mut invocation = CREATE.key(self.session_key(id.as_str()));
        codec::push_lifetime(&mut invocation, lifetime);
        invocation.arg(ttl);
        for (name, value) in codec::record_pairs(record) {
            invocation.arg(name.as_ref()).arg(value.as_ref());
        }
        let reply: String = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)?;
        match reply.as_str() {
            "saved" => Ok(Created::Saved),
            "in-use" => Ok(Created::IdInUse),
            _ => Err(unexpected_reply()),
        }
    }

    /// `cycle_id` on a single server: one script moves the session atomically.
    async fn cycle_atomically(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> Result<Cycled, StoreError> {
        if let Some(Some(user)) = &changes.user_id {
            self.index_add(user, new, lifetime).await?;
        }
        // The session may already be bound to a user, unknown here: the script then asks
        // for the new ID to be indexed under that user first, and is run again.
        let mut indexed: Option<String> = None;
        for _ in 0..CYCLE_ATTEMPTS {
            let mut invocation = CYCLE.key(self.session_key(old.as_str()));
            invocation.key(self.session_key(new.as_str()));
            codec::push_lifetime(&mut invocation, lifetime);
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
                (Some("in-use"), _) => return Ok(Cycled::IdInUse),
                (Some("index"), Some(user)) => {
                    self.index_add(user, new, lifetime).await?;
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
    async fn cycle_by_copy(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
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
            if !lifetime.is_live(&record.metadata) {
                return Ok(Cycled::Gone);
            }
            let previous = record.metadata.user_id.clone();
            changes.apply_to(&mut record);
            record.metadata.refreshed_at = lifetime.now;
            if let Some(user) = &record.metadata.user_id {
                self.index_add(user, new, lifetime).await?;
            }
            if self.write_new(new, &record, lifetime).await? == Created::IdInUse {
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

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("cluster", &self.conn.is_cluster())
            .field("prefix", &self.prefix)
            .finish()
    }
}

fn unexpected_reply() -> StoreError {
    StoreError::backend("unexpected reply from a session script")
}

/// Every string in a reply, depth first, in order.
fn flatten_strings(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::BulkString(bytes) => out.push(String::from_utf8_lossy(bytes).into_owned()),
        Value::SimpleString(text) => out.push(text.clone()),
        Value::Array(values) | Value::Set(values) => {
            values.iter().for_each(|value| flatten_strings(value, out))
        }
        Value::Map(pairs) => pairs.iter().for_each(|(key, value)| {
            flatten_strings(key, out);
            flatten_strings(value, out);
        }),
        _ => {}
    }
}

impl SessionStore for RedisStore {
    async fn load(&self, id: &HashedId, lifetime: Lifetime) -> Result<Option<Record>, StoreError> {
        let mut command = ::redis::cmd("HGETALL");
        command.arg(self.session_key(id.as_str()));
        let reply: Value = command
            .query_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)?;
        let record = codec::decode_record(codec::hash_entries(reply)?)?.map(|(record, _)| record);
        Ok(record.filter(|record| lifetime.is_live(&record.metadata)))
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        lifetime: Lifetime,
    ) -> Result<Created, StoreError> {
        if let Some(user) = &record.metadata.user_id {
            self.index_add(user, id, lifetime).await?;
        }
        self.write_new(id, record, lifetime).await
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> Result<Applied, StoreError> {
        if let Some(Some(user)) = &changes.user_id {
            self.index_add(user, id, lifetime).await?;
        }
        let mut invocation = APPLY.key(self.session_key(id.as_str()));
        codec::push_lifetime(&mut invocation, lifetime);
        codec::push_changes(&mut invocation, changes);
        let reply: Vec<String> = invocation
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("gone"), _) => Ok(Applied::Gone),
            (Some("saved"), previous) => {
                // The script names the previous user only when the change set set one.
                if let (Some(previous), Some(now)) = (previous, &changes.user_id) {
                    if now.as_deref() != Some(previous.as_str()) {
                        self.index_remove(previous, id).await;
                    }
                }
                Ok(Applied::Saved)
            }
            _ => Err(unexpected_reply()),
        }
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        lifetime: Lifetime,
    ) -> Result<Cycled, StoreError> {
        if self.conn.is_cluster() {
            self.cycle_by_copy(old, new, changes, lifetime).await
        } else {
            self.cycle_atomically(old, new, changes, lifetime).await
        }
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        // The user index keeps a stale entry; listing or destroying that user's sessions
        // prunes it.
        let mut command = ::redis::cmd("DEL");
        command.arg(self.session_key(id.as_str()));
        command
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        lifetime: Lifetime,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let index = self.user_key(user_id);
        let members = self.members(&index).await?;
        // One request per session, all in flight at once on the multiplexed connection.
        let reads = members.iter().map(|member| {
            let mut command = ::redis::cmd("HMGET");
            command
                .arg(self.session_key(member))
                .arg(&codec::METADATA_FIELDS[..]);
            let mut conn = self.conn.clone();
            async move { command.query_async::<Vec<Option<Vec<u8>>>>(&mut conn).await }
        });
        let replies = try_join_all(reads).await.map_err(StoreError::backend)?;
        let mut sessions = Vec::new();
        let mut stale = Vec::new();
        for (member, reply) in members.into_iter().zip(replies) {
            match codec::decode_metadata(reply)? {
                Some(metadata)
                    if metadata.user_id.as_deref() == Some(user_id)
                        && lifetime.is_live(&metadata) =>
                {
                    sessions.push(SessionSummary::new(HashedId::from_stored(member), metadata));
                }
                _ => stale.push(member),
            }
        }
        self.index_prune(index, &[], &stale).await;
        Ok(sessions)
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let index = self.user_key(user_id);
        let members = self.members(&index).await?;
        let deletions = members.iter().map(|member| {
            let mut invocation = DESTROY_IF_USER.key(self.session_key(member));
            invocation.arg(user_id);
            let mut conn = self.conn.clone();
            async move { invocation.invoke_async::<i64>(&mut conn).await }
        });
        let deleted = try_join_all(deletions).await.map_err(StoreError::backend)?;
        let (gone, others): (Vec<_>, Vec<_>) = members
            .into_iter()
            .zip(deleted)
            .partition(|(_, deleted)| *deleted > 0);
        let gone: Vec<String> = gone.into_iter().map(|(member, _)| member).collect();
        let others: Vec<String> = others.into_iter().map(|(member, _)| member).collect();
        // A member left in place belongs to another user, is gone, or is being bound
        // right now (that login counts as after this call): pruned only past the grace.
        self.index_prune(index, &gone, &others).await;
        Ok(gone.len())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        ::redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }
}
