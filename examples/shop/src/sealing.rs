//! Upload bytes sealed at rest when session data is (`SESSION_ENCRYPT`): every chunk kept
//! in Redis and every part sent to object storage is XChaCha20-Poly1305 ciphertext, the
//! cipher `tower_stateless::Sealed` seals session values with.
//!
//! The crate derives its keys inside `Key` and exposes none, so the shop derives its own
//! from the same `SESSION_KEYS` (`crate::digests::derive`, label `shop/v1/uploads`). The signing key's derived key seals; every key's opens, so a key
//! rotation keeps uploads in progress readable. Each piece is bound, as associated data,
//! to its upload and its position: a piece moved to another upload or place fails to open.

use std::fmt;
use std::sync::Arc;

use chacha20poly1305::aead::{Aead as _, KeyInit as _, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::digests::derive;

const LABEL: &[u8] = b"shop/v1/uploads";
const AD: &[u8] = b"shop/v1/upload\0";
const NONCE_LEN: usize = 24;

/// The keys that seal and open upload pieces. Clones share them.
#[derive(Clone)]
pub struct UploadSeal {
    /// The signing key's first: it seals; all open.
    keys: Arc<[XChaCha20Poly1305]>,
}

impl UploadSeal {
    /// Bytes a sealed piece has beyond its plaintext: the nonce and the tag.
    pub const OVERHEAD: usize = NONCE_LEN + 16;

    /// Keys derived from `raw` (the session keys' bytes, the signing key first); `None`
    /// if there is none.
    pub fn from_key_bytes<K: AsRef<[u8]>>(raw: &[K]) -> Option<Self> {
        let keys: Vec<XChaCha20Poly1305> = raw
            .iter()
            .map(|key| XChaCha20Poly1305::new(&derive(key.as_ref(), LABEL).into()))
            .collect();
        (!keys.is_empty()).then(|| Self { keys: keys.into() })
    }

    /// nonce ‖ XChaCha20-Poly1305(`plain`), bound to piece `n` of `upload`.
    pub fn seal(&self, upload: &str, n: u32, plain: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let aad = associated_data(upload, n);
        let sealed = self.keys[0]
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: &aad,
                },
            )
            .expect("XChaCha20-Poly1305 seals any chunk size the shop takes");
        [&nonce[..], &sealed].concat()
    }

    /// The plaintext of piece `n` of `upload`, if one of the keys opens it there.
    pub fn open(&self, upload: &str, n: u32, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < Self::OVERHEAD {
            return None;
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let aad = associated_data(upload, n);
        self.keys.iter().find_map(|key| {
            let payload = Payload {
                msg: rest,
                aad: &aad,
            };
            key.decrypt(XNonce::from_slice(nonce), payload).ok()
        })
    }
}

fn associated_data(upload: &str, n: u32) -> Vec<u8> {
    [AD, upload.as_bytes(), b"\0", &n.to_be_bytes()].concat()
}

impl fmt::Debug for UploadSeal {
    /// How many keys, never a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadSeal")
            .field("keys", &self.keys.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_open_only_where_they_were_sealed_and_under_a_listed_key() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let seal = UploadSeal::from_key_bytes(&[old]).unwrap();
        let plain = b"the bytes of chunk 3".repeat(100);
        let sealed = seal.seal("up-1", 3, &plain);
        assert_eq!(sealed.len(), plain.len() + UploadSeal::OVERHEAD);
        assert!(!sealed.windows(20).any(|w| w == &plain[..20]));
        assert_eq!(seal.open("up-1", 3, &sealed).unwrap(), plain);
        assert_eq!(seal.open("up-1", 4, &sealed), None, "another place");
        assert_eq!(seal.open("up-2", 3, &sealed), None, "another upload");
        let mut changed = sealed.clone();
        changed[30] ^= 1;
        assert_eq!(seal.open("up-1", 3, &changed), None, "changed");
        assert_eq!(seal.open("up-1", 3, &sealed[..20]), None, "too short");
        // Rotated: the new key seals, the old one still opens.
        let rotated = UploadSeal::from_key_bytes(&[new, old]).unwrap();
        assert_eq!(rotated.open("up-1", 3, &sealed).unwrap(), plain);
        let resealed = rotated.seal("up-1", 3, &plain);
        assert_eq!(seal.open("up-1", 3, &resealed), None, "the old key alone");
        assert_eq!(format!("{rotated:?}"), "UploadSeal { keys: 2 }");
        assert!(UploadSeal::from_key_bytes::<[u8; 32]>(&[]).is_none());
    }
}
