//! The calls the layer makes on its store, listed once. The list makes [`DynStore`], an
//! object-safe mirror of [`SessionStore`] (so that `Session` and `SessionLayer` carry no
//! store type parameter; boxing happens only on calls that do I/O anyway), its impl for
//! every store, and [`StoreHandle`]'s forwarders (each under the timeout, in a span,
//! counted).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::handle::StoreHandle;
use super::{Applied, Created, Cycled, Incremented, SessionStore, SessionSummary, Swapped};
use crate::error::{Error, StoreError};
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::record::{ChangeSet, Record};
use crate::time::Timestamp;

pub(crate) type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Makes, from one list of `fn name(args) -> Output [= session_store_method];`, the trait
/// [`DynStore`] (each method answering a boxed future of `Result<Output, StoreError>`),
/// its impl for every [`SessionStore`] (calling the `SessionStore` method of the same
/// name, or the one after `=`), and [`StoreHandle`]'s `async fn name(args) ->
/// Result<Output, Error>`, counted under the operation `"name"`. Arguments borrow for
/// `'a`, the lifetime of the call.
macro_rules! store_calls {
    ($(
        $(#[$doc:meta])*
        fn $name:ident($($arg:ident: $type:ty),* $(,)?) -> $output:ty $(= $method:ident)?;
    )*) => {
        /// The per-request half of [`SessionStore`], with boxed futures.
        pub(crate) trait DynStore: Send + Sync + 'static {
            $(
                fn $name<'a>(&'a self $(, $arg: $type)*)
                    -> BoxFuture<'a, Result<$output, StoreError>>;
            )*
        }

        impl<S: SessionStore> DynStore for S {
            $(
                fn $name<'a>(&'a self $(, $arg: $type)*)
                    -> BoxFuture<'a, Result<$output, StoreError>> {
                    Box::pin(store_calls!(@call self, $($method)? $name, $($arg),*))
                }
            )*
        }

        impl StoreHandle {
            $(
                $(#[$doc])*
                // `'a` is the lifetime the list's argument types name; a call without
                // arguments (`time`) would not need it.
                #[allow(clippy::needless_lifetimes)]
                pub(crate) async fn $name<'a>(&'a self $(, $arg: $type)*)
                    -> Result<$output, Error> {
                    self.call(stringify!($name), self.store.$name($($arg),*)).await
                }
            )*
        }
    };
    // The `SessionStore` method a `DynStore` method calls: the one named after `=`, else
    // its own name.
    (@call $store:expr, $method:ident $($_same_name:ident)?, $($arg:ident),*) => {
        SessionStore::$method($store $(, $arg)*)
    };
}

store_calls! {
    /// The stored record, shared with the store's cache when it keeps one.
    fn load(id: &'a HashedId, expiry: Expiry) -> Option<Arc<Record>> = load_shared;
    fn create(id: &'a HashedId, record: &'a Record, expiry: Expiry) -> Created;
    fn apply(id: &'a HashedId, changes: &'a ChangeSet, expiry: Expiry) -> Applied;
    fn touch(id: &'a HashedId, expiry: Expiry) -> Applied;
    fn cycle_id(
        old: &'a HashedId,
        new: &'a HashedId,
        changes: &'a ChangeSet,
        expiry: Expiry,
    ) -> Cycled;
    fn increment(id: &'a HashedId, field: &'a str, delta: i64, expiry: Expiry) -> Incremented;
    fn compare_and_set(
        id: &'a HashedId,
        field: &'a str,
        expected: Option<&'a str>,
        new: Option<&'a str>,
        expiry: Expiry,
    ) -> Swapped;
    fn destroy(id: &'a HashedId) -> ();
    fn destroy_many(ids: &'a [HashedId]) -> ();
    fn sessions_of_user(user_id: &'a str, expiry: Expiry) -> Vec<SessionSummary>;
    /// The store's clock, if it keeps one.
    fn time() -> Option<Timestamp>;
}
