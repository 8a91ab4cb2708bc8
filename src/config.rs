//! The layer's configuration, shared by every request, and the checks it passes when built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::backend::Backend;
use crate::carrier::Carrier;
use crate::error::ConfigError;
use crate::events::SecurityEvents;
use crate::expiry::{Expiry, ExpirySettings};
use crate::keys::Keys;
use crate::size::SizeLimits;
use crate::store::StoreClock;

/// Everything a request needs from the layer, shared by all requests behind one `Arc`.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) backend: Backend,
    pub(crate) keys: Keys,
    pub(crate) carrier: Carrier,
    pub(crate) expiry: ExpirySettings,
    /// Rejected tokens, counted and logged at a bounded rate per layer.
    pub(crate) events: Arc<SecurityEvents>,
    /// At most this many live sessions per user; enforced when a session is bound.
    pub(crate) max_sessions_per_user: Option<usize>,
    /// Store mode: the bounds on a value's and a session's size.
    pub(crate) size_limits: SizeLimits,
    /// Store mode: whether to time sessions by the store's clock (`None`: unless a
    /// clock was injected).
    pub(crate) follow_store_clock: Option<bool>,
    /// The store's clock, followed from when the layer is made.
    pub(crate) store_clock: Option<Arc<StoreClock>>,
}

impl Config {
    /// The configuration a layer runs with: the store's clock followed, if it is to be.
    pub(crate) fn started(mut self) -> Self {
        let follow = self
            .follow_store_clock
            .unwrap_or(!self.expiry.clock.is_custom());
        if let (true, Some(store)) = (follow, self.backend.store()) {
            let clock = StoreClock::follow(store.clone(), self.expiry.clock.clone());
            self.store_clock = Some(clock);
        }
        self
    }

    /// The expiry rules now: by the store's clock where the layer follows it.
    pub(crate) fn expiry_now(&self) -> Expiry {
        match &self.store_clock {
            Some(clock) => self.expiry.at(clock.now()),
            None => self.expiry.at_now(),
        }
    }

    /// Every rule a setting must follow, checked once when the layer is built, so that a
    /// bad setting is an error at startup and never a panic while answering a request.
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        let cookie = &self.carrier.cookie;
        if !is_token(cookie.name()) {
            return Err(ConfigError::CookieName);
        }
        if !cookie.path.starts_with('/') || !is_attribute_text(&cookie.path) {
            return Err(ConfigError::CookiePath);
        }
        if let Some(domain) = &cookie.domain {
            if domain.is_empty() || !is_attribute_text(domain) || domain.contains(' ') {
                return Err(ConfigError::CookieDomain);
            }
        }
        if !cookie.follows_prefix_rules() {
            return Err(ConfigError::CookiePrefix);
        }
        let expiry = &self.expiry;
        for (setting, duration) in [
            ("idle timeout", Some(expiry.idle_timeout)),
            ("absolute lifetime", Some(expiry.absolute_lifetime)),
            ("refresh interval", expiry.refresh_after),
            ("store timeout", Some(self.backend.timeout())),
        ] {
            if duration == Some(Duration::ZERO) {
                return Err(ConfigError::ZeroDuration(setting));
            }
        }
        if expiry.idle_timeout > expiry.absolute_lifetime {
            return Err(ConfigError::IdleExceedsAbsolute);
        }
        if self.max_sessions_per_user == Some(0) {
            return Err(ConfigError::ZeroSessionLimit);
        }
        let limits = self.size_limits;
        if limits.value == 0 || limits.value > limits.session {
            return Err(ConfigError::SizeLimits);
        }
        // Last: the backend's own rules (token mode's budget, what needs a store).
        self.backend.validate(self)
    }
}

/// An RFC 6265 cookie name: an RFC 9110 token.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Text allowed in a cookie attribute value: no control characters and no `;`.
fn is_attribute_text(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b';')
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("backend", &self.backend)
            .field("keys", &self.keys)
            .field("carrier", &self.carrier)
            .field("expiry", &self.expiry)
            .field("store_clock", &self.store_clock)
            .finish()
    }
}
