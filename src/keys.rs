//! HMAC-SHA256 signing of session tokens, with key rotation.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::KeyError;
use crate::id::{SessionId, ID_LEN};

/// The shortest key accepted: HMAC-SHA256 is only as strong as its key.
pub const MIN_KEY_LEN: usize = 32;
/// Length of the base64url HMAC-SHA256 tag.
const TAG_LEN: usize = 43;
/// `<id>.<tag>`
pub(crate) const TOKEN_LEN: usize = ID_LEN + 1 + TAG_LEN;

/// A secret key for signing or verifying session tokens (at least 32 bytes).
///
/// `Debug` never prints key material.
#[derive(Clone)]
pub struct Key {
    // Keyed once: cloning a prepared HMAC state skips the key schedule on every request.
    mac: Hmac<Sha256>,
}

impl Key {
    /// Uses `bytes` as the key; fails if shorter than [`MIN_KEY_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(KeyError::TooShort { len: bytes.len() });
        }
        let mac =
            Hmac::new_from_slice(bytes).map_err(|_| KeyError::TooShort { len: bytes.len() })?;
        Ok(Self { mac })
    }

    /// Decodes a base64 key (standard or URL-safe alphabet, padding optional).
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        let encoded = encoded.trim();
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
            .map_err(|_| KeyError::NotBase64)?;
        Self::from_bytes(&bytes)
    }

    /// A fresh random 64-byte key, for development: tokens signed with it die with the process.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 64];
        // The OS random source failing at startup is not recoverable.
        getrandom::fill(&mut bytes).expect("the operating system's random source failed");
        Self::from_bytes(&bytes).expect("64 bytes is long enough")
    }

    /// A 32-byte key for another purpose, named by `label`: HKDF-Expand (RFC 5869) with
    /// this key as the pseudorandom key, so the signing key itself never leaves `Key`.
    #[cfg(feature = "encryption")]
    pub(crate) fn derive(&self, label: &[u8]) -> [u8; 32] {
        let mut mac = self.mac.clone();
        mac.update(label);
        mac.update(&[1]);
        mac.finalize().into_bytes().into()
    }

    fn tag(&self, cookie_name: &str, id: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.mac.clone();
        mac.update(cookie_name.as_bytes());
        mac.update(b"=");
        mac.update(id);
        mac
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(<redacted>)")
    }
}

/// One signing key plus any number of verify-only keys.
///
/// Rotating across a fleet takes two phases: first deploy the new key as verify-only
/// everywhere, then make it the signing key (keeping the old one verify-only until
/// the old tokens have expired). A token verified by an old key is re-issued under
/// the signing key on its next response.
#[derive(Clone)]
pub struct Keys {
    signing: Key,
    verify_only: Vec<Key>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not a token's shape: wrong length, duplicated, bad characters.
    Malformed,
    /// Token-shaped, but no key made its tag.
    Forged,
    /// A valid token whose session the store does not know (ended or never existed).
    Unknown,
}

/// Which key verified a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    BySigningKey,
    ByOldKey,
}

impl Keys {
    /// Signs and verifies with `signing`.
    pub fn new(signing: Key) -> Self {
        Self {
            signing,
            verify_only: Vec::new(),
        }
    }

    /// Also accepts tokens signed by `key`, without ever signing with it.
    #[must_use]
    pub fn with_verify_only(mut self, key: Key) -> Self {
        self.verify_only.push(key);
        self
    }

    /// Parses comma-separated base64 keys: the first signs, the rest only verify.
    pub fn from_base64_list(list: &str) -> Result<Self, KeyError> {
        let mut keys = list
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(Key::from_base64);
        let signing = keys.next().ok_or(KeyError::Empty)??;
        keys.try_fold(Self::new(signing), |keys, key| {
            Ok(keys.with_verify_only(key?))
        })
    }

    /// Every key, the signing key first: the order in which sealed data is opened.
    #[cfg(feature = "encryption")]
    pub(crate) fn all(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.signing).chain(&self.verify_only)
    }

    /// `<id>.<base64url HMAC-SHA256(cookie_name "=" id)>`
    pub(crate) fn sign(&self, cookie_name: &str, id: &SessionId) -> String {
        let tag = self
            .signing
            .tag(cookie_name, id.as_bytes())
            .finalize()
            .into_bytes();
        let mut token = String::with_capacity(TOKEN_LEN);
        token.push_str(id.as_str());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        token
    }

    /// Checks a token's shape and tag in constant time.
    pub(crate) fn verify(
        &self,
        cookie_name: &str,
        token: &[u8],
    ) -> Result<(SessionId, Verified), Rejected> {
        if token.len() != TOKEN_LEN || token[ID_LEN] != b'.' {
            return Err(Rejected::Malformed);
        }
        let (id, tag) = (&token[..ID_LEN], &token[ID_LEN + 1..]);
        let id = SessionId::parse(id).ok_or(Rejected::Malformed)?;
        let mut tag_bytes = [0u8; 33];
        if URL_SAFE_NO_PAD.decode_slice(tag, &mut tag_bytes).ok() != Some(32) {
            return Err(Rejected::Malformed);
        }
        let tag_bytes = &tag_bytes[..32];
        let checks = |key: &Key| {
            key.tag(cookie_name, id.as_bytes())
                .verify_slice(tag_bytes)
                .is_ok()
        };
        if checks(&self.signing) {
            Ok((id, Verified::BySigningKey))
        } else if self.verify_only.iter().any(checks) {
            Ok((id, Verified::ByOldKey))
        } else {
            Err(Rejected::Forged)
        }
    }
}

impl From<Key> for Keys {
    fn from(signing: Key) -> Self {
        Self::new(signing)
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("signing", &self.signing)
            .field("verify_only", &self.verify_only.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> Key {
        Key::from_bytes(&[byte; 32]).unwrap()
    }

    #[test]
    fn short_keys_are_errors() {
        assert!(matches!(
            Key::from_bytes(&[1; 31]),
            Err(KeyError::TooShort { len: 31 })
        ));
        assert!(matches!(
            Key::from_base64("c2hvcnQ="),
            Err(KeyError::TooShort { .. })
        ));
        assert!(matches!(Key::from_base64("%%%"), Err(KeyError::NotBase64)));
        assert!(matches!(
            Keys::from_base64_list(" , "),
            Err(KeyError::Empty)
        ));
    }

    #[test]
    fn sign_then_verify() {
        let keys = Keys::new(key(1));
        let id = SessionId::generate().unwrap();
        let token = keys.sign("sid", &id);
        assert_eq!(token.len(), TOKEN_LEN);
        assert_eq!(
            keys.verify("sid", token.as_bytes()),
            Ok((id, Verified::BySigningKey))
        );
    }

    #[test]
    fn tag_binds_the_cookie_name_and_key() {
        let keys = Keys::new(key(1));
        let token = keys.sign("sid", &SessionId::generate().unwrap());
        assert_eq!(
            keys.verify("other", token.as_bytes()),
            Err(Rejected::Forged)
        );
        assert_eq!(
            Keys::new(key(2)).verify("sid", token.as_bytes()),
            Err(Rejected::Forged)
        );
    }

    #[test]
    fn old_keys_verify_but_are_flagged() {
        let old = Keys::new(key(1));
        let rotated = Keys::new(key(2)).with_verify_only(key(1));
        let id = SessionId::generate().unwrap();
        let token = old.sign("sid", &id);
        assert_eq!(
            rotated.verify("sid", token.as_bytes()),
            Ok((id, Verified::ByOldKey))
        );
    }

    #[test]
    fn tampering_fails() {
        let keys = Keys::new(key(1));
        let token = keys.sign("sid", &SessionId::generate().unwrap());
        for i in 0..token.len() {
            let mut bytes = token.clone().into_bytes();
            bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
            assert!(keys.verify("sid", &bytes).is_err(), "flipped byte {i}");
        }
        assert_eq!(
            keys.verify("sid", &token.as_bytes()[..TOKEN_LEN - 1]),
            Err(Rejected::Malformed)
        );
    }

    #[test]
    fn debug_redacts() {
        assert_eq!(format!("{:?}", key(7)), "Key(<redacted>)");
    }
}
