//! The store conformance suite: the [`SessionStore`] contract as tests, for authors of
//! stores (feature `conformance`).
//!
//! Each case is a public `async fn` taking the store and panicking, with a message naming
//! the rule, if the store breaks it (a [`StoreError`](crate::store::StoreError) fails the
//! case too). [`conformance_tests!`](crate::conformance_tests) turns every case into its
//! own `#[tokio::test]` on a fresh store; [`all`] runs them in sequence on one store, for
//! stores whose setup is expensive. The suite uses only the public
//! [`store`](crate::store) API, so it checks exactly what the layer relies on.
//!
//! # Running it against your store
//!
//! In your crate's `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! tower-stateless = { version = "0.1", features = ["conformance"] }
//! tokio = { version = "1", features = ["macros", "rt-multi-thread"] }
//! ```
//!
//! and in a test file, e.g. `tests/conformance.rs`, say how to build a store:
//!
//! ```no_run
//! # use tower_stateless::MemoryStore as MyStore;
//! tower_stateless::conformance_tests!(async { MyStore::new() });
//! # fn main() {}
//! ```
//!
//! `cargo test` then lists one test per case (`create_and_load`, `writes_never_revive`,
//! ...). If a store is expensive to set up, run the whole suite on one instead:
//!
//! ```no_run
//! # use tower_stateless::MemoryStore as MyStore;
//! use std::sync::Arc;
//!
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn my_store_conforms() {
//!     let store = MyStore::new(); // e.g. connect to a server started for the test
//!     tower_stateless::conformance::all(Arc::new(store)).await;
//! }
//! # fn main() {}
//! ```
//!
//! # What the cases assume
//!
//! * They use fresh random IDs and user names, so they can run against a server shared
//!   with other tests, other runs, or each other. They destroy most of what they create;
//!   a few expired sessions stay behind for the store's own expiry to remove.
//! * They pass explicit [`Expiry`](crate::store::Expiry) values at fixed instants (the
//!   sessions are created in 2027, with a one-hour idle timeout and a ten-hour absolute
//!   lifetime), so expiry is tested without waiting: a store must judge whether a session
//!   is live by the `Expiry` it is given, never by its own clock.
//! * [`concurrent_applies_all_land`] spawns tasks on the current tokio runtime.

mod atomic;
mod concurrency;
mod data;
mod expiry;
mod fixture;
mod lifecycle;
mod random;
mod users;

use std::sync::Arc;

use crate::store::SessionStore;

pub use self::atomic::{
    compare_and_set_swaps_only_the_expected_value, concurrent_increments_all_count,
    deferred_increments_are_all_or_nothing, increments_add_exactly,
};
pub use self::concurrency::{
    concurrent_applies_all_land, log_out_everywhere_catches_a_moving_session,
};
pub use self::data::{large_change_sets, values_survive_byte_for_byte};
pub use self::expiry::idle_and_absolute_expiry;
pub use self::lifecycle::{
    apply_changes_only_what_changed, create_and_load, cycle_id_moves_the_session, ping_answers,
    touch_refreshes_the_idle_timeout, writes_never_revive,
};
pub use self::random::random_operations_keep_the_invariants;
pub use self::users::{bindings_are_ordered, destroy_many_deletes_exactly_those, user_index};

/// Runs every case on `store`, in sequence.
///
/// For stores whose setup is expensive; otherwise prefer
/// [`conformance_tests!`](crate::conformance_tests), which reports each case as its own
/// test.
pub async fn all<S: SessionStore>(store: Arc<S>) {
    // The cases are listed once, in `conformance_tests!`.
    crate::conformance_tests!(@cases run_all store);
}

/// Defines one `#[tokio::test]` per case of the [conformance suite](crate::conformance),
/// each on a fresh store.
///
/// The argument is an expression whose value is a future of the store: an `async` block
/// or a call to an `async fn`. It is evaluated anew in every test.
///
/// ```no_run
/// use tower_stateless::MemoryStore;
///
/// async fn store() -> MemoryStore {
///     MemoryStore::new()
/// }
///
/// tower_stateless::conformance_tests!(store());
/// # fn main() {}
/// ```
///
/// The tests are named after the cases ([`create_and_load`](crate::conformance::create_and_load),
/// ...) and defined where the macro is invoked; invoke it in a module of its own to group
/// them, or to test two stores in one file. The calling crate needs `tokio` with the
/// `macros` and `rt-multi-thread` features:
/// [`concurrent_applies_all_land`](crate::conformance::concurrent_applies_all_land) runs on
/// a multi-threaded runtime, so that its writers also run in parallel.
#[macro_export]
#[cfg_attr(docsrs, doc(cfg(feature = "conformance")))]
macro_rules! conformance_tests {
    // Internal: every case, in the order `conformance::all` runs them, listed once and
    // handed to the arm `@$then`: those that take `&S`, then those that take `Arc<S>`
    // (they spawn tasks).
    (@cases $then:ident $($input:tt)*) => {
        $crate::conformance_tests!(@$then $($input)*;
            by_ref [
                ping_answers,
                create_and_load,
                apply_changes_only_what_changed,
                writes_never_revive,
                idle_and_absolute_expiry,
                touch_refreshes_the_idle_timeout,
                cycle_id_moves_the_session,
                user_index,
                bindings_are_ordered,
                destroy_many_deletes_exactly_those,
                values_survive_byte_for_byte,
                large_change_sets,
                increments_add_exactly,
                compare_and_set_swaps_only_the_expected_value,
                deferred_increments_are_all_or_nothing
            ]
            shared [
                concurrent_applies_all_land,
                concurrent_increments_all_count,
                log_out_everywhere_catches_a_moving_session,
                random_operations_keep_the_invariants
            ]
        );
    };
    // Internal: one test per case, each on a fresh store; those that take `Arc<S>` on a
    // multi-threaded runtime.
    (@tests $store:expr; by_ref [$($by_ref:ident),+] shared [$($shared:ident),+]) => {
        $(
            #[::tokio::test]
            async fn $by_ref() {
                let store = $store.await;
                $crate::conformance::$by_ref(&store).await;
            }
        )+
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $shared() {
                let store = ::std::sync::Arc::new($store.await);
                $crate::conformance::$shared(store).await;
            }
        )+
    };
    // Internal: the body of `conformance::all`, every case in sequence on `$store`.
    (@run_all $store:ident; by_ref [$($by_ref:ident),+] shared [$($shared:ident),+]) => {
        $($crate::conformance::$by_ref(&*$store).await;)+
        $($crate::conformance::$shared($store.clone()).await;)+
    };
    ($store:expr $(,)?) => {
        $crate::conformance_tests!(@cases tests $store);
    };
}
