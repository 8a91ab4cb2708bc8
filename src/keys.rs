//! HMAC-SHA256 signing of session tokens, with key rotation.

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::KeyError;
use crate::id::{SessionId, ID_LEN};

/// Length of the base64url HMAC-SHA256 tag.
const TAG_LEN: usize = 43;
/// `<id>.<tag>`
pub(crate) const TOKEN_LEN: usize = ID_LEN + 1 + TAG_LEN;

/// Whether decoded key bytes could be random: 32 random bytes are all printable ASCII
/// with a chance of about 1 in 10^14, and hold fewer than 16 distinct values with a far
/// smaller one; a password, an encoded string or a repeated byte does one or the other.
fn looks_random(bytes: &[u8]) -> bool {
    let mut seen = [false; 256];
    for &byte in bytes {
        seen[usize::from(byte)] = true;
    }
    let distinct = seen.iter().filter(|&&seen| seen).count();
    let text = bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ');
    distinct >= 16 && !text
}

/// A secret key for signing or verifying session tokens (at least 32 bytes).
///
/// `Debug` never prints key material.
#[derive(Clone)]
pub struct Key {
    // Keyed once: cloning a prepared HMAC state skips the key schedule on every request.
    mac: Hmac<Sha256>,
}

impl Key {
    /// The shortest key accepted, in bytes: HMAC-SHA256 is only as strong as its key.
    pub const MIN_LEN: usize = 32;

    /// Uses `bytes` as the key; fails if shorter than [`MIN_LEN`](Self::MIN_LEN).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < Self::MIN_LEN {
            return Err(KeyError::TooShort { len: bytes.len() });
        }
        let mac =
            Hmac::new_from_slice(bytes).map_err(|_| KeyError::TooShort { len: bytes.len() })?;
        Ok(Self { mac })
    }

    /// Decodes a base64 key (standard or URL-safe alphabet, padding optional), as
    /// `openssl rand -base64 32` makes one.
    ///
    /// Text that does not look like an encoded random key is refused: hexadecimal
    /// (`openssl rand -hex 32` decodes as base64 to 48 bytes of low entropy) and keys
    /// that decode to printable text (a password) or to few distinct bytes.
    pub fn from_base64(encoded: &str) -> Result<Self, KeyError> {
        let encoded = encoded.trim();
        if encoded.len() >= Self::MIN_LEN && encoded.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(KeyError::Hex);
        }
        let bytes = STANDARD
            .decode(encoded)
            .or_else(|_| URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')))
            .map_err(|_| KeyError::NotBase64)?;
        let key = Self::from_bytes(&bytes)?;
        if !looks_random(&bytes) {
            return Err(KeyError::NotRandom);
        }
        Ok(key)
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
    #[cfg(any(feature = "encryption", feature = "token", feature = "redis"))]
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

/// One signing key plus keys that only verify: *upcoming* ones, about to sign, and
/// *retiring* ones, that signed before.
///
/// Rotating across a fleet takes three steps, each deployed everywhere before the next:
///
/// 1. Add the new key as upcoming ([`with_upcoming`](Self::with_upcoming)): every
///    instance accepts its tokens but never signs with it, nor re-signs them.
/// 2. Make it the signing key and the old one retiring
///    ([`with_retiring`](Self::with_retiring)): a token verified by a retiring key is
///    re-issued under the signing key on its next response. Instances still in step 1
///    accept the new tokens and leave them alone, so a client going back and forth
///    between the two kinds of instance does not see its token flap.
/// 3. Once the absolute lifetime has passed, drop the retiring key.
#[derive(Clone)]
pub struct Keys {
    signing: Key,
    upcoming: Vec<Key>,
    retiring: Vec<Key>,
}

/// Why a token was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rejected {
    /// Not a token's shape: wrong length, duplicated, bad characters.
    Malformed,
    /// Token-shaped, but no key made its tag.
    Forged,
    /// A valid token whose session the store does not know: never created, expired, or
    /// ended by a logout before the request (stores delete ended sessions, so these
    /// cannot be told apart).
    Unknown,
    /// A valid token whose session the request saw live, then found ended by a logout
    /// (or log-out-everywhere) while it ran.
    Revoked,
}

impl Rejected {
    pub(crate) const ALL: [Self; 4] = [Self::Malformed, Self::Forged, Self::Unknown, Self::Revoked];

    /// The metric label and log field.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::Forged => "forged",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
        }
    }
}

/// Which key verified a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verified {
    Signing,
    /// A key about to sign: accepted as it is, never re-issued.
    Upcoming,
    /// A key that signed before: re-issued under the signing key.
    Retiring,
}

/// `from_base64_list`'s marks for a verify-only key.
const UPCOMING: &str = "upcoming:";
const RETIRING: &str = "retiring:";

impl Keys {
    /// Signs and verifies with `signing`.
    pub fn new(signing: Key) -> Self {
        Self {
            signing,
            upcoming: Vec::new(),
            retiring: Vec::new(),
        }
    }

    /// Also accepts tokens signed by `key`, a key that will sign soon (step 1 of a
    /// rotation): its tokens are never re-signed under the current signing key.
    #[must_use]
    pub fn with_upcoming(mut self, key: Key) -> Self {
        self.upcoming.push(key);
        self
    }

    /// Also accepts tokens signed by `key`, a key that signed before (step 2 of a
    /// rotation): its tokens are re-issued under the signing key on their next response.
    #[must_use]
    pub fn with_retiring(mut self, key: Key) -> Self {
        self.retiring.push(key);
        self
    }

    /// The same as [`with_retiring`](Self::with_retiring), its earlier name.
    #[must_use]
    pub fn with_verify_only(self, key: Key) -> Self {
        self.with_retiring(key)
    }

    /// Parses comma-separated base64 keys: the first signs; each other one is retiring,
    /// or upcoming if written `upcoming:<base64>` (`retiring:<base64>` is accepted too).
    pub fn from_base64_list(list: &str) -> Result<Self, KeyError> {
        let mut entries = list.split(',').map(str::trim).filter(|k| !k.is_empty());
        let first = entries.next().ok_or(KeyError::Empty)?;
        if first.starts_with(UPCOMING) || first.starts_with(RETIRING) {
            return Err(KeyError::MarkedSigningKey);
        }
        let at = |position: usize| {
            move |error| KeyError::InList {
                position,
                error: Box::new(error),
            }
        };
        let signing = Key::from_base64(first).map_err(at(1))?;
        entries
            .zip(2..)
            .try_fold(Self::new(signing), |keys, (entry, position)| {
                Ok(match entry.strip_prefix(UPCOMING) {
                    Some(key) => keys.with_upcoming(Key::from_base64(key).map_err(at(position))?),
                    None => keys.with_retiring(
                        Key::from_base64(entry.strip_prefix(RETIRING).unwrap_or(entry))
                            .map_err(at(position))?,
                    ),
                })
            })
    }

    /// Every key, the signing key first (then retiring, then upcoming keys): the order in
    /// which sealed data is opened. An upcoming key opens what a fleet member that
    /// already signs with it sealed.
    #[cfg(any(feature = "encryption", feature = "redis"))]
    pub(crate) fn all(&self) -> impl Iterator<Item = &Key> {
        std::iter::once(&self.signing)
            .chain(&self.retiring)
            .chain(&self.upcoming)
    }

    /// Every key with its role, in the order of [`all`](Self::all)'s: token mode opens
    /// with each and re-seals what a retiring key opened.
    #[cfg(feature = "token")]
    pub(crate) fn with_roles(&self) -> impl Iterator<Item = (&Key, Verified)> {
        std::iter::once((&self.signing, Verified::Signing))
            .chain(self.retiring.iter().map(|key| (key, Verified::Retiring)))
            .chain(self.upcoming.iter().map(|key| (key, Verified::Upcoming)))
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
            Ok((id, Verified::Signing))
        } else if self.upcoming.iter().any(checks) {
            Ok((id, Verified::Upcoming))
        } else if self.retiring.iter().any(checks) {
            Ok((id, Verified::Retiring))
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
            .field("upcoming", &self.upcoming.len())
            .field("retiring", &self.retiring.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    /// 32 random-looking bytes named by `byte` (as `from_base64` wants a key to look).
    fn key_bytes(byte: u8) -> [u8; 32] {
        Sha256::digest([byte]).into()
    }

    fn key(byte: u8) -> Key {
        Key::from_bytes(&key_bytes(byte)).unwrap()
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
        // `openssl rand -hex 32`: refused, and the message says how to make a key.
        let hex = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
        let error = Key::from_base64(hex).unwrap_err();
        assert!(matches!(error, KeyError::Hex));
        assert!(
            error.to_string().contains("openssl rand -base64 32"),
            "{error}"
        );
        // A password, and a repeated byte, encoded as base64.
        let password = STANDARD.encode("correct horse battery staple, twice over");
        assert!(matches!(
            Key::from_base64(&password),
            Err(KeyError::NotRandom)
        ));
        let repeated = STANDARD.encode([7u8; 32]);
        assert!(matches!(
            Key::from_base64(&repeated),
            Err(KeyError::NotRandom)
        ));
        // `openssl rand -base64 32`.
        assert!(Key::from_base64("fn2zDBdrSTOyD6SM1eXfshdBk2vRnCZgZBnWZnK1xlk=").is_ok());
        // A bad key in a list is named by its position.
        let good = "fn2zDBdrSTOyD6SM1eXfshdBk2vRnCZgZBnWZnK1xlk=";
        let error = Keys::from_base64_list(&format!("{good}, upcoming:{hex}")).unwrap_err();
        assert!(
            matches!(&error, KeyError::InList { position: 2, error } if matches!(**error, KeyError::Hex)),
            "{error:?}"
        );
        assert!(
            error.to_string().starts_with("key 2 of the list: "),
            "{error}"
        );
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
            Ok((id, Verified::Signing))
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
    fn verify_only_keys_verify_but_are_flagged() {
        let old = Keys::new(key(1));
        let id = SessionId::generate().unwrap();
        let token = old.sign("sid", &id);
        let rotated = Keys::new(key(2)).with_retiring(key(1));
        assert_eq!(
            rotated.verify("sid", token.as_bytes()),
            Ok((id.clone(), Verified::Retiring))
        );
        let alias = Keys::new(key(2)).with_verify_only(key(1));
        assert_eq!(
            alias.verify("sid", token.as_bytes()),
            Ok((id.clone(), Verified::Retiring))
        );
        let upcoming = Keys::new(key(2)).with_upcoming(key(1));
        assert_eq!(
            upcoming.verify("sid", token.as_bytes()),
            Ok((id, Verified::Upcoming))
        );
    }

    #[test]
    fn key_lists_mark_upcoming_keys() {
        let b64 = |byte: u8| STANDARD.encode(key_bytes(byte));
        let list = format!(
            "{}, upcoming:{}, {}, retiring:{}",
            b64(1),
            b64(2),
            b64(3),
            b64(4)
        );
        let keys = Keys::from_base64_list(&list).unwrap();
        assert_eq!(
            format!("{keys:?}"),
            "Keys { signing: Key(<redacted>), upcoming: 1, retiring: 2 }"
        );
        let id = SessionId::generate().unwrap();
        let by = |byte: u8| {
            let token = Keys::new(key(byte)).sign("sid", &id);
            keys.verify("sid", token.as_bytes())
                .map(|(_, verified)| verified)
        };
        assert_eq!(by(1), Ok(Verified::Signing));
        assert_eq!(by(2), Ok(Verified::Upcoming));
        assert_eq!(by(3), Ok(Verified::Retiring));
        assert_eq!(by(4), Ok(Verified::Retiring));
        assert_eq!(by(5), Err(Rejected::Forged));
        assert!(matches!(
            Keys::from_base64_list(&format!("upcoming:{}", b64(1))),
            Err(KeyError::MarkedSigningKey)
        ));
        assert!(matches!(
            Keys::from_base64_list(&format!("{}, upcoming:%%", b64(1))),
            Err(KeyError::InList { position: 2, error }) if matches!(*error, KeyError::NotBase64)
        ));
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

    mod properties {
        //! Properties over any ID, key set and cookie name (`cargo test keys::tests::properties`).

        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        fn any_key() -> impl Strategy<Value = Key> {
            vec(any::<u8>(), Key::MIN_LEN..=96).prop_map(|bytes| Key::from_bytes(&bytes).unwrap())
        }

        fn any_id() -> impl Strategy<Value = SessionId> {
            any::<[u8; 24]>().prop_map(|bytes| {
                SessionId::parse(URL_SAFE_NO_PAD.encode(bytes).as_bytes()).unwrap()
            })
        }

        /// An RFC 6265 token, as the layer's checks allow.
        fn any_name() -> impl Strategy<Value = String> {
            let chars = b"abcXYZ019!#$%&'*+-.^_`|~";
            vec(proptest::sample::select(chars.as_slice()), 1..24)
                .prop_map(|bytes| String::from_utf8(bytes).unwrap())
        }

        /// A key set, and which of its keys signs the token: 0 the signing key, then the
        /// upcoming keys, then the retiring ones.
        fn any_keys() -> impl Strategy<Value = (Vec<Key>, usize, usize, usize)> {
            (0..3usize, 0..3usize).prop_flat_map(|(upcoming, retiring)| {
                let total = 1 + upcoming + retiring;
                (
                    vec(any_key(), total),
                    Just(upcoming),
                    Just(retiring),
                    0..total,
                )
            })
        }

        fn keys_of(all: &[Key], upcoming: usize) -> Keys {
            let mut keys = Keys::new(all[0].clone());
            for key in &all[1..=upcoming] {
                keys = keys.with_upcoming(key.clone());
            }
            for key in &all[1 + upcoming..] {
                keys = keys.with_retiring(key.clone());
            }
            keys
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn sign_then_verify_round_trips(
                id in any_id(),
                name in any_name(),
                (all, upcoming, _retiring, signer) in any_keys(),
            ) {
                let keys = keys_of(&all, upcoming);
                let token = Keys::new(all[signer].clone()).sign(&name, &id);
                prop_assert_eq!(token.len(), TOKEN_LEN);
                let expected = match signer {
                    0 => Verified::Signing,
                    i if i <= upcoming => Verified::Upcoming,
                    _ => Verified::Retiring,
                };
                prop_assert_eq!(keys.verify(&name, token.as_bytes()), Ok((id, expected)));
            }

            #[test]
            fn any_single_byte_change_is_rejected(
                id in any_id(),
                (all, upcoming, _retiring, signer) in any_keys(),
                at in 0..TOKEN_LEN,
                byte in any::<u8>(),
            ) {
                let keys = keys_of(&all, upcoming);
                let mut token = Keys::new(all[signer].clone()).sign("id", &id).into_bytes();
                prop_assume!(token[at] != byte);
                token[at] = byte;
                prop_assert!(keys.verify("id", &token).is_err());
            }

            #[test]
            fn truncation_and_extension_are_rejected(
                id in any_id(),
                key in any_key(),
                keep in 0..TOKEN_LEN,
                extra in vec(any::<u8>(), 1..64),
            ) {
                let keys = Keys::new(key);
                let token = keys.sign("id", &id).into_bytes();
                prop_assert_eq!(keys.verify("id", &token[..keep]), Err(Rejected::Malformed));
                let extended = [token.as_slice(), &extra].concat();
                prop_assert_eq!(keys.verify("id", &extended), Err(Rejected::Malformed));
            }

            #[test]
            fn another_name_or_key_is_forged(
                id in any_id(),
                key in any_key(),
                other in any_key(),
                name in any_name(),
            ) {
                let token = Keys::new(key.clone()).sign("id", &id);
                prop_assume!(name != "id");
                prop_assert_eq!(
                    Keys::new(key).verify(&name, token.as_bytes()),
                    Err(Rejected::Forged)
                );
                prop_assert_eq!(
                    Keys::new(other).verify("id", token.as_bytes()),
                    Err(Rejected::Forged)
                );
            }
        }
    }
}
