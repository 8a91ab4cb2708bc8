//! Idle and absolute timeouts, and the clock they are measured with.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::record::{Lifetime, Metadata, Timestamp};

/// A source of the current time; inject one with
/// [`SessionLayer::with_clock`](crate::SessionLayer::with_clock) to test expiry.
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

/// How long sessions live.
#[derive(Clone)]
pub(crate) struct Expiry {
    pub(crate) idle_timeout: Duration,
    pub(crate) absolute_lifetime: Duration,
    /// Reads refresh the idle timeout at most this often, so reading is not writing.
    pub(crate) refresh_after: Option<Duration>,
    pub(crate) clock: Option<Arc<dyn Clock>>,
}

/// Defaults: a day of inactivity or a week in all ends a session.
pub(crate) const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(24 * 60 * 60);
pub(crate) const DEFAULT_ABSOLUTE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 60 * 60);

impl Default for Expiry {
    fn default() -> Self {
        Self {
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            absolute_lifetime: DEFAULT_ABSOLUTE_LIFETIME,
            refresh_after: None,
            clock: None,
        }
    }
}

impl Expiry {
    pub(crate) fn lifetime(&self) -> Lifetime {
        let now = self
            .clock
            .as_ref()
            .map_or_else(SystemTime::now, |clock| clock.now());
        Lifetime::new(
            Timestamp::from_system_time(now),
            self.idle_timeout,
            self.absolute_lifetime,
        )
    }

    /// Unless configured, a read refreshes a session once an eighth of the idle timeout
    /// has passed since the last refresh: the effective idle timeout is then between
    /// 7/8 and all of the configured one, for one write per session per eighth.
    fn refresh_after(&self) -> Duration {
        self.refresh_after.unwrap_or(self.idle_timeout / 8)
    }

    pub(crate) fn needs_refresh(&self, metadata: &Metadata, lifetime: &Lifetime) -> bool {
        lifetime.now.saturating_since(metadata.refreshed_at) >= self.refresh_after()
    }
}

impl fmt::Debug for Expiry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Expiry")
            .field("idle_timeout", &self.idle_timeout)
            .field("absolute_lifetime", &self.absolute_lifetime)
            .field("refresh_after", &self.refresh_after())
            .field(
                "clock",
                &if self.clock.is_some() {
                    "custom"
                } else {
                    "system"
                },
            )
            .finish()
    }
}
