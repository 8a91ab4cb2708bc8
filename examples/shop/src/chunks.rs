//! Where upload chunks live, and each user's uploads in progress: in Redis beside the
//! sessions (never on an instance's disk), or in process memory when the shop runs on the
//! in-memory store.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use redis::{AsyncCommands, Script};
use tower_stateless::store::RedisConnection;

use crate::digests::UserDigests;

/// Unfinished uploads are dropped after a day, and stop counting against their user.
const CHUNK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Chunk storage shared by every instance (or, in memory mode, by none).
#[derive(Clone, Debug)]
pub enum Chunks {
    Memory(Arc<InMemory>),
    /// The session store's own connection (single node or cluster), and the keyed
    /// names of users' upload sets.
    Redis(RedisConnection, UserDigests),
}

/// The in-memory chunks and uploads in progress.
#[derive(Debug, Default)]
pub struct InMemory {
    chunks: Mutex<HashMap<String, Bytes>>,
    /// User -> (upload, size, when it stops counting).
    uploads: Mutex<HashMap<String, Vec<(String, u64, Instant)>>>,
    /// Uploads in object storage not completed yet -> when they expire (ms).
    pending: Mutex<HashMap<String, u64>>,
}

/// Whether an upload may start: a user's uploads in progress are limited in number and
/// in total declared size.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reservation {
    Granted,
    TooMany,
    TooLarge,
}

/// The per-user limits on uploads in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) uploads: usize,
    pub(crate) bytes: u64,
}

/// Adds an upload to a user's uploads in progress (a sorted set: member `<size>:<upload>`,
/// score = when it stops counting, in ms) unless a limit is reached, atomically, so
/// concurrent starts at different instances cannot overshoot. KEYS[1]: the set; ARGV: now,
/// upload, size, max uploads, max bytes, TTL (ms).
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local members = redis.call('ZRANGE', KEYS[1], 0, -1)
if #members >= tonumber(ARGV[4]) then
  return 'too-many'
end
local total = tonumber(ARGV[3])
for _, member in ipairs(members) do
  total = total + tonumber(string.match(member, '^(%d+):'))
end
if total > tonumber(ARGV[5]) then
  return 'too-large'
end
redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[6]), ARGV[3] .. ':' .. ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
return 'granted'
",
    )
});

/// The uploads in object storage not completed yet (a sorted set: member names the
/// upload, score = when it expires, in ms), for the sweep that aborts abandoned ones.
const PENDING_KEY: &str = "shop:uploads:pending";

/// Now, in ms since the Unix epoch: the clock that expiries shared by every instance use.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64
}

/// A chunk store failure: the request gets a 503.
#[derive(Debug)]
pub struct ChunkError(pub redis::RedisError);

impl Chunks {
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// Chunks and upload sets in Redis on `connection`, user names keyed by `digests`.
    pub fn redis(connection: RedisConnection, digests: UserDigests) -> Self {
        Self::Redis(connection, digests)
    }

    /// The key of a set of a user's uploads in progress, by one of its keyed names.
    fn uploads_key(digest: &str) -> String {
        format!("shop:uploads:{digest}")
    }

    /// Moves the uploads `user` has under earlier names (another key of a rotation, or
    /// the plain SHA-256 of earlier versions) to the current one, so that they still
    /// count; returns the current set's key. Sets live for a day, so earlier names are
    /// gone a day after an upgrade or a rotation. (A release racing this move can leave
    /// a released upload counted until its score expires.)
    async fn current_uploads_key(
        conn: &RedisConnection,
        digests: &UserDigests,
        user: &str,
    ) -> Result<String, ChunkError> {
        let current = Self::uploads_key(&digests.current(user));
        for earlier in digests.earlier(user) {
            let earlier = Self::uploads_key(&earlier);
            let members: Vec<(String, f64)> = conn
                .clone()
                .zrange_withscores(&earlier, 0, -1)
                .await
                .map_err(ChunkError)?;
            if members.is_empty() {
                continue;
            }
            let scored: Vec<(f64, String)> = members.into_iter().map(|(m, s)| (s, m)).collect();
            let mut conn = conn.clone();
            conn.zadd_multiple::<_, _, _, ()>(&current, &scored)
                .await
                .map_err(ChunkError)?;
            conn.pexpire::<_, ()>(&current, CHUNK_TTL.as_millis() as i64)
                .await
                .map_err(ChunkError)?;
            // Only what was copied: an upload reserved there meanwhile stays and counts.
            let copied: Vec<&String> = scored.iter().map(|(_, member)| member).collect();
            conn.zrem::<_, _, ()>(&earlier, copied)
                .await
                .map_err(ChunkError)?;
        }
        Ok(current)
    }

    /// Counts `upload` (`size` bytes) among `user`'s uploads in progress, if `limits`
    /// allow; it counts until [`release`](Self::release)d or for a day.
    pub(crate) async fn reserve(
        &self,
        user: &str,
        upload: &str,
        size: u64,
        limits: Limits,
    ) -> Result<Reservation, ChunkError> {
        match self {
            Self::Memory(memory) => {
                let now = Instant::now();
                let mut uploads = memory.uploads.lock().unwrap_or_else(|p| p.into_inner());
                let mine = uploads.entry(user.to_owned()).or_default();
                mine.retain(|(_, _, until)| *until > now);
                if mine.len() >= limits.uploads {
                    return Ok(Reservation::TooMany);
                }
                let total = mine.iter().map(|(_, size, _)| size).sum::<u64>();
                if total.saturating_add(size) > limits.bytes {
                    return Ok(Reservation::TooLarge);
                }
                mine.push((upload.to_owned(), size, now + CHUNK_TTL));
                Ok(Reservation::Granted)
            }
            Self::Redis(conn, digests) => {
                let key = Self::current_uploads_key(conn, digests, user).await?;
                let now = now_ms();
                let reply: String = RESERVE
                    .key(key)
                    .arg(now)
                    .arg(upload)
                    .arg(size)
                    .arg(limits.uploads)
                    .arg(limits.bytes)
                    .arg(CHUNK_TTL.as_millis() as u64)
                    .invoke_async(&mut conn.clone())
                    .await
                    .map_err(ChunkError)?;
                Ok(match reply.as_str() {
                    "granted" => Reservation::Granted,
                    "too-many" => Reservation::TooMany,
                    _ => Reservation::TooLarge,
                })
            }
        }
    }

    /// Stops counting `upload` (`size` bytes) among `user`'s uploads in progress.
    pub(crate) async fn release(
        &self,
        user: &str,
        upload: &str,
        size: u64,
    ) -> Result<(), ChunkError> {
        match self {
            Self::Memory(memory) => {
                let mut uploads = memory.uploads.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(mine) = uploads.get_mut(user) {
                    mine.retain(|(id, _, _)| id != upload);
                }
                Ok(())
            }
            Self::Redis(conn, digests) => {
                let member = format!("{size}:{upload}");
                let names = std::iter::once(digests.current(user)).chain(digests.earlier(user));
                for name in names {
                    conn.clone()
                        .zrem::<_, _, ()>(Self::uploads_key(&name), &member)
                        .await
                        .map_err(ChunkError)?;
                }
                Ok(())
            }
        }
    }

    /// The key of chunk `n`; the hash tag keeps an upload's chunks in one cluster slot.
    fn key(upload: &str, n: u32) -> String {
        format!("shop:chunk:{{{upload}}}:{n}")
    }

    pub async fn put(&self, upload: &str, n: u32, bytes: Bytes) -> Result<(), ChunkError> {
        let key = Self::key(upload, n);
        match self {
            Self::Memory(memory) => {
                memory
                    .chunks
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, bytes);
                Ok(())
            }
            Self::Redis(conn, _) => conn
                .clone()
                .set_ex(key, bytes.as_ref(), CHUNK_TTL.as_secs())
                .await
                .map_err(ChunkError),
        }
    }

    /// Chunks `0..count` in order; `None` for any that is missing.
    pub async fn get_all(
        &self,
        upload: &str,
        count: u32,
    ) -> Result<Vec<Option<Vec<u8>>>, ChunkError> {
        let keys: Vec<String> = (0..count).map(|n| Self::key(upload, n)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Memory(memory) => {
                let map = memory.chunks.lock().unwrap_or_else(|p| p.into_inner());
                Ok(keys
                    .iter()
                    .map(|k| map.get(k).map(|b| b.to_vec()))
                    .collect())
            }
            Self::Redis(conn, _) => conn.clone().mget(keys).await.map_err(ChunkError),
        }
    }
}

/// The list of uploads in progress in object storage (see `crate::objects`).
impl Chunks {
    /// Lists `member` until `expiry` from now; when that is (ms since the Unix epoch).
    pub(crate) async fn track_pending(
        &self,
        member: &str,
        expiry: Duration,
    ) -> Result<u64, ChunkError> {
        let until = now_ms() + expiry.as_millis() as u64;
        match self {
            Self::Memory(memory) => {
                lock(&memory.pending).insert(member.to_owned(), until);
                Ok(until)
            }
            Self::Redis(conn, _) => conn
                .clone()
                .zadd::<_, _, _, ()>(PENDING_KEY, member, until)
                .await
                .map(|()| until)
                .map_err(ChunkError),
        }
    }

    /// Takes `member` off the list: completed, or aborted.
    pub(crate) async fn untrack_pending(&self, member: &str) -> Result<(), ChunkError> {
        match self {
            Self::Memory(memory) => {
                lock(&memory.pending).remove(member);
                Ok(())
            }
            Self::Redis(conn, _) => conn
                .clone()
                .zrem::<_, _, ()>(PENDING_KEY, member)
                .await
                .map_err(ChunkError),
        }
    }

    /// Up to `limit` listed members whose expiry has passed.
    pub(crate) async fn expired_pending(&self, limit: usize) -> Result<Vec<String>, ChunkError> {
        match self {
            Self::Memory(memory) => {
                let now = now_ms();
                Ok(lock(&memory.pending)
                    .iter()
                    .filter(|(_, until)| **until <= now)
                    .map(|(member, _)| member.clone())
                    .take(limit)
                    .collect())
            }
            Self::Redis(conn, _) => conn
                .clone()
                .zrangebyscore_limit(PENDING_KEY, "-inf", now_ms(), 0, limit as isize)
                .await
                .map_err(ChunkError),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}
