//! Session IDs and expiry rules for tests that call a store directly. Include it with
//! `#[path = "support/sessions.rs"] mod sessions;`.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower_stateless::store::{Expiry, HashedId, Timestamp};

/// The rules at this moment: 30 minutes idle, 12 hours in all.
pub fn now() -> Expiry {
    Expiry::new(
        Timestamp::from_system_time(SystemTime::now()),
        Duration::from_secs(1800),
        Duration::from_secs(12 * 3600),
    )
}

/// A hashed ID as the layer makes them: SHA-256 of a fresh 24-byte ID, base64url.
pub fn new_id() -> HashedId {
    let mut bytes = [0u8; 24];
    getrandom::fill(&mut bytes).unwrap();
    let raw = URL_SAFE_NO_PAD.encode(bytes);
    HashedId::from_stored(URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes())))
}
