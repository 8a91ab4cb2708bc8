//! `MemoryStore` against the store conformance suite: one test per case.

tower_stateless::conformance_tests!(async { tower_stateless::MemoryStore::new() });

#[path = "logins/mod.rs"]
mod logins;

/// Two simultaneous logins of one user under a limit of one session: one stays, every
/// time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_under_a_limit_of_one_leave_one_session() {
    let store = tower_stateless::MemoryStore::new();
    assert_eq!(logins::rounds_left_without_a_session(store, 100).await, 0);
}
