//! The invalidation stream that keeps a [`RedisStore`](super::RedisStore)'s local cache
//! coherent: Redis server-assisted client-side caching.
//!
//! One RESP3 connection per node the store writes to (the server; every primary of a
//! Cluster; the master Sentinel names) runs `CLIENT TRACKING ON NOLOOP`, and the store
//! sends over it every read whose result the cache may keep and every session write whose
//! result it keeps (the writer's copy): Redis then tells this connection about the keys it
//! read there, and only those, when anyone else writes, deletes or expires them. Each
//! push is applied to the cache inside the connection's reader, in order with its
//! replies. `NOLOOP` spares the writer the push of its own write, whose result it keeps;
//! the scripts read the key's metadata back, so Redis goes on tracking it for this
//! connection.
//! Redis's work per write then grows with the instances that hold the key, not with the
//! fleet. Broadcast tracking (`BCAST PREFIX <prefix>`: every key under the prefix) stays
//! an option ([`broadcast_tracking`](super::RedisStoreBuilder::broadcast_tracking)).
//!
//! These connections are ours, not the store's command connection: that one reconnects
//! (and, on a Cluster, multiplies) inside redis-rs, where tracking could not be switched
//! on before the first read on a new connection.
//!
//! The stream is trusted only while it is proven intact (outside a Cluster, also that the
//! database still holds the marker it found, which `SWAPDB` would change): a heartbeat (`PING` on every
//! connection, and on a Cluster `CLUSTER SLOTS`) extends the cache's lease. On Sentinel
//! the stream must be on the master the store writes to now: the heartbeat compares its
//! node with the store's follower of the master, never asks the node itself (a demoted
//! master answers `ROLE` as master for seconds), and the follower's changes wake it at
//! once. A dropped connection, a failed or slow heartbeat, or a changed topology gives
//! the stream up: the cache is flushed and serves nothing until a new stream is up.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion,
    PushInfo, PushKind, Value,
};
use futures_util::future::{select, try_join_all};
use tokio::sync::{watch, Notify};

use super::cache::{CoherentCache, Weigh, WriteGeneration};
use super::conn::{Source, CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};
use super::sentinel::Follower;
use crate::error::StoreError;
use crate::record::Record;

/// How often the stream is proven intact.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// How long after a heartbeat was sent hits may be served: the bound on staleness when
/// the network goes silent without closing the connections.
pub(super) const LEASE: Duration = Duration::from_secs(1);
/// A heartbeat slower than this gives the stream up. Below `LEASE - HEARTBEAT`, so a
/// healthy stream's lease never lapses between heartbeats.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(700);
/// Waits between attempts to open a new stream.
const REOPEN_WAIT: (Duration, Duration) = (Duration::from_millis(50), Duration::from_secs(1));

/// How Redis tells the cache about changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tracking {
    /// About the keys this instance read (`CLIENT TRACKING ON NOLOOP`).
    PerKey,
    /// About every key under the prefix (`CLIENT TRACKING ON BCAST PREFIX <prefix> NOLOOP`).
    Broadcast,
}

/// What the cache holds per key.
#[derive(Clone)]
pub(super) enum Cached {
    /// A session hash as read or written, or that there was none.
    Session(Option<CachedSession>),
    /// A plain string key (token mode's revocations), or that there was none.
    #[cfg_attr(not(feature = "token"), allow(dead_code))]
    Value(Option<String>),
}

/// A session as the cache holds it.
#[derive(Clone)]
pub(super) struct CachedSession {
    /// Shared with the requests that read it.
    pub(super) record: Arc<Record>,
    /// Its write generation (`:m`): a write replayed on this copy must count exactly the
    /// writes it made on top of it, or the copy is dropped.
    pub(super) generation: u64,
}

pub(super) type SessionCache = CoherentCache<Cached>;

/// Counted per field beside its name and value: the map's slot and the two strings'
/// allocations (see `ENTRY_OVERHEAD` in cache.rs).
const FIELD_OVERHEAD: usize = 100;

impl WriteGeneration for Cached {
    fn write_generation(&self) -> Option<u64> {
        match self {
            Self::Session(Some(session)) => Some(session.generation),
            Self::Session(None) | Self::Value(_) => None,
        }
    }
}

impl Weigh for Cached {
    fn weight(&self) -> usize {
        match self {
            Self::Session(None) | Self::Value(None) => 0,
            Self::Session(Some(CachedSession { record, .. })) => {
                let fields = record.data.iter();
                let data: usize = fields
                    .map(|(name, value)| name.len() + value.len() + FIELD_OVERHEAD)
                    .sum();
                data + record.metadata.user_id.as_ref().map_or(0, String::len)
            }
            Self::Value(Some(value)) => value.len(),
        }
    }
}

/// A store's cache and the task that keeps it coherent; the task ends with the last clone.
pub(super) struct Tracked {
    pub(super) cache: Arc<SessionCache>,
    /// The current stream, for [`connection_for`](Self::connection_for) and
    /// [`catch_up`](Self::catch_up).
    published: Arc<Mutex<Arc<Published>>>,
    task: tokio::task::AbortHandle,
}

/// The current stream as requests use it: where a key's cached read or kept write goes,
/// and what [`Tracked::catch_up`] checks.
#[derive(Default)]
struct Published {
    /// One per node the store writes to.
    connections: Vec<MultiplexedConnection>,
    /// On a Cluster: each slot range with the index of its primary's connection.
    slots: Vec<(u16, u16, usize)>,
    /// On Sentinel: the follower, and the epoch in which it named the stream's node.
    master: Option<(Arc<Follower>, u64)>,
    marker: Option<Marker>,
}

impl Published {
    fn of(stream: &Stream) -> Arc<Self> {
        let master = match &stream.topology {
            Topology::Sentinel(follower, epoch) => Some((follower.clone(), *epoch)),
            Topology::Single | Topology::Cluster(_) => None,
        };
        Arc::new(Self {
            connections: stream.connections.clone(),
            slots: stream.slots.clone(),
            master,
            marker: stream.marker.clone(),
        })
    }

    fn connection_for(&self, key: &str) -> Option<MultiplexedConnection> {
        if let Some((follower, epoch)) = &self.master {
            if !follower.writes_in(*epoch) {
                return None;
            }
        }
        let index = if self.slots.is_empty() {
            0
        } else {
            let slot = slot_of(key);
            let at = self.slots.partition_point(|&(_, last, _)| last < slot);
            match self.slots.get(at) {
                Some(&(first, _, index)) if first <= slot => index,
                _ => return None,
            }
        };
        self.connections.get(index).cloned()
    }
}

/// The Cluster slot of `key` (CRC16 of its hash tag, or of the whole key without one).
fn slot_of(key: &str) -> u16 {
    let key = key.as_bytes();
    let tag = key.iter().position(|&byte| byte == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&byte| byte == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16::State::<crc16::XMODEM>::calculate(tag.unwrap_or(key)) % 16384
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Tracked {
    /// Opens the stream now (an error if it cannot: a misconfigured cache must not start
    /// as a silent no-op), then keeps it up.
    pub(super) async fn start(
        source: Arc<Source>,
        prefix: Arc<str>,
        capacity: NonZeroUsize,
        max_bytes: usize,
        tracking: Tracking,
    ) -> Result<Self, StoreError> {
        let cache = Arc::new(SessionCache::new(capacity, max_bytes));
        let published: Arc<Mutex<Arc<Published>>> = Arc::default();
        let (opened, is_open) = tokio::sync::oneshot::channel();
        let (weak, publish) = (Arc::downgrade(&cache), published.clone());
        let watched = Watched {
            source,
            prefix,
            tracking,
        };
        let run = async move {
            let Some(strong) = weak.upgrade() else {
                return;
            };
            let stream = match Stream::open(&watched, &strong).await {
                Ok(stream) => stream,
                Err(error) => {
                    let _ = opened.send(Err(error));
                    return;
                }
            };
            drop(strong);
            *lock(&publish) = Published::of(&stream);
            let _ = opened.send(Ok(()));
            keep_up(weak, watched, stream, publish).await;
        };
        // On the application's runtime, not a thread of its own: measured on 2 cores,
        // a thread waiting for a time slice applied pushes later (5-6 % of reads on B
        // right after a logout on A were late, the latest 6 ms after it) than a task
        // whose socket is polled with the application's own (0.04-0.1 %, under 1 ms).
        let task = tokio::spawn(run);
        is_open
            .await
            .map_err(|_| StoreError::backend("the cache's tracking thread stopped"))??;
        Ok(Self {
            cache,
            published,
            task: task.abort_handle(),
        })
    }

    /// The tracking connection to send `key`'s cached read or kept write over; `None`
    /// while there is none that Redis would tell about that key (then read or write over
    /// the store's own connection, and keep nothing).
    pub(super) fn connection_for(&self, key: &str) -> Option<MultiplexedConnection> {
        lock(&self.published).clone().connection_for(key)
    }

    /// Returns once every invalidation Redis queued before this call has been applied
    /// (a `PING` on each tracking connection, whose reply comes after them) and the
    /// database still holds the stream's marker, or the cache has been flushed because
    /// the stream could not prove it.
    pub(super) async fn catch_up(&self) {
        let generation = self.cache.generation();
        let published = lock(&self.published).clone();
        let proven =
            async { all_answer(&published.connections).await && marker_held(&published).await };
        let answered = tokio::time::timeout(HEARTBEAT_TIMEOUT, proven).await;
        if !matches!(answered, Ok(true)) {
            self.cache.stop_serving(generation);
        }
    }
}

/// What a stream watches, and how.
struct Watched {
    source: Arc<Source>,
    prefix: Arc<str>,
    tracking: Tracking,
}

/// Heartbeats the stream; on doubt, flushes and opens a new one.
async fn keep_up(
    cache: Weak<SessionCache>,
    watched: Watched,
    mut stream: Stream,
    published: Arc<Mutex<Arc<Published>>>,
) {
    loop {
        // The next heartbeat, or at once if a connection dropped or the master changed.
        {
            let dropped = std::pin::pin!(stream.broken.notified());
            let moved = std::pin::pin!(master_changed(&mut stream.changes));
            let _ = tokio::time::timeout(HEARTBEAT, select(dropped, moved)).await;
        }
        let Some(strong) = cache.upgrade() else {
            return;
        };
        let sent = Instant::now();
        let healthy = tokio::time::timeout(HEARTBEAT_TIMEOUT, stream.is_intact())
            .await
            .unwrap_or(false);
        if healthy && strong.extend_lease(stream.generation, sent, LEASE) {
            continue;
        }
        strong.stop_serving(stream.generation);
        tracing::warn!("the Redis invalidation stream broke; the session cache is flushed and off until it is back");
        drop(strong);
        stream = match reopen(&cache, &watched).await {
            Some(stream) => stream,
            None => return,
        };
        *lock(&published) = Published::of(&stream);
        tracing::info!("the Redis invalidation stream is back; the session cache serves again");
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Resolves when the Sentinel master changes (or a failover starts or ends); never
/// for other topologies.
async fn master_changed(changes: &mut Option<watch::Receiver<()>>) {
    if let Some(changes) = changes {
        if changes.changed().await.is_ok() {
            return;
        }
    }
    std::future::pending().await
}

/// Changes of the Sentinel master, for a stream about to be opened.
fn changes_of(source: &Source) -> Option<watch::Receiver<()>> {
    match source {
        Source::Sentinel(follower) => Some(follower.changes()),
        Source::Single(_) | Source::Cluster(_) => None,
    }
}

/// Opens a new stream, waiting longer between attempts (but trying at once when the
/// Sentinel master changes); `None` once the cache is gone.
async fn reopen(cache: &Weak<SessionCache>, watched: &Watched) -> Option<Stream> {
    let mut wait = REOPEN_WAIT.0;
    let mut changes = changes_of(&watched.source);
    loop {
        let strong = cache.upgrade()?;
        match Stream::open(watched, &strong).await {
            Ok(stream) => return Some(stream),
            Err(error) => tracing::debug!(%error, "cannot open the Redis invalidation stream yet"),
        }
        drop(strong);
        let moved = std::pin::pin!(master_changed(&mut changes));
        let _ = tokio::time::timeout(wait, moved).await;
        wait = (wait * 2).min(REOPEN_WAIT.1);
    }
}

/// One tracking connection per node, for one generation of the cache.
struct Stream {
    generation: u64,
    connections: Vec<MultiplexedConnection>,
    /// See [`Published::slots`].
    slots: Vec<(u16, u16, usize)>,
    topology: Topology,
    /// Woken by a connection's reader when the connection drops.
    broken: Arc<Notify>,
    /// On Sentinel: changes of the master since the stream opened.
    changes: Option<watch::Receiver<()>>,
    /// Outside a Cluster: the database's marker when the stream opened.
    marker: Option<Marker>,
}

/// A random value in a hash under the prefix (`<prefix>cache-marker`), found or put there
/// when a stream opens. `SWAPDB` sends no invalidation: when the database the stream
/// watches no longer holds the value (swapped for another, or flushed), the stream is
/// given up. A Cluster has one database and no `SWAPDB`.
#[derive(Clone)]
struct Marker {
    key: String,
    value: String,
}

impl Marker {
    async fn place(connection: &MultiplexedConnection, prefix: &str) -> Result<Self, StoreError> {
        let key = format!("{prefix}cache-marker");
        let mut connection = connection.clone();
        let found: Option<String> = ::redis::cmd("HGET")
            .arg(&key)
            .arg("v")
            .query_async(&mut connection)
            .await
            .map_err(StoreError::backend)?;
        let value = match found {
            Some(value) => value,
            None => {
                // Two streams opening at once may each put a value: the one whose value
                // was overwritten finds out at its next heartbeat and opens again.
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes).map_err(StoreError::backend)?;
                let value: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
                ::redis::cmd("HSET")
                    .arg(&key)
                    .arg("v")
                    .arg(&value)
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(StoreError::backend)?;
                value
            }
        };
        Ok(Self { key, value })
    }

    async fn is_held(&self, connection: &MultiplexedConnection) -> bool {
        let found = ::redis::cmd("HGET")
            .arg(&self.key)
            .arg("v")
            .query_async::<Option<String>>(&mut connection.clone())
            .await;
        matches!(found, Ok(Some(value)) if value == self.value)
    }
}

/// Whether every connection answers a `PING`: its reply comes after every push Redis
/// queued on it before.
async fn all_answer(connections: &[MultiplexedConnection]) -> bool {
    let pings = connections.iter().map(|connection| {
        let mut connection = connection.clone();
        async move {
            ::redis::cmd("PING")
                .query_async::<()>(&mut connection)
                .await
        }
    });
    try_join_all(pings).await.is_ok()
}

/// Whether the database still holds the published stream's marker (true without one).
async fn marker_held(published: &Published) -> bool {
    match (&published.marker, published.connections.first()) {
        (Some(marker), Some(first)) => marker.is_held(first).await,
        (Some(_), None) => false,
        (None, _) => true,
    }
}

/// What the heartbeat checks beside the connections being alive.
enum Topology {
    Single,
    /// The slot map when the stream opened: any change (a failover, a resharding, a node
    /// added) gives the stream up.
    Cluster(SlotMap),
    /// The tracked server must still be the master the store writes to, in the same
    /// epoch of its follower.
    Sentinel(Arc<Follower>, u64),
}

type SlotMap = Vec<(i64, i64, Vec<(String, u16)>)>;

impl Stream {
    async fn open(watched: &Watched, cache: &Arc<SessionCache>) -> Result<Self, StoreError> {
        let generation = cache.generation();
        let broken = Arc::new(Notify::new());
        // Before the master is looked up, so that no change after it goes unnoticed.
        let changes = changes_of(&watched.source);
        let (nodes, slots, topology) = discover(&watched.source).await?;
        let connect = nodes.into_iter().map(|node| {
            let sender = invalidator(Arc::downgrade(cache), generation, broken.clone());
            track(node, watched, sender)
        });
        let connections = try_join_all(connect).await?;
        let marker = match (&topology, connections.first()) {
            (Topology::Cluster(_), _) | (_, None) => None,
            (_, Some(first)) => Some(Marker::place(first, &watched.prefix).await?),
        };
        let stream = Self {
            generation,
            connections,
            slots,
            topology,
            broken,
            changes,
            marker,
        };
        // Nothing read before now was kept (the last stream's end flushed the cache, and
        // nothing fills without a lease), so the lease can start now.
        if !cache.extend_lease(generation, Instant::now(), LEASE) {
            return Err(StoreError::backend(
                "the invalidation stream broke while it opened",
            ));
        }
        Ok(stream)
    }

    async fn is_intact(&self) -> bool {
        if !all_answer(&self.connections).await {
            return false;
        }
        let Some(first) = self.connections.first() else {
            return false;
        };
        if let Some(marker) = &self.marker {
            if !marker.is_held(first).await {
                return false;
            }
        }
        match &self.topology {
            Topology::Single => true,
            Topology::Cluster(opened) => {
                let reply = ::redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut first.clone())
                    .await;
                reply.ok().and_then(slot_map).as_ref() == Some(opened)
            }
            Topology::Sentinel(follower, epoch) => follower.writes_in(*epoch),
        }
    }
}

/// The nodes a stream connects to, with credentials and TLS as the store's own
/// connection; on a Cluster, its primaries and which one serves each slot range.
type Discovered = (Vec<ConnectionInfo>, Vec<(u16, u16, usize)>, Topology);

/// Where the stream's connections go.
async fn discover(source: &Source) -> Result<Discovered, StoreError> {
    match source {
        Source::Single(url) => Ok((vec![info(url)?], Vec::new(), Topology::Single)),
        Source::Cluster(seeds) => {
            let mut last_error = StoreError::backend("no Redis Cluster node given");
            for seed in seeds {
                match cluster_nodes(seed).await {
                    Ok(found) => return Ok(found),
                    Err(error) => last_error = error,
                }
            }
            Err(last_error)
        }
        Source::Sentinel(follower) => {
            let (epoch, node) = follower.master().await.map_err(StoreError::backend)?;
            let node = resp3(follower.node_info(&node));
            let topology = Topology::Sentinel(follower.clone(), epoch);
            Ok((vec![node], Vec::new(), topology))
        }
    }
}

async fn cluster_nodes(seed: &str) -> Result<Discovered, StoreError> {
    let seed_info = info(seed)?;
    let mut connection = connect(seed_info.clone(), AsyncConnectionConfig::new()).await?;
    let reply: Value = ::redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(&mut connection)
        .await
        .map_err(StoreError::backend)?;
    let map =
        slot_map(reply).ok_or_else(|| StoreError::backend("unexpected CLUSTER SLOTS reply"))?;
    let (primaries, slots) = primaries(&map)?;
    let infos = primaries
        .into_iter()
        .map(|(host, port)| at(&seed_info, host, *port))
        .collect();
    Ok((infos, slots, Topology::Cluster(map)))
}

/// A slot map's primaries, each once, and each slot range with its primary's index.
fn primaries(map: &SlotMap) -> Result<PrimariesBySlot<'_>, StoreError> {
    let primaries: Vec<&(String, u16)> = (map.iter())
        .filter_map(|(_, _, nodes)| nodes.first())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut slots = Vec::with_capacity(map.len());
    for (first, last, nodes) in map {
        let (Ok(first), Ok(last), Some(primary)) =
            (u16::try_from(*first), u16::try_from(*last), nodes.first())
        else {
            return Err(StoreError::backend("unexpected CLUSTER SLOTS reply"));
        };
        let index = primaries.binary_search(&primary).unwrap_or_default();
        slots.push((first, last, index));
    }
    Ok((primaries, slots))
}

type PrimariesBySlot<'a> = (Vec<&'a (String, u16)>, Vec<(u16, u16, usize)>);

/// Connects to `node`, switches tracking on, and routes its pushes to `sender`.
async fn track(
    node: ConnectionInfo,
    watched: &Watched,
    sender: impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static,
) -> Result<MultiplexedConnection, StoreError> {
    let mut connection =
        connect(node, AsyncConnectionConfig::new().set_push_sender(sender)).await?;
    let mut tracking = ::redis::cmd("CLIENT");
    tracking.arg("TRACKING").arg("ON");
    if watched.tracking == Tracking::Broadcast {
        tracking.arg("BCAST").arg("PREFIX").arg(&*watched.prefix);
    }
    (tracking
        .arg("NOLOOP")
        .query_async::<()>(&mut connection)
        .await)
        .map_err(StoreError::backend)?;
    Ok(connection)
}

/// Applies a tracking connection's pushes to the cache, inside its reader: in order with
/// its replies, before any reply that follows them is seen.
fn invalidator(
    cache: Weak<SessionCache>,
    generation: u64,
    broken: Arc<Notify>,
) -> impl Fn(PushInfo) -> Result<(), ()> + Send + Sync + 'static {
    move |push: PushInfo| {
        let cache = cache.upgrade().ok_or(())?;
        match push.kind {
            PushKind::Invalidate => match push.data.first() {
                Some(Value::Array(keys)) => {
                    for key in keys {
                        match key {
                            Value::BulkString(bytes) => {
                                // Not UTF-8: not a key of ours (ours are ASCII).
                                if let Ok(key) = std::str::from_utf8(bytes) {
                                    cache.invalidate(key);
                                }
                            }
                            _ => cache.flush(),
                        }
                    }
                }
                // A null instead of keys: FLUSHALL or FLUSHDB.
                _ => cache.flush(),
            },
            PushKind::Disconnection => {
                cache.stop_serving(generation);
                broken.notify_one();
            }
            _ => {}
        }
        Ok(())
    }
}

async fn connect(
    node: ConnectionInfo,
    config: AsyncConnectionConfig,
) -> Result<MultiplexedConnection, StoreError> {
    let config = config
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    ::redis::Client::open(node)
        .map_err(StoreError::backend)?
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(StoreError::backend)
}

/// `url` as connection settings that speak RESP3, which push messages need.
fn info(url: &str) -> Result<ConnectionInfo, StoreError> {
    let url = super::conn::node_url(url);
    let info = url
        .as_str()
        .into_connection_info()
        .map_err(StoreError::backend)?;
    Ok(resp3(info))
}

/// `info` speaking RESP3.
fn resp3(info: ConnectionInfo) -> ConnectionInfo {
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    info.set_redis_settings(settings)
}

/// `seed`'s settings (credentials, TLS) for another node.
pub(super) fn at(seed: &ConnectionInfo, host: &str, port: u16) -> ConnectionInfo {
    let addr = match seed.addr() {
        ConnectionAddr::TcpTls {
            insecure,
            tls_params,
            ..
        } => ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: *insecure,
            tls_params: tls_params.clone(),
        },
        _ => ConnectionAddr::Tcp(host.to_owned(), port),
    };
    seed.clone().set_addr(addr)
}

/// The slot ranges with their nodes (primary first), sorted; `None` if malformed.
fn slot_map(reply: Value) -> Option<SlotMap> {
    let Value::Array(ranges) = reply else {
        return None;
    };
    let mut map = Vec::with_capacity(ranges.len());
    for range in ranges {
        let Value::Array(items) = range else {
            return None;
        };
        let (Some(Value::Int(start)), Some(Value::Int(end))) = (items.first(), items.get(1)) else {
            return None;
        };
        let mut nodes = Vec::new();
        for node in items.iter().skip(2) {
            let Value::Array(fields) = node else {
                return None;
            };
            let host = match fields.first() {
                Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok()?,
                Some(Value::SimpleString(host)) => host.clone(),
                _ => return None,
            };
            let Some(Value::Int(port)) = fields.get(1) else {
                return None;
            };
            nodes.push((host, u16::try_from(*port).ok()?));
        }
        map.push((*start, *end, nodes));
    }
    map.sort();
    Some(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Value {
        Value::BulkString(text.as_bytes().to_vec())
    }

    #[test]
    fn reads_a_slot_map() {
        let node = |port| Value::Array(vec![bulk("127.0.0.1"), Value::Int(port), bulk("id")]);
        let reply = Value::Array(vec![
            Value::Array(vec![
                Value::Int(5461),
                Value::Int(16383),
                node(7001),
                node(7004),
            ]),
            Value::Array(vec![Value::Int(0), Value::Int(5460), node(7000)]),
        ]);
        let map = slot_map(reply).unwrap();
        assert_eq!(map[0].0, 0);
        assert_eq!(
            map[1].2,
            [
                ("127.0.0.1".to_owned(), 7001),
                ("127.0.0.1".to_owned(), 7004)
            ]
        );
        assert_eq!(slot_map(Value::Nil), None);
    }

    #[test]
    fn finds_a_keys_slot_as_redis_does() {
        // Slots as `CLUSTER KEYSLOT` gives them.
        assert_eq!(slot_of("foo"), 12182);
        assert_eq!(slot_of("bar"), 5061);
        assert_eq!(slot_of("{user1000}.following"), slot_of("user1000"));
        assert_eq!(slot_of("session:{abc}"), slot_of("abc"));
        assert_eq!(
            slot_of("{}x"),
            slot_of("{}x"),
            "an empty tag hashes the whole key"
        );
        assert_ne!(slot_of("{}foo"), slot_of("foo"));
    }

    #[test]
    fn routes_each_slot_to_its_primary() {
        let node = |port: u16| ("127.0.0.1".to_owned(), port);
        let map: SlotMap = vec![
            (0, 5460, vec![node(7002), node(7005)]),
            (5461, 10922, vec![node(7000)]),
            (10923, 16383, vec![node(7002)]),
        ];
        let (primaries, slots) = primaries(&map).unwrap();
        assert_eq!(primaries, [&node(7000), &node(7002)]);
        assert_eq!(slots, [(0, 5460, 1), (5461, 10922, 0), (10923, 16383, 1)]);
    }

    #[test]
    fn another_node_keeps_credentials_and_tls() {
        let seed = info("rediss://app:pw@db.example:7000/0").unwrap();
        let other = at(&seed, "10.0.0.2", 7001);
        assert!(
            matches!(other.addr(), ConnectionAddr::TcpTls { host, port: 7001, .. } if host == "10.0.0.2")
        );
        assert_eq!(other.redis_settings().password(), Some("pw"));
        assert_eq!(other.redis_settings().protocol(), ProtocolVersion::RESP3);
    }
}
