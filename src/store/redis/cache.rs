//! The coherent local cache: what this instance read from Redis, served again only while
//! Redis is known to tell it about every change (`tracking.rs` keeps that promise).
//!
//! Three rules make a hit never older than the last invalidation Redis sent:
//!
//! - **Tickets.** A read takes a ticket before it asks Redis and may fill the cache only
//!   if no invalidation touched its shard, and no flush happened, since: an invalidation
//!   processed between Redis's reply and the fill cannot be overtaken by the fill.
//!   Writes through this store are ordered by the session's write generation instead:
//!   a write keeps its result (the writer's copy) when it followed the copy it finds,
//!   and a read that started before a write fills only what it found at that write's
//!   generation or later. Concurrent writes and reads of one session on one instance
//!   thus keep it cached, where dropping it at each write would have them miss in turn.
//! - **Flush on doubt.** When the invalidation stream may have lost a message (its
//!   connection dropped, a heartbeat failed, the topology changed), everything goes.
//! - **Lease.** Hits are served only until a deadline that each heartbeat extends from
//!   the moment it was *sent*: its reply proves that every invalidation Redis queued
//!   before that moment has been applied. A silent network stops hits within the lease.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use lru::LruCache;

/// Independent locks: on a busy instance, lookups of different sessions rarely wait.
const SHARDS: usize = 16;

/// The writes per shard a read can look back over: one that started before more writes
/// than this (to keys of its shard) does not fill.
const RECENT_WRITES: usize = 64;

/// A bounded map from Redis key to what was read there, coherent with Redis.
pub(super) struct CoherentCache<V> {
    shards: Box<[Mutex<Shard<V>>]>,
    hasher: RandomState,
    /// Bumped by every flush: a ticket taken before it cannot fill.
    epoch: AtomicU64,
    /// Hits are served until this many nanoseconds after `base`; 0 while not tracking.
    lease_until: AtomicU64,
    base: Instant,
    /// The tracking generation: bumped when a stream of invalidations is given up, so a
    /// late heartbeat of that stream cannot extend the lease. Lease changes happen under
    /// this lock; lookups only read `lease_until`.
    generation: Mutex<u64>,
    counters: Counters,
}

struct Shard<V> {
    /// By the key's hash, computed once per call (it also picks the shard).
    entries: LruCache<u64, Entry<V>, BuildHasherDefault<KnownHash>>,
    /// Bumped by every invalidation of a key in this shard: a read or write that started
    /// before may not keep what it found.
    invalidations: u64,
    /// Writes through this store to keys of this shard (their copies kept or dropped).
    writes: u64,
    /// The last [`RECENT_WRITES`] of them: the key's hash and the write generation Redis
    /// reported after the write (`u64::MAX` if none).
    recent_writes: VecDeque<(u64, u64)>,
    /// The weight of the entries held, at most `max_bytes`.
    bytes: usize,
    max_bytes: usize,
}

struct Entry<V> {
    /// Kept beside its value, so that a key never answers for another of the same hash.
    key: Box<str>,
    value: V,
    weight: usize,
}

/// What a cached value weighs: roughly the bytes it holds, for the cache's memory bound.
pub(super) trait Weigh {
    fn weight(&self) -> usize;
}

/// Where a cached value stands among the writes to its key: Redis's write counter when
/// the value was read or written (`None` for a value without one).
pub(super) trait WriteGeneration {
    fn write_generation(&self) -> Option<u64>;
}

/// Counted per entry beside its key and value: the LRU node, the boxed key's allocation,
/// the record, its map's table and its `Arc`. With `FIELD_OVERHEAD` (tracking.rs), set so
/// that a shop-like session weighs what BENCHMARKS.md's `cache_footprint` measured it to
/// add to the process's resident memory: 862 bytes for a 53-byte key and four fields of
/// 42 bytes in all, weighed 855.
const ENTRY_OVERHEAD: usize = 360;

impl<V: Weigh + WriteGeneration> Shard<V> {
    fn find(&mut self, hash: u64, key: &str) -> Option<&V> {
        let entry = self.entries.get(&hash)?;
        (*entry.key == *key).then_some(&entry.value)
    }

    /// Whether `value`, read after `ticket` was taken, is no older than every write to
    /// its key since (kept or not) and than the copy held now.
    fn is_current(&self, key: &str, ticket: &Ticket, value: &V) -> bool {
        let found = value.write_generation();
        let Ok(since) = usize::try_from(self.writes - ticket.writes) else {
            return false;
        };
        if since > self.recent_writes.len() {
            return false;
        }
        let after_writes = self
            .recent_writes
            .iter()
            .rev()
            .take(since)
            .all(|&(hash, written)| {
                hash != ticket.hash || found.is_some_and(|found| found >= written)
            });
        let older_than_held = (self.held_generation(ticket.hash, key))
            .zip(found)
            .is_some_and(|(held, found)| found < held);
        after_writes && !older_than_held
    }

    /// What `key` holds, without touching its recency.
    fn peek(&self, hash: u64, key: &str) -> Option<&V> {
        let entry = self.entries.peek(&hash)?;
        (*entry.key == *key).then_some(&entry.value)
    }

    /// The write generation of what `key` holds, without touching its recency.
    fn held_generation(&self, hash: u64, key: &str) -> Option<u64> {
        self.peek(hash, key)?.write_generation()
    }

    /// Counts a write to the key of `hash` that left generation `written`.
    fn count_write(&mut self, hash: u64, written: Option<u64>) {
        self.writes += 1;
        if self.recent_writes.len() == RECENT_WRITES {
            self.recent_writes.pop_front();
        }
        self.recent_writes
            .push_back((hash, written.unwrap_or(u64::MAX)));
    }

    /// Keeps `value` as the most recently used entry, dropping the least recently used
    /// ones beyond the shard's count or weight; a value heavier than the whole shard may
    /// hold is not kept (nor what `key` held before).
    fn put(&mut self, hash: u64, key: &str, value: V) -> bool {
        let weight = key.len() + value.weight() + ENTRY_OVERHEAD;
        if weight > self.max_bytes {
            self.remove(hash, key);
            return false;
        }
        let entry = Entry {
            key: key.into(),
            value,
            weight,
        };
        self.bytes += weight;
        // The entry it replaced, or the least recently used one it pushed out.
        if let Some((_, gone)) = self.entries.push(hash, entry) {
            self.bytes -= gone.weight;
        }
        while self.bytes > self.max_bytes {
            match self.entries.pop_lru() {
                Some((_, gone)) => self.bytes -= gone.weight,
                None => break,
            }
        }
        true
    }

    fn remove(&mut self, hash: u64, key: &str) -> bool {
        if self.peek(hash, key).is_none() {
            return false;
        }
        if let Some(gone) = self.entries.pop(&hash) {
            self.bytes -= gone.weight;
        }
        true
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.bytes = 0;
    }
}

/// What a lookup found.
pub(super) enum Lookup<V> {
    Hit(V),
    /// Not cached: read Redis, then [`fill`](CoherentCache::fill) with the ticket.
    Miss(Ticket),
    /// Not tracking right now: read Redis and keep nothing.
    Bypass,
}

/// Permission to fill one key, or to keep what a write left there, valid until an
/// invalidation or flush overtakes it.
pub(super) struct Ticket {
    /// The key's hash, as `lookup` computed it.
    hash: u64,
    shard: usize,
    invalidations: u64,
    writes: u64,
    epoch: u64,
}

#[derive(Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
    invalidations: AtomicU64,
    flushes: AtomicU64,
    copies: AtomicU64,
}

/// Counts of a [`RedisStore`](super::RedisStore)'s local cache since it was built, from
/// [`RedisStore::cache_stats`](super::RedisStore::cache_stats).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Sessions held now.
    pub len: usize,
    /// The most sessions it holds.
    pub capacity: usize,
    /// What the sessions held weigh now: the bytes of their keys, field names and
    /// values, plus a fixed overhead per entry and per field.
    pub bytes: usize,
    /// The most they may weigh ([`cache_max_bytes`](super::RedisStoreBuilder::cache_max_bytes)).
    pub max_bytes: usize,
    /// Whether hits are served now (the invalidation stream is intact).
    pub tracking: bool,
    /// Loads answered from the cache.
    pub hits: u64,
    /// Loads that read Redis and could fill the cache.
    pub misses: u64,
    /// Loads that read Redis while the cache was not tracking (after a connection loss,
    /// until tracking is back).
    pub bypasses: u64,
    /// Cached entries dropped because their key changed (a push from Redis, or a write
    /// through this store).
    pub invalidations: u64,
    /// Times the whole cache was dropped: the invalidation stream broke or may have
    /// missed a change.
    pub flushes: u64,
    /// Writes through this store whose result the cache kept (the writer's copy), so
    /// that the next read of that session here costs no round trip.
    pub copies: u64,
}

impl<V: Clone + Weigh + WriteGeneration> CoherentCache<V> {
    /// A cache of at most `capacity` entries weighing at most `max_bytes`, split evenly
    /// over the shards.
    pub(super) fn new(capacity: NonZeroUsize, max_bytes: usize) -> Self {
        let per_shard = NonZeroUsize::new(capacity.get().div_ceil(SHARDS)).unwrap_or(capacity);
        let shards = (0..SHARDS)
            .map(|_| {
                Mutex::new(Shard {
                    entries: LruCache::with_hasher(per_shard, BuildHasherDefault::default()),
                    invalidations: 0,
                    writes: 0,
                    recent_writes: VecDeque::with_capacity(RECENT_WRITES),
                    bytes: 0,
                    max_bytes: max_bytes / SHARDS,
                })
            })
            .collect();
        Self {
            shards,
            hasher: RandomState::new(),
            epoch: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            base: Instant::now(),
            generation: Mutex::new(0),
            counters: Counters::default(),
        }
    }

    pub(super) fn lookup(&self, key: &str) -> Lookup<V> {
        let Some((ticket, mut shard)) = self.ticket_locked(key) else {
            self.counters.bypasses.fetch_add(1, Ordering::Relaxed);
            return Lookup::Bypass;
        };
        if let Some(value) = shard.find(ticket.hash, key) {
            let value = value.clone();
            self.counters.hits.fetch_add(1, Ordering::Relaxed);
            return Lookup::Hit(value);
        }
        self.counters.misses.fetch_add(1, Ordering::Relaxed);
        Lookup::Miss(ticket)
    }

    /// `key`'s ticket, with its shard still locked; `None` while not leased.
    fn ticket_locked(&self, key: &str) -> Option<(Ticket, MutexGuard<'_, Shard<V>>)> {
        if !self.leased() {
            return None;
        }
        let hash = self.hash(key);
        let index = self.shard_of(hash);
        let epoch = self.epoch.load(Ordering::Acquire);
        let shard = self.lock(index);
        let ticket = Ticket {
            hash,
            shard: index,
            invalidations: shard.invalidations,
            writes: shard.writes,
            epoch,
        };
        Some((ticket, shard))
    }

    /// Keeps `value`, read from `key` after `ticket` was taken, unless something
    /// invalidated the shard or flushed the cache since, or `value` is older than a write
    /// through this store since or than the copy held.
    pub(super) fn fill(&self, key: &str, ticket: Ticket, value: V) {
        let mut shard = self.lock(ticket.shard);
        if self.overtaken(&shard, &ticket) || !shard.is_current(key, &ticket, &value) {
            return;
        }
        // The ticket's hash is this key's: `lookup` took it for `key`.
        shard.put(ticket.hash, key, value);
    }

    /// Permission to keep what a write this store is about to send leaves at `key`
    /// ([`keep_written`](Self::keep_written)), and the copy held now, on which the write
    /// may be replayed; `None` while not tracking.
    pub(super) fn ticket(&self, key: &str) -> Option<(Ticket, Option<V>)> {
        let (ticket, shard) = self.ticket_locked(key)?;
        let held = shard.peek(ticket.hash, key).cloned();
        Some((ticket, held))
    }

    /// A write sent after `ticket` was taken left `key` at generation `written`, and
    /// `value` there if the writer can tell: kept as a read's [`fill`](Self::fill) would
    /// be, and counted as a write, so that no read that started before fills the key
    /// afterwards with what it found before. If it is not kept, neither is the copy held,
    /// unless that one is newer.
    pub(super) fn keep_written(
        &self,
        key: &str,
        ticket: Ticket,
        written: Option<u64>,
        value: Option<V>,
    ) {
        let mut shard = self.lock(ticket.shard);
        shard.count_write(ticket.hash, written);
        let overtaken = self.overtaken(&shard, &ticket);
        let current = value.filter(|value| !overtaken && shard.is_current(key, &ticket, value));
        if let Some(value) = current {
            if shard.put(ticket.hash, key, value) {
                self.counters.copies.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let newer_held = (shard.held_generation(ticket.hash, key))
            .zip(written)
            .is_some_and(|(held, written)| held > written);
        if !newer_held && shard.remove(ticket.hash, key) {
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Whether an invalidation of `ticket`'s shard, a flush or the end of the lease came
    /// after it. Checked under the shard's lock (`shard` is its guard's contents): a
    /// flush bumps the epoch before it takes the locks to clear, so either the caller
    /// sees the new epoch or the flush clears what it puts.
    fn overtaken(&self, shard: &Shard<V>, ticket: &Ticket) -> bool {
        shard.invalidations != ticket.invalidations
            || self.epoch.load(Ordering::Acquire) != ticket.epoch
            || !self.leased()
    }

    /// `key` changed in Redis (or is about to, through this store).
    pub(super) fn invalidate(&self, key: &str) {
        let hash = self.hash(key);
        let mut shard = self.lock(self.shard_of(hash));
        shard.invalidations += 1;
        if shard.remove(hash, key) {
            self.counters.invalidations.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops everything, and every ticket handed out before.
    pub(super) fn flush(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for index in 0..self.shards.len() {
            let mut shard = self.lock(index);
            shard.invalidations += 1;
            shard.clear();
        }
        self.counters.flushes.fetch_add(1, Ordering::Relaxed);
    }

    /// The tracking generation now: the one a new invalidation stream serves.
    pub(super) fn generation(&self) -> u64 {
        *self.lock_generation()
    }

    /// The invalidation stream of `generation` may have missed something: no hits until
    /// a new stream is proven, and nothing read before now is kept. A no-op for a
    /// stream already given up.
    pub(super) fn stop_serving(&self, generation: u64) {
        {
            let mut current = self.lock_generation();
            if *current != generation {
                return;
            }
            *current += 1;
            self.lease_until.store(0, Ordering::Release);
        }
        self.flush();
    }

    /// A heartbeat of `generation`'s stream, sent at `sent`, was answered: every
    /// invalidation Redis queued before it has been applied, so hits may be served until
    /// `sent + lease`. False if that stream was given up meanwhile.
    pub(super) fn extend_lease(&self, generation: u64, sent: Instant, lease: Duration) -> bool {
        let current = self.lock_generation();
        if *current != generation {
            return false;
        }
        let until = (sent + lease).saturating_duration_since(self.base);
        let until = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.lease_until.fetch_max(until, Ordering::AcqRel);
        true
    }

    pub(super) fn stats(&self) -> CacheStats {
        let mut stats = CacheStats::default();
        for index in 0..self.shards.len() {
            let shard = self.lock(index);
            stats.len += shard.entries.len();
            stats.capacity += shard.entries.cap().get();
            stats.bytes += shard.bytes;
            stats.max_bytes += shard.max_bytes;
        }
        let count = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        CacheStats {
            tracking: self.leased(),
            hits: count(&self.counters.hits),
            misses: count(&self.counters.misses),
            bypasses: count(&self.counters.bypasses),
            invalidations: count(&self.counters.invalidations),
            flushes: count(&self.counters.flushes),
            copies: count(&self.counters.copies),
            ..stats
        }
    }

    /// Whether hits are served now.
    pub(super) fn is_serving(&self) -> bool {
        self.leased()
    }

    fn leased(&self) -> bool {
        let now = u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX);
        now < self.lease_until.load(Ordering::Acquire)
    }

    fn hash(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard_of(&self, hash: u64) -> usize {
        // The hash is of a random session ID: any bits spread well. The top bits: the
        // shard's map uses the low ones.
        (hash >> 60) as usize % self.shards.len()
    }

    fn lock_generation(&self) -> MutexGuard<'_, u64> {
        self.generation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock(&self, index: usize) -> MutexGuard<'_, Shard<V>> {
        // A panic while holding a shard's lock cannot leave it half-updated in a way that
        // matters (a value is put or popped whole), so poisoning is ignored.
        self.shards[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// The hasher of a shard's map, whose keys are already hashes (`RandomState`'s SipHash of
/// the Redis key): it passes them through instead of hashing them a second time.
#[derive(Default)]
struct KnownHash(u64);

impl Hasher for KnownHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write_u64(&mut self, hash: u64) {
        self.0 = hash;
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `u64` keys are hashed here; any other input still hashes (FNV-1a).
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl<V> fmt::Debug for CoherentCache<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoherentCache").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_secs(60);

    /// A test value is its own write generation.
    impl WriteGeneration for u32 {
        fn write_generation(&self) -> Option<u64> {
            Some(u64::from(*self))
        }
    }

    /// A test value weighs its own number of bytes.
    impl Weigh for u32 {
        fn weight(&self) -> usize {
            *self as usize
        }
    }

    fn tracking_cache(capacity: usize) -> CoherentCache<u32> {
        let cache = CoherentCache::new(NonZeroUsize::new(capacity).unwrap(), usize::MAX);
        assert!(cache.extend_lease(0, Instant::now(), LEASE));
        cache
    }

    fn miss(cache: &CoherentCache<u32>, key: &str) -> Ticket {
        match cache.lookup(key) {
            Lookup::Miss(ticket) => ticket,
            Lookup::Hit(_) => panic!("{key} was cached"),
            Lookup::Bypass => panic!("not tracking"),
        }
    }

    fn hit(cache: &CoherentCache<u32>, key: &str) -> Option<u32> {
        match cache.lookup(key) {
            Lookup::Hit(value) => Some(value),
            _ => None,
        }
    }

    #[test]
    fn a_filled_key_is_a_hit_until_invalidated() {
        let cache = tracking_cache(64);
        let ticket = miss(&cache, "a");
        cache.fill("a", ticket, 1);
        assert_eq!(hit(&cache, "a"), Some(1));
        cache.invalidate("a");
        assert_eq!(hit(&cache, "a"), None);
        let stats = cache.stats();
        assert_eq!((stats.hits, stats.misses, stats.invalidations), (1, 2, 1));
    }

    #[test]
    fn an_invalidation_between_read_and_fill_wins() {
        let cache = tracking_cache(64);
        let ticket = miss(&cache, "a");
        cache.invalidate("a");
        cache.fill("a", ticket, 1);
        assert_eq!(hit(&cache, "a"), None);
    }

    fn written(cache: &CoherentCache<u32>, key: &str) -> Ticket {
        cache.ticket(key).expect("tracking").0
    }

    /// A write that left `value` (its own generation) is done.
    fn keep(cache: &CoherentCache<u32>, key: &str, ticket: Ticket, value: u32) {
        cache.keep_written(key, ticket, Some(u64::from(value)), Some(value));
    }

    #[test]
    fn a_write_leaves_its_copy() {
        let cache = tracking_cache(64);
        let ticket = written(&cache, "a");
        keep(&cache, "a", ticket, 2);
        assert_eq!(hit(&cache, "a"), Some(2));
        assert_eq!(cache.stats().copies, 1);
    }

    #[test]
    fn writes_done_out_of_order_leave_the_newest_copy() {
        let cache = tracking_cache(64);
        let read = miss(&cache, "a");
        cache.fill("a", read, 1);
        let first = written(&cache, "a");
        let second = written(&cache, "a");
        let third = written(&cache, "a");
        // The requests go on in another order than Redis ran their writes.
        keep(&cache, "a", third, 4);
        keep(&cache, "a", first, 2);
        assert_eq!(hit(&cache, "a"), Some(4), "never older than the copy held");
        keep(&cache, "a", second, 3);
        assert_eq!(hit(&cache, "a"), Some(4));
        assert_eq!(cache.stats().copies, 1);
        assert_eq!(
            cache.ticket("a").expect("tracking").1,
            Some(4),
            "the copy to replay on"
        );
    }

    /// A key other than `key` in `key`'s shard.
    fn neighbour(cache: &CoherentCache<u32>, key: &str) -> String {
        let shard = cache.shard_of(cache.hash(key));
        (0..)
            .map(|index| format!("k{index}"))
            .find(|other| cache.shard_of(cache.hash(other)) == shard)
            .expect("a key in every shard")
    }

    #[test]
    fn a_write_not_kept_drops_an_older_copy() {
        let cache = tracking_cache(64);
        let read = miss(&cache, "a");
        cache.fill("a", read, 1);
        let write = written(&cache, "a");
        // Overtaken by an invalidation of another key in the shard: the write is not
        // kept, and the copy it replaced goes too.
        cache.invalidate(&neighbour(&cache, "a"));
        assert_eq!(hit(&cache, "a"), Some(1));
        keep(&cache, "a", write, 2);
        assert_eq!(hit(&cache, "a"), None);
        // A write the writer cannot tell the result of drops the copy too.
        let read = miss(&cache, "a");
        cache.fill("a", read, 2);
        let write = written(&cache, "a");
        cache.keep_written("a", write, Some(3), None);
        assert_eq!(hit(&cache, "a"), None);
    }

    #[test]
    fn a_read_from_before_a_write_fills_only_what_it_found_after_it() {
        let cache = tracking_cache(64);
        let write = written(&cache, "a");
        // Overtaken: the write keeps nothing, but counts.
        cache.invalidate("a");
        let before = miss(&cache, "a");
        let after = miss(&cache, "a");
        keep(&cache, "a", write, 2);
        assert_eq!(hit(&cache, "a"), None, "overtaken");
        cache.fill("a", before, 1);
        assert_eq!(hit(&cache, "a"), None, "found before the write");
        cache.fill("a", after, 2);
        assert_eq!(hit(&cache, "a"), Some(2), "found the write's generation");
        let older = miss(&cache, "b");
        let newer = miss(&cache, "b");
        cache.fill("b", newer, 5);
        cache.fill("b", older, 4);
        assert_eq!(hit(&cache, "b"), Some(5), "never older than the copy held");
    }

    #[test]
    fn a_read_from_before_more_writes_than_remembered_does_not_fill() {
        let cache = tracking_cache(64);
        let read = miss(&cache, "a");
        let other = neighbour(&cache, "a");
        for _ in 0..=RECENT_WRITES {
            let ticket = written(&cache, &other);
            keep(&cache, &other, ticket, 1);
        }
        cache.fill("a", read, 1);
        assert_eq!(hit(&cache, "a"), None);
    }

    #[test]
    fn an_invalidation_during_a_write_drops_the_copy() {
        let cache = tracking_cache(64);
        let before = miss(&cache, "a");
        cache.fill("a", before, 1);
        let ticket = written(&cache, "a");
        cache.invalidate("a");
        let refill = miss(&cache, "a");
        cache.fill("a", refill, 1);
        keep(&cache, "a", ticket, 2);
        assert_eq!(
            hit(&cache, "a"),
            None,
            "neither the copy nor the older read"
        );
        assert_eq!(cache.stats().copies, 0);
    }

    #[test]
    fn a_read_from_before_a_write_cannot_fill_after_its_copy() {
        let cache = tracking_cache(64);
        let ticket = written(&cache, "a");
        let read_before = miss(&cache, "a");
        keep(&cache, "a", ticket, 2);
        cache.fill("a", read_before, 1);
        assert_eq!(hit(&cache, "a"), Some(2));
        assert!(cache.ticket("b").is_some());
        cache.stop_serving(0);
        assert!(cache.ticket("b").is_none(), "no copies without a lease");
    }

    #[test]
    fn a_flush_between_read_and_fill_wins() {
        let cache = tracking_cache(64);
        let ticket = miss(&cache, "a");
        cache.flush();
        cache.fill("a", ticket, 1);
        assert_eq!(hit(&cache, "a"), None);
        assert_eq!(cache.stats().flushes, 1);
    }

    #[test]
    fn nothing_is_served_or_kept_without_a_lease() {
        let cache = tracking_cache(64);
        let ticket = miss(&cache, "a");
        cache.fill("a", ticket, 1);
        cache.stop_serving(0);
        assert!(matches!(cache.lookup("a"), Lookup::Bypass));
        assert!(
            !cache.extend_lease(0, Instant::now(), LEASE),
            "a late heartbeat of a stream given up"
        );
        assert!(matches!(cache.lookup("a"), Lookup::Bypass));
        assert!(cache.extend_lease(1, Instant::now(), LEASE));
        assert_eq!(hit(&cache, "a"), None, "stopping flushed the cache");

        let expired: CoherentCache<u32> =
            CoherentCache::new(NonZeroUsize::new(4).unwrap(), usize::MAX);
        expired.extend_lease(0, Instant::now(), Duration::ZERO);
        assert!(matches!(expired.lookup("a"), Lookup::Bypass));
        assert!(!expired.stats().tracking);
    }

    #[test]
    fn a_lease_counts_from_when_the_heartbeat_was_sent() {
        let cache: CoherentCache<u32> =
            CoherentCache::new(NonZeroUsize::new(4).unwrap(), usize::MAX);
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .expect("the machine has been up 10 s");
        cache.extend_lease(0, long_ago, Duration::from_secs(5));
        assert!(!cache.stats().tracking);
    }

    #[test]
    fn an_old_stream_cannot_stop_a_new_one() {
        let cache = tracking_cache(4);
        cache.stop_serving(0);
        assert!(cache.extend_lease(1, Instant::now(), LEASE));
        cache.stop_serving(0);
        assert!(cache.stats().tracking);
    }

    #[test]
    fn capacity_is_bounded_least_recently_used_first() {
        let cache = tracking_cache(SHARDS * 2);
        for index in 0..SHARDS * 20 {
            let key = format!("k{index}");
            let ticket = miss(&cache, &key);
            cache.fill(&key, ticket, 0);
        }
        let stats = cache.stats();
        assert_eq!(stats.capacity, SHARDS * 2);
        assert!(stats.len <= SHARDS * 2, "{stats:?}");
    }

    #[test]
    fn weight_is_bounded_least_recently_used_first() {
        // Each shard may hold 1,000 bytes: two entries of 300 plus the overhead do not fit.
        let cache = CoherentCache::new(NonZeroUsize::new(10_000).unwrap(), 1_000 * SHARDS);
        assert!(cache.extend_lease(0, Instant::now(), LEASE));
        for index in 0..SHARDS * 20 {
            let key = format!("k{index}");
            let ticket = miss(&cache, &key);
            cache.fill(&key, ticket, 300);
        }
        let stats = cache.stats();
        assert_eq!(stats.max_bytes, 1_000 * SHARDS);
        assert!(stats.bytes <= stats.max_bytes, "{stats:?}");
        assert!(stats.len >= SHARDS, "each shard keeps what fits: {stats:?}");
        assert!(stats.len <= SHARDS * 2, "{stats:?}");

        // The most recently filled key stays; a value heavier than a shard is not kept,
        // nor what its key held before.
        let ticket = miss(&cache, "new");
        cache.fill("new", ticket, 300);
        assert_eq!(hit(&cache, "new"), Some(300));
        let ticket = written(&cache, "new");
        keep(&cache, "new", ticket, 5_000);
        assert_eq!(hit(&cache, "new"), None);
        cache.flush();
        assert_eq!(cache.stats().bytes, 0);
    }
}
