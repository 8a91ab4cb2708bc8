//! Sealing a session into a token and opening it, under a key derived for this one
//! purpose from each of the layer's keys, the carrier's name bound as associated data.
//!
//! Two formats, both always opened:
//! - version 2, sealed by default: AES-256-GCM-SIV (RFC 8452), a random 96-bit nonce.
//!   With AES-NI and CLMUL it opens a 260-byte token in about a third of XChaCha20-
//!   Poly1305's instructions (about 3,400 against 9,600, counted with callgrind), and,
//!   being nonce-misuse resistant, a repeated nonce would only show that two tokens
//!   sealed the same plaintext;
//! - version 1, what 0.1 sealed: XChaCha20-Poly1305, a random 192-bit nonce; sealed
//!   only when the settings ask for it, while a fleet upgrades from 0.1.
//!
//! A token opened in the format not being sealed is re-issued in the other on its next
//! response, as if a retiring key had opened it.

use aes_gcm_siv::aead::generic_array::typenum::Unsigned as _;
use aes_gcm_siv::aead::{AeadCore, AeadInPlace, KeyInit};
use aes_gcm_siv::Aes256GcmSiv;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chacha20poly1305::XChaCha20Poly1305;
use std::sync::OnceLock;

use super::format::{self, Contents};
use crate::keys::{Keys, Rejected, Verified};

/// The sealing keys of a key set in both formats; the first key (the signing key's)
/// seals, all open.
pub(crate) struct Sealer {
    v2: Format<Aes256GcmSiv>,
    v1: Format<XChaCha20Poly1305>,
    seal_v1: bool,
}

impl Sealer {
    /// Seals version 2, or version 1 if `seal_v1`.
    pub(crate) fn new(keys: &Keys, seal_v1: bool) -> Self {
        // The labels name the derived keys' purpose: no other purpose uses them (see
        // `store/sealed/cipher.rs`), and no key serves both ciphers.
        Self {
            v2: Format::new(
                keys,
                b"tower-stateless/v2/token",
                b"tower-stateless/v2/token\0",
            ),
            v1: Format::new(
                keys,
                b"tower-stateless/v1/token",
                b"tower-stateless/v1/token\0",
            ),
            seal_v1,
        }
    }

    /// The token of `contents`, bound to `name`. `None` if the contents do not fit the
    /// layout.
    pub(crate) fn seal(&self, name: &str, contents: &Contents) -> Option<String> {
        let plaintext = format::encode(contents)?;
        Some(if self.seal_v1 {
            self.v1.seal(name, &plaintext)
        } else {
            self.v2.seal(name, &plaintext)
        })
    }

    /// The contents of `token` and which key opened it. Anything not base64url of at
    /// least a nonce and a tag is malformed; what no key opens is forged.
    ///
    /// Decoded into one buffer of the token's size and decrypted there, in place: a key
    /// that does not open the token leaves the buffer as it was.
    pub(crate) fn open(&self, name: &str, token: &[u8]) -> Result<(Contents, Verified), Rejected> {
        let mut buffer = Vec::with_capacity(token.len().div_ceil(4) * 3);
        URL_SAFE_NO_PAD
            .decode_vec(token, &mut buffer)
            .map_err(|_| Rejected::Malformed)?;
        let opened = if self.seal_v1 {
            (self.v1.open(name, &mut buffer))
                .or_else(|| self.v2.open(name, &mut buffer).map(re_issued))
        } else {
            (self.v2.open(name, &mut buffer))
                .or_else(|| self.v1.open(name, &mut buffer).map(re_issued))
        };
        let Some((plaintext, verified)) = opened else {
            let shortest =
                Format::<Aes256GcmSiv>::OVERHEAD.min(Format::<XChaCha20Poly1305>::OVERHEAD);
            return Err(if buffer.len() < shortest {
                Rejected::Malformed
            } else {
                Rejected::Forged
            });
        };
        // Authentic but unreadable: a layout this version does not know.
        let contents = format::decode(&buffer[plaintext]).ok_or(Rejected::Malformed)?;
        Ok((contents, verified))
    }

    /// The length of the token that seals a plaintext of `plaintext_len` bytes.
    pub(crate) fn sealed_len(&self, plaintext_len: usize) -> usize {
        let overhead = if self.seal_v1 {
            Format::<XChaCha20Poly1305>::OVERHEAD
        } else {
            Format::<Aes256GcmSiv>::OVERHEAD
        };
        // base64url without padding.
        ((overhead + plaintext_len) * 4).div_ceil(3)
    }
}

/// The role of a key that opened a token in the format not being sealed: re-issued in
/// the sealed one, unless the key is still to come (such tokens are never re-issued).
fn re_issued(
    (plaintext, verified): (std::ops::Range<usize>, Verified),
) -> (std::ops::Range<usize>, Verified) {
    let verified = match verified {
        Verified::Upcoming => Verified::Upcoming,
        Verified::Signing | Verified::Retiring => Verified::Retiring,
    };
    (plaintext, verified)
}

/// One token format: `nonce ‖ ciphertext ‖ tag` under cipher `C`, base64url.
struct Format<C> {
    keys: Vec<(C, Verified)>,
    /// Prefixed to the carrier's name in the associated data (domain separation).
    domain: &'static [u8],
    /// The associated data of the first carrier name sealed or opened for: a layer has
    /// one, so every token after the first reuses it instead of building it again.
    associated: OnceLock<Box<[u8]>>,
}

impl<C: AeadInPlace + KeyInit> Format<C> {
    fn new(keys: &Keys, label: &[u8], domain: &'static [u8]) -> Self {
        let keys = keys
            .with_roles()
            .map(|(key, role)| {
                (
                    C::new_from_slice(&key.derive(label)).expect("a 256-bit key"),
                    role,
                )
            })
            .collect();
        Self {
            keys,
            domain,
            associated: OnceLock::new(),
        }
    }

    const NONCE_LEN: usize = <C as AeadCore>::NonceSize::USIZE;
    const TAG_LEN: usize = <C as AeadCore>::TagSize::USIZE;

    const OVERHEAD: usize = Self::NONCE_LEN + Self::TAG_LEN;

    fn seal(&self, name: &str, plaintext: &[u8]) -> String {
        let mut sealed = Vec::with_capacity(Self::OVERHEAD + plaintext.len());
        sealed.resize(Self::NONCE_LEN, 0);
        // As for session IDs: the OS random source does not fail transiently on Linux.
        getrandom::fill(&mut sealed).expect("the operating system's random source failed");
        sealed.extend_from_slice(plaintext);
        let (nonce, message) = sealed.split_at_mut(Self::NONCE_LEN);
        let tag = self.with_associated_data(name, |aad| {
            let nonce = aes_gcm_siv::aead::Nonce::<C>::from_slice(nonce);
            (self.keys[0].0)
                .encrypt_in_place_detached(nonce, aad, message)
                .expect("both ciphers seal any length a cookie holds")
        });
        sealed.extend_from_slice(&tag);
        let mut token = String::with_capacity((sealed.len() * 4).div_ceil(3));
        URL_SAFE_NO_PAD.encode_string(&sealed, &mut token);
        token
    }

    /// Opens `buffer` (`nonce ‖ ciphertext ‖ tag`) in place: where the plaintext is and
    /// which key opened it, or `None` (the buffer unchanged).
    fn open(&self, name: &str, buffer: &mut [u8]) -> Option<(std::ops::Range<usize>, Verified)> {
        let len = buffer.len();
        if len < Self::OVERHEAD {
            return None;
        }
        let (nonce, rest) = buffer.split_at_mut(Self::NONCE_LEN);
        let (sealed, tag) = rest.split_at_mut(rest.len() - Self::TAG_LEN);
        let nonce = aes_gcm_siv::aead::Nonce::<C>::from_slice(nonce);
        let tag = aes_gcm_siv::aead::Tag::<C>::from_slice(tag);
        let verified = self.with_associated_data(name, |aad| {
            self.keys.iter().find_map(|(key, role)| {
                let opened = key.decrypt_in_place_detached(nonce, aad, sealed, tag);
                opened.is_ok().then_some(*role)
            })
        })?;
        Some((Self::NONCE_LEN..len - Self::TAG_LEN, verified))
    }

    /// Runs `f` with the associated data for carrier `name`.
    fn with_associated_data<R>(&self, name: &str, f: impl FnOnce(&[u8]) -> R) -> R {
        let associated_data = || [self.domain, name.as_bytes()].concat();
        let cached = self.associated.get_or_init(|| associated_data().into());
        if cached[self.domain.len()..] == *name.as_bytes() {
            f(cached)
        } else {
            f(&associated_data())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::SessionId;
    use crate::record::{Metadata, Record};
    use crate::time::Timestamp;
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
                let sealer = Sealer::new(&Keys::new(Key::from_bytes(&[3; 32]).unwrap()), false);
                let token = sealer.seal("id", &contents).unwrap();
                let (opened, verified) = sealer.open("id", token.as_bytes()).unwrap();
                prop_assert_eq!(verified, Verified::Signing);
                prop_assert!(opened.id == contents.id);
                prop_assert!(opened.record == contents.record);
                prop_assert_eq!(opened.bound_at, contents.bound_at);
                prop_assert_eq!(token.len(), sealer.sealed_len(format::encode(&contents).unwrap().len()));
            }

            #[test]
            fn any_bytes_are_refused_without_panicking(bytes in vec(any::<u8>(), 0..300)) {
                let sealer = Sealer::new(&Keys::new(Key::from_bytes(&[3; 32]).unwrap()), false);
                prop_assert!(sealer.open("id", &bytes).is_err());
                prop_assert!(format::decode(&bytes).is_none() || bytes.first() == Some(&1));
            }
        }
    }

    #[test]
    fn sealed_len_is_exact() {
        for seal_v1 in [false, true] {
            let sealer = Sealer::new(&Keys::new(Key::from_bytes(&[1; 32]).unwrap()), seal_v1);
            for value_len in 0..10 {
                let contents = contents(value_len);
                let plaintext = format::encode(&contents).unwrap().len();
                let token = sealer.seal("id", &contents).unwrap();
                assert_eq!(token.len(), sealer.sealed_len(plaintext), "{value_len}");
            }
        }
    }

    /// Each format opens the other's tokens (a fleet upgrading from 0.1, which sealed
    /// version 1, and the setting's removal after it) and has them re-issued.
    #[test]
    fn either_format_opens_and_the_other_is_re_issued() {
        let keys = Keys::new(Key::from_bytes(&[4; 32]).unwrap());
        let (v2, v1) = (Sealer::new(&keys, false), Sealer::new(&keys, true));
        let contents = contents(20);
        let (by_v2, by_v1) = (
            v2.seal("id", &contents).unwrap(),
            v1.seal("id", &contents).unwrap(),
        );
        assert_eq!(
            by_v1.len(),
            by_v2.len() + 16,
            "XChaCha's nonce is 12 bytes longer"
        );
        for (sealer, token, verified) in [
            (&v2, &by_v2, Verified::Signing),
            (&v2, &by_v1, Verified::Retiring),
            (&v1, &by_v1, Verified::Signing),
            (&v1, &by_v2, Verified::Retiring),
        ] {
            let (opened, by) = sealer.open("id", token.as_bytes()).unwrap();
            assert!(opened.record == contents.record);
            assert_eq!(by, verified);
            // Bound to the carrier's name in both formats.
            assert_eq!(
                sealer.open("other", token.as_bytes()).unwrap_err(),
                Rejected::Forged
            );
        }
    }

    /// A token sealed by 0.1 (XChaCha20-Poly1305 under the `v1/token` key), built here
    /// the way 0.1 built it, opens.
    #[test]
    fn tokens_sealed_by_0_1_open() {
        use chacha20poly1305::aead::{Aead as _, Payload};
        use chacha20poly1305::XNonce;
        let key = Key::from_bytes(&[5; 32]).unwrap();
        let contents = contents(3);
        let plaintext = format::encode(&contents).unwrap();
        let cipher = XChaCha20Poly1305::new(&key.derive(b"tower-stateless/v1/token").into());
        let nonce = [9u8; 24];
        let aad = b"tower-stateless/v1/token\0id";
        let sealed = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &plaintext,
                    aad,
                },
            )
            .unwrap();
        let token = URL_SAFE_NO_PAD.encode([&nonce[..], &sealed].concat());
        let (opened, by) = Sealer::new(&Keys::new(key), false)
            .open("id", token.as_bytes())
            .unwrap();
        assert!(opened.id == contents.id && opened.record == contents.record);
        assert_eq!(by, Verified::Retiring);
    }
}
