//! What a PostgreSQL failure says. A server error's message, detail and context may
//! quote a value or a key ("Key (id)=(…) already exists"), so only its SQLSTATE code and
//! a fixed description of its class are kept; errors that are not the server's (refused
//! connection, closed socket, timeout) carry no value and keep their text.

use std::error::Error as StdError;
use std::fmt;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::error::StoreError;

/// A failed statement or connection, as a [`StoreError`].
pub(super) fn backend(error: tokio_postgres::Error) -> StoreError {
    StoreError::backend(Database::from(error))
}

/// A connection could not be taken from the pool (or made for it).
pub(super) fn pool(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => backend(error),
        other => StoreError::backend(other.to_string()),
    }
}

/// A stored row that does not decode.
pub(super) fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("PostgreSQL session row: {what}"))
}

/// Whether `error` is the server saying "this unique key is taken".
pub(super) fn is_unique_violation(error: &tokio_postgres::Error) -> bool {
    error.code() == Some(&SqlState::UNIQUE_VIOLATION)
}

/// A PostgreSQL error without anything it may quote.
#[derive(Debug)]
pub(super) struct Database {
    /// The server's SQLSTATE, for a server error.
    code: Option<String>,
    /// A connection-level error's own text (it quotes no value).
    text: Option<String>,
}

impl From<tokio_postgres::Error> for Database {
    fn from(error: tokio_postgres::Error) -> Self {
        match error.code() {
            Some(code) => Self {
                code: Some(code.code().to_owned()),
                text: None,
            },
            None => Self {
                code: None,
                text: Some(error.to_string()),
            },
        }
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.code, &self.text) {
            (Some(code), _) => write!(
                f,
                "PostgreSQL answered with error {code} ({})",
                describe(code)
            ),
            (None, Some(text)) => write!(f, "PostgreSQL connection failed: {text}"),
            (None, None) => f.write_str("PostgreSQL failed"),
        }
    }
}

impl StdError for Database {}

/// The class of a SQLSTATE, as the PostgreSQL manual's appendix A names it.
fn describe(code: &str) -> &'static str {
    match code.get(..2) {
        Some("08") => "connection exception",
        Some("22") => "data exception",
        Some("23") => "integrity constraint violation",
        Some("25") => "invalid transaction state",
        Some("28") => "invalid authorization",
        Some("3D") => "invalid database name",
        Some("3F") => "invalid schema name",
        Some("40") => "transaction rollback",
        Some("42") => "syntax error or access rule violation (missing table or privilege?)",
        Some("53") => "insufficient resources",
        Some("57") => "operator intervention (server shutting down or restarting?)",
        Some("58") => "system error",
        _ => "see the PostgreSQL manual, appendix A",
    }
}

/// [`PostgresStore::connect`](super::PostgresStore) failed at `step` on `target` (host,
/// port and database; never the password).
pub(super) fn connect_failed(
    step: &'static str,
    target: &str,
    cause: impl Into<Box<dyn StdError + Send + Sync>>,
) -> StoreError {
    crate::store::connect_failed(step, format!("PostgreSQL at {target}"), cause)
}
