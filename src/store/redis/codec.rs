//! How a session is laid out in its Redis hash, and how calls are laid out as script arguments.

use std::borrow::Cow;
#[cfg(any(test, feature = "__fuzz"))]
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::time::Duration;

use ::redis::{Cmd, ScriptInvocation, ToRedisArgs, Value};

use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::record::{ChangeSet, IncrementError, Metadata, Record, UserChange};
use crate::time::{duration_millis, Timestamp};

/// Layout 2's metadata, one field: `<created>.<refreshed>.<generation>` (milliseconds
/// since the epoch, twice, then a count of data changes, so that a cluster `cycle_id`
/// notices a write that raced its copy).
pub(super) const META: &str = ":m";
/// Layout 2's user the session is bound to; absent when unbound.
pub(super) const USER: &str = ":u";

/// Layout 1 (still read; any write turns a hash into layout 2): creation time.
pub(super) const V1_CREATED: &str = ":created";
/// Layout 1: last refresh.
pub(super) const V1_REFRESHED: &str = ":refreshed";
/// Layout 1: the user.
pub(super) const V1_USER: &str = ":user";
/// Layout 1: its version, `1`.
pub(super) const V1_VERSION: &str = ":v";
/// Layout 1: the write generation.
pub(super) const V1_GENERATION: &str = ":gen";

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

fn check_v1_version(version: Option<&[u8]>) -> Result<(), StoreError> {
    match version {
        Some(b"1") => Ok(()),
        Some(version) => Err(corrupt(format!(
            "unsupported layout version {:?}",
            String::from_utf8_lossy(version)
        ))),
        None => Err(corrupt("layout version is missing")),
    }
}

/// The reserved fields of either layout, as stored.
#[derive(Default)]
struct Reserved {
    meta: Option<Vec<u8>>,
    user: Option<Vec<u8>>,
    v1_created: Option<Vec<u8>>,
    v1_refreshed: Option<Vec<u8>>,
    v1_user: Option<Vec<u8>>,
    v1_version: Option<Vec<u8>>,
    v1_generation: Option<Vec<u8>>,
}

impl Reserved {
    fn is_empty(&self) -> bool {
        self.meta.is_none() && self.v1_created.is_none() && self.v1_version.is_none()
    }

    /// The metadata and write generation, from layout 2 or else layout 1.
    fn decode(self) -> Result<(Metadata, u64), StoreError> {
        let (created_at, refreshed_at, generation, user) = match self.meta {
            Some(meta) => {
                let meta = decode_meta(&meta)?;
                (meta.created, meta.refreshed, meta.generation, self.user)
            }
            None => {
                check_v1_version(self.v1_version.as_deref())?;
                let generation = self
                    .v1_generation
                    .map_or(Ok(0), |generation| number(Some(&generation), "generation"))?;
                (
                    number(self.v1_created.as_deref(), "creation time")?,
                    number(self.v1_refreshed.as_deref(), "refresh time")?,
                    generation,
                    self.v1_user,
                )
            }
        };
        let metadata = Metadata {
            created_at: Timestamp::from_millis(created_at),
            refreshed_at: Timestamp::from_millis(refreshed_at),
            user_id: user.map(|user| text(user, "the user")).transpose()?,
        };
        Ok((metadata, generation))
    }
}

/// Layout 2's metadata field, decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Meta {
    /// Milliseconds since the epoch.
    pub(super) created: u64,
    /// Milliseconds since the epoch.
    pub(super) refreshed: u64,
    /// The count of data changes.
    pub(super) generation: u64,
}

/// Layout 2's metadata field, `<created>.<refreshed>.<generation>`.
pub(super) fn decode_meta(meta: &[u8]) -> Result<Meta, StoreError> {
    let text = std::str::from_utf8(meta).map_err(|_| corrupt("metadata is not UTF-8"))?;
    let mut parts = text
        .split('.')
        .map(|part| number(Some(part.as_bytes()), "metadata"));
    let (Some(created), Some(refreshed), Some(generation), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(corrupt("metadata is not three numbers"));
    };
    Ok(Meta {
        created: created?,
        refreshed: refreshed?,
        generation: generation?,
    })
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
/// Reads layout 2, and layout 1 as written by earlier versions.
pub(super) fn decode_record(
    fields: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<Option<(Record, u64)>, StoreError> {
    let fields = fields.into_iter();
    let mut data = HashMap::with_capacity(fields.size_hint().0);
    let mut reserved = Reserved::default();
    for (mut name, value) in fields {
        match decode_field(&name) {
            Field::User(_) => {
                if name.starts_with(b"::") {
                    name.remove(0);
                }
                data.insert(text(name, "a field name")?, text(value, "a field value")?);
            }
            // Unknown reserved fields are left to the layout that wrote them.
            Field::Reserved(field) => match std::str::from_utf8(field).unwrap_or_default() {
                META => reserved.meta = Some(value),
                USER => reserved.user = Some(value),
                V1_CREATED => reserved.v1_created = Some(value),
                V1_REFRESHED => reserved.v1_refreshed = Some(value),
                V1_USER => reserved.v1_user = Some(value),
                V1_VERSION => reserved.v1_version = Some(value),
                V1_GENERATION => reserved.v1_generation = Some(value),
                _ => {}
            },
        }
    }
    if reserved.is_empty() {
        if data.is_empty() {
            return Ok(None);
        }
        return Err(corrupt("a session without metadata"));
    }
    let (metadata, generation) = reserved.decode()?;
    Ok(Some((Record::new(data, metadata), generation)))
}

/// The reserved fields [`decode_metadata`] reads, in its order: layout 2's, then layout 1's.
pub(super) const METADATA_FIELDS: [&str; 7] = [
    META,
    USER,
    V1_CREATED,
    V1_REFRESHED,
    V1_USER,
    V1_VERSION,
    V1_GENERATION,
];

/// A session's metadata from `HMGET` of [`METADATA_FIELDS`]; `None` if the session is gone.
pub(super) fn decode_metadata(
    values: Vec<Option<Vec<u8>>>,
) -> Result<Option<Metadata>, StoreError> {
    let [meta, user, v1_created, v1_refreshed, v1_user, v1_version, v1_generation]: [Option<
        Vec<u8>,
    >; 7] = values
        .try_into()
        .map_err(|_| corrupt("unexpected HMGET reply"))?;
    let reserved = Reserved {
        meta,
        user,
        v1_created,
        v1_refreshed,
        v1_user,
        v1_version,
        v1_generation,
    };
    if reserved.is_empty() {
        return Ok(None);
    }
    reserved.decode().map(|(metadata, _)| Some(metadata))
}

/// Every field of a new session, in layout 2, metadata first, as `HSET` pairs.
pub(super) fn record_pairs(record: &Record) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    let meta = &record.metadata;
    let mut pairs: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::with_capacity(record.data.len() + 2);
    let packed = format!(
        "{}.{}.0",
        meta.created_at.as_millis(),
        meta.refreshed_at.as_millis()
    );
    pairs.push((META.into(), packed.into()));
    if let Some(user) = &meta.user_id {
        pairs.push((USER.into(), user.as_str().into()));
    }
    for (name, value) in &record.data {
        pairs.push((encode_field(name), value.as_str().into()));
    }
    pairs
}

/// Adds `now`, idle timeout and absolute expiry (milliseconds): `ARGV[1..3]` of every
/// session script.
pub(super) fn push_expiry(invocation: &mut impl Args, expiry: Expiry) {
    invocation
        .push(expiry.now.as_millis())
        .push(millis(expiry.idle_timeout))
        .push(millis(expiry.absolute_lifetime));
}

/// Where script arguments go: a script call, or a plain list (tests and fuzzing read
/// back what a script would get as `ARGV`).
pub(super) trait Args {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self;
}

impl Args for ScriptInvocation<'_> {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.arg(arg)
    }
}

impl Args for Cmd {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.arg(arg)
    }
}

#[cfg(any(test, feature = "__fuzz"))]
impl Args for Vec<Vec<u8>> {
    fn push<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(self);
        self
    }
}

/// Adds a change set in the layout `apply_and_refresh` in `change_set.lua` reads; it must be last.
pub(super) fn push_changes(invocation: &mut impl Args, changes: &ChangeSet) {
    invocation.push(if changes.clear { "1" } else { "0" });
    match &changes.user {
        UserChange::Keep => invocation.push("keep").push(""),
        UserChange::Unbind => invocation.push("unbind").push(""),
        UserChange::Bind(user) => invocation.push("bind").push(user.as_str()),
    };
    let set = changes
        .fields
        .iter()
        .filter_map(|(name, value)| Some((name, value.as_deref()?)));
    invocation.push(set.clone().count());
    for (name, value) in set {
        invocation.push(encode_field(name).as_ref()).push(value);
    }
    invocation.push(changes.increments.len());
    for (name, delta) in &changes.increments {
        invocation.push(encode_field(name).as_ref()).push(*delta);
    }
    for (name, _) in changes.fields.iter().filter(|(_, value)| value.is_none()) {
        invocation.push(encode_field(name).as_ref());
    }
}

/// The change set `apply_and_refresh` in `change_set.lua` reads from `argv` starting at its
/// (1-based) index `i`: the script's index arithmetic and field-name rule, mirrored, so
/// that tests and the fuzzer check that [`push_changes`] says what the script hears.
#[cfg(any(test, feature = "__fuzz"))]
pub(super) fn script_reads_changes(argv: &[Vec<u8>], i: usize) -> Result<ChangeSet, String> {
    let text = |k: usize| {
        let bytes = argv
            .get(k.wrapping_sub(1))
            .ok_or_else(|| format!("ARGV[{k}] is missing"))?;
        std::str::from_utf8(bytes).map_err(|_| format!("ARGV[{k}] is not UTF-8"))
    };
    let count = |k: usize| {
        text(k)?
            .parse::<usize>()
            .map_err(|_| format!("ARGV[{k}] is not a count"))
    };
    let field = |k: usize| match decode_field(argv.get(k - 1).ok_or("a field is missing")?) {
        Field::User(name) => {
            String::from_utf8(name.to_vec()).map_err(|_| "a field is not UTF-8".into())
        }
        Field::Reserved(_) => Err(format!("ARGV[{k}] names a reserved field")),
    };
    let (clear, user_op, user, n) = (text(i)?, text(i + 1)?, text(i + 2)?, count(i + 3)?);
    let first_set = i + 4;
    let m = count(first_set + 2 * n)?;
    let first_increment = first_set + 2 * n + 1;
    let first_removed = first_increment + 2 * m;
    let clear = match clear {
        "1" => true,
        "0" => false,
        other => return Err(format!("clear flag {other:?}")),
    };
    let user = match user_op {
        "keep" => UserChange::Keep,
        "unbind" => UserChange::Unbind,
        "bind" => UserChange::Bind(user.to_owned()),
        other => return Err(format!("user operation {other:?}")),
    };
    let mut fields = BTreeMap::new();
    let mut once = |name: String, value: Option<String>| match fields.insert(name, value) {
        Some(_) => Err("a field is set or removed twice".to_owned()),
        None => Ok(()),
    };
    for j in 0..n {
        let k = first_set + 2 * j;
        once(field(k)?, Some(text(k + 1)?.to_owned()))?;
    }
    for k in first_removed..=argv.len() {
        once(field(k)?, None)?;
    }
    let mut changes = ChangeSet {
        clear,
        fields,
        user,
        ..ChangeSet::default()
    };
    for j in 0..m {
        let k = first_increment + 2 * j;
        let delta = text(k + 1)?
            .parse::<i64>()
            .map_err(|_| format!("ARGV[{}] is not a delta", k + 1))?;
        if changes.increments.insert(field(k)?, delta).is_some() {
            return Err("a field is incremented twice".to_owned());
        }
    }
    Ok(changes)
}

/// A rejected increment, as the scripts name it.
pub(super) fn rejection(why: Option<&String>) -> Result<IncrementError, StoreError> {
    match why.map(String::as_str) {
        Some("overflow") => Ok(IncrementError::Overflow),
        Some("not-integer") => Ok(IncrementError::NotAnInteger),
        _ => Err(corrupt("unexpected rejection from a session script")),
    }
}

/// The fields a new session's hash is written with, as Redis hands them back.
#[cfg(any(test, feature = "__fuzz"))]
fn stored_fields(record: &Record) -> Vec<(Vec<u8>, Vec<u8>)> {
    record_pairs(record)
        .into_iter()
        .map(|(name, value)| (name.as_bytes().to_vec(), value.as_bytes().to_vec()))
        .collect()
}

/// Entry points for the fuzz targets (feature `__fuzz`), re-exported by `crate::__fuzz`.
#[cfg(feature = "__fuzz")]
pub(crate) mod fuzz {
    use super::*;

    /// A whole session from the fields of its hash, with its write generation.
    pub fn decode_record(
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    ) -> Result<Option<(Record, u64)>, StoreError> {
        super::decode_record(fields)
    }

    /// The fields a new session's hash is written with.
    pub fn record_fields(record: &Record) -> Vec<(Vec<u8>, Vec<u8>)> {
        stored_fields(record)
    }

    /// The `ARGV` of the `apply` script for `changes` at `expiry`.
    pub fn apply_argv(changes: &ChangeSet, expiry: Expiry) -> Vec<Vec<u8>> {
        let mut argv = Vec::new();
        push_expiry(&mut argv, expiry);
        push_changes(&mut argv, changes);
        argv
    }

    /// The change set the `apply` script reads from `argv`, or why it cannot.
    pub fn script_reads_apply(argv: &[Vec<u8>]) -> Result<ChangeSet, String> {
        script_reads_changes(argv, 4)
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
        for reserved in [
            META,
            USER,
            V1_CREATED,
            V1_REFRESHED,
            V1_USER,
            V1_VERSION,
            V1_GENERATION,
        ] {
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
        assert_eq!(
            decode_record(stored_fields(&record)).unwrap(),
            Some((record, 0))
        );
    }

    #[test]
    fn the_apply_script_reads_the_change_set_that_was_sent() {
        let mut changes = ChangeSet::default()
            .with_set("a", "1")
            .with_set(":m", "\"not metadata\"")
            .with_set("", "[]")
            .with_removed("::u")
            .with_removed("b")
            .with_increment(":n", -3)
            .with_increment("c", i64::MIN)
            .with_user(Some(":u".into()));
        changes.clear = true;
        for changes in [
            changes,
            ChangeSet::default(),
            ChangeSet::default().with_user(None),
        ] {
            let mut argv: Vec<Vec<u8>> = Vec::new();
            push_expiry(
                &mut argv,
                Expiry::new(Timestamp::from_millis(1), Duration::MAX, Duration::MAX),
            );
            push_changes(&mut argv, &changes);
            assert_eq!(script_reads_changes(&argv, 4), Ok(changes));
        }
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
    fn reads_layout_1() {
        let old = stored(&[
            (V1_CREATED, "5"),
            (V1_REFRESHED, "7"),
            (V1_USER, "u"),
            (V1_VERSION, "1"),
            (V1_GENERATION, "3"),
            ("a", "1"),
        ]);
        let (record, generation) = decode_record(old).unwrap().unwrap();
        assert_eq!(generation, 3);
        assert_eq!(record.metadata.created_at.as_millis(), 5);
        assert_eq!(record.metadata.refreshed_at.as_millis(), 7);
        assert_eq!(record.metadata.user_id.as_deref(), Some("u"));
        assert_eq!(record.data, HashMap::from([("a".into(), "1".into())]));
    }

    #[test]
    fn rejects_broken_hashes() {
        assert_eq!(decode_record(HashMap::new()).unwrap(), None);
        let broken = [
            stored(&[(V1_CREATED, "1"), (V1_REFRESHED, "1")]),
            stored(&[(V1_CREATED, "x"), (V1_REFRESHED, "1"), (V1_VERSION, "1")]),
            stored(&[(V1_CREATED, "1"), (V1_REFRESHED, "1"), (V1_VERSION, "2")]),
            stored(&[(META, "1.2")]),
            stored(&[(META, "1.2.3.4")]),
            stored(&[(META, "1.x.3")]),
            stored(&[("data", "1")]),
        ];
        for hash in broken {
            assert!(matches!(decode_record(hash), Err(StoreError::Corrupt(_))));
        }
        let mut not_utf8 = stored(&[(META, "1.1.0")]);
        not_utf8.insert(b"k".to_vec(), vec![0xff]);
        assert!(matches!(
            decode_record(not_utf8),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn metadata_of_a_missing_session_is_none() {
        assert_eq!(decode_metadata(vec![None; 7]).unwrap(), None);
        let meta = decode_metadata(vec![
            Some(b"1.2.0".to_vec()),
            None,
            None,
            None,
            None,
            None,
            None,
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

    mod properties {
        //! Round trips for any field name and value (`cargo test codec::tests::properties`).

        use proptest::collection::{hash_map, vec};
        use proptest::prelude::*;

        use super::*;

        fn reserved() -> impl Strategy<Value = &'static str> {
            proptest::sample::select(vec![
                META,
                USER,
                V1_CREATED,
                V1_REFRESHED,
                V1_USER,
                V1_VERSION,
                V1_GENERATION,
            ])
        }

        /// Any text, with names often starting with one or more `:`, or a reserved
        /// field's name with or without more `:` in front, where a collision would hurt.
        fn any_name() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<String>(),
                (0..4usize, any::<String>()).prop_map(|(colons, rest)| ":".repeat(colons) + &rest),
                (0..3usize, reserved()).prop_map(|(colons, name)| ":".repeat(colons) + name),
            ]
        }

        fn any_record() -> impl Strategy<Value = Record> {
            let millis = 0..=MAX_MILLIS;
            (
                hash_map(any_name(), any::<String>(), 0..8),
                millis.clone(),
                millis,
                proptest::option::of(any::<String>()),
            )
                .prop_map(|(data, created, refreshed, user)| {
                    let mut metadata = Metadata::new(Timestamp::from_millis(created));
                    metadata.refreshed_at = Timestamp::from_millis(refreshed);
                    metadata.user_id = user;
                    Record::new(data, metadata)
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn records_round_trip(record in any_record()) {
                prop_assert_eq!(
                    decode_record(stored_fields(&record)).unwrap(),
                    Some((record, 0))
                );
            }

            #[test]
            fn field_names_round_trip_and_never_look_reserved(name in any_name()) {
                let encoded = encode_field(&name);
                prop_assert_eq!(
                    decode_field(encoded.as_bytes()),
                    Field::User(name.as_bytes())
                );
            }

            #[test]
            fn any_hash_decodes_or_is_corrupt_without_panicking(
                fields in vec((vec(any::<u8>(), 0..12), vec(any::<u8>(), 0..24)), 0..8),
            ) {
                let _ = decode_record(fields);
            }
        }
    }
}
