//! What the cases build on: fresh random IDs, records, and expiries at fixed instants.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::store::{Created, Expiry, HashedId, Metadata, Record, SessionStore, Timestamp};

/// The idle timeout every case uses.
pub(super) const IDLE: Duration = Duration::from_secs(3600);
/// The absolute lifetime every case uses.
pub(super) const ABSOLUTE: Duration = Duration::from_secs(10 * 3600);
/// When every case's sessions are created: a fixed instant, not the wall clock, so that
/// expiry is tested without waiting.
pub(super) const T0: Timestamp = Timestamp::from_millis(1_800_000_000_000);

/// The expiry rules `after` past [`T0`].
pub(super) fn at(after: Duration) -> Expiry {
    Expiry::new(T0.saturating_add(after), IDLE, ABSOLUTE)
}

/// 32 random bytes in base64url: 43 characters, shaped like a real [`HashedId`].
pub(super) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the OS random source failed");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// An ID no other case (nor another run on a shared server) uses.
pub(super) fn fresh_id() -> HashedId {
    HashedId::from_stored(random_token())
}

/// A user ID no other case uses, starting with `name`.
pub(super) fn fresh_user(name: &str) -> String {
    format!("{name}-{}", random_token())
}

/// Field name -> JSON text.
pub(super) fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A record created at [`T0`] holding `pairs`, bound to `user`.
pub(super) fn record(pairs: &[(&str, &str)], user: Option<&str>) -> Record {
    let mut metadata = Metadata::new(T0);
    metadata.user_id = user.map(str::to_owned);
    Record::new(map(pairs), metadata)
}

/// Creates a session under a fresh ID at [`T0`] and returns the ID.
pub(super) async fn create<S: SessionStore>(
    store: &S,
    pairs: &[(&str, &str)],
    user: Option<&str>,
) -> HashedId {
    let id = fresh_id();
    let created = store
        .create(&id, &record(pairs, user), at(Duration::ZERO))
        .await
        .expect("create failed");
    assert_eq!(created, Created::Saved, "create under a fresh ID");
    id
}

/// The data of session `id` if it is live under `expiry`.
pub(super) async fn data<S: SessionStore>(
    store: &S,
    id: &HashedId,
    expiry: Expiry,
) -> Option<HashMap<String, String>> {
    store
        .load(id, expiry)
        .await
        .expect("load failed")
        .map(|record| record.data)
}
