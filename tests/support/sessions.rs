//! Session IDs and expiry rules for tests that call a store directly. Include it with
//! `#[path = "support/sessions.rs"] mod sessions;`.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower_stateless::store::{
    Created, Expiry, HashedId, Metadata, Record, SessionStore, Timestamp,
};

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

/// One new session per user (`user-0`, `user-1`, ...), bound to that user, holding the
/// counter `n` = 0.
pub async fn sessions_with_a_counter(store: &impl SessionStore, users: usize) -> Vec<HashedId> {
    let mut ids = Vec::with_capacity(users);
    for user in 0..users {
        let expiry = now();
        let mut metadata = Metadata::new(expiry.now);
        metadata.user_id = Some(format!("user-{user}"));
        let record = Record::new([("n".to_owned(), "0".to_owned())].into(), metadata);
        let id = new_id();
        assert_eq!(
            store.create(&id, &record, expiry).await.unwrap(),
            Created::Saved
        );
        ids.push(id);
    }
    ids
}

/// After traffic that `acknowledged` increments of each session's counter: how many
/// sessions are gone (their users logged out), and how many acknowledged increments the
/// counters lack.
pub async fn logged_out_and_lost(
    store: &impl SessionStore,
    ids: &[HashedId],
    acknowledged: impl IntoIterator<Item = i64>,
) -> (usize, i64) {
    let (mut logged_out, mut lost) = (0, 0);
    for (id, acknowledged) in ids.iter().zip(acknowledged) {
        match store.load(id, now()).await.unwrap() {
            None => logged_out += 1,
            Some(record) => {
                let stored: i64 = record.data["n"].parse().unwrap();
                lost += (acknowledged - stored).max(0);
            }
        }
    }
    (logged_out, lost)
}
