//! Names derived from user names for what the shop keeps at rest (a user's uploads in
//! progress): HMAC-SHA256 under keys derived from `SESSION_KEYS`, so that whoever can
//! read Redis cannot confirm a guessed user name by hashing it.
//!
//! The crate derives its keys inside `Key` and exposes none, so the shop derives its own
//! (see [`derive`]). The signing key's name is written; the names under the other keys of
//! a rotation, and the plain SHA-256 name earlier versions wrote, are still read.

use std::fmt;
use std::sync::Arc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const LABEL: &[u8] = b"shop/v1/user-names";

/// HKDF-Expand-SHA256 of one block with `raw` as the pseudorandom key and `label` as the
/// info: the crate's own construction, under labels no crate purpose uses.
pub(crate) fn derive(raw: &[u8], label: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(raw).expect("HMAC takes a key of any length");
    mac.update(label);
    mac.update(&[1]);
    mac.finalize().into_bytes().into()
}

/// The keyed names of a user. Clones share the keys.
#[derive(Clone)]
pub struct UserDigests {
    /// The signing key's first: its name is written; all are read.
    macs: Arc<[Hmac<Sha256>]>,
}

impl UserDigests {
    /// Keys derived from `raw` (the session keys' bytes, the signing key first); `None`
    /// if there is none.
    pub fn from_key_bytes<K: AsRef<[u8]>>(raw: &[K]) -> Option<Self> {
        let macs: Vec<Hmac<Sha256>> = raw
            .iter()
            .map(|key| {
                <Hmac<Sha256> as Mac>::new_from_slice(&derive(key.as_ref(), LABEL))
                    .expect("HMAC takes a key of any length")
            })
            .collect();
        (!macs.is_empty()).then(|| Self { macs: macs.into() })
    }

    /// The name to write for `user`: hex HMAC under the signing key's derived key.
    pub fn current(&self, user: &str) -> String {
        hex_mac(&self.macs[0], user)
    }

    /// The names `user` may still have from before: under the other keys, then the
    /// plain SHA-256 of earlier versions.
    pub fn earlier(&self, user: &str) -> Vec<String> {
        let keyed = self.macs[1..].iter().map(|mac| hex_mac(mac, user));
        keyed
            .chain([hex(&Sha256::digest(user.as_bytes()))])
            .collect()
    }
}

fn hex_mac(mac: &Hmac<Sha256>, user: &str) -> String {
    let mut mac = mac.clone();
    mac.update(user.as_bytes());
    hex(&mac.finalize().into_bytes())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl fmt::Debug for UserDigests {
    /// How many keys, never a key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserDigests")
            .field("keys", &self.macs.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_keyed_and_earlier_names_are_known() {
        let (old, new) = ([1u8; 32], [2u8; 32]);
        let before = UserDigests::from_key_bytes(&[old]).unwrap();
        let rotated = UserDigests::from_key_bytes(&[new, old]).unwrap();
        let plain = hex(&Sha256::digest(b"ada"));
        assert_ne!(before.current("ada"), plain);
        assert_ne!(before.current("ada"), before.current("bob"));
        assert_ne!(rotated.current("ada"), before.current("ada"));
        assert_eq!(
            rotated.earlier("ada"),
            [before.current("ada"), plain.clone()]
        );
        assert_eq!(before.earlier("ada"), [plain]);
        assert_eq!(format!("{rotated:?}"), "UserDigests { keys: 2 }");
        assert!(UserDigests::from_key_bytes::<[u8; 32]>(&[]).is_none());
    }
}
