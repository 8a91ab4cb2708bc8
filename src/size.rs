//! Store mode's bound on a session's size, per value and per session
//! ([`with_max_session_size`](crate::SessionLayerBuilder::with_max_session_size)): checked
//! by the layer before the write that would pass it reaches the store, so no request can
//! grow a session (and every cache's copy of it) without bound.
//!
//! A session's size is what its fields hold as stored: each key's bytes plus its value's
//! JSON text. Token mode has its own, tighter budget: the cookie.

use std::collections::HashMap;

use crate::error::{Error, ErrorKind};
use crate::record::{add_to_stored, ChangeSet};

/// The default bound on one value (with its key), in bytes.
pub(crate) const DEFAULT_MAX_VALUE: usize = 32 * 1024;
/// The default bound on a whole session, in bytes.
pub(crate) const DEFAULT_MAX_SESSION: usize = 64 * 1024;

/// The bounds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SizeLimits {
    pub(crate) value: usize,
    pub(crate) session: usize,
}

impl Default for SizeLimits {
    fn default() -> Self {
        Self {
            value: DEFAULT_MAX_VALUE,
            session: DEFAULT_MAX_SESSION,
        }
    }
}

/// What a request knows of its session's stored fields.
#[derive(Clone, Copy)]
pub(crate) enum Base<'a> {
    /// These fields (none, for a session that is missing, new or cleared).
    Known(Option<&'a HashMap<String, String>>),
    /// Not loaded: only the request's own writes can be measured.
    Unknown,
}

impl SizeLimits {
    /// Checks the session as it would be after the request's writes: `base`, then the
    /// values immediate operations wrote (`committed`), then `changes`, then `next` (a
    /// value about to be written at once). With an unknown base only the writes
    /// themselves are measured: a lower bound, checked again once the base is known.
    pub(crate) fn check(
        &self,
        base: Base<'_>,
        committed: &HashMap<String, Option<String>>,
        changes: &ChangeSet,
        next: Option<(&str, &str)>,
    ) -> Result<(), Error> {
        if self.fits_at_most(base, committed, changes, next) {
            return Ok(());
        }
        let mut fields: HashMap<&str, usize> = HashMap::new();
        let mut values: HashMap<&str, &str> = HashMap::new();
        if !changes.clear {
            if let Base::Known(Some(base)) = base {
                values.extend(base.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            }
            for (key, value) in committed {
                match value {
                    Some(value) => values.insert(key, value),
                    None => values.remove(key.as_str()),
                };
            }
        }
        fields.extend(values.iter().map(|(k, v)| (*k, v.len())));
        for (key, value) in &changes.fields {
            match value {
                Some(value) => {
                    self.check_value(key, value)?;
                    fields.insert(key, value.len());
                }
                None => {
                    fields.remove(key.as_str());
                }
            }
        }
        for (key, delta) in &changes.increments {
            // A stored value an increment cannot add to fails the write anyway.
            let sum = add_to_stored(values.get(key.as_str()).copied(), *delta).unwrap_or(0);
            fields.insert(key, sum.to_string().len());
        }
        if let Some((key, value)) = next {
            self.check_value(key, value)?;
            fields.insert(key, value.len());
        }
        let size: usize = fields.iter().map(|(key, len)| key.len() + len).sum();
        if size > self.session {
            return Err(Error::of_kind(ErrorKind::TooLarge));
        }
        Ok(())
    }

    /// The common case, without allocating: every value within its bound, and the
    /// session within its bound even counting every write as new.
    fn fits_at_most(
        &self,
        base: Base<'_>,
        committed: &HashMap<String, Option<String>>,
        changes: &ChangeSet,
        next: Option<(&str, &str)>,
    ) -> bool {
        let field = |key: &str, value: &str| key.len() + value.len();
        let mut size = match base {
            Base::Known(Some(base)) if !changes.clear => {
                base.iter().map(|(k, v)| field(k, v)).sum::<usize>()
            }
            _ => 0,
        };
        size += (committed.iter())
            .filter_map(|(k, v)| Some(field(k, v.as_deref()?)))
            .sum::<usize>();
        let written = (changes.fields.iter())
            .filter_map(|(key, value)| Some((key.as_str(), value.as_deref()?)))
            .chain(next);
        for (key, value) in written {
            if field(key, value) > self.value {
                return false;
            }
            size += field(key, value);
        }
        // An i64 is at most 20 characters.
        size += (changes.increments.keys())
            .map(|k| k.len() + 20)
            .sum::<usize>();
        size <= self.session
    }

    fn check_value(&self, key: &str, value: &str) -> Result<(), Error> {
        if key.len() + value.len() > self.value {
            return Err(Error::of_kind(ErrorKind::TooLarge));
        }
        Ok(())
    }
}

impl crate::session::Session {
    /// Store mode: whether the session, with the request's pending changes, stays within
    /// its size bound.
    pub(crate) fn fits_size_bound(&self, state: &crate::session::State) -> Result<(), Error> {
        let base = self.size_base(state);
        (self.shared.config.size_limits).check(base, &state.committed, &state.changes, None)
    }

    /// Store mode: what this request knows of its stored fields (see [`Base`]).
    pub(crate) fn size_base<'a>(&'a self, state: &crate::session::State) -> Base<'a> {
        let shared = &self.shared;
        let starts_empty = state.destroy
            || state.fresh.is_some()
            || state.seen == crate::snapshot::Seen::Missing
            || shared.incoming().is_none();
        if starts_empty {
            return Base::Known(None);
        }
        shared.loaded_fields()
    }

    /// Store mode: refuses, before the store call, an immediate write of `key` that would
    /// take the session past its bound; `value` gives the value from the current one.
    /// Exact if the request has read the session; otherwise only the request's own
    /// writes are measured (loading the session here would double the calls of a blind
    /// write).
    pub(crate) fn check_immediate(
        &self,
        key: &str,
        value: impl FnOnce(Option<&str>) -> Option<String>,
    ) -> Result<(), Error> {
        let current = {
            let state = self.shared.lock();
            match (state.committed.get(key), self.size_base(&state)) {
                (Some(committed), _) => committed.clone(),
                (None, Base::Known(base)) => base.and_then(|base| base.get(key).cloned()),
                (None, Base::Unknown) => None,
            }
        };
        let Some(value) = value(current.as_deref()) else {
            return Ok(());
        };
        let state = self.shared.lock();
        let limits = self.shared.config.size_limits;
        limits.check(
            self.size_base(&state),
            &state.committed,
            &state.changes,
            Some((key, &value)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SizeLimits = SizeLimits {
        value: 10,
        session: 20,
    };

    fn base(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        (pairs.iter())
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_value_over_its_bound_is_refused_whatever_the_base() {
        let changes = ChangeSet::default().with_set("k", "0123456789");
        let none = HashMap::new();
        let refused = LIMITS.check(Base::Unknown, &none, &changes, None);
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::TooLarge);
        let fits = ChangeSet::default().with_set("k", "012345678");
        assert!(LIMITS.check(Base::Unknown, &none, &fits, None).is_ok());
    }

    #[test]
    fn the_session_counts_base_committed_changes_and_the_next_value() {
        let stored = base(&[("a", "12345"), ("b", "123")]); // 6 + 4
        let committed = HashMap::from([("c".to_owned(), Some("1234".to_owned()))]); // 5
        let known = Base::Known(Some(&stored));
        let changes = ChangeSet::default().with_set("d", "123"); // 4: 19 in all
        assert!(LIMITS.check(known, &committed, &changes, None).is_ok());
        let refused = LIMITS.check(known, &committed, &changes, Some(("e", "1")));
        assert_eq!(refused.unwrap_err().kind(), ErrorKind::TooLarge);
        // Replacing and removing count what is left, not what was.
        let smaller = ChangeSet::default().with_set("a", "1").with_removed("b");
        assert!(LIMITS
            .check(known, &committed, &smaller, Some(("e", "1234")))
            .is_ok());
        // A cleared session counts only what the request writes.
        let mut cleared = ChangeSet::default().with_set("z", "123456789");
        cleared.clear = true;
        assert!(LIMITS.check(known, &committed, &cleared, None).is_ok());
    }

    #[test]
    fn an_increment_counts_its_sum() {
        let stored = base(&[("n", "9")]);
        let known = Base::Known(Some(&stored));
        let none = HashMap::new();
        // "n" + "9999999999999" = 14 bytes, plus "big" + 3.
        let changes = ChangeSet::default()
            .with_increment("n", 9_999_999_999_990)
            .with_set("big", "123");
        assert!(LIMITS.check(known, &none, &changes, None).is_ok());
        let more = changes.with_set("x", "1234");
        assert!(LIMITS.check(known, &none, &more, None).is_err());
    }
}
