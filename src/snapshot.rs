//! What a request's session holds once the handler has answered: the input of write-back;
//! and `Incoming`, the verified session ID it names.

use std::fmt;
use std::sync::OnceLock;

use crate::backend::Opened;
use crate::error::Error;
use crate::id::{HashedId, SessionId};
use crate::keys::Verified;
use crate::record::ChangeSet;

/// The session's state after the handler, taken out of the `Session` in one piece so
/// that deciding what to write ([`plan`](crate::plan::plan)) is a pure function of it.
pub(crate) struct Snapshot {
    /// A store failure seen while the handler ran: the response becomes a failure.
    pub(crate) failure: Option<Error>,
    /// The request's verified session ID; `None` without a valid token, and for a
    /// session the handler never touched (not even verified).
    pub(crate) incoming: Option<Incoming>,
    /// A session the request created at once (an immediate operation without a live
    /// session); pending changes go there and the client gets its token.
    pub(crate) fresh: Option<Incoming>,
    /// What the request learned of its stored session, by loading it or writing to it.
    pub(crate) seen: Seen,
    pub(crate) changes: ChangeSet,
    pub(crate) cycle: bool,
    pub(crate) destroy: bool,
}

/// What the request learned of its stored session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Seen {
    /// Nothing read or wrote it: whether it is still live is unknown.
    #[default]
    NotLoaded,
    /// Not there (missing, expired or ended) when the request first looked.
    Missing,
    /// Found live by a load or an immediate write; `needs_refresh` when its last refresh
    /// is older than `refresh_after`.
    Live { needs_refresh: bool },
}

/// A verified session ID: the request's own, or one this request created.
#[derive(Clone)]
pub(crate) struct Incoming {
    pub(crate) id: SessionId,
    pub(crate) verified: Verified,
    hashed: OnceLock<HashedId>,
    /// Token mode: the session the token carried, opened (its record shared: copies of
    /// it are cheap).
    pub(crate) contents: Option<Opened>,
}

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("verified", &self.verified)
            .finish_non_exhaustive()
    }
}

impl Incoming {
    pub(crate) fn new(id: SessionId, verified: Verified) -> Self {
        Self {
            id,
            verified,
            hashed: OnceLock::new(),
            contents: None,
        }
    }

    /// Hashed on first use: requests that never touch the session never hash.
    pub(crate) fn hashed(&self) -> &HashedId {
        self.hashed.get_or_init(|| self.id.hashed())
    }
}
