//! Timing sessions by the store's clock: the layer measures how far the store's clock
//! is from its own and runs at that offset, so that instances whose clocks differ by
//! minutes still agree on when a session ends.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::StoreHandle;
use crate::expiry::LocalClock;
use crate::time::{duration_millis, Timestamp};

/// How often the offset is measured again: clocks drift by parts per million, so a
/// minute keeps it within milliseconds, at one store call a minute per instance.
const REMEASURE_AFTER: Duration = Duration::from_secs(60);
/// After a failed reading (or one slower than this), try again this soon.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// A reading whose round trip took longer says too little about the offset (its error
/// is up to half the round trip).
const MAX_ROUND_TRIP: Duration = Duration::from_secs(1);
/// An offset larger than this (10 s) is logged as a warning: clocks that far apart are
/// worth fixing even though sessions stay timed alike.
const WARN_OFFSET_MS: u64 = 10_000;
/// `due` when the store has no clock: never measure again.
const NEVER: u64 = u64::MAX;

/// The store's clock as the layer follows it.
pub(crate) struct StoreClock {
    store: StoreHandle,
    local: LocalClock,
    /// Milliseconds the store's clock is ahead of the local one (0 until measured).
    offset: AtomicI64,
    /// When the next reading is due, in milliseconds since `started` ([`NEVER`] if the
    /// store has no clock).
    due: AtomicU64,
    measuring: AtomicBool,
    started: Instant,
}

impl StoreClock {
    /// Follows `store`'s clock from `local`; the first reading starts at once if a Tokio
    /// runtime is running, else at the first [`now`](Self::now).
    pub(crate) fn follow(store: StoreHandle, local: LocalClock) -> Arc<Self> {
        let clock = Arc::new(Self {
            store,
            local,
            offset: AtomicI64::new(0),
            due: AtomicU64::new(0),
            measuring: AtomicBool::new(false),
            started: Instant::now(),
        });
        clock.measure_if_due();
        clock
    }

    /// The store's time now, by the local clock and the last measured offset. Until the
    /// first reading has come back (one store round trip after the layer is built) that
    /// is the local clock's time. A request that finds a reading due starts one in the
    /// background and does not wait for it.
    pub(crate) fn now(self: &Arc<Self>) -> Timestamp {
        self.measure_if_due();
        self.local
            .now()
            .shifted(self.offset.load(Ordering::Relaxed))
    }

    fn measure_if_due(self: &Arc<Self>) {
        let elapsed = duration_millis(self.started.elapsed());
        if elapsed < self.due.load(Ordering::Relaxed) || self.measuring.swap(true, Ordering::AcqRel)
        {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(Arc::clone(self).measure());
            }
            Err(_) => self.measuring.store(false, Ordering::Release),
        }
    }

    async fn measure(self: Arc<Self>) {
        // Should the task be dropped (its runtime shut down) or the store's `time` panic,
        // the next request tries again rather than no reading ever being taken.
        let _measuring = Measuring(&self.measuring);
        let sent = Instant::now();
        let before = self.local.now();
        let reading = self.store.time().await;
        let after = self.local.now();
        let round_trip = sent.elapsed();
        let next = match reading {
            Ok(Some(store_now)) if round_trip <= MAX_ROUND_TRIP => {
                let midpoint = before.saturating_add(after.saturating_since(before) / 2);
                let offset = i128::from(store_now.as_millis()) - i128::from(midpoint.as_millis());
                let offset =
                    i64::try_from(offset).unwrap_or(if offset < 0 { i64::MIN } else { i64::MAX });
                if offset.unsigned_abs() > WARN_OFFSET_MS {
                    tracing::warn!(
                        offset_ms = offset,
                        "the session store's clock is far from this machine's: sessions are \
                         timed by the store's; check the clocks (NTP)"
                    );
                }
                self.offset.store(offset, Ordering::Relaxed);
                Some(REMEASURE_AFTER)
            }
            Ok(None) => None,
            Ok(Some(_)) | Err(_) => Some(RETRY_AFTER),
        };
        let due = next.map_or(NEVER, |after| {
            duration_millis(self.started.elapsed()).saturating_add(duration_millis(after))
        });
        self.due.store(due, Ordering::Relaxed);
    }
}

/// Clears the "a reading is under way" flag however the reading ends.
struct Measuring<'a>(&'a AtomicBool);

impl Drop for Measuring<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl fmt::Debug for StoreClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreClock")
            .field("offset_ms", &self.offset.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}
