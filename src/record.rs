//! What a store keeps for a session, and the change set a request produces.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use crate::time::Timestamp;

/// The server-side facts about a session, kept beside its data.
#[derive(Clone, PartialEq, Eq)]
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
#[derive(Clone, PartialEq, Eq)]
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
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChangeSet {
    /// Remove every field not set in `fields` first (`Session::clear`).
    pub clear: bool,
    /// Field -> new JSON value, or `None` for removed.
    pub fields: BTreeMap<String, Option<String>>,
    /// Field -> amount to add to the integer stored there (absent counts as 0), applied
    /// after `clear` and `fields`; a field is never in both. All-or-nothing: a stored value
    /// that is not a JSON integer within `i64`, or a sum outside `i64`, rejects the whole
    /// change set.
    pub increments: BTreeMap<String, i64>,
    /// What happens to the session's user binding.
    pub user: UserChange,
}

impl ChangeSet {
    /// Whether applying it would change any data (it may still refresh the session).
    pub fn is_empty(&self) -> bool {
        !self.clear
            && self.fields.is_empty()
            && self.increments.is_empty()
            && self.user == UserChange::Keep
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
        self.user = match user {
            Some(user) => UserChange::Bind(user),
            None => UserChange::Unbind,
        };
        self
    }

    /// Whether applying it to nothing would leave something to keep: a set field, an
    /// increment or a user binding. Removals and `clear` alone add nothing.
    pub fn adds_anything(&self) -> bool {
        !self.increments.is_empty()
            || self.fields.values().any(Option::is_some)
            || matches!(self.user, UserChange::Bind(_))
    }

    /// Adds `delta` to `field` (deferred: applied with the rest of the change set).
    #[must_use]
    pub fn with_increment(mut self, field: impl Into<String>, delta: i64) -> Self {
        self.increments.insert(field.into(), delta);
        self
    }

    /// Applies the changes to `record` in memory: what a store does atomically. On a
    /// rejected increment `record` is left as it was.
    pub fn apply_to(&self, record: &mut Record) -> Result<(), IncrementError> {
        let mut sums = Vec::with_capacity(self.increments.len());
        for (field, delta) in &self.increments {
            let stored = if self.clear || self.fields.contains_key(field) {
                None
            } else {
                record.data.get(field).map(String::as_str)
            };
            sums.push((field, add_to_stored(stored, *delta)?));
        }
        if self.clear {
            record.data.clear();
        }
        for (field, value) in &self.fields {
            match value {
                Some(value) => record.data.insert(field.clone(), value.clone()),
                None => record.data.remove(field),
            };
        }
        for (field, sum) in sums {
            record.data.insert(field.clone(), sum.to_string());
        }
        match &self.user {
            UserChange::Keep => {}
            UserChange::Bind(user) => record.metadata.user_id = Some(user.clone()),
            UserChange::Unbind => record.metadata.user_id = None,
        }
        Ok(())
    }
}

/// Why an increment was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IncrementError {
    /// The stored value is not a JSON integer within `i64`.
    NotAnInteger,
    /// The result would not fit in an `i64`.
    Overflow,
}

/// `stored + delta` for a stored JSON value (`None`: absent, counts as 0). Only a JSON
/// integer (`-?[0-9]+`) within `i64` counts as an integer.
pub(crate) fn add_to_stored(stored: Option<&str>, delta: i64) -> Result<i64, IncrementError> {
    let current = match stored {
        None => 0,
        Some(text) => {
            // JSON's integer form, which is also what Redis's HINCRBY accepts.
            let digits = text.strip_prefix('-').unwrap_or(text);
            let leading_zero = digits.len() > 1 && digits.starts_with('0');
            if digits.is_empty() || leading_zero || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(IncrementError::NotAnInteger);
            }
            text.parse::<i64>()
                .map_err(|_| IncrementError::NotAnInteger)?
        }
    };
    current.checked_add(delta).ok_or(IncrementError::Overflow)
}

/// What a change set does to the session's user binding.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum UserChange {
    /// Leave it as it is.
    #[default]
    Keep,
    /// Bind the session to this user.
    Bind(String),
    /// Unbind the session from any user.
    Unbind,
}

// Debug output may reach logs: it shows shapes and counts, never a user, key or value.

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Metadata")
            .field("created_at", &self.created_at)
            .field("refreshed_at", &self.refreshed_at)
            .field("user_bound", &self.user_id.is_some())
            .finish()
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("fields", &self.data.len())
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl fmt::Debug for ChangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let removed = self.fields.values().filter(|value| value.is_none()).count();
        f.debug_struct("ChangeSet")
            .field("clear", &self.clear)
            .field("set", &(self.fields.len() - removed))
            .field("removed", &removed)
            .field("increments", &self.increments.len())
            .field("user", &self.user)
            .finish()
    }
}

impl fmt::Debug for UserChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Keep => "Keep",
            Self::Bind(_) => "Bind(<redacted>)",
            Self::Unbind => "Unbind",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            .apply_to(&mut record)
            .unwrap();
        assert_eq!(record.data, HashMap::from([("a".into(), "3".into())]));
        assert_eq!(record.metadata.user_id.as_deref(), Some("u"));

        let cleared = ChangeSet {
            clear: true,
            ..ChangeSet::default()
        }
        .with_set("c", "4");
        cleared.apply_to(&mut record).unwrap();
        assert_eq!(record.data, HashMap::from([("c".into(), "4".into())]));
    }

    #[test]
    fn increments_add_to_integers_all_or_nothing() {
        let mut record = Record::new(
            HashMap::from([
                ("n".into(), "40".into()),
                ("text".into(), "\"x\"".into()),
                ("max".into(), i64::MAX.to_string()),
            ]),
            Metadata::new(Timestamp::default()),
        );
        ChangeSet::default()
            .with_increment("n", 2)
            .with_increment("new", -3)
            .apply_to(&mut record)
            .unwrap();
        assert_eq!(record.data["n"], "42");
        assert_eq!(record.data["new"], "-3");
        let before = record.clone();
        let rejected = ChangeSet::default()
            .with_set("a", "1")
            .with_increment("n", 1)
            .with_increment("text", 1);
        assert_eq!(
            rejected.apply_to(&mut record),
            Err(IncrementError::NotAnInteger)
        );
        assert_eq!(record, before, "nothing applied");
        assert_eq!(
            ChangeSet::default()
                .with_increment("max", 1)
                .apply_to(&mut record),
            Err(IncrementError::Overflow)
        );
        for text in ["1.5", "+1", "", "-", "1e3", "01", "99999999999999999999"] {
            assert_eq!(
                add_to_stored(Some(text), 1),
                Err(IncrementError::NotAnInteger),
                "{text:?}"
            );
        }
    }

    #[test]
    fn debug_shows_no_values_or_users() {
        let mut record = Record::new(
            HashMap::from([("cart:socks".into(), "\"secret\"".into())]),
            Metadata::new(Timestamp::default()),
        );
        record.metadata.user_id = Some("alice".into());
        let changes = ChangeSet::default()
            .with_set("cart:socks", "\"secret\"")
            .with_removed("cart:secret-hat")
            .with_increment("socks-count", 7)
            .with_user(Some("alice".into()));
        assert_eq!(
            format!("{changes:?}"),
            "ChangeSet { clear: false, set: 1, removed: 1, increments: 1, user: Bind(<redacted>) }"
        );
        for text in [
            format!("{record:?}"),
            format!("{changes:?}"),
            format!("{:?}", record.metadata),
            format!("{record:#?}"),
        ] {
            for secret in ["socks", "secret", "alice"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }
}
