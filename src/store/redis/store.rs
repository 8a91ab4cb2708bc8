//! `RedisStore`: the store, its keys, and the per-session calls.

use futures_util::future::try_join_all;
use std::fmt;
use std::sync::Arc;

use ::redis::aio::ConnectionLike;
use ::redis::{Cmd, ErrorKind, FromRedisValue, RedisResult, Script, ServerErrorKind, Value};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::cache::{CacheStats, Lookup, Ticket};
use super::codec;
use super::conn::{Conn, RedisConnection};
use super::durable::Durability;
use super::scripts::{SessionWrite, APPLY, COMPARE_AND_SET, CREATE, INCREMENT};
use super::tracking::{Cached, CachedSession, SessionCache, Tracked};
use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::record::{ChangeSet, Record, UserChange};
use crate::store::{Applied, Created, Cycled, Incremented, SessionStore, SessionSummary, Swapped};
use crate::time::Timestamp;

/// Sessions in Redis: one hash per session, shared by every instance of a service.
///
/// Connects ([`connect`](Self::connect), or [`builder`](Self::builder) for settings) to
/// a single server, a Redis Cluster or the master Redis Sentinel names (see
/// [`RedisTarget`](crate::store::RedisTarget)) over one multiplexed connection that
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
///   `:m` (`<created>.<refreshed>.<generation>`: milliseconds since the epoch twice, then
///   a write counter) and `:u` (the bound user, when there is one). Its TTL is what is
///   left of the session's life, so Redis drops dead sessions by itself. Hashes in the
///   older layout (`:created`, `:refreshed`, `:user`, `:v`, `:gen`) are still read, and
///   any write converts them.
/// - `session:user:{<digest of the user ID>}` — base64url HMAC-SHA256 under
///   [`user_digest_keys`](super::RedisStoreBuilder::user_digest_keys), plain SHA-256
///   without it — a sorted set of the user's hashed session IDs, for
///   [`sessions_of_user`](SessionStore::sessions_of_user) and
///   [`destroy_sessions_of_user`](SessionStore::destroy_sessions_of_user), scored by
///   when the entry was added (the index node's clock). Listing or destroying a user's
///   sessions prunes entries whose session is gone or rebound, once they are a minute
///   old: a younger one may belong to a login still being written. Its TTL outlasts
///   every session in it. Raw session IDs and user IDs never appear in key names.
///
/// The braces are cluster hash tags. Every write to a session is one Lua script (one
/// round trip), checked against the layer's [`Expiry`], so a destroyed or expired
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
    pub(super) conn: Conn,
    pub(super) prefix: Arc<str>,
    /// Where it connects, credentials redacted, for `Debug`.
    pub(super) target: Arc<str>,
    /// Set by [`durable_revocations`](super::RedisStoreBuilder::durable_revocations).
    pub(super) durability: Option<Arc<Durability>>,
    /// Set by [`cache`](super::RedisStoreBuilder::cache).
    pub(super) tracked: Option<Arc<Tracked>>,
    /// Set by [`reading_through`](Self::reading_through): loads skip the cache.
    pub(super) read_through: bool,
    /// Set by [`user_digest_keys`](super::RedisStoreBuilder::user_digest_keys): names
    /// derived from user IDs are keyed, by the first key's digest; the others still read.
    pub(super) user_digests: Arc<[Hmac<Sha256>]>,
}

impl RedisStore {
    /// The key prefix used unless [`prefix`](super::RedisStoreBuilder::prefix) sets another.
    pub const DEFAULT_PREFIX: &'static str = "session:";

    /// The commands a store runs, directly or in its scripts, as Redis ACL rules: a
    /// least-privilege user is `ACL SETUSER <user> on ><password> resetkeys ~<prefix>*`
    /// followed by these. Add `+config|get` to let it check the eviction policy.
    pub const ACL_COMMANDS: &'static str = "+ping +time +evalsha +script|load +cluster|slots \
        +hgetall +hmget +hget +hset +hdel +hkeys +hincrby +exists +del +rename +pexpire \
        +zadd +zrem +zrange +zrevrange +zscore";

    /// Every digest keys derived from `user_id` may be named by: the one new keys are
    /// written under first, then those written before (see
    /// [`RedisStoreBuilder::user_digest_keys`](super::RedisStoreBuilder::user_digest_keys)).
    pub(super) fn user_digests(&self, user_id: &str) -> Vec<String> {
        let keyed = self.user_digests.iter().map(|mac| {
            let mut mac = mac.clone();
            mac.update(user_id.as_bytes());
            URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
        });
        let plain = URL_SAFE_NO_PAD.encode(Sha256::digest(user_id.as_bytes()));
        keyed.chain(std::iter::once(plain)).collect()
    }

    /// The digest new keys derived from `user_id` are named by.
    pub(super) fn user_digest(&self, user_id: &str) -> String {
        self.user_digests(user_id).swap_remove(0)
    }

    /// Waits until the local cache has applied every invalidation Redis sent before this
    /// call (one `PING` per tracking connection), or has been flushed: a read after it
    /// sees every write that completed before it, on any instance. Without a cache, or
    /// while it is not serving, returns at once.
    ///
    /// The cache is otherwise behind Redis by the time an invalidation takes to reach
    /// this process (ARCHITECTURE.md, "The coherent cache", has the measured figures).
    /// For a route where that matters (changing a password, paying), either call this
    /// first or give the route a layer on [`reading_through`](Self::reading_through).
    pub async fn catch_up(&self) {
        if let Some(tracked) = &self.tracked {
            if tracked.cache.is_serving() {
                tracked.catch_up().await;
            }
        }
    }

    /// This store with loads that skip the local cache and read Redis (its writes still
    /// drop what the cache holds): for a separate [`SessionLayer`](crate::SessionLayer)
    /// on routes that must never act on a session another instance just ended.
    pub fn reading_through(&self) -> Self {
        Self {
            read_through: true,
            ..self.clone()
        }
    }

    /// What the local cache did so far; `None` without one
    /// ([`cache`](super::RedisStoreBuilder::cache)).
    pub fn cache_stats(&self) -> Option<CacheStats> {
        self.cache().map(SessionCache::stats)
    }

    pub(super) fn cache(&self) -> Option<&SessionCache> {
        self.tracked.as_deref().map(|tracked| &*tracked.cache)
    }

    /// Drops the session keys `hashed` from the local cache when the guard drops (unless
    /// it [keeps](Forgetting::keep) the write's result instead): hold it across a write,
    /// so that no read that started before the write ended fills the cache with what the
    /// write replaced, and this instance reads its own write even before Redis's
    /// invalidation arrives (also if the write is cancelled). Nothing is dropped before:
    /// a read meanwhile is concurrent with the write, and an invalidation then would
    /// refuse the fills of unrelated reads in the same shard.
    pub(super) fn forgetting<'a>(&'a self, hashed: &[&str]) -> Forgetting<'a> {
        if self.cache().is_none() {
            return Forgetting::nothing();
        }
        self.forgetting_keys(hashed.iter().map(|id| self.session_key(id)).collect())
    }

    /// [`forgetting`](Self::forgetting) for whole keys.
    pub(super) fn forgetting_keys(&self, keys: Vec<String>) -> Forgetting<'_> {
        let Some(cache) = self.cache() else {
            return Forgetting::nothing();
        };
        Forgetting {
            cache: Some(cache),
            keys,
        }
    }

    /// What the command `read` builds reads at `key` (as `decode` takes it), answered by
    /// the local cache when it holds the key (as `from_cache` takes it out; a hit builds
    /// no command). On a miss the read goes over
    /// the tracking connection for `key`, and what it found is kept unless an
    /// invalidation overtook it (its ticket); without a tracking connection, or if that
    /// one fails, over the store's own connection, and nothing is kept.
    pub(super) async fn through_cache<T: Clone>(
        &self,
        key: &str,
        read: impl FnOnce() -> Cmd,
        decode: impl FnOnce(Value) -> Result<T, StoreError>,
        from_cache: impl FnOnce(Cached) -> Option<T>,
        into_cache: impl FnOnce(T) -> Cached,
    ) -> Result<T, StoreError> {
        let reading = self.tracked.as_deref().filter(|_| !self.read_through);
        let ticket = match reading.map(|tracked| tracked.cache.lookup(key)) {
            Some(Lookup::Hit(cached)) => match from_cache(cached) {
                Some(found) => return Ok(found),
                // Another kind of entry: keys of different kinds never meet.
                None => None,
            },
            Some(Lookup::Miss(ticket)) => Some(ticket),
            Some(Lookup::Bypass) | None => None,
        };
        let command = read();
        let tracking = ticket.and_then(|ticket| Some((ticket, reading?.connection_for(key)?)));
        let mut kept = None;
        let reply = match tracking {
            Some((ticket, mut connection)) => match command.query_async(&mut connection).await {
                Ok(reply) => {
                    kept = Some(ticket);
                    reply
                }
                Err(error) => {
                    tracing::debug!(%error, "a cached read failed on the tracking connection");
                    self.query(&command).await?
                }
            },
            None => self.query(&command).await?,
        };
        let found = decode(reply)?;
        if let (Some(tracked), Some(ticket)) = (reading, kept) {
            tracked.cache.fill(key, ticket, into_cache(found.clone()));
        }
        Ok(found)
    }

    async fn query(&self, command: &Cmd) -> Result<Value, StoreError> {
        (command.query_async(&mut self.conn.clone()).await).map_err(StoreError::backend)
    }

    /// Runs a session script on `key` with the arguments `args` pushes, and returns its
    /// reply's items as text. With a cache that serves, runs the script's writer's-copy
    /// form over the tracking connection for `key`, and the cache keeps the session as the
    /// script left it (see [`Forgetting::keep`]), so the next read here costs no round
    /// trip: if the script found the session at the generation of the copy the cache held
    /// (no other write came between), it answers with the session's metadata, and `replay`
    /// repeats the write on that copy and says how many writes the script counted (the
    /// generations must agree), or `None` if it cannot tell; else it answers with the
    /// whole session.
    async fn run_session_script(
        &self,
        forget: &mut Forgetting<'_>,
        key: String,
        script: &SessionWrite,
        args: impl Fn(&mut Cmd),
        replay: impl FnOnce(&[String], &mut Record) -> Option<u64>,
    ) -> Result<Vec<String>, StoreError> {
        let copying = self.tracked.as_deref().and_then(|tracked| {
            let (ticket, held) = tracked.cache.ticket(&key)?;
            Some((ticket, held, tracked.connection_for(&key)?))
        });
        let Some((ticket, held, mut connection)) = copying else {
            let call = ScriptCall::new(&script.plain, &key, args);
            let reply = call.invoke(&mut self.conn.clone()).await;
            return reply.map_err(StoreError::backend);
        };
        let base = match held {
            Some(Cached::Session(Some(session))) => Some(session),
            _ => None,
        };
        let call = ScriptCall::new(&script.copy, &key, |command| {
            match &base {
                Some(base) => command.arg(base.generation),
                None => command.arg(""),
            };
            args(command);
        });
        let reply: Vec<Value> = match call.invoke(&mut connection).await {
            Ok(reply) => reply,
            // Refused before it ran (a moved slot, a demoted master): the store's own
            // connection finds where it runs, and the copy is not kept.
            Err(error) if not_run(&error) => {
                let reply = call.invoke(&mut self.conn.clone()).await;
                let (_, reply) = split_front(reply.map_err(StoreError::backend)?)?;
                return Ok(reply);
            }
            Err(error) => return Err(StoreError::backend(error)),
        };
        let (front, reply) = split_front(reply)?;
        match writers_copy(front, base, &reply, replay) {
            Ok((written, copy)) => forget.keep(
                &key,
                ticket,
                written,
                copy.map(|copy| Cached::Session(Some(copy))),
            ),
            // The write is done: only its copy is not kept (the key is dropped).
            Err(error) => tracing::debug!(%error, "a session write's copy did not decode"),
        }
        Ok(reply)
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

    /// `<prefix>{<hashed>}`, built in one allocation of the exact size (no formatting
    /// machinery: it runs on every session call).
    pub(super) fn session_key(&self, hashed: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + hashed.len() + 2);
        key.push_str(&self.prefix);
        key.push('{');
        key.push_str(hashed);
        key.push('}');
        key
    }

    pub(super) fn user_key(&self, user_id: &str) -> String {
        self.user_index_named(&self.user_digest(user_id))
    }

    /// Every index that may hold `user_id`'s sessions, the one written to first.
    pub(super) fn user_keys(&self, user_id: &str) -> Vec<String> {
        (self.user_digests(user_id).iter())
            .map(|digest| self.user_index_named(digest))
            .collect()
    }

    fn user_index_named(&self, digest: &str) -> String {
        format!("{}user:{{{digest}}}", self.prefix)
    }

    /// Writes a new session unless a live one has its ID; touches no index.
    pub(super) async fn write_new(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        let ttl = codec::millis(
            expiry
                .expires_at(&record.metadata)
                .saturating_since(expiry.now),
        );
        let mut invocation = CREATE.key(self.session_key(id.as_str()));
        codec::push_expiry(&mut invocation, expiry);
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
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("cluster", &self.conn.is_cluster())
            .field("prefix", &self.prefix)
            .field("durable_revocations", &self.durability.is_some())
            .field("cache", &self.cache_stats().map(|stats| stats.capacity))
            .finish()
    }
}

/// See [`RedisStore::forgetting`].
pub(super) struct Forgetting<'a> {
    cache: Option<&'a SessionCache>,
    keys: Vec<String>,
}

impl Forgetting<'_> {
    fn nothing() -> Self {
        Self {
            cache: None,
            keys: Vec::new(),
        }
    }

    /// A write to `key` that `ticket` permitted is done and left generation `written`,
    /// and `copy` there if the writer can tell: the cache keeps it as a read's fill (see
    /// [`SessionCache::keep_written`]) instead of dropping the key again at the end.
    fn keep(&mut self, key: &str, ticket: Ticket, written: Option<u64>, copy: Option<Cached>) {
        if let Some(cache) = self.cache {
            self.keys.retain(|forgotten| forgotten != key);
            cache.keep_written(key, ticket, written, copy);
        }
    }
}

/// A session script's `EVALSHA` on one key, built as one command: its arguments go
/// straight into the command's buffer, where redis-rs's `ScriptInvocation` keeps one
/// allocation per argument and copies them into a command at each call.
struct ScriptCall<'a> {
    script: &'a Script,
    command: Cmd,
}

impl<'a> ScriptCall<'a> {
    /// Room for the usual arguments of a session script (expiry and a short change).
    const ARGS: usize = 12;
    const BYTES: usize = 128;

    fn new(script: &'a Script, key: &str, args: impl FnOnce(&mut Cmd)) -> Self {
        let mut command = Cmd::with_capacity(Self::ARGS, Self::BYTES + key.len());
        command
            .arg("EVALSHA")
            .arg(script.get_hash())
            .arg(1)
            .arg(key);
        args(&mut command);
        Self { script, command }
    }

    /// Runs the script, loading it first if Redis does not know it (`NOSCRIPT`: a
    /// restarted or new node, or `SCRIPT FLUSH`).
    async fn invoke<T: FromRedisValue>(
        &self,
        connection: &mut impl ConnectionLike,
    ) -> RedisResult<T> {
        match self.command.query_async(connection).await {
            Err(error) if error.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {
                self.script.load_async(connection).await?;
                self.command.query_async(connection).await
            }
            reply => reply,
        }
    }
}

/// Whether Redis refused `error`'s command before running any of it.
fn not_run(error: &::redis::RedisError) -> bool {
    matches!(
        error.code(),
        Some("MOVED" | "ASK" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" | "LOADING" | "MASTERDOWN")
    )
}

/// A session script's reply in its [writer's copy](SessionWrite::copy) form: what
/// `lua/writers_copy.lua` put in front, and the script's own items as text.
fn split_front(reply: Vec<Value>) -> Result<(Value, Vec<String>), StoreError> {
    let mut items = reply.into_iter();
    let front = items.next().ok_or_else(unexpected_reply)?;
    let reply = items
        .map(|item| String::from_redis_value(item).map_err(|_| unexpected_reply()))
        .collect::<Result<_, _>>()?;
    Ok((front, reply))
}

/// What a write leaves in the writer's cache, from what `lua/writers_copy.lua` put in
/// front of the script's `reply`: the generation the write left and the session there,
/// if the writer can tell.
fn writers_copy(
    front: Value,
    base: Option<CachedSession>,
    reply: &[String],
    replay: impl FnOnce(&[String], &mut Record) -> Option<u64>,
) -> Result<(Option<u64>, Option<CachedSession>), StoreError> {
    match front {
        // Gone, or a hash in layout 1 that the script left as it was.
        Value::Nil => Ok((None, None)),
        Value::BulkString(meta) => {
            let meta = codec::decode_meta(&meta)?;
            let replayed = base.and_then(|base| replayed(&base, &meta, reply, replay));
            Ok((Some(meta.generation), replayed))
        }
        // Other writes came between: the whole session.
        whole @ Value::Array(_) => {
            let whole = cached_session(codec::hash_entries(whole)?)?;
            Ok((whole.as_ref().map(|whole| whole.generation), whole))
        }
        _ => Err(unexpected_reply()),
    }
}

/// The write that left `meta` replayed on `base`, the copy the writer's cache held when
/// it sent it: `None` if `replay` cannot tell, or if the write counts do not agree.
fn replayed(
    base: &CachedSession,
    meta: &codec::Meta,
    reply: &[String],
    replay: impl FnOnce(&[String], &mut Record) -> Option<u64>,
) -> Option<CachedSession> {
    if base.record.metadata.created_at != Timestamp::from_millis(meta.created) {
        return None;
    }
    let mut record = Record::clone(&base.record);
    let writes = replay(reply, &mut record)?;
    if base.generation.checked_add(writes) != Some(meta.generation) {
        return None;
    }
    record.metadata.refreshed_at = Timestamp::from_millis(meta.refreshed);
    Some(CachedSession {
        record: Arc::new(record),
        generation: meta.generation,
    })
}

/// A whole session from its hash's fields, as the cache holds it.
fn cached_session(fields: codec::Entries) -> Result<Option<CachedSession>, StoreError> {
    let decoded = codec::decode_record(fields)?;
    Ok(decoded.map(|(record, generation)| CachedSession {
        record: Arc::new(record),
        generation,
    }))
}

impl Drop for Forgetting<'_> {
    fn drop(&mut self) {
        if let Some(cache) = self.cache {
            for key in &self.keys {
                cache.invalidate(key);
            }
        }
    }
}

pub(super) fn unexpected_reply() -> StoreError {
    StoreError::backend("unexpected reply from a session script")
}

impl SessionStore for RedisStore {
    async fn load(&self, id: &HashedId, expiry: Expiry) -> Result<Option<Record>, StoreError> {
        let record = self.load_shared(id, expiry).await?;
        Ok(record.map(Arc::unwrap_or_clone))
    }

    /// The cached record itself on a hit: no copy.
    async fn load_shared(
        &self,
        id: &HashedId,
        expiry: Expiry,
    ) -> Result<Option<Arc<Record>>, StoreError> {
        let key = self.session_key(id.as_str());
        let read = || {
            let mut command = ::redis::cmd("HGETALL");
            command.arg(&key);
            command
        };
        let decode = |reply| cached_session(codec::hash_entries(reply)?);
        let as_session = |cached| match cached {
            Cached::Session(session) => Some(session),
            Cached::Value(_) => None,
        };
        let session = (self.through_cache(&key, read, decode, as_session, Cached::Session)).await?;
        let record = session.map(|session| session.record);
        Ok(record.filter(|record| expiry.is_live(&record.metadata)))
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        let _forget = self.forgetting(&[id.as_str()]);
        if let Some(user) = &record.metadata.user_id {
            self.index_add(user, id, expiry).await?;
        }
        self.write_new(id, record, expiry).await
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, StoreError> {
        let mut forget = self.forgetting(&[id.as_str()]);
        if let UserChange::Bind(user) = &changes.user {
            self.index_add(user, id, expiry).await?;
        }
        let args = |invocation: &mut Cmd| {
            codec::push_expiry(invocation, expiry);
            codec::push_changes(invocation, changes);
        };
        // The same changes on the cached copy; a field both set and incremented is left
        // to Redis (the session never sends one).
        let replay = |reply: &[String], record: &mut Record| {
            let saved = reply.first().is_some_and(|outcome| outcome == "saved");
            let overlap =
                (changes.increments.keys()).any(|field| changes.fields.contains_key(field));
            if !saved || overlap {
                return None;
            }
            changes.apply_to(record).ok()?;
            Some(u64::from(!changes.is_empty()))
        };
        let key = self.session_key(id.as_str());
        let reply = (self.run_session_script(&mut forget, key, &APPLY, args, replay)).await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("gone"), _) => Ok(Applied::Gone),
            (Some("rejected"), why) => Ok(Applied::Rejected(codec::rejection(why)?)),
            (Some("saved"), previous) => {
                // The script names the previous user only when the change set set one.
                let rebound = match &changes.user {
                    UserChange::Keep => false,
                    UserChange::Bind(now) => previous.is_some_and(|previous| previous != now),
                    UserChange::Unbind => true,
                };
                if let (true, Some(previous)) = (rebound, previous) {
                    self.index_remove(previous, id).await;
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
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        let _forget = self.forgetting(&[old.as_str(), new.as_str()]);
        self.revoke(|store| async move {
            if store.conn.is_cluster() {
                store.cycle_by_copy(old, new, changes, expiry).await
            } else {
                store.cycle_atomically(old, new, changes, expiry).await
            }
        })
        .await
    }

    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        let mut forget = self.forgetting(&[id.as_str()]);
        let stored = codec::encode_field(field);
        let args = |invocation: &mut Cmd| {
            codec::push_expiry(invocation, expiry);
            invocation.arg(stored.as_ref()).arg(delta);
        };
        let replay = |reply: &[String], record: &mut Record| match reply {
            [outcome, value] if outcome == "value" => {
                record.data.insert(field.to_owned(), value.clone());
                Some(1)
            }
            _ => None,
        };
        let key = self.session_key(id.as_str());
        let reply = (self.run_session_script(&mut forget, key, &INCREMENT, args, replay)).await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("gone"), _) => Ok(Incremented::Gone),
            (Some("rejected"), why) => Ok(Incremented::Rejected(codec::rejection(why)?)),
            (Some("value"), Some(value)) => value
                .parse()
                .map(Incremented::Value)
                .map_err(|_| unexpected_reply()),
            _ => Err(unexpected_reply()),
        }
    }

    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        let mut forget = self.forgetting(&[id.as_str()]);
        let stored = codec::encode_field(field);
        let args = |invocation: &mut Cmd| {
            codec::push_expiry(invocation, expiry);
            invocation.arg(stored.as_ref());
            for value in [expected, new] {
                match value {
                    Some(value) => invocation.arg("1").arg(value),
                    None => invocation.arg("0").arg(""),
                };
            }
        };
        let replay = |reply: &[String], record: &mut Record| {
            if reply.first().is_none_or(|outcome| outcome != "saved") {
                return None;
            }
            match new {
                Some(value) => record.data.insert(field.to_owned(), value.to_owned()),
                None => record.data.remove(field),
            };
            Some(1)
        };
        let key = self.session_key(id.as_str());
        let reply =
            (self.run_session_script(&mut forget, key, &COMPARE_AND_SET, args, replay)).await?;
        match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("gone"), _) => Ok(Swapped::Gone),
            (Some("saved"), _) => Ok(Swapped::Saved),
            (Some("conflict"), current) => Ok(Swapped::Conflict(current.cloned())),
            _ => Err(unexpected_reply()),
        }
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        let _forget = self.forgetting(&[id.as_str()]);
        // The user index keeps a stale entry; listing or destroying that user's sessions
        // prunes it.
        let mut command = ::redis::cmd("DEL");
        command.arg(self.session_key(id.as_str()));
        self.revoke(|store| async move {
            command
                .query_async::<()>(&mut store.conn.clone())
                .await
                .map_err(StoreError::backend)
        })
        .await
    }

    async fn destroy_many(&self, ids: &[HashedId]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = ids.iter().map(HashedId::as_str).collect();
        let _forget = self.forgetting(&names);
        let keys: Vec<String> = names.iter().map(|name| self.session_key(name)).collect();
        self.revoke(|store| async move {
            if store.conn.is_cluster() {
                // Each key in its own slot: every delete in flight at once instead.
                let deletes = keys.iter().map(|key| {
                    let mut conn = store.conn.clone();
                    async move {
                        ::redis::cmd("DEL")
                            .arg(key)
                            .query_async::<()>(&mut conn)
                            .await
                    }
                });
                try_join_all(deletes).await.map_err(StoreError::backend)?;
                return Ok(());
            }
            // One pipeline: one round trip.
            let mut pipeline = ::redis::pipe();
            for key in &keys {
                pipeline.cmd("DEL").arg(key).ignore();
            }
            (pipeline.query_async::<()>(&mut store.conn.clone()).await).map_err(StoreError::backend)
        })
        .await
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.list_user_sessions(user_id, expiry).await
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.revoke(|store| async move { store.destroy_user_sessions(user_id).await })
            .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        ::redis::cmd("PING")
            .query_async::<()>(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)
    }

    /// Redis's `TIME` (in a Cluster, that of the node that answered: keep the nodes'
    /// clocks synchronised).
    async fn time(&self) -> Result<Option<Timestamp>, StoreError> {
        let (seconds, micros) = ::redis::cmd("TIME")
            .query_async::<(u64, u64)>(&mut self.conn.clone())
            .await
            .map_err(StoreError::backend)?;
        let millis = seconds.saturating_mul(1000).saturating_add(micros / 1000);
        Ok(Some(Timestamp::from_millis(millis)))
    }
}
