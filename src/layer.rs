//! `SessionLayer`: the configuration, applied to any tower service.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cookie::SameSite;
use http::HeaderName;
use tower_layer::Layer;

use crate::carrier::Carrier;
use crate::expiry::{Clock, Expiry};
use crate::failure::DefaultOnFailure;
use crate::keys::Keys;
use crate::service::SessionService;
use crate::store::{DynStore, SessionStore};

/// Default limit on each store call.
const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// Everything a request needs from the layer, shared by all requests.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) store: Arc<dyn DynStore>,
    pub(crate) keys: Keys,
    pub(crate) carrier: Carrier,
    pub(crate) expiry: Expiry,
    pub(crate) store_timeout: Duration,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("keys", &self.keys)
            .field("carrier", &self.carrier)
            .field("expiry", &self.expiry)
            .field("store_timeout", &self.store_timeout)
            .finish_non_exhaustive()
    }
}

/// Adds a [`Session`](crate::Session) to every request, backed by a shared store.
///
/// The session is read from a signed cookie, loaded lazily (only if the handler asks),
/// and after the handler answers, only what it changed is written back, in one store call.
///
/// ```
/// use tower_stateless::{Key, MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new(), Key::generate())
///     .with_cookie_name("__Host-session")
///     .with_idle_timeout(std::time::Duration::from_secs(30 * 60));
/// # let _ = layer;
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct SessionLayer<F = DefaultOnFailure> {
    config: Arc<Config>,
    on_failure: F,
}

impl SessionLayer {
    /// Sessions in `store`, tokens signed with `keys`, and the secure defaults:
    /// cookie `id`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`, no `Domain`,
    /// no `Max-Age`; 24 h idle timeout, 7 days absolute lifetime; 1 s store timeout.
    pub fn new(store: impl SessionStore, keys: impl Into<Keys>) -> Self {
        Self {
            config: Arc::new(Config {
                store: Arc::new(store),
                keys: keys.into(),
                carrier: Carrier::default(),
                expiry: Expiry::default(),
                store_timeout: DEFAULT_STORE_TIMEOUT,
            }),
            on_failure: DefaultOnFailure::default(),
        }
    }
}

impl<F> SessionLayer<F> {
    fn config(&mut self) -> &mut Config {
        Arc::make_mut(&mut self.config)
    }

    /// The cookie's name (default `id`). A `__Host-` name forces `Secure`, `Path=/`
    /// and no `Domain`, as browsers require; `__Secure-` forces `Secure`.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config().carrier.cookie.name = name.into();
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn with_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config().carrier.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: the cookie stays on the exact host).
    pub fn with_cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config().carrier.cookie.domain = Some(domain.into());
        self
    }

    /// Whether the cookie is `Secure` (default `true`; turn off only for plain-HTTP development).
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.config().carrier.cookie.secure = secure;
        self
    }

    /// Whether the cookie is `HttpOnly` (default `true`).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.config().carrier.cookie.http_only = http_only;
        self
    }

    /// The cookie's `SameSite` (default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config().carrier.cookie.same_site = same_site;
        self
    }

    /// Persistent cookies carry `Max-Age` equal to the absolute lifetime and survive a
    /// browser restart; by default the cookie ends with the browser session.
    pub fn with_persistent_cookie(mut self, persistent: bool) -> Self {
        self.config().carrier.cookie.persistent = persistent;
        self
    }

    /// Carries the token in the header `name` instead of a cookie, for clients that do
    /// not keep cookies (gRPC metadata such as `x-session`). A new token comes back in the
    /// same response header when the session is created or its ID cycled; an empty value
    /// there means the session ended. Cookie settings are then unused.
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.config().carrier.header = Some(name);
        self
    }

    /// A session unused for this long ends (default 24 h).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config().expiry.idle_timeout = timeout;
        self
    }

    /// A session ends this long after its creation, however active (default 7 days).
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.config().expiry.absolute_lifetime = lifetime;
        self
    }

    /// A request that only reads refreshes the idle timeout once this much has passed
    /// since the last refresh (default: an eighth of the idle timeout).
    pub fn with_refresh_after(mut self, interval: Duration) -> Self {
        self.config().expiry.refresh_after = Some(interval);
        self
    }

    /// The clock that expiry is measured with (default: the system clock).
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.config().expiry.clock = Some(Arc::new(clock));
        self
    }

    /// The limit on each store call (default 1 s); past it the request fails as unavailable.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.config().store_timeout = timeout;
        self
    }

    /// Shapes the response sent when the session cannot be loaded or saved.
    pub fn with_on_failure<F2>(self, on_failure: F2) -> SessionLayer<F2> {
        SessionLayer {
            config: self.config,
            on_failure,
        }
    }
}

impl<S, F: Clone> Layer<S> for SessionLayer<F> {
    type Service = SessionService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.config.clone(), self.on_failure.clone())
    }
}
