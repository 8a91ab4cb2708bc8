//! What a session holds: any field name and value, any number of fields.

use std::time::Duration;

use super::fixture::{at, create, data, map};
use crate::store::{Applied, ChangeSet, SessionStore};

/// Field names and values come back byte for byte: the empty name, names that look like a
/// store's own reserved fields, Unicode, escapes, and a 100 kB value.
pub async fn values_survive_byte_for_byte<S: SessionStore>(store: &S) {
    let big = "7".repeat(100_000);
    let awkward = [
        ("", "\"empty key\""),
        (":meta-looking", "1"),
        ("::double", "2"),
        ("unicode ключ 🗝", "\"значение \\u0000 \\n\""),
        ("big", big.as_str()),
    ];
    let id = create(store, &awkward, None).await;
    assert_eq!(
        data(store, &id, at(Duration::ZERO)).await,
        Some(map(&awkward)),
        "fields come back exactly as created"
    );
    store.destroy(&id).await.expect("destroy failed");
}

/// Thousands of fields in one change set are applied (scripts must chunk what they unpack).
pub async fn large_change_sets<S: SessionStore>(store: &S) {
    let id = create(store, &[], None).await;
    let mut changes = ChangeSet::default();
    for n in 0..2500 {
        changes = changes.with_set(format!("f{n}"), n.to_string());
    }
    assert_eq!(
        store
            .apply(&id, &changes, at(Duration::ZERO))
            .await
            .expect("apply failed"),
        Applied::Saved,
        "apply setting 2500 fields"
    );
    let mut changes = ChangeSet::default().with_set("last", "1");
    for n in 0..1500 {
        changes = changes.with_removed(format!("f{n}"));
    }
    assert_eq!(
        store
            .apply(&id, &changes, at(Duration::ZERO))
            .await
            .expect("apply failed"),
        Applied::Saved,
        "apply removing 1500 fields"
    );
    let data = data(store, &id, at(Duration::ZERO))
        .await
        .expect("the session is still live");
    assert_eq!(data.len(), 1001, "1000 fields left, plus \"last\"");
    assert_eq!(
        data.get("f2499").map(String::as_str),
        Some("2499"),
        "a field set and not removed"
    );
    assert!(!data.contains_key("f0"), "a field set, then removed");
    store.destroy(&id).await.expect("destroy failed");
}
