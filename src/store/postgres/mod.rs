//! The second production store: sessions in PostgreSQL.
//!
//! One concept per file: `store.rs` the store, its builder and the per-session calls,
//! `sql.rs` the statements (every write to a session is one of them), `schema.rs` the
//! versioned migration run at connect, `sweeper.rs` the removal of expired rows, and
//! `error.rs` what a failure says (never a value, an ID or a password).

mod error;
mod schema;
mod sql;
mod store;
mod sweeper;

pub use self::store::{PostgresStore, PostgresStoreBuilder};
