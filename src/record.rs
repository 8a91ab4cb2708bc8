//! What a store keeps for a session, and the change set a request produces.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, as the layer's clock reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// From milliseconds since the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Self(millis)
    }

    /// From a wall-clock time (times before 1970 become the epoch).
    pub fn from_system_time(time: SystemTime) -> Self {
        let since_epoch = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        Self(u64::try_from(since_epoch.as_millis()).unwrap_or(u64::MAX))
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// `self + duration`, saturating.
    pub fn saturating_add(self, duration: Duration) -> Self {
        Self(self.0.saturating_add(duration_millis(duration)))
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

pub(crate) fn duration_millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The server-side facts about a session, kept beside its data.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Metadata {
    /// When the session was created: the absolute lifetime counts from here.
    pub created_at: Timestamp,
    /// When activity last extended the idle timeout.
    pub refreshed_at: Timestamp,
    /// The user this session belongs to, for log-out-everywhere.
    pub user_id: Option<String>,
}

impl Metadata {
    /// A session created at `now`.
    pub fn new(now: Timestamp) -> Self {
        Self {
            created_at: now,
            refreshed_at: now,
            user_id: None,
        }
    }
}

/// A whole stored session: its fields (key -> JSON text) and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Record {
    /// Field name -> serialized (JSON) value.
    pub data: HashMap<String, String>,
    /// Creation time, last refresh, owning user.
    pub metadata: Metadata,
}

impl Record {
    /// A record with `data` and `metadata`.
    pub fn new(data: HashMap<String, String>, metadata: Metadata) -> Self {
        Self { data, metadata }
    }
}

/// What a request changed, per field: the only thing written back.
///
/// Stores apply it atomically and only if the session still exists, so two requests
/// that touch different keys of one session never overwrite each other.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Remove every field not set in `fields` first (`Session::clear`).
    pub clear: bool,
    /// Field -> new JSON value, or `None` for removed.
    pub fields: BTreeMap<String, Option<String>>,
    /// `Some(Some(user))` binds the session to a user, `Some(None)` unbinds it.
    pub user_id: Option<Option<String>>,
}

impl ChangeSet {
    /// Whether applying it would change any data (it may still refresh the session).
    pub fn is_empty(&self) -> bool {
        !self.clear && self.fields.is_empty() && self.user_id.is_none()
    }

    /// Sets `field` to the JSON text `value`.
    #[must_use]
    pub fn with_set(mut self, field: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields.insert(field.into(), Some(value.into()));
        self
    }

    /// Removes `field`.
    #[must_use]
    pub fn with_removed(mut self, field: impl Into<String>) -> Self {
        self.fields.insert(field.into(), None);
        self
    }

    /// Binds the session to `user` (or unbinds it with `None`).
    #[must_use]
    pub fn with_user(mut self, user: Option<String>) -> Self {
        self.user_id = Some(user);
        self
    }

    /// Applies the changes to `record` in memory: what a store does atomically.
    pub fn apply_to(&self, record: &mut Record) {
        if self.clear {
            record.data.clear();
        }
        for (field, value) in &self.fields {
            match value {
                Some(value) => record.data.insert(field.clone(), value.clone()),
                None => record.data.remove(field),
            };
        }
        if let Some(user) = &self.user_id {
            record.metadata.user_id.clone_from(user);
        }
    }
}

/// The expiry rules for one store call, evaluated at the layer's `now`.
///
/// Stores use it both to decide whether a session is still alive (an expired one is
/// treated exactly like a missing one) and to set their own TTLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Lifetime {
    /// The layer clock's current time.
    pub now: Timestamp,
    /// A session unused this long is dead (sliding).
    pub idle_timeout: Duration,
    /// A session older than this is dead, however active.
    pub absolute_lifetime: Duration,
}

impl Lifetime {
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

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn idle_and_absolute_limits() {
        let created = Timestamp::from_millis(1_000_000);
        let meta = Metadata::new(created);
        let at = |after: Duration| Lifetime::new(created.saturating_add(after), HOUR, 10 * HOUR);
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

    #[test]
    fn change_set_applies_in_order() {
        let mut record = Record::new(
            HashMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]),
            Metadata::new(Timestamp::default()),
        );
        ChangeSet::default()
            .with_set("a", "3")
            .with_removed("b")
            .with_user(Some("u".into()))
            .apply_to(&mut record);
        assert_eq!(record.data, HashMap::from([("a".into(), "3".into())]));
        assert_eq!(record.metadata.user_id.as_deref(), Some("u"));

        let cleared = ChangeSet {
            clear: true,
            ..ChangeSet::default()
        }
        .with_set("c", "4");
        cleared.apply_to(&mut record);
        assert_eq!(record.data, HashMap::from([("c".into(), "4".into())]));
    }
}
