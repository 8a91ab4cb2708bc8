//! What a store's `connect` says when a step of it fails: the step, where, and why.
//! Shared by the PostgreSQL and Redis stores, so both name a failed setup alike.

use std::error::Error as StdError;
use std::fmt;

use crate::error::StoreError;

/// A store could not be set up: what it was doing, and where.
#[derive(Debug)]
struct ConnectFailed {
    step: &'static str,
    /// The server, described without credentials ("PostgreSQL at postgres://app@db/app").
    target: String,
    cause: Box<dyn StdError + Send + Sync>,
}

/// [`ConnectFailed`] at `step` on `target` (which must hold no password), as a
/// [`StoreError`] whose source is `cause`.
pub(crate) fn connect_failed(
    step: &'static str,
    target: impl Into<String>,
    cause: impl Into<Box<dyn StdError + Send + Sync>>,
) -> StoreError {
    StoreError::backend(ConnectFailed {
        step,
        target: target.into(),
        cause: cause.into(),
    })
}

impl fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not {} ({})", self.step, self.target)
    }
}

impl StdError for ConnectFailed {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        Some(&*self.cause)
    }
}
