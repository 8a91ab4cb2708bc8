//! `MemoryStore` against the store conformance suite.

mod conformance;

#[tokio::test]
async fn memory_store_conforms() {
    conformance::run(std::sync::Arc::new(tower_stateless::MemoryStore::new())).await;
}
