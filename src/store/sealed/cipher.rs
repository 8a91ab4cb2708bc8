//! The cryptography of [`Sealed`](super::Sealed): per-purpose keys derived from the
//! layer's [`Keys`], deterministic field names, sealed values, keyed user hashes.

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::id::HashedId;
use crate::keys::Keys;

/// Labels of the derived keys: one per purpose, so no key is ever used for two.
const VALUE_LABEL: &[u8] = b"tower-stateless/v1/seal/value";
const NAME_LABELS: [&[u8]; 2] = [
    b"tower-stateless/v1/seal/name/mac",
    b"tower-stateless/v1/seal/name/enc",
];
const USER_LABEL: &[u8] = b"tower-stateless/v1/seal/user";
/// Prefixed to the associated data of every sealed value (domain separation, versioning).
const VALUE_AD: &[u8] = b"tower-stateless/v1/seal/value\0";
/// What every sealed value starts with; never the first character of an integer.
pub(super) const SEALED_PREFIX: char = 's';
const NONCE_LEN: usize = 24;

/// What a stored field name stands for: one of the session's fields, or the proof of
/// the session's user binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Field {
    Data(String),
    User,
}

impl Field {
    fn plaintext(&self) -> Vec<u8> {
        match self {
            Self::Data(name) => [b"d", name.as_bytes()].concat(),
            Self::User => b"u".to_vec(),
        }
    }

    fn from_plaintext(bytes: Vec<u8>) -> Option<Self> {
        match bytes.split_first()? {
            (b'd', name) => String::from_utf8(name.to_vec()).ok().map(Self::Data),
            (b'u', []) => Some(Self::User),
            _ => None,
        }
    }
}

/// The keys derived from one [`Key`](crate::Key).
struct Derived {
    value: XChaCha20Poly1305,
    name: [u8; 64],
    user: Hmac<Sha256>,
}

/// The derived keys of every key in a key set; index 0 (the signing key's) seals.
pub(super) struct Cipher {
    keys: Vec<Derived>,
}

impl Cipher {
    pub(super) fn new(keys: &Keys) -> Self {
        let keys = keys
            .all()
            .map(|key| {
                let mut name = [0u8; 64];
                name[..32].copy_from_slice(&key.derive(NAME_LABELS[0]));
                name[32..].copy_from_slice(&key.derive(NAME_LABELS[1]));
                Derived {
                    value: XChaCha20Poly1305::new(&key.derive(VALUE_LABEL).into()),
                    name,
                    user: <Hmac<Sha256> as Mac>::new_from_slice(&key.derive(USER_LABEL))
                        .expect("HMAC takes any key length"),
                }
            })
            .collect();
        Self { keys }
    }

    /// How many keys open data (the first also seals).
    pub(super) fn key_count(&self) -> usize {
        self.keys.len()
    }

    /// The stored name of `field` under key `index`: AES-SIV, deterministic (so a field
    /// keeps one name and per-field deltas work) and invertible only with the key.
    pub(super) fn name(&self, index: usize, field: &Field) -> String {
        let mut siv = Aes256Siv::new(&self.keys[index].name.into());
        let sealed = siv
            .encrypt(std::iter::empty::<&[u8]>(), &field.plaintext())
            .expect("no headers, and a plaintext of any length");
        URL_SAFE_NO_PAD.encode(sealed)
    }

    /// Which field a stored name stands for, and the index of the key that named it.
    pub(super) fn open_name(&self, stored: &str) -> Option<(usize, Field)> {
        let bytes = URL_SAFE_NO_PAD.decode(stored).ok()?;
        self.keys.iter().enumerate().find_map(|(index, key)| {
            let plaintext = Aes256Siv::new(&key.name.into())
                .decrypt(std::iter::empty::<&[u8]>(), &bytes)
                .ok()?;
            Some((index, Field::from_plaintext(plaintext)?))
        })
    }

    /// `s` + base64url(nonce ‖ XChaCha20-Poly1305(value)), under the sealing key, bound to
    /// the session and the stored field name through the associated data.
    pub(super) fn seal(&self, id: &HashedId, stored_name: &str, value: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        // The OS random source failing mid-request is not recoverable here; the same
        // source makes session IDs, and `getrandom` documents no transient failure on Linux.
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let aad = associated_data(id, stored_name);
        let sealed = self.keys[0]
            .value
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: value.as_bytes(),
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any length a session holds");
        let mut out = String::with_capacity(1 + (NONCE_LEN + sealed.len()).div_ceil(3) * 4);
        out.push(SEALED_PREFIX);
        URL_SAFE_NO_PAD.encode_string([&nonce[..], &sealed].concat(), &mut out);
        out
    }

    /// The value sealed in `stored` for this session and stored field name, if any key
    /// opens it.
    pub(super) fn open(&self, id: &HashedId, stored_name: &str, stored: &str) -> Option<String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(stored.strip_prefix(SEALED_PREFIX)?)
            .ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(id, stored_name);
        self.keys.iter().find_map(|key| {
            let plaintext = key
                .value
                .decrypt(
                    XNonce::from_slice(nonce),
                    Payload {
                        msg: sealed,
                        aad: &aad,
                    },
                )
                .ok()?;
            String::from_utf8(plaintext).ok()
        })
    }

    /// The user ID as the store's per-user index knows it under key `index`: base64url
    /// HMAC-SHA256, deterministic so that every session of a user lands in one index.
    pub(super) fn user(&self, index: usize, user: &str) -> String {
        let mut mac = self.keys[index].user.clone();
        mac.update(user.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }
}

/// Binds a sealed value to one session and one stored field: copied anywhere else, it
/// no longer opens.
fn associated_data(id: &HashedId, stored_name: &str) -> Vec<u8> {
    [
        VALUE_AD,
        id.as_str().as_bytes(),
        b"\0",
        stored_name.as_bytes(),
    ]
    .concat()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;

    fn cipher(bytes: &[u8]) -> Cipher {
        Cipher::new(&Keys::new(Key::from_bytes(bytes).unwrap()))
    }

    #[test]
    fn names_are_deterministic_per_key_and_open() {
        let (one, two) = (cipher(&[1; 32]), cipher(&[2; 32]));
        let field = Field::Data("cart:sku-1".into());
        assert_eq!(one.name(0, &field), one.name(0, &field));
        assert_ne!(one.name(0, &field), two.name(0, &field));
        assert_ne!(one.name(0, &field), one.name(0, &Field::User));
        assert_eq!(one.open_name(&one.name(0, &field)), Some((0, field)));
        assert_eq!(two.open_name(&one.name(0, &Field::User)), None);
    }

    #[test]
    fn values_open_only_for_their_session_and_field() {
        let cipher = cipher(&[1; 32]);
        let (a, b) = (HashedId::from_stored("a"), HashedId::from_stored("b"));
        let sealed = cipher.seal(&a, "f", "\"secret\"");
        assert!(!sealed.contains("secret"));
        assert_ne!(sealed, cipher.seal(&a, "f", "\"secret\""), "random nonces");
        assert_eq!(cipher.open(&a, "f", &sealed).as_deref(), Some("\"secret\""));
        assert_eq!(cipher.open(&b, "f", &sealed), None, "another session");
        assert_eq!(cipher.open(&a, "g", &sealed), None, "another field");
        assert_eq!(cipher.open(&a, "f", &sealed[..sealed.len() - 1]), None);
        assert_eq!(cipher.open(&a, "f", "s"), None);
    }
}
