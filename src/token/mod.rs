//! Token mode (feature `token`): the whole session sealed in the request's cookie, so no
//! store is needed; revocations, if configured, end tokens before they expire.
//!
//! One concept per file: `format.rs` the plaintext layout, `seal.rs` the AEAD and the
//! sealed length, `budget.rs` the size budget (what the carrier sends for a token),
//! `session.rs` what `Session` does differently, `writeback.rs` sealing the response's
//! token, `layer.rs` the layer's token-mode constructors, `bench.rs` entry points for the
//! benchmarks. The revocation stores are in `store/revocation.rs`.

pub(crate) mod bench;
mod budget;
mod format;
mod layer;
mod seal;
mod session;
pub(crate) mod writeback;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub(crate) use self::format::Contents;
#[cfg(feature = "__fuzz")]
pub(crate) use self::format::{decode, encode, encoded_len};

use self::seal::Sealer;
use crate::error::{Error, ErrorKind};
use crate::expiry::Expiry;
use crate::keys::{Keys, Rejected, Verified};
use crate::metrics::{self, CallOutcome};
use crate::store::handle::within;
use crate::store::revocation::{DynRevocations, Revocations};
use crate::time::Timestamp;

/// Token mode's settings, for [`SessionLayer::tokens`](crate::SessionLayer::tokens):
/// the session lives in the cookie, sealed (AES-256-GCM-SIV) under a key derived from
/// the layer's [`Keys`].
///
/// Without [`with_revocations`](Self::with_revocations), a token cannot be revoked: a
/// copy of a cookie stays valid until its idle or absolute deadline, whatever
/// `destroy()` did. With them, `destroy()`, `cycle_id()` and
/// [`destroy_sessions_of_user`](Self::destroy_sessions_of_user) record a revocation
/// that every instance checks when a request first reads its session.
///
/// Clones share the revocation store.
#[derive(Clone, Default)]
#[must_use]
pub struct TokenSessions {
    revocations: Option<Arc<dyn DynRevocations>>,
    fail_open: bool,
    /// `None`: [`MAX_COOKIE_LEN`].
    max_cookie_len: Option<usize>,
    seal_v1: bool,
}

impl TokenSessions {
    /// Tokens without revocation: they are valid until they expire.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records revocations in `revocations` and checks them on every request that reads
    /// its session (one call, under the layer's store timeout).
    pub fn with_revocations(mut self, revocations: impl Revocations) -> Self {
        self.revocations = Some(Arc::new(revocations));
        self
    }

    /// What a request gets when the revocation store cannot say whether its token was
    /// revoked. By default (`false`) it fails closed: 503 with `Retry-After` (gRPC
    /// `UNAVAILABLE`), cookie kept, as for any store failure. `true` fails open: the
    /// token is accepted as if not revoked, and a warning is logged. While the store does
    /// not answer, **no** revocation holds: a token logged out (or logged out everywhere)
    /// before the outage is accepted again until the store answers.
    pub fn with_fail_open(mut self, fail_open: bool) -> Self {
        self.fail_open = fail_open;
        self
    }

    /// The size budget: the most bytes the whole `Set-Cookie` value may take (name, `=`,
    /// the token and every attribute the layer sends: `Path`, `Domain`, `Max-Age`,
    /// `Secure`, `HttpOnly`, `SameSite`), or, with
    /// [`with_header`](crate::SessionLayerBuilder::with_header), the header's name, one
    /// byte and the token. Default and most: 4096, what browsers keep of a cookie's name
    /// and value (RFC 6265bis). A change that would take the session past it fails at
    /// once with [`ErrorKind::TooLarge`] and no larger token is sent.
    ///
    /// A reverse proxy must take the whole response head: nginx's default
    /// `proxy_buffer_size` (4 KiB on x86-64) does not hold a 4096-byte `Set-Cookie` and
    /// the other headers, and answers 502. Raise the proxy's buffer (the shop's fleet sets
    /// 8 KiB), or lower the budget by what the other headers take.
    ///
    /// Checked by [`SessionLayerBuilder::build`](crate::SessionLayerBuilder::build)
    /// ([`ConfigError::TokenBudget`](crate::ConfigError::TokenBudget) if above 4096 or
    /// below what an empty session takes with the cookie's attributes).
    /// [`SessionLayer::tokens`](crate::SessionLayer::tokens) cannot fail: there
    /// a budget above 4096 counts as 4096, and one too small makes every write fail with
    /// [`ErrorKind::TooLarge`].
    pub fn with_max_cookie_len(mut self, len: usize) -> Self {
        self.max_cookie_len = Some(len);
        self
    }

    /// Seals tokens as 0.1 did (XChaCha20-Poly1305), which instances still running 0.1
    /// can open: set it while a fleet upgrades from 0.1, and remove it once every
    /// instance runs this version. Tokens sealed either way are always opened, and one
    /// sealed the other way is re-sealed on its next response, as after a key rotation.
    /// Off by default: tokens are sealed with AES-256-GCM-SIV, which 0.1 cannot open.
    pub fn with_v1_sealing(mut self, seal_v1: bool) -> Self {
        self.seal_v1 = seal_v1;
        self
    }

    /// Log-out-everywhere: every token bound to `user_id` before now (`expiry.now`, e.g.
    /// [`Session::expiry`](crate::Session::expiry)) is dead on every instance once this
    /// returns, including tokens issued by other instances; bindings made afterwards
    /// (the next login) are not affected. Without revocations this is an error of kind
    /// [`ErrorKind::Store`]: tokens cannot be revoked then.
    ///
    /// Instances compare the binding times their own clocks wrote against this one:
    /// keep their clocks synchronised (a clock running ahead by `d` lets tokens it bound
    /// in the last `d` before the logout survive).
    pub async fn destroy_sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<(), Error> {
        let Some(revocations) = &self.revocations else {
            return Err(Error::new(
                ErrorKind::Store,
                "token mode without revocations cannot end a user's sessions",
            ));
        };
        // Bindings made in this very millisecond count as before it.
        let not_before = expiry.now.saturating_add(Duration::from_millis(1));
        let call = revocations.revoke_user(user_id, not_before, expiry.absolute_lifetime);
        call.await.map_err(Error::from)
    }
}

impl fmt::Debug for TokenSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSessions")
            .field("revocations", &self.revocations.is_some())
            .field("fail_open", &self.fail_open)
            .field("max_cookie_len", &self.max_cookie_len)
            .field("seal_v1", &self.seal_v1)
            .finish()
    }
}

/// Token mode as the layer runs it: the sealing keys, the settings, the timeout.
#[derive(Clone)]
pub(crate) struct Tokens {
    sealer: Arc<Sealer>,
    settings: TokenSessions,
    timeout: Duration,
}

impl Tokens {
    pub(crate) fn new(settings: TokenSessions, keys: &Keys, timeout: Duration) -> Self {
        Self {
            sealer: Arc::new(Sealer::new(keys, settings.seal_v1)),
            settings,
            timeout,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    pub(crate) fn open(&self, name: &str, token: &[u8]) -> Result<(Contents, Verified), Rejected> {
        self.sealer.open(name, token)
    }

    /// Sealing alone, without the budget check (which needs the layer's carrier): for
    /// the benchmarks (`__bench`).
    pub(crate) fn seal_only(&self, name: &str, contents: &Contents) -> Option<String> {
        self.sealer.seal(name, contents)
    }

    /// Whether the token is live at `expiry`: within both deadlines (from its sealed
    /// timestamps, whatever the browser did), and, with revocations, neither the session
    /// nor its user binding revoked. A revocation store that fails is a failure unless
    /// the settings fail open.
    pub(crate) async fn is_live(&self, contents: &Contents, expiry: Expiry) -> Result<bool, Error> {
        if !expiry.is_live(&contents.record.metadata) {
            return Ok(false);
        }
        let Some(revocations) = &self.settings.revocations else {
            return Ok(true);
        };
        let user = contents.record.metadata.user_id.as_deref();
        let hashed = contents.id.hashed();
        let call = revocations.revocation_state(&hashed, user, expiry.now);
        match self.call("revocation_state", call).await {
            Ok(state) => {
                let user_revoked = user.is_some()
                    && (state.user_not_before)
                        .is_some_and(|not_before| contents.bound_at < not_before);
                Ok(!(state.session_revoked || user_revoked))
            }
            Err(error) if self.settings.fail_open && error.is_unavailable() => {
                tracing::warn!(
                    error = %error.chain(),
                    "revocation state unknown; accepting the token (fail open)"
                );
                Ok(true)
            }
            Err(error) => Err(error),
        }
    }

    /// Records that the session in `contents` ended, until its absolute deadline; a
    /// no-op without revocations (the token then lives until it expires).
    pub(crate) async fn revoke(&self, contents: &Contents, expiry: Expiry) -> Result<(), Error> {
        let Some(revocations) = &self.settings.revocations else {
            return Ok(());
        };
        let until = (contents.record.metadata.created_at).saturating_add(expiry.absolute_lifetime);
        let hashed = contents.id.hashed();
        let call = revocations.revoke_session(&hashed, until, expiry.now);
        self.call("revoke_session", call).await
    }

    /// One revocation-store call under the layer's store timeout, counted like store calls.
    async fn call<T>(
        &self,
        operation: &'static str,
        call: impl std::future::Future<Output = Result<T, crate::error::StoreError>>,
    ) -> Result<T, Error> {
        let started = std::time::Instant::now();
        let result = within(self.timeout, call).await;
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(error) if error.kind() == ErrorKind::Timeout => CallOutcome::Timeout,
            Err(_) => CallOutcome::Error,
        };
        metrics::store_call(operation, outcome, started.elapsed());
        result
    }
}

/// The creation time of a token's user binding after `changes`: now if they bind.
pub(crate) fn bound_at(
    before: Timestamp,
    changes: &crate::record::ChangeSet,
    now: Timestamp,
) -> Timestamp {
    match changes.user {
        crate::record::UserChange::Bind(_) => now,
        _ => before,
    }
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tokens")
            .field("settings", &self.settings)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
