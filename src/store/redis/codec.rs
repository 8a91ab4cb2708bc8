//! How a session is laid out in its Redis hash, and how calls are laid out as script arguments.

use std::borrow::Cow;
use std::collections::HashMap;
use std::time::Duration;

use ::redis::{ScriptInvocation, Value};

use crate::error::StoreError;
use crate::record::{duration_millis, ChangeSet, Lifetime, Metadata, Record, Timestamp};

/// When the session was created, in milliseconds since the epoch.
pub(super) const CREATED: &str = ":created";
/// When the session was last refreshed, in milliseconds since the epoch.
pub(super) const REFRESHED: &str = ":refreshed";
/// The user the session is bound to; absent when unbound.
pub(super) const USER: &str = ":user";
/// Layout version, so that a future layout can tell old hashes apart.
pub(super) const VERSION: &str = ":v";
/// Counts data changes, so a cluster `cycle_id` notices a write that raced its copy.
pub(super) const GENERATION: &str = ":gen";
/// The only layout this version writes and reads.
pub(super) const FORMAT_VERSION: &str = "1";

/// Durations are capped (about 1,100 years) so that timestamps plus durations stay exact
/// in Lua's doubles and valid for `PEXPIRE`.
const MAX_MILLIS: u64 = 1 << 45;

/// A duration in milliseconds, capped for the scripts.
pub(super) fn millis(duration: Duration) -> u64 {
    duration_millis(duration).min(MAX_MILLIS)
}

/// The stored name of a user field: one more `:` in front of a name that starts with
/// `:`, so that no user key can collide with a reserved field.
pub(super) fn encode_field(name: &str) -> Cow<'_, str> {
    if name.starts_with(':') {
        Cow::Owned(format!(":{name}"))
    } else {
        Cow::Borrowed(name)
    }
}

/// What a stored field name stands for.
#[derive(Debug, PartialEq, Eq)]
enum Field<'a> {
    Reserved(&'a [u8]),
    User(&'a [u8]),
}

fn decode_field(stored: &[u8]) -> Field<'_> {
    match stored {
        [b':', b':', ..] => Field::User(&stored[1..]),
        [b':', ..] => Field::Reserved(stored),
        _ => Field::User(stored),
    }
}

fn corrupt(why: impl Into<String>) -> StoreError {
    StoreError::Corrupt(why.into())
}

fn text(bytes: Vec<u8>, what: &str) -> Result<String, StoreError> {
    String::from_utf8(bytes).map_err(|_| corrupt(format!("{what} is not UTF-8")))
}

fn number(bytes: Option<&[u8]>, what: &str) -> Result<u64, StoreError> {
    let bytes = bytes.ok_or_else(|| corrupt(format!("{what} is missing")))?;
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| corrupt(format!("{what} is not a whole number")))
}

fn timestamp(bytes: Option<&[u8]>, what: &str) -> Result<Timestamp, StoreError> {
    number(bytes, what).map(Timestamp::from_millis)
}

fn check_version(version: Option<&[u8]>) -> Result<(), StoreError> {
    match version {
        Some(version) if version == FORMAT_VERSION.as_bytes() => Ok(()),
        Some(version) => Err(corrupt(format!(
            "unsupported layout version {:?}",
            String::from_utf8_lossy(version)
        ))),
        None => Err(corrupt("layout version is missing")),
    }
}

/// A hash's fields and values, as raw bytes.
pub(super) type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// The field/value pairs of an `HGETALL` reply, RESP2 (flat array) or RESP3 (map),
/// taken by value: no copy of any name or value.
pub(super) fn hash_entries(reply: Value) -> Result<Entries, StoreError> {
    let bytes = |value: Value| match value {
        Value::BulkString(bytes) => Ok(bytes),
        Value::SimpleString(text) => Ok(text.into_bytes()),
        _ => Err(corrupt("a hash field is not a string")),
    };
    match reply {
        Value::Map(pairs) => pairs
            .into_iter()
            .map(|(name, value)| Ok((bytes(name)?, bytes(value)?)))
            .collect(),
        Value::Array(items) => {
            if items.len() % 2 != 0 {
                return Err(corrupt("a hash reply has an odd number of items"));
            }
            let mut items = items.into_iter();
            let mut pairs = Vec::with_capacity(items.len() / 2);
            while let (Some(name), Some(value)) = (items.next(), items.next()) {
                pairs.push((bytes(name)?, bytes(value)?));
            }
            Ok(pairs)
        }
        Value::Nil => Ok(Vec::new()),
        _ => Err(corrupt("HGETALL did not answer with a hash")),
    }
}

/// A whole session from `HGETALL`, with its write generation; `None` if the hash is empty
/// (the key does not exist). Names and values move into the record without copies.
pub(super) fn decode_record(
    fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<Option<(Record, u64)>, StoreError> {
    let fields = fields.into_iter();
    let mut data = HashMap::with_capacity(fields.size_hint().0);
    let (mut version, mut created, mut refreshed, mut user, mut generation) =
        (None, None, None, None, None);
    let mut empty = true;
    for (mut name, value) in fields {
        empty = false;
        match decode_field(&name) {
            Field::User(_) => {
                if name.starts_with(b"::") {
                    name.remove(0);
                }
                data.insert(text(name, "a field name")?, text(value, "a field value")?);
            }
            // Unknown reserved fields are left to the layout that wrote them.
            Field::Reserved(field) => match std::str::from_utf8(field).unwrap_or_default() {
                VERSION => version = Some(value),
                CREATED => created = Some(value),
                REFRESHED => refreshed = Some(value),
                USER => user = Some(value),
                GENERATION => generation = Some(value),
                _ => {}
            },
        }
    }
    if empty {
        return Ok(None);
    }
    check_version(version.as_deref())?;
    let metadata = Metadata {
        created_at: timestamp(created.as_deref(), "creation time")?,
        refreshed_at: timestamp(refreshed.as_deref(), "refresh time")?,
        user_id: user.map(|user| text(user, "the user")).transpose()?,
    };
    let generation =
        generation.map_or(Ok(0), |generation| number(Some(&generation), "generation"))?;
    Ok(Some((Record::new(data, metadata), generation)))
}

/// The reserved fields [`decode_metadata`] reads, in its order.
pub(super) const METADATA_FIELDS: [&str; 4] = [CREATED, REFRESHED, USER, VERSION];

/// A session's metadata from `HMGET` of [`METADATA_FIELDS`]; `None` if the session is gone.
pub(super) fn decode_metadata(
    values: Vec<Option<Vec<u8>>>,
) -> Result<Option<Metadata>, StoreError> {
    let [created, refreshed, user, version]: [Option<Vec<u8>>; 4] = values
        .try_into()
        .map_err(|_| corrupt("unexpected HMGET reply"))?;
    if created.is_none() && refreshed.is_none() && version.is_none() {
        return Ok(None);
    }
    check_version(version.as_deref())?;
    Ok(Some(Metadata {
        created_at: timestamp(created.as_deref(), "creation time")?,
        refreshed_at: timestamp(refreshed.as_deref(), "refresh time")?,
        user_id: user.map(|user| text(user, "the user")).transpose()?,
    }))
}

/// Every field of a new session, reserved ones first, as `HSET` pairs.
pub(super) fn record_pairs(record: &Record) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let meta = &record.metadata;
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(record.data.len() + 5);
    pairs.push((
        CREATED.into(),
        meta.created_at.as_millis().to_string().into(),
    ));
    pairs.push((
        REFRESHED.into(),
        meta.refreshed_at.as_millis().to_string().into(),
    ));
    pairs.push((VERSION.into(), FORMAT_VERSION.into()));
    pairs.push((GENERATION.into(), "0".into()));
    if let Some(user) = &meta.user_id {
        pairs.push((USER.into(), user.as_str().into()));
    }
    for (name, value) in &record.data {
        pairs.push((encode_field(name), value.as_str().into()));
    }
    pairs
}

/// Adds `now`, idle timeout and absolute lifetime (milliseconds): `ARGV[1..3]` of every
/// session script.
pub(super) fn push_lifetime(invocation: &mut ScriptInvocation<'_>, lifetime: Lifetime) {
    invocation
        .arg(lifetime.now.as_millis())
        .arg(millis(lifetime.idle_timeout))
        .arg(millis(lifetime.absolute_lifetime));
}

/// Adds a change set in the layout `apply_changes` in `common.lua` reads; it must be last.
pub(super) fn push_changes(invocation: &mut ScriptInvocation<'_>, changes: &ChangeSet) {
    invocation.arg(if changes.clear { "1" } else { "0" });
    match &changes.user_id {
        None => invocation.arg("keep").arg(""),
        Some(None) => invocation.arg("unbind").arg(""),
        Some(Some(user)) => invocation.arg("bind").arg(user.as_str()),
    };
    let set = changes
        .fields
        .iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)));
    invocation.arg(set.clone().count());
    for (name, value) in set {
        invocation.arg(encode_field(name).as_ref()).arg(value);
    }
    for (name, _) in changes.fields.iter().filter(|(_, value)| value.is_none()) {
        invocation.arg(encode_field(name).as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(pairs: &[(&str, &str)]) -> HashMap<Vec<u8>, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn user_fields_never_look_reserved() {
        for name in ["", ":", ":user", "::x", "plain", "ключ"] {
            let encoded = encode_field(name);
            assert!(
                matches!(decode_field(encoded.as_bytes()), Field::User(n) if n == name.as_bytes()),
                "{name:?}"
            );
        }
        for reserved in [CREATED, REFRESHED, USER, VERSION, GENERATION] {
            assert!(matches!(
                decode_field(reserved.as_bytes()),
                Field::Reserved(_)
            ));
        }
    }

    #[test]
    fn decodes_what_it_encodes() {
        let mut metadata = Metadata::new(Timestamp::from_millis(5));
        metadata.refreshed_at = Timestamp::from_millis(7);
        metadata.user_id = Some("u".into());
        let record = Record::new(
            HashMap::from([
                (":m".into(), "1".into()),
                ("a".into(), "2".into()),
                ("".into(), "3".into()),
            ]),
            metadata,
        );
        let fields: Vec<(Vec<u8>, Vec<u8>)> = record_pairs(&record)
            .into_iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(decode_record(fields).unwrap(), Some((record, 0)));
    }

    #[test]
    fn reads_resp2_and_resp3_hash_replies() {
        let bulk = |text: &str| Value::BulkString(text.as_bytes().to_vec());
        let resp2 = Value::Array(vec![bulk("a"), bulk("1"), bulk("::b"), bulk("2")]);
        let resp3 = Value::Map(vec![(bulk("a"), bulk("1")), (bulk("::b"), bulk("2"))]);
        let expected = vec![
            (b"a".to_vec(), b"1".to_vec()),
            (b"::b".to_vec(), b"2".to_vec()),
        ];
        assert_eq!(hash_entries(resp2).unwrap(), expected);
        assert_eq!(hash_entries(resp3).unwrap(), expected);
        assert!(hash_entries(Value::Array(vec![bulk("odd")])).is_err());
        assert!(hash_entries(Value::Int(1)).is_err());
    }

    #[test]
    fn rejects_broken_hashes() {
        assert_eq!(decode_record(HashMap::new()).unwrap(), None);
        let no_version = stored(&[(CREATED, "1"), (REFRESHED, "1")]);
        assert!(matches!(
            decode_record(no_version),
            Err(StoreError::Corrupt(_))
        ));
        let bad_time = stored(&[(CREATED, "x"), (REFRESHED, "1"), (VERSION, "1")]);
        assert!(matches!(
            decode_record(bad_time),
            Err(StoreError::Corrupt(_))
        ));
        let future = stored(&[(CREATED, "1"), (REFRESHED, "1"), (VERSION, "2")]);
        assert!(matches!(decode_record(future), Err(StoreError::Corrupt(_))));
        let mut not_utf8 = stored(&[(CREATED, "1"), (REFRESHED, "1"), (VERSION, "1")]);
        not_utf8.insert(b"k".to_vec(), vec![0xff]);
        assert!(matches!(
            decode_record(not_utf8),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn metadata_of_a_missing_session_is_none() {
        assert_eq!(decode_metadata(vec![None, None, None, None]).unwrap(), None);
        let meta = decode_metadata(vec![
            Some(b"1".to_vec()),
            Some(b"2".to_vec()),
            None,
            Some(b"1".to_vec()),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (
                meta.created_at.as_millis(),
                meta.refreshed_at.as_millis(),
                meta.user_id
            ),
            (1, 2, None)
        );
    }
}
