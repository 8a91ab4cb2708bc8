//! Sealing a session into a token and opening it: XChaCha20-Poly1305 under a key
//! derived for this one purpose from each of the layer's keys, the carrier's name bound
//! as associated data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use std::sync::OnceLock;

use chacha20poly1305::aead::{Aead as _, AeadInPlace as _, KeyInit as _, Payload};
use chacha20poly1305::{Tag, XChaCha20Poly1305, XNonce};

use super::format::{self, Contents};
use crate::keys::{Keys, Rejected, Verified};

/// The derived key's label: no other purpose uses it (see `store/sealed/cipher.rs`).
const LABEL: &[u8] = b"tower-stateless/v1/token";
/// Prefixed to the associated data (domain separation, versioning).
const AD: &[u8] = b"tower-stateless/v1/token\0";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;

/// The sealing keys of a key set; the first (the signing key's) seals, all open.
pub(crate) struct Sealer {
    keys: Vec<(XChaCha20Poly1305, Verified)>,
    /// The associated data of the first carrier name sealed or opened for: a layer has
    /// one, so every token after the first reuses it instead of building it again.
    associated: OnceLock<Box<[u8]>>,
}

impl Sealer {
    pub(crate) fn new(keys: &Keys) -> Self {
        let keys = keys
            .with_roles()
            .map(|(key, role)| (XChaCha20Poly1305::new(&key.derive(LABEL).into()), role))
            .collect();
        Self {
            keys,
            associated: OnceLock::new(),
        }
    }

    /// base64url(nonce ‖ XChaCha20-Poly1305(plaintext)), bound to `name`. `None` if the
    /// contents do not fit the layout.
    pub(crate) fn seal(&self, name: &str, contents: &Contents) -> Option<String> {
        let plaintext = format::encode(contents)?;
        let mut nonce = [0u8; NONCE_LEN];
        // As for session IDs: the OS random source does not fail transiently on Linux.
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let sealed = self.with_associated_data(name, |aad| {
            self.keys[0]
                .0
                .encrypt(
                    XNonce::from_slice(&nonce),
                    Payload {
                        msg: &plaintext,
                        aad,
                    },
                )
                .expect("XChaCha20-Poly1305 seals any length a cookie holds")
        });
        let mut token = String::with_capacity(sealed_len(plaintext.len()));
        URL_SAFE_NO_PAD.encode_string([&nonce[..], &sealed].concat(), &mut token);
        Some(token)
    }

    /// The contents of `token` and which key opened it. Anything not base64url of at
    /// least a nonce and a tag is malformed; what no key opens is forged.
    ///
    /// Decoded into one buffer of the token's size and decrypted there, in place: a key
    /// that does not open the token leaves the buffer as it was (the tag is checked
    /// first).
    pub(crate) fn open(&self, name: &str, token: &[u8]) -> Result<(Contents, Verified), Rejected> {
        let mut buffer = Vec::with_capacity(token.len().div_ceil(4) * 3);
        URL_SAFE_NO_PAD
            .decode_vec(token, &mut buffer)
            .map_err(|_| Rejected::Malformed)?;
        let len = buffer.len();
        if len < NONCE_LEN + TAG_LEN {
            return Err(Rejected::Malformed);
        }
        let (nonce, rest) = buffer[..len].split_at_mut(NONCE_LEN);
        let (sealed, tag) = rest.split_at_mut(rest.len() - TAG_LEN);
        let (nonce, tag) = (XNonce::from_slice(nonce), Tag::from_slice(tag));
        let verified = self
            .with_associated_data(name, |aad| {
                self.keys.iter().find_map(|(key, role)| {
                    let opened = key.decrypt_in_place_detached(nonce, aad, sealed, tag);
                    opened.is_ok().then_some(*role)
                })
            })
            .ok_or(Rejected::Forged)?;
        // Authentic but unreadable: a layout this version does not know.
        let contents = format::decode(sealed).ok_or(Rejected::Malformed)?;
        Ok((contents, verified))
    }

    /// Runs `f` with the associated data for carrier `name`.
    fn with_associated_data<R>(&self, name: &str, f: impl FnOnce(&[u8]) -> R) -> R {
        let cached = self.associated.get_or_init(|| associated_data(name).into());
        if cached[AD.len()..] == *name.as_bytes() {
            f(cached)
        } else {
            f(&associated_data(name))
        }
    }
}

fn associated_data(name: &str) -> Vec<u8> {
    [AD, name.as_bytes()].concat()
}

/// The length of the token that seals a plaintext of `plaintext_len` bytes (base64url
/// without padding).
pub(crate) fn sealed_len(plaintext_len: usize) -> usize {
    ((NONCE_LEN + plaintext_len + TAG_LEN) * 4).div_ceil(3)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expiry::Timestamp;
    use crate::id::SessionId;
    use crate::record::{Metadata, Record};
    use crate::Key;

    fn contents(value_len: usize) -> Contents {
        let data = [("v".to_owned(), "x".repeat(value_len))].into();
        Contents {
            id: SessionId::generate().unwrap(),
            record: Record::new(data, Metadata::new(Timestamp::from_millis(1))).into(),
            bound_at: Timestamp::default(),
        }
    }

    mod properties {
        use proptest::collection::{hash_map, vec};
        use proptest::prelude::*;

        use super::*;

        fn any_contents() -> impl Strategy<Value = Contents> {
            (
                hash_map(".{0,12}", ".{0,40}", 0..8),
                proptest::option::of(".{0,20}"),
                any::<u32>(),
            )
                .prop_map(|(data, user, at)| {
                    // A binding time is carried only with a user.
                    let bound_at = user.as_ref().map_or(0, |_| u64::from(at) + 1);
                    let mut metadata = Metadata::new(Timestamp::from_millis(u64::from(at)));
                    metadata.user_id = user;
                    Contents {
                        id: SessionId::generate().unwrap(),
                        record: Record::new(data, metadata).into(),
                        bound_at: Timestamp::from_millis(bound_at),
                    }
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            #[test]
            fn seal_then_open_round_trips(contents in any_contents()) {
                let sealer = Sealer::new(&Keys::new(Key::from_bytes(&[3; 32]).unwrap()));
                let token = sealer.seal("id", &contents).unwrap();
                let (opened, verified) = sealer.open("id", token.as_bytes()).unwrap();
                prop_assert_eq!(verified, Verified::Signing);
                prop_assert!(opened.id == contents.id);
                prop_assert!(opened.record == contents.record);
                prop_assert_eq!(opened.bound_at, contents.bound_at);
                prop_assert_eq!(token.len(), sealed_len(format::encode(&contents).unwrap().len()));
            }

            #[test]
            fn any_bytes_are_refused_without_panicking(bytes in vec(any::<u8>(), 0..300)) {
                let sealer = Sealer::new(&Keys::new(Key::from_bytes(&[3; 32]).unwrap()));
                prop_assert!(sealer.open("id", &bytes).is_err());
                prop_assert!(format::decode(&bytes).is_none() || bytes.first() == Some(&1));
            }
        }
    }

    #[test]
    fn sealed_len_is_exact() {
        let sealer = Sealer::new(&Keys::new(Key::from_bytes(&[1; 32]).unwrap()));
        for value_len in 0..10 {
            let contents = contents(value_len);
            let plaintext = format::encode(&contents).unwrap().len();
            let token = sealer.seal("id", &contents).unwrap();
            assert_eq!(token.len(), sealed_len(plaintext), "{value_len}");
        }
    }
}
