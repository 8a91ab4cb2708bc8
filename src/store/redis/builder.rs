//! `RedisStoreBuilder`: where a [`RedisStore`] connects and with what settings, all
//! checked and acted on by one `connect`.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::conn::{self, Conn, Source};
use super::durable::Durability;
use super::sentinel::{self, Follower};
use super::store::RedisStore;
use super::tracking::{Tracked, Tracking};
use crate::error::{ConfigError, StoreError};
use crate::keys::Keys;
use crate::store::connect_failed;

/// What [`RedisStoreBuilder::user_digest_keys`] derives its keys under.
const USER_DIGEST_LABEL: &[u8] = b"tower-stateless/v1/redis/user-digest";

/// Where a [`RedisStore`] connects: a single server, a Redis Cluster, or the master that
/// Redis Sentinel names.
///
/// A URL converts into one (`RedisStore::connect("redis://…")`); the other two are made
/// by [`cluster`](Self::cluster) and [`sentinel`](Self::sentinel). Nothing is parsed or
/// contacted until the store connects. `Debug` shows no password.
#[derive(Clone)]
pub struct RedisTarget(Target);

#[derive(Clone)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

impl RedisTarget {
    /// A single Redis server: `redis://[user:password@]host[:port][/db]`, or
    /// `rediss://…` for TLS.
    ///
    /// The store speaks RESP3 where the server offers it (Redis 6+): the connection then
    /// hears of a server restart even while idle and reconnects before the next call,
    /// instead of failing it. `?protocol=resp2` in the URL keeps to RESP2.
    pub fn single(url: impl Into<String>) -> Self {
        Self(Target::Single(url.into()))
    }

    /// A Redis Cluster, reached through some of its nodes (`host:port`, or URLs for
    /// credentials or TLS); the rest of the cluster is discovered from them.
    ///
    /// On a cluster, [`cycle_id`](crate::store::SessionStore::cycle_id) is not atomic:
    /// the old and new keys live in different slots. It copies the session to the new
    /// key (only if that is free) and then deletes the old key, only if no write changed
    /// it meanwhile (else it starts over). For that moment both keys exist; the old one
    /// dies right after.
    pub fn cluster<I, S>(nodes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(Target::Cluster(node_urls(nodes)))
    }

    /// The master that Redis Sentinel names `master`, found by asking `sentinels`
    /// (`host:port`, or `redis://` URLs) where it is, and followed as Sentinel's client
    /// guidelines describe: the store listens to every sentinel's events, asks them all
    /// every second, moves only when a majority of them agree (or a failover's leader
    /// announces the move), and checks `ROLE` on every new connection. From the moment a
    /// failover's leader announces itself until the promoted replica answers as master,
    /// calls fail (the layer answers 503) rather than write to a master about to be
    /// demoted; then every connection to the old master is dropped and the cache, if
    /// any, flushed. A call that finds the master gone or demoted (`READONLY`) fails and
    /// the next one asks the sentinels again.
    ///
    /// `master` is the name Sentinel knows the master by (`sentinel monitor <name> …`),
    /// or a URL with that name in the host's place, for the credentials, TLS and database
    /// of the master and replicas: `redis://user:password@<name>/<db>`, `rediss://…`.
    /// A sentinel with a password of its own is given as `redis://:password@host:port`.
    /// The ACL user on the master and replicas needs `+role` beside
    /// [`ACL_COMMANDS`](RedisStore::ACL_COMMANDS).
    pub fn sentinel<I, S>(sentinels: I, master: impl Into<String>) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Self(Target::Sentinel {
            sentinels: node_urls(sentinels),
            master: master.into(),
        })
    }

    /// Connects, and says where without credentials (for `Debug` and errors).
    async fn connect(&self) -> Result<(Conn, String, Source), StoreError> {
        match &self.0 {
            Target::Single(url) => {
                let conn = Conn::single(url).await?;
                Ok((conn, conn::redact(url), Source::Single(url.clone())))
            }
            Target::Cluster(urls) => {
                let conn = Conn::cluster(urls).await?;
                Ok((conn, redacted(urls), Source::Cluster(urls.clone())))
            }
            Target::Sentinel { sentinels, master } => {
                let (name, node) = sentinel::master_settings(master)?;
                let follower = Follower::start(sentinels, &name, node).await?;
                let target = format!("sentinel master {name:?} via {}", redacted(sentinels));
                Ok((
                    Conn::sentinel(&follower),
                    target,
                    Source::Sentinel(follower),
                ))
            }
        }
    }
}

impl From<&str> for RedisTarget {
    /// A single server's URL: see [`RedisTarget::single`].
    fn from(url: &str) -> Self {
        Self::single(url)
    }
}

impl From<&String> for RedisTarget {
    /// A single server's URL: see [`RedisTarget::single`].
    fn from(url: &String) -> Self {
        Self::single(url.as_str())
    }
}

impl From<String> for RedisTarget {
    /// A single server's URL: see [`RedisTarget::single`].
    fn from(url: String) -> Self {
        Self::single(url)
    }
}

impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Target::Single(url) => f.debug_tuple("Single").field(&conn::redact(url)).finish(),
            Target::Cluster(urls) => f.debug_tuple("Cluster").field(&redacted(urls)).finish(),
            Target::Sentinel { sentinels, master } => f
                .debug_struct("Sentinel")
                .field("sentinels", &redacted(sentinels))
                .field("master", &conn::redact(master))
                .finish(),
        }
    }
}

/// Each of `nodes` (`host:port` or a URL) as a URL.
fn node_urls(nodes: impl IntoIterator<Item = impl AsRef<str>>) -> Vec<String> {
    let urls = nodes.into_iter().map(|node| conn::node_url(node.as_ref()));
    urls.collect()
}

/// `urls` without credentials, comma-separated.
fn redacted(urls: &[String]) -> String {
    let redacted: Vec<String> = urls.iter().map(|url| conn::redact(url)).collect();
    redacted.join(", ")
}

/// Settings for a [`RedisStore`], then [`connect`](Self::connect); made by
/// [`RedisStore::builder`]. The settings may come in any order.
#[derive(Clone)]
#[must_use]
pub struct RedisStoreBuilder {
    target: RedisTarget,
    prefix: String,
    cache_capacity: usize,
    cache_max_bytes: usize,
    tracking: Tracking,
    /// Replicas to wait for and how long, for durable revocations.
    durable: Option<(u32, Duration)>,
    user_digests: Arc<[Hmac<Sha256>]>,
}

impl RedisStore {
    /// Connects with the default settings: see [`builder`](Self::builder).
    ///
    /// `target` is a URL (`redis://[user:password@]host[:port][/db]`, `rediss://…` for
    /// TLS) or a [`RedisTarget`] for a Cluster or Sentinel.
    pub async fn connect(target: impl Into<RedisTarget>) -> Result<Self, StoreError> {
        Self::builder(target).connect().await
    }

    /// Settings for a store on `target`: a single server's URL, or a [`RedisTarget`]
    /// ([`RedisTarget::cluster`], [`RedisTarget::sentinel`]).
    pub fn builder(target: impl Into<RedisTarget>) -> RedisStoreBuilder {
        RedisStoreBuilder {
            target: target.into(),
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            cache_capacity: 0,
            cache_max_bytes: RedisStoreBuilder::DEFAULT_CACHE_MAX_BYTES,
            tracking: Tracking::PerKey,
            durable: None,
            user_digests: Arc::new([]),
        }
    }
}

impl RedisStoreBuilder {
    /// The cache's default bound in bytes: 64 MiB.
    pub const DEFAULT_CACHE_MAX_BYTES: usize = 64 << 20;

    /// Puts every key under `prefix` instead of
    /// [`DEFAULT_PREFIX`](RedisStore::DEFAULT_PREFIX), e.g. to share one Redis between
    /// services. A prefix holding `{` or `}` fails [`connect`](Self::connect)
    /// ([`ConfigError::KeyPrefix`]): it would change the cluster hash tags that keep
    /// each key's slot.
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Keeps up to `capacity` sessions this instance read or wrote in a local cache, so
    /// that reading them again costs no round trip, and keeps it coherent with Redis:
    /// Redis tells the cache (server-assisted client-side caching, `CLIENT TRACKING`,
    /// over RESP3 connections of its own that carry the cached reads and the session
    /// writes) about every write, delete or expiry of a key it holds, from any other
    /// instance, and the cache drops that key. A session write through this store keeps
    /// the session as the write left it (the write replayed on the session the cache
    /// held, checked against the write counter the script returns), so a request that
    /// reads and then writes a session costs one round trip, and a read after it on this
    /// instance none.
    /// `0` (the default) keeps no cache. What it holds is also bounded in bytes
    /// ([`cache_max_bytes`](Self::cache_max_bytes), 64 MiB unless set): the least
    /// recently used sessions go first beyond either bound.
    ///
    /// A cached session is still checked against the layer's clock on every read, so the
    /// cache never extends an idle or absolute deadline. When the invalidation stream
    /// may have missed a change (a tracking connection dropped, a heartbeat failed or was
    /// slow, a Cluster's slot map or a Sentinel master changed), the whole cache is
    /// dropped and reads go to Redis until a new stream is up. Staleness is bounded by
    /// the time an invalidation takes to arrive; if the network goes silent without
    /// closing the connection, by a one-second lease. An instance always reads its own
    /// writes.
    /// ARCHITECTURE.md ("The coherent cache") has the measured bounds; see also
    /// [`RedisStore::catch_up`] and [`RedisStore::reading_through`].
    ///
    /// Needs Redis 6 or later; the ACL user also needs `+client|tracking +role`.
    /// [`connect`](Self::connect) fails if the invalidation stream cannot be opened then.
    pub fn cache(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// The most the cache's sessions may weigh, in bytes (default
    /// [`DEFAULT_CACHE_MAX_BYTES`](Self::DEFAULT_CACHE_MAX_BYTES), 64 MiB): the lengths of
    /// their keys, field names, values and user IDs, plus a fixed overhead per session
    /// (360 bytes) and per field (100): an estimate of the memory they take, set from the
    /// resident memory a cache of shop-like sessions was measured to add (BENCHMARKS.md,
    /// "The coherent cache's hit, and its memory").
    /// Split evenly over the cache's 16 shards; a session heavier than a shard's share is
    /// not cached. See [`cache`](Self::cache).
    pub fn cache_max_bytes(mut self, max_bytes: usize) -> Self {
        self.cache_max_bytes = max_bytes;
        self
    }

    /// Has Redis tell the cache about every key under the prefix that changes (broadcast
    /// tracking), instead of only the keys this instance holds (the default). Redis then
    /// pushes every session write to every instance: its work per write grows with the
    /// size of the fleet (BENCHMARKS.md, "Redis CPU per session write"). Only for a few
    /// instances, e.g. to compare.
    pub fn broadcast_tracking(mut self, broadcast: bool) -> Self {
        self.tracking = if broadcast {
            Tracking::Broadcast
        } else {
            Tracking::PerKey
        };
        self
    }

    /// Acknowledges [`destroy`](crate::store::SessionStore::destroy),
    /// [`destroy_sessions_of_user`](crate::store::SessionStore::destroy_sessions_of_user)
    /// and [`cycle_id`](crate::store::SessionStore::cycle_id) only once the change has
    /// reached `replicas` replicas (Redis `WAIT`), waiting at most `timeout`; if fewer
    /// confirm in time, the call fails (the layer answers 503 and the client may retry:
    /// each of these calls can be repeated safely). A failover can then never promote a
    /// replica that still holds a session whose end was acknowledged.
    ///
    /// Opens a second connection, used only by these calls. On a cluster the wait runs
    /// on every primary, and a primary that is down fails the call. Keep `timeout` below
    /// the layer's store timeout, or the layer gives up first. What this costs is in
    /// BENCHMARKS.md ("Durable revocations").
    ///
    /// [`connect`](Self::connect) fails if `replicas` or `timeout` is zero
    /// ([`ConfigError::ZeroDuration`]) or the second connection cannot be opened.
    pub fn durable_revocations(mut self, replicas: u32, timeout: Duration) -> Self {
        self.durable = Some((replicas, timeout));
        self
    }

    /// Names every key derived from a user ID (the per-user index behind
    /// log-out-everywhere and the session limit; token mode's "not before" time) by
    /// HMAC-SHA256 under a key derived from the signing key of `keys`, instead of plain
    /// SHA-256, so that someone who can read Redis cannot confirm a guessed user name
    /// offline. Pass the layer's keys: only derived keys are kept. Names under the other
    /// keys (a rotation) and under the plain digest (written before) are still read,
    /// listed, destroyed by log-out-everywhere and, for a not-before time, enforced,
    /// until they expire; new ones are written under the signing key's.
    pub fn user_digest_keys(mut self, keys: &Keys) -> Self {
        let derived = keys.all().map(|key| {
            Hmac::<Sha256>::new_from_slice(&key.derive(USER_DIGEST_LABEL))
                .expect("HMAC takes any key length")
        });
        self.user_digests = derived.collect();
        self
    }

    /// Checks the settings, connects, checks the eviction policy (see
    /// [`RedisStore::check_eviction_policy`]) and opens the revocation connection and the
    /// cache's invalidation stream if asked to. Fails, naming what is wrong, on a setting
    /// the store cannot work with (before connecting; the source is a [`ConfigError`]), or
    /// if Redis, a sentinel or the master cannot be reached now, so that a misconfigured
    /// service does not start.
    pub async fn connect(self) -> Result<RedisStore, StoreError> {
        let Self {
            target,
            prefix,
            cache_capacity,
            cache_max_bytes,
            tracking,
            durable,
            user_digests,
        } = self;
        check(&prefix, durable).map_err(StoreError::backend)?;
        let (conn, described, source) = target.connect().await?;
        let source = Arc::new(source);
        let durability = match durable {
            None => None,
            Some((replicas, timeout)) => {
                let durability = Durability::open(&source, replicas, timeout).await;
                let durability = durability.map_err(|cause| {
                    let step = "open the revocation connection";
                    connect_failed(step, format!("Redis at {described}"), cause)
                })?;
                Some(Arc::new(durability))
            }
        };
        let prefix: Arc<str> = prefix.into();
        let tracked = match NonZeroUsize::new(cache_capacity) {
            None => None,
            Some(capacity) => {
                let tracked = Tracked::start(
                    source.clone(),
                    prefix.clone(),
                    capacity,
                    cache_max_bytes,
                    tracking,
                );
                let tracked = tracked.await;
                let tracked = tracked.map_err(|cause| {
                    let step = "open the cache's invalidation stream";
                    connect_failed(step, format!("Redis at {described}"), cause)
                })?;
                Some(Arc::new(tracked))
            }
        };
        let store = RedisStore {
            conn,
            prefix,
            target: described.into(),
            durability,
            tracked,
            read_through: false,
            user_digests,
        };
        store.check_eviction_policy().await;
        Ok(store)
    }
}

/// The rules the settings must follow, checked before anything is contacted.
fn check(prefix: &str, durable: Option<(u32, Duration)>) -> Result<(), ConfigError> {
    if prefix.contains(['{', '}']) {
        return Err(ConfigError::KeyPrefix);
    }
    match durable {
        Some((0, _)) => Err(ConfigError::ZeroDuration("number of replicas to wait for")),
        Some((_, timeout)) if timeout.is_zero() => {
            Err(ConfigError::ZeroDuration("replication wait timeout"))
        }
        _ => Ok(()),
    }
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("target", &self.target)
            .field("prefix", &self.prefix)
            .field("cache", &self.cache_capacity)
            .field("cache_max_bytes", &self.cache_max_bytes)
            .field("tracking", &self.tracking)
            .field("durable_revocations", &self.durable)
            .field("user_digest_keys", &self.user_digests.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked_before_connecting() {
        assert_eq!(check("session:", None), Ok(()));
        assert_eq!(check("a{b", None), Err(ConfigError::KeyPrefix));
        assert_eq!(check("a}b", None), Err(ConfigError::KeyPrefix));
        let second = Duration::from_secs(1);
        assert_eq!(check("s:", Some((1, second))), Ok(()));
        assert!(matches!(
            check("s:", Some((0, second))),
            Err(ConfigError::ZeroDuration(_))
        ));
        assert!(matches!(
            check("s:", Some((1, Duration::ZERO))),
            Err(ConfigError::ZeroDuration(_))
        ));
    }

    #[test]
    fn debug_shows_no_password() {
        let keys = Keys::new(crate::Key::from_bytes(&[1; 32]).unwrap());
        let builders = [
            RedisStore::builder("redis://app:s3cret@db:6379/2"),
            RedisStore::builder(RedisTarget::cluster(["redis://app:s3cret@db:7000"])),
            RedisStore::builder(RedisTarget::sentinel(
                ["redis://:s3cret@db:26379"],
                "redis://app:s3cret@mymaster/0",
            )),
        ];
        for builder in builders {
            let debug = format!("{:?}", builder.user_digest_keys(&keys).cache(10));
            assert!(
                !debug.contains("s3cret") && debug.contains("db:"),
                "{debug}"
            );
        }
    }
}
