//! `WrappedStore` against tower-stateless's conformance suite, used as any other crate
//! would: one test per case, and once more the whole suite in sequence on one store.

use std::sync::Arc;

use outside_store::WrappedStore;

tower_stateless::conformance_tests!(async { WrappedStore::default() });

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_suite_in_sequence() {
    tower_stateless::conformance::all(Arc::new(WrappedStore::default())).await;
}
