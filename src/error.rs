//! What a handler sees when a session operation fails, and what store authors return.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

type Cause = Arc<dyn StdError + Send + Sync>;

/// Why a session operation failed: see [`kind`](Self::kind), and
/// [`source`](StdError::source) for the underlying cause.
///
/// Any store failure during a request also makes the layer answer 503 with
/// `Retry-After` (or gRPC `UNAVAILABLE`), whatever the handler returned: a handler
/// that swallows this error still cannot log a user out or acknowledge an unsaved change.
///
/// Cheap to clone. `Debug` and `Display` never show session values, keys or IDs.
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    /// Only for [`ErrorKind::Timeout`].
    limit: Option<Duration>,
    cause: Option<Cause>,
}

/// The kinds of [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The store failed (unreachable, refused the call, or held a corrupt record).
    Store,
    /// The store did not answer within the layer's timeout.
    Timeout,
    /// A value could not be serialized, or a stored value could not be deserialized
    /// into the requested type.
    Serialization,
    /// The operating system's random source failed while generating a session ID.
    Random,
    /// The session was destroyed (or expired) while this request was running, so its
    /// changes were dropped rather than reviving it.
    Ended,
    /// An increment met a stored value that is not an integer; nothing was written.
    NotAnInteger,
    /// An increment's result would not fit in an `i64`; nothing was written.
    Overflow,
    /// [`Session::update`](crate::Session::update) found the key changed under it on
    /// every attempt; nothing was written.
    Contended,
    /// The session would pass its size bound
    /// ([`with_max_session_size`](crate::SessionLayerBuilder::with_max_session_size)), or in
    /// token mode no longer fit in its cookie (the whole `Set-Cookie`
    /// value at most the budget, 4096 bytes by default); nothing of the change was written. Answered
    /// 413 through axum and by the default failure responses.
    TooLarge,
}

impl ErrorKind {
    /// Whether the request should be answered as "service unavailable" (503).
    pub fn is_unavailable(self) -> bool {
        matches!(self, Self::Store | Self::Timeout | Self::Random)
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, cause: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self {
            kind,
            limit: None,
            cause: Some(Arc::from(cause.into())),
        }
    }

    /// A (de)serialization failure. serde_json's message quotes the offending value
    /// ("invalid type: string \"alice\", expected u32"), so only its category and
    /// position are kept: the error can be logged, even with its causes, and shows no
    /// session value.
    pub(crate) fn serde(error: serde_json::Error) -> Self {
        Self::new(
            ErrorKind::Serialization,
            JsonError {
                category: error.classify(),
                line: error.line(),
                column: error.column(),
            },
        )
    }

    pub(crate) fn of_kind(kind: ErrorKind) -> Self {
        Self {
            kind,
            limit: None,
            cause: None,
        }
    }

    pub(crate) fn timeout(limit: Duration) -> Self {
        Self {
            limit: Some(limit),
            ..Self::of_kind(ErrorKind::Timeout)
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// Whether the request should be answered as "service unavailable" (503).
    pub fn is_unavailable(&self) -> bool {
        self.kind.is_unavailable()
    }

    /// The error and every cause under it, `": "`-separated, for logs. A cause that
    /// only repeats the text before it (redis-rs's I/O errors show their source's
    /// message, then give it as the source) is said once.
    pub(crate) fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut cause = self.source();
        while let Some(error) = cause {
            let message = error.to_string();
            if !text.ends_with(&message) {
                text.push_str(": ");
                text.push_str(&message);
            }
            cause = error.source();
        }
        text
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.kind, self.limit) {
            (ErrorKind::Store, _) => f.write_str("session store failed"),
            (ErrorKind::Timeout, Some(limit)) => {
                write!(f, "session store did not answer within {limit:?}")
            }
            (ErrorKind::Timeout, None) => f.write_str("session store did not answer in time"),
            (ErrorKind::Serialization, _) => {
                f.write_str("session value could not be (de)serialized")
            }
            (ErrorKind::Random, _) => f.write_str("could not generate a session ID"),
            (ErrorKind::Ended, _) => f.write_str("the session ended while the request was running"),
            (ErrorKind::NotAnInteger, _) => {
                f.write_str("a session value to increment is not an integer")
            }
            (ErrorKind::Overflow, _) => f.write_str("a session increment would overflow"),
            (ErrorKind::TooLarge, _) => {
                f.write_str(
                    "the session would pass its size bound (in token mode: would not fit in its cookie)",
                )
            }
            (ErrorKind::Contended, _) => {
                f.write_str("a session value kept changing during a read-modify-write")
            }
        }
    }
}

impl fmt::Debug for Error {
    // The cause's own `Debug` may quote a value (serde_json does): show only its type of failure.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("has_cause", &self.cause.is_some())
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.cause
            .as_deref()
            .map(|cause| cause as &(dyn StdError + 'static))
    }
}

impl From<crate::store::IncrementError> for Error {
    fn from(error: crate::store::IncrementError) -> Self {
        Self::of_kind(match error {
            crate::store::IncrementError::NotAnInteger => ErrorKind::NotAnInteger,
            crate::store::IncrementError::Overflow => ErrorKind::Overflow,
        })
    }
}

impl From<StoreError> for Error {
    fn from(error: StoreError) -> Self {
        Self::new(ErrorKind::Store, error)
    }
}

/// What went wrong in serde_json, without its message (which may quote a value).
#[derive(Debug)]
struct JsonError {
    category: serde_json::error::Category,
    line: usize,
    column: usize,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use serde_json::error::Category;
        let what = match self.category {
            Category::Io => "an I/O error",
            Category::Syntax => "invalid JSON",
            Category::Data => "JSON of another type or shape than expected",
            Category::Eof => "truncated JSON",
        };
        match self.line {
            // Serializing has no position.
            0 => f.write_str(what),
            line => write!(f, "{what} at line {line}, column {}", self.column),
        }
    }
}

impl StdError for JsonError {}

/// A signing key could not be used.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeyError {
    /// The key is shorter than [`Key::MIN_LEN`](crate::Key::MIN_LEN) bytes.
    TooShort {
        /// Length of the rejected key, in bytes.
        len: usize,
    },
    /// The key text is not valid base64.
    NotBase64,
    /// A key list held no key.
    Empty,
    /// A key list's first key, the signing key, is marked `upcoming:` or `retiring:`.
    MarkedSigningKey,
    /// The key text is hexadecimal (`openssl rand -hex`): read as base64 it would be
    /// fewer bytes, of low entropy.
    Hex,
    /// The decoded key does not look random: all printable text (a password or an
    /// encoded string) or few distinct bytes.
    NotRandom,
    /// A key of a list was rejected.
    InList {
        /// The key's position in the list, from 1.
        position: usize,
        /// Why it was rejected.
        error: Box<KeyError>,
    },
}

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort { len } => write!(
                f,
                "session key is {len} bytes; at least {} are required ({MAKE_KEY})",
                crate::Key::MIN_LEN
            ),
            Self::NotBase64 => write!(f, "session key is not valid base64 ({MAKE_KEY})"),
            Self::Empty => write!(f, "no session key given ({MAKE_KEY})"),
            Self::MarkedSigningKey => {
                f.write_str("the first session key signs: it cannot be upcoming or retiring")
            }
            Self::Hex => write!(
                f,
                "session key looks like hex (openssl rand -hex), but keys are base64 ({MAKE_KEY})"
            ),
            Self::NotRandom => write!(
                f,
                "session key does not look random: it decodes to printable text or repeated \
                 bytes ({MAKE_KEY})"
            ),
            Self::InList { position, error } => write!(f, "key {position} of the list: {error}"),
        }
    }
}

/// How to make a good key, in every message about a bad one.
const MAKE_KEY: &str = "make one with `openssl rand -base64 32`";

impl StdError for KeyError {}

/// A [`SessionStore`](crate::store::SessionStore) operation failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached or refused the operation.
    Backend(Cause),
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

/// A setting the layer (or a store) cannot work with, reported when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cookie name is empty or not an RFC 6265 token (letters, digits and
    /// ``!#$%&'*+-.^_`|~``).
    CookieName,
    /// The cookie path does not start with `/`, or holds a control character or `;`.
    CookiePath,
    /// The cookie domain is empty, or holds a space, a control character or `;`.
    CookieDomain,
    /// The cookie name's prefix (`__Host-` or `__Secure-`, in any case) asks for
    /// attributes the settings do not have, so browsers would drop the cookie: `__Secure-`
    /// needs `Secure`; `__Host-` needs `Secure`, `Path=/` and no `Domain`.
    CookiePrefix,
    /// This duration setting is zero.
    ZeroDuration(&'static str),
    /// The idle timeout is longer than the absolute lifetime.
    IdleExceedsAbsolute,
    /// A store's key prefix holds `{` or `}`, which would change Redis Cluster hash tags.
    KeyPrefix,
    /// The limit on sessions per user is zero.
    ZeroSessionLimit,
    /// The bound on a value's size is zero or larger than the bound on a session's.
    SizeLimits,
    /// Token mode was given a setting only a store can honour (it lists no user's
    /// sessions): the setting is named.
    NeedsStore(&'static str),
    /// Token mode's size budget (`TokenSessions::with_max_cookie_len`, the whole
    /// `Set-Cookie` value) is above what browsers keep (`max`, 4096 bytes) or
    /// below what an empty session takes with the cookie's name and attributes (`min`).
    TokenBudget {
        /// The budget set.
        budget: usize,
        /// The least budget an empty session fits in, with these cookie settings.
        min: usize,
        /// The most: what browsers keep.
        max: usize,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CookieName => f.write_str("the cookie name must be a non-empty RFC 6265 token"),
            Self::CookiePath => f.write_str(
                "the cookie path must start with '/' and hold no control character or ';'",
            ),
            Self::CookieDomain => f.write_str(
                "the cookie domain must be non-empty and hold no space, control character or ';'",
            ),
            Self::CookiePrefix => f.write_str(
                "a __Secure- cookie name needs Secure; a __Host- name needs Secure, Path=/ and no Domain",
            ),
            Self::ZeroDuration(setting) => write!(f, "the {setting} must not be zero"),
            Self::IdleExceedsAbsolute => {
                f.write_str("the idle timeout must not exceed the absolute lifetime")
            }
            Self::KeyPrefix => f.write_str("the key prefix must not hold '{' or '}'"),
            Self::ZeroSessionLimit => f.write_str("the limit on sessions per user must not be zero"),
            Self::SizeLimits => f.write_str(
                "the bound on a value's size must be at least 1 byte and at most the session's",
            ),
            Self::NeedsStore(setting) => write!(f, "token mode has no store for {setting}"),
            Self::TokenBudget { budget, min, max } => write!(
                f,
                "the token-mode cookie budget of {budget} bytes (the whole Set-Cookie value) \
                 must be at least {min} (an empty session with this cookie's name and \
                 attributes) and at most {max} (what browsers keep)"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_names_every_cause() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = Error::from(StoreError::backend(io));
        assert_eq!(error.kind(), ErrorKind::Store);
        assert!(error.is_unavailable());
        assert_eq!(
            error.chain(),
            "session store failed: session store backend failed: refused"
        );
    }

    #[test]
    fn debug_shows_no_cause_text() {
        let serde = serde_json::from_str::<u32>("\"secret-value\"").unwrap_err();
        let error = Error::new(ErrorKind::Serialization, serde);
        assert!(!format!("{error:?}").contains("secret"));
        assert!(!error.is_unavailable());
    }

    #[test]
    fn deserialization_errors_show_no_value_even_in_their_causes() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Cart {
            sku: u32,
        }
        let mut raw_leaks = 0;
        for json in [
            r#""secret-value""#,
            r#"{"sku": "secret-value"}"#,
            r#"{"secret-value": 1}"#,
            r#"["secret-value""#,
            r#"secret-value"#,
            r#"{"sku": 1, "sku": "secret-value"}"#,
        ] {
            let serde = serde_json::from_str::<Cart>(json).unwrap_err();
            raw_leaks += usize::from(serde.to_string().contains("secret"));
            let error = Error::serde(serde);
            assert_eq!(error.kind(), ErrorKind::Serialization);
            let cause = error.source().expect("a cause");
            for text in [
                format!("{error:?}"),
                format!("{error}"),
                error.chain(),
                format!("{cause:?}"),
                format!("{cause}"),
            ] {
                assert!(!text.contains("secret"), "{json}: {text}");
            }
            assert!(error.chain().contains("line 1"), "{}", error.chain());
        }
        assert!(raw_leaks >= 3, "serde_json's own messages quote values");
    }
}
