//! Error types: configuration, store, and what a handler sees.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// A signing key could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than [`MIN_KEY_LEN`](crate::MIN_KEY_LEN) bytes.
    TooShort {
        /// Length of the rejected key, in bytes.
        len: usize,
    },
    /// The key text is not valid base64.
    NotBase64,
    /// A key list held no key.
    Empty,
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "session key is {len} bytes; at least {} are required",
                crate::MIN_KEY_LEN
            ),
            Self::NotBase64 => f.write_str("session key is not valid base64"),
            Self::Empty => f.write_str("no session key given"),
        }
    }
}

impl StdError for KeyError {}

/// A [`SessionStore`](crate::SessionStore) operation failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or refused the operation.
    Backend(Arc<dyn StdError + Send + Sync>),
    /// A stored record could not be decoded.
    Corrupt(String),
}

impl StoreError {
    /// Wraps any backend error.
    pub fn backend(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(Arc::from(error.into()))
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Backend(_) => f.write_str("session store backend failed"),
            Self::Corrupt(why) => write!(f, "stored session is corrupt: {why}"),
        }
    }
}

impl StdError for StoreError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Backend(error) => Some(&**error),
            Self::Corrupt(_) => None,
        }
    }
}

/// Why a session operation failed.
///
/// Any store failure during a request also makes the layer answer 503 with
/// `Retry-After` (or gRPC `UNAVAILABLE`), whatever the handler returned: a handler
/// that swallows this error still cannot log a user out or acknowledge an unsaved change.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The store failed.
    Store(StoreError),
    /// The store did not answer within the layer's timeout.
    Timeout(Duration),
    /// A value could not be serialized or deserialized.
    Serde(serde_json::Error),
    /// The OS random source failed while generating a session ID.
    Random(getrandom::Error),
    /// The session was destroyed (or expired) while this request was running, so its
    /// changes were dropped rather than reviving it.
    Ended,
}

impl Error {
    /// A copy of a failure that must turn the response into a 503, for the layer to keep.
    pub(crate) fn copy_if_unavailable(&self) -> Option<Self> {
        match self {
            Self::Store(error) => Some(Self::Store(error.clone())),
            Self::Timeout(limit) => Some(Self::Timeout(*limit)),
            Self::Random(error) => Some(Self::Random(*error)),
            Self::Serde(_) | Self::Ended => None,
        }
    }

    /// Whether the request should be answered as "service unavailable".
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(_) | Self::Timeout(_) | Self::Random(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Store(_) => f.write_str("session store failed"),
            Self::Timeout(limit) => write!(f, "session store did not answer within {limit:?}"),
            Self::Serde(_) => f.write_str("session value could not be (de)serialized"),
            Self::Random(_) => f.write_str("could not generate a session ID"),
            Self::Ended => f.write_str("the session ended while the request was running"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Store(error) => Some(error),
            Self::Serde(error) => Some(error),
            Self::Random(error) => Some(error),
            Self::Timeout(_) | Self::Ended => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}
