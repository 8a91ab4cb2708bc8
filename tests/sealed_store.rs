//! `Sealed` (encryption at rest): the store conformance suite on `MemoryStore` and on a
//! real Redis, and what only sealing promises: nothing readable at rest, nothing movable
//! or forgeable, key rotation.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

use tower_stateless::{Key, Keys, MemoryStore, Sealed};

fn keys() -> Keys {
    Keys::new(Key::from_bytes(&[7; 32]).unwrap())
}

/// Every field a counter: integers stay plain, increments are the store's own.
mod all_counters {
    tower_stateless::conformance_tests!(async {
        tower_stateless::Sealed::new(tower_stateless::MemoryStore::new(), &super::keys())
            .with_counters("")
    });
}

/// No counters: every value sealed, increments and compare-and-set emulated.
mod all_sealed {
    tower_stateless::conformance_tests!(async {
        tower_stateless::Sealed::new(tower_stateless::MemoryStore::new(), &super::keys())
    });
}

/// During a rotation: sealing under the new key, opening under both.
mod rotating {
    tower_stateless::conformance_tests!(async {
        let keys = tower_stateless::Keys::new(tower_stateless::Key::from_bytes(&[8; 32]).unwrap())
            .with_verify_only(tower_stateless::Key::from_bytes(&[7; 32]).unwrap());
        tower_stateless::Sealed::new(tower_stateless::MemoryStore::new(), &keys).with_counters("n")
    });
}

#[test]
fn debug_shows_no_key() {
    let text = format!("{:?}", Sealed::new(MemoryStore::new(), &keys()));
    assert!(
        text.contains("Sealed") && text.contains("keys: 1"),
        "{text}"
    );
}
