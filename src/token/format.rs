//! The plaintext inside a sealed token: a whole session record in a compact binary
//! layout, versioned so that a later layout can still read this one.
//!
//! | bytes | contents |
//! |---|---|
//! | 1 | format version (`1`) |
//! | 32 | the session ID (base64url), the name revocations use |
//! | 8 + 8 | created at, refreshed at (ms since the epoch, big-endian) |
//! | 1 | `0`: no user; `1`: bound to a user, then 8 bytes bound at, 2 + n the user ID |
//! | 2 | number of fields, then per field 2 + n its name, 2 + n its JSON value |

use std::collections::HashMap;
use std::sync::Arc;

use crate::id::{SessionId, ID_LEN};
use crate::record::{Metadata, Record};
use crate::time::Timestamp;

const VERSION: u8 = 1;
/// Bytes before the user: version, ID, two timestamps.
const HEADER_LEN: usize = 1 + ID_LEN + 8 + 8;

/// A session as a token carries it. `Debug` shows no ID, user or value (theirs redact).
#[derive(Clone, Debug)]
pub(crate) struct Contents {
    pub(crate) id: SessionId,
    /// Shared: the request's session reads it without a copy.
    pub(crate) record: Arc<Record>,
    /// When the session was bound to its user: log-out-everywhere ends the bindings made
    /// before its "not before" time, whenever the session itself began.
    pub(crate) bound_at: Timestamp,
}

/// The encoded length of `record`, without encoding it: what the size budget checks.
/// `None` if a length does not fit the layout's 16-bit lengths.
pub(crate) fn encoded_len(record: &Record) -> Option<usize> {
    let mut len = HEADER_LEN + 1 + 2;
    if let Some(user) = &record.metadata.user_id {
        len += 8 + 2 + short(user.len())?;
    }
    short(record.data.len())?;
    for (name, value) in &record.data {
        len += 2 + short(name.len())? + 2 + short(value.len())?;
    }
    Some(len)
}

fn short(len: usize) -> Option<usize> {
    u16::try_from(len).ok().map(usize::from)
}

/// The layout above; `None` if a length does not fit in 16 bits (far past any cookie).
pub(crate) fn encode(contents: &Contents) -> Option<Vec<u8>> {
    let record = &contents.record;
    let mut out = Vec::with_capacity(encoded_len(record)?);
    out.push(VERSION);
    out.extend_from_slice(contents.id.as_bytes());
    out.extend_from_slice(&record.metadata.created_at.as_millis().to_be_bytes());
    out.extend_from_slice(&record.metadata.refreshed_at.as_millis().to_be_bytes());
    match &record.metadata.user_id {
        None => out.push(0),
        Some(user) => {
            out.push(1);
            out.extend_from_slice(&contents.bound_at.as_millis().to_be_bytes());
            put(&mut out, user.as_bytes())?;
        }
    }
    let count = u16::try_from(record.data.len()).ok()?;
    out.extend_from_slice(&count.to_be_bytes());
    for (name, value) in &record.data {
        put(&mut out, name.as_bytes())?;
        put(&mut out, value.as_bytes())?;
    }
    Some(out)
}

fn put(out: &mut Vec<u8>, bytes: &[u8]) -> Option<()> {
    out.extend_from_slice(&u16::try_from(bytes.len()).ok()?.to_be_bytes());
    out.extend_from_slice(bytes);
    Some(())
}

/// The contents of a plaintext, if it is exactly the layout above. Only plaintexts that
/// opened under one of the layer's keys get here, so a failure means a layout this
/// version does not know.
pub(crate) fn decode(bytes: &[u8]) -> Option<Contents> {
    let mut reader = Reader(bytes);
    if reader.take(1)? != [VERSION] {
        return None;
    }
    let id = SessionId::parse(reader.take(ID_LEN)?)?;
    let mut metadata = Metadata::new(reader.timestamp()?);
    metadata.refreshed_at = reader.timestamp()?;
    let mut bound_at = Timestamp::default();
    match reader.take(1)? {
        [0] => {}
        [1] => {
            bound_at = reader.timestamp()?;
            metadata.user_id = Some(reader.text()?);
        }
        _ => return None,
    }
    let count = reader.length()?;
    let mut data = HashMap::with_capacity(count);
    for _ in 0..count {
        let name = reader.text()?;
        let value = reader.text()?;
        if data.insert(name, value).is_some() {
            return None;
        }
    }
    if !reader.0.is_empty() {
        return None;
    }
    Some(Contents {
        id,
        record: Arc::new(Record::new(data, metadata)),
        bound_at,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (taken, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(taken)
    }

    fn timestamp(&mut self) -> Option<Timestamp> {
        let bytes = self.take(8)?.try_into().ok()?;
        Some(Timestamp::from_millis(u64::from_be_bytes(bytes)))
    }

    fn length(&mut self) -> Option<usize> {
        let bytes = self.take(2)?.try_into().ok()?;
        Some(usize::from(u16::from_be_bytes(bytes)))
    }

    fn text(&mut self) -> Option<String> {
        let len = self.length()?;
        String::from_utf8(self.take(len)?.to_vec()).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(user: Option<&str>, fields: &[(&str, &str)]) -> Contents {
        let mut metadata = Metadata::new(Timestamp::from_millis(1_800_000_000_000));
        metadata.refreshed_at = Timestamp::from_millis(1_800_000_060_000);
        metadata.user_id = user.map(str::to_owned);
        let data = fields
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        Contents {
            id: SessionId::generate().unwrap(),
            record: Arc::new(Record::new(data, metadata)),
            bound_at: Timestamp::from_millis(user.map_or(0, |_| 1_800_000_030_000)),
        }
    }

    #[test]
    fn round_trips_and_predicts_its_length() {
        for original in [
            contents(None, &[]),
            contents(
                Some("alice"),
                &[("cart", "[1,2]"), ("n", "3"), ("", "\"\"")],
            ),
            contents(Some(""), &[("é", "\"ü\"")]),
        ] {
            let bytes = encode(&original).unwrap();
            assert_eq!(Some(bytes.len()), encoded_len(&original.record));
            let decoded = decode(&bytes).unwrap();
            assert_eq!(decoded.id, original.id);
            assert!(decoded.record == original.record);
            assert_eq!(decoded.bound_at, original.bound_at);
        }
    }

    #[test]
    fn every_prefix_and_extension_is_refused() {
        let bytes = encode(&contents(Some("bob"), &[("a", "1"), ("b", "2")])).unwrap();
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_none(), "truncated to {len}");
        }
        assert!(decode(&[bytes.as_slice(), &[0]].concat()).is_none());
        let mut other_version = bytes.clone();
        other_version[0] = 2;
        assert!(decode(&other_version).is_none());
    }

    #[test]
    fn lengths_past_16_bits_do_not_encode() {
        let long = "x".repeat(usize::from(u16::MAX) + 1);
        let too_long = contents(None, &[("a", long.as_str())]);
        assert_eq!(encoded_len(&too_long.record), None);
        assert!(encode(&too_long).is_none());
    }
}
