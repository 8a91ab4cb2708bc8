//! Where sessions live: in a store, or sealed in the request's own token (token mode,
//! feature `token`): `Backend`, and the token-mode types the core holds. Every operation
//! the two do differently is one method on `Backend` with one `match` (here those that
//! need the backend alone, in `dispatch.rs` those that take the layer's `Config` or a
//! request's session), so the rest of the crate calls these and carries no token-mode
//! `cfg`.

use std::time::Duration;

use crate::store::StoreHandle;
#[cfg(feature = "token")]
use crate::token::Tokens;

/// Where sessions live: in a store, or sealed in the request's own token.
#[derive(Clone, Debug)]
pub(crate) enum Backend {
    Store(StoreHandle),
    #[cfg(feature = "token")]
    Tokens(Tokens),
}

/// Token mode: the session a sealed token carried, opened.
#[cfg(feature = "token")]
pub(crate) type Opened = crate::token::Contents;
/// Token mode: a freshly sealed token, to hand to the client.
#[cfg(feature = "token")]
pub(crate) type SealedToken = String;

/// Without feature `token`: what only token mode makes has no values, so the core's
/// token-mode fields and variants need no `cfg` and cannot occur.
#[cfg(not(feature = "token"))]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NoTokens {}
#[cfg(not(feature = "token"))]
pub(crate) type Opened = NoTokens;
#[cfg(not(feature = "token"))]
pub(crate) type SealedToken = NoTokens;

// As a `String` does: write-back hands a sealed token to the carrier as `&str`.
#[cfg(not(feature = "token"))]
impl std::ops::Deref for NoTokens {
    type Target = str;

    fn deref(&self) -> &str {
        match *self {}
    }
}

impl Backend {
    /// The limit on each store (or revocation store) call.
    pub(crate) fn timeout(&self) -> Duration {
        match self {
            Self::Store(store) => store.timeout(),
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => tokens.timeout(),
        }
    }

    pub(crate) fn with_timeout(self, timeout: Duration) -> Self {
        match self {
            Self::Store(store) => Self::Store(store.with_timeout(timeout)),
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => Self::Tokens(tokens.with_timeout(timeout)),
        }
    }

    /// The store, in store mode: the one whose clock the layer may follow.
    pub(crate) fn store(&self) -> Option<&StoreHandle> {
        match self {
            Self::Store(store) => Some(store),
            #[cfg(feature = "token")]
            Self::Tokens(_) => None,
        }
    }
}
