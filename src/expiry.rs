//! When sessions end: the idle and absolute timeouts, the clock they are measured with,
//! and the refresh rule.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::record::Metadata;
use crate::time::Timestamp;

/// A source of the current time; inject one with
/// [`SessionLayerBuilder::with_clock`](crate::SessionLayerBuilder::with_clock) to test expiry.
///
/// Any `Fn() -> SystemTime` closure is a clock.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock time.
    fn now(&self) -> SystemTime;
}

impl<F: Fn() -> SystemTime + Send + Sync + 'static> Clock for F {
    fn now(&self) -> SystemTime {
        self()
    }
}

/// The expiry rules for one store call, evaluated at the layer's `now`.
///
/// Stores use it both to decide whether a session is still alive (an expired one is
/// treated exactly like a missing one) and to set their own TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Expiry {
    /// The layer clock's current time.
    pub now: Timestamp,
    /// A session unused this long is dead (sliding).
    pub idle_timeout: Duration,
    /// A session older than this is dead, however active.
    pub absolute_lifetime: Duration,
}

impl Expiry {
    /// The rules at `now`.
    pub fn new(now: Timestamp, idle_timeout: Duration, absolute_lifetime: Duration) -> Self {
        Self {
            now,
            idle_timeout,
            absolute_lifetime,
        }
    }

    /// When the session dies if nothing refreshes it after `refreshed_at`.
    pub fn expires_at(&self, metadata: &Metadata) -> Timestamp {
        let idle_end = metadata.refreshed_at.saturating_add(self.idle_timeout);
        let absolute_end = metadata.created_at.saturating_add(self.absolute_lifetime);
        idle_end.min(absolute_end)
    }

    /// Whether a session with this metadata is still alive at `now`.
    pub fn is_live(&self, metadata: &Metadata) -> bool {
        self.now < self.expires_at(metadata)
    }

    /// How long a store should keep a session created at `created_at` that is refreshed now.
    pub fn ttl(&self, created_at: Timestamp) -> Duration {
        let refreshed = Metadata {
            created_at,
            refreshed_at: self.now,
            user_id: None,
        };
        self.expires_at(&refreshed).saturating_since(self.now)
    }
}

/// The layer's own clock: the one injected, else the system's.
#[derive(Clone, Default)]
pub(crate) struct LocalClock(Option<Arc<dyn Clock>>);

impl LocalClock {
    pub(crate) fn custom(clock: impl Clock) -> Self {
        Self(Some(Arc::new(clock)))
    }

    pub(crate) fn is_custom(&self) -> bool {
        self.0.is_some()
    }

    pub(crate) fn now(&self) -> Timestamp {
        let now = self
            .0
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock.now());
        Timestamp::from_system_time(now)
    }
}

/// How long sessions live: the layer's settings.
#[derive(Clone)]
pub(crate) struct ExpirySettings {
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_lifetime: Duration,
    /// Reads refresh the idle timeout at most this often, so reading is not writing.
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) clock: LocalClock,
}

/// Defaults: a day of inactivity or a week in all ends a session.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
pub(crate) const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl Default for ExpirySettings {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_lifetime: DEFAULT_ABSOLUTE_LIFETIME,
            refresh_after: None,
            clock: LocalClock::default(),
        }
    }
}

impl ExpirySettings {
    /// The rules at the layer's own clock's current reading.
    pub(crate) fn at_now(&self) -> Expiry {
        self.at(self.clock.now())
    }

    /// The rules at `now`.
    pub(crate) fn at(&self, now: Timestamp) -> Expiry {
        Expiry::new(now, self.idle_timeout, self.absolute_lifetime)
    }

    /// Unless configured, a read refreshes a session once an eighth of the idle timeout
    /// has passed since the last refresh: the effective idle timeout is then between
    /// 7/8 and all of the configured one, for one write per session per eighth.
    fn refresh_after(&self) -> Duration {
        self.refresh_after.unwrap_or(self.idle_timeout / 8)
    }

    pub(crate) fn needs_refresh(&self, metadata: &Metadata, expiry: &Expiry) -> bool {
        expiry.now.saturating_since(metadata.refreshed_at) >= self.refresh_after()
    }
}

impl fmt::Debug for ExpirySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let clock = if self.clock.is_custom() {
            "custom"
        } else {
            "system"
        };
        f.debug_struct("ExpirySettings")
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("refresh_after", &self.refresh_after())
            .field("clock", &clock)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn idle_and_absolute_limits() {
        let created = Timestamp::from_millis(1_000_000);
        let meta = Metadata::new(created);
        let at = |after: Duration| Expiry::new(created.saturating_add(after), HOUR, 10 * HOUR);
        assert!(at(HOUR - Duration::from_millis(1)).is_live(&meta));
        assert!(!at(HOUR).is_live(&meta));

        let refreshed = Metadata {
            refreshed_at: created.saturating_add(9 * HOUR + HOUR / 2),
            ..meta
        };
        assert!(at(9 * HOUR + HOUR / 2).is_live(&refreshed));
        assert!(
            !at(10 * HOUR).is_live(&refreshed),
            "absolute lifetime wins over refresh"
        );
        assert_eq!(at(9 * HOUR + HOUR / 2).ttl(created), HOUR / 2);
        assert_eq!(at(Duration::ZERO).ttl(created), HOUR);
    }
}
