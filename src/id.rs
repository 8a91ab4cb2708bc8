//! Session identifiers: the secret one in the cookie and the hashed one at rest.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// Random bytes in a session ID: 192 bits, so 32 base64url characters with no padding.
const ID_BYTES: usize = 24;
/// Length of an encoded [`SessionId`].
pub(crate) const ID_LEN: usize = 32;

/// The secret session identifier carried by the client.
///
/// It is generated from the operating system's CSPRNG, travels only inside a signed
/// token, and never reaches a store: stores see its [`HashedId`]. `Debug` prints no part of it.
///
/// Held as its 32 base64url characters inline: parsing one allocates nothing.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SessionId([u8; ID_LEN]);

impl SessionId {
    /// A fresh ID from the OS random source.
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; ID_BYTES];
        getrandom::fill(&mut bytes)?;
        let mut encoded = [0u8; ID_LEN];
        let written = URL_SAFE_NO_PAD
            .encode_slice(bytes, &mut encoded)
            .expect("24 bytes fit in 32 characters");
        debug_assert_eq!(written, ID_LEN);
        Ok(Self(encoded))
    }

    /// Accepts an encoded ID only if it has exactly the shape `generate` produces: 32
    /// base64url characters encode 24 bytes exactly (no padding, no spare bits), so an
    /// alphabet check is a full validation, without decoding.
    pub(crate) fn parse(encoded: &[u8]) -> Option<Self> {
        let encoded: [u8; ID_LEN] = encoded.try_into().ok()?;
        let base64url = |b: &u8| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_';
        encoded.iter().all(base64url).then_some(Self(encoded))
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("base64url is ASCII")
    }

    /// The form under which stores know this session.
    pub(crate) fn hashed(&self) -> HashedId {
        HashedId(URL_SAFE_NO_PAD.encode(Sha256::digest(self.0)))
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionId(<redacted>)")
    }
}

/// Base64url SHA-256 of a session ID: the only form of the ID a store ever sees.
///
/// Knowing it does not let anyone forge a cookie, so a leaked store dump or log line
/// cannot be replayed as a session.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HashedId(String);

impl HashedId {
    /// The 43-character base64url digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Rebuilds a hashed ID that a store listed earlier (e.g. from a per-user index).
    pub fn from_stored(digest: impl Into<String>) -> Self {
        Self(digest.into())
    }
}

impl fmt::Debug for HashedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A prefix is enough to correlate log lines without printing whole digests. By
        // characters: `from_stored` may hold any text, and slicing bytes could split one.
        let prefix: String = self.0.chars().take(8).collect();
        write!(f, "HashedId({prefix}…)")
    }
}

impl fmt::Display for HashedId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_round_trip_and_differ() {
        let a = SessionId::generate().unwrap();
        let b = SessionId::generate().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), ID_LEN);
        assert_eq!(SessionId::parse(a.as_str().as_bytes()), Some(a));
    }

    #[test]
    fn parse_rejects_wrong_shapes() {
        assert!(SessionId::parse(b"short").is_none());
        assert!(SessionId::parse(&[b'!'; ID_LEN]).is_none());
        assert!(SessionId::parse(&[0xff; ID_LEN]).is_none());
    }

    #[test]
    fn debug_redacts() {
        let id = SessionId::generate().unwrap();
        assert!(!format!("{id:?}").contains(id.as_str()));
        let hashed = id.hashed();
        assert_eq!(hashed.as_str().len(), 43);
        assert!(!format!("{hashed:?}").contains(hashed.as_str()));
    }

    #[test]
    fn hashed_id_debug_never_panics() {
        for stored in [
            "",
            "a",
            "ééééééééé",
            "1234567é9",
            "🦀🦀🦀🦀🦀🦀🦀🦀🦀",
            "abcdefg\u{301}x",
        ] {
            let text = format!("{:?}", HashedId::from_stored(stored));
            assert!(text.starts_with("HashedId("), "{text}");
        }
        assert_eq!(
            format!("{:?}", HashedId::from_stored("1234567é9abc")),
            "HashedId(1234567é…)"
        );
    }
}
