//! Sealing a session into a token and opening it: XChaCha20-Poly1305 under a key
//! derived for this one purpose from each of the layer's keys, the carrier's name bound
//! as associated data.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::format::{self, Contents};
use crate::cookie::MAX_COOKIE_LEN;
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
}

impl Sealer {
    pub(crate) fn new(keys: &Keys) -> Self {
        let keys = keys
            .with_roles()
            .map(|(key, role)| (XChaCha20Poly1305::new(&key.derive(LABEL).into()), role))
            .collect();
        Self { keys }
    }

    /// base64url(nonce ‖ XChaCha20-Poly1305(plaintext)), bound to `name`. `None` if the
    /// contents do not fit the layout.
    pub(crate) fn seal(&self, name: &str, contents: &Contents) -> Option<String> {
        let plaintext = format::encode(contents)?;
        let mut nonce = [0u8; NONCE_LEN];
        // As for session IDs: the OS random source does not fail transiently on Linux.
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let sealed = self.keys[0]
            .0
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad: &associated_data(name),
                },
            )
            .expect("XChaCha20-Poly1305 seals any length a cookie holds");
        let mut token = String::with_capacity(sealed_len(plaintext.len()));
        URL_SAFE_NO_PAD.encode_string([&nonce[..], &sealed].concat(), &mut token);
        Some(token)
    }

    /// The contents of `token` and which key opened it. Anything not base64url of at
    /// least a nonce and a tag is malformed; what no key opens is forged.
    pub(crate) fn open(&self, name: &str, token: &[u8]) -> Result<(Contents, Verified), Rejected> {
        let bytes = URL_SAFE_NO_PAD
            .decode(token)
            .map_err(|_| Rejected::Malformed)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(Rejected::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let aad = associated_data(name);
        let (plaintext, verified) = self
            .keys
            .iter()
            .find_map(|(key, role)| {
                let payload = Payload {
                    msg: sealed,
                    aad: &aad,
                };
                let plaintext = key.decrypt(XNonce::from_slice(nonce), payload).ok()?;
                Some((plaintext, *role))
            })
            .ok_or(Rejected::Forged)?;
        // Authentic but unreadable: a layout this version does not know.
        let contents = format::decode(&plaintext).ok_or(Rejected::Malformed)?;
        Ok((contents, verified))
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

/// Whether a cookie `name=token` with a token sealing `plaintext_len` bytes fits the
/// 4096 bytes of name and value browsers keep (RFC 6265bis 5.7), counting the `=`.
pub(crate) fn fits(name: &str, plaintext_len: usize) -> bool {
    name.len() + 1 + sealed_len(plaintext_len) <= MAX_COOKIE_LEN
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
            record: Record::new(data, Metadata::new(Timestamp::from_millis(1))),
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
                        record: Record::new(data, metadata),
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
