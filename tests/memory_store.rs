//! `MemoryStore` against the store conformance suite: one test per case.

tower_stateless::conformance_tests!(async { tower_stateless::MemoryStore::new() });
