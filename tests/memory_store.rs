//! `MemoryStore` against the store conformance suite.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

mod conformance;

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(std::sync::Arc::new(tower_stateless::MemoryStore::new())).await;
}
