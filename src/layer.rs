//! `SessionLayer` and its builder: the configuration, applied to any tower service.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use cookie::SameSite;
use http::HeaderName;
use tower_layer::Layer;

use crate::backend::Backend;
use crate::carrier::Carrier;
use crate::config::Config;
use crate::error::ConfigError;
use crate::expiry::{Clock, ExpirySettings, LocalClock};
use crate::failure::DefaultOnFailure;
use crate::grpc::TrailersLayer;
use crate::keys::Keys;
use crate::service::SessionService;
use crate::size::SizeLimits;
use crate::store::{SessionStore, StoreHandle};

/// Default limit on each store call.
pub(crate) const DEFAULT_STORE_TIMEOUT: Duration = Duration::from_secs(1);

/// Adds a [`Session`](crate::Session) to every request, backed by a shared store.
///
/// The session is read from a signed cookie, loaded lazily (only if the handler asks),
/// and after the handler answers, only what it changed is written back, in one store call.
///
/// [`new`](Self::new) takes the secure defaults; [`builder`](Self::builder) changes them,
/// and checks the result when it is built.
///
/// ```
/// use std::time::Duration;
/// use tower_stateless::{Key, MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::builder(MemoryStore::new(), Key::generate())
///     .with_cookie_name("__Host-session")
///     .with_idle_timeout(Duration::from_secs(30 * 60))
///     .build()?;
/// # Ok::<(), tower_stateless::ConfigError>(())
/// ```
#[derive(Clone)]
#[must_use]
pub struct SessionLayer<F = DefaultOnFailure> {
    config: Arc<Config>,
    on_failure: F,
}

impl SessionLayer {
    /// Sessions in `store`, tokens signed with `keys`, and the secure defaults:
    /// cookie `__Host-id`, `HttpOnly`, `Secure`, `SameSite=Lax`, `Path=/`, no `Domain`,
    /// no `Max-Age`; 24 h idle timeout, 7 days absolute lifetime; 1 s store timeout.
    pub fn new(store: impl SessionStore, keys: impl Into<Keys>) -> Self {
        Self::with_config(default_config(store, keys.into()))
    }

    /// A builder starting from the defaults of [`new`](Self::new).
    pub fn builder(store: impl SessionStore, keys: impl Into<Keys>) -> SessionLayerBuilder {
        SessionLayerBuilder::with_config(default_config(store, keys.into()))
    }

    /// A layer running `config` unchecked, for the constructors that cannot fail (this
    /// one's and token mode's), with the default failure response.
    pub(crate) fn with_config(config: Config) -> Self {
        Self {
            config: Arc::new(config.started()),
            on_failure: DefaultOnFailure::default(),
        }
    }
}

fn default_config(store: impl SessionStore, keys: Keys) -> Config {
    let store = StoreHandle::new(store, DEFAULT_STORE_TIMEOUT);
    config_with(Backend::Store(store), keys)
}

/// The defaults, with sessions in `backend`.
pub(crate) fn config_with(backend: Backend, keys: Keys) -> Config {
    Config {
        backend,
        keys,
        carrier: Carrier::default(),
        expiry: ExpirySettings::default(),
        events: Arc::default(),
        max_sessions_per_user: None,
        size_limits: SizeLimits::default(),
        follow_store_clock: None,
        store_clock: None,
    }
}

impl<F> SessionLayer<F> {
    /// For gRPC services that stream: the same layer, but a gRPC response that is not
    /// trailers-only is written back when its trailers arrive, judged by their
    /// `grpc-status`, so a stream that fails after its head saves nothing. The price: new
    /// tokens travel in the trailers, and the response body type becomes
    /// [`TrailersBody`](crate::grpc::TrailersBody). See [`TrailersLayer`].
    pub fn write_back_at_trailers(self) -> TrailersLayer<F> {
        TrailersLayer::new(self.config, self.on_failure)
    }
}

impl<S, F: Clone> Layer<S> for SessionLayer<F> {
    type Service = SessionService<S, F>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionService::new(inner, self.config.clone(), self.on_failure.clone())
    }
}

impl<F> fmt::Debug for SessionLayer<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayer")
            .field("config", &self.config)
            .field("on_failure", &std::any::type_name::<F>())
            .finish()
    }
}

/// Settings for a [`SessionLayer`], checked by [`build`](Self::build).
#[must_use]
pub struct SessionLayerBuilder<F = DefaultOnFailure> {
    config: Config,
    on_failure: F,
}

impl SessionLayerBuilder {
    /// A builder starting from `config`, with the default failure response.
    pub(crate) fn with_config(config: Config) -> Self {
        Self {
            config,
            on_failure: DefaultOnFailure::default(),
        }
    }
}

impl<F> SessionLayerBuilder<F> {
    /// The layer, if every setting is usable: the cookie name is an RFC 6265 token whose
    /// `__Host-`/`__Secure-` prefix (any case) the other attributes satisfy, the path
    /// starts with `/`, path and domain hold no control character or `;`, no duration is
    /// zero, and the idle timeout is at most the absolute lifetime.
    pub fn build(self) -> Result<SessionLayer<F>, ConfigError> {
        self.config.validate()?;
        Ok(SessionLayer {
            config: Arc::new(self.config.started()),
            on_failure: self.on_failure,
        })
    }

    /// The cookie's name. By default `__Host-id` while the cookie is `Secure` on `Path=/`
    /// with no `Domain`, `__Secure-id` if `Secure` with a path or domain, and `id`
    /// without `Secure`. A name with the `__Host-` prefix (in any case) needs `Secure`,
    /// `Path=/` and no `Domain`, one with `__Secure-` needs `Secure`: else
    /// [`build`](Self::build) fails with [`ConfigError::CookiePrefix`], since browsers
    /// would drop the cookie.
    pub fn with_cookie_name(mut self, name: impl Into<String>) -> Self {
        self.config.carrier.cookie.name = Some(name.into());
        self
    }

    /// The cookie's `Path` (default `/`).
    pub fn with_cookie_path(mut self, path: impl Into<String>) -> Self {
        self.config.carrier.cookie.path = path.into();
        self
    }

    /// The cookie's `Domain` (default none: the cookie stays on the exact host).
    pub fn with_cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.config.carrier.cookie.domain = Some(domain.into());
        self
    }

    /// Whether the cookie is `Secure` (default `true`; turn off only for plain-HTTP
    /// development). Off, the default cookie name is `id` instead of `__Host-id`.
    pub fn with_secure(mut self, secure: bool) -> Self {
        self.config.carrier.cookie.secure = secure;
        self
    }

    /// Whether the cookie is `HttpOnly` (default `true`).
    pub fn with_http_only(mut self, http_only: bool) -> Self {
        self.config.carrier.cookie.http_only = http_only;
        self
    }

    /// The cookie's `SameSite` (default `Lax`).
    pub fn with_same_site(mut self, same_site: SameSite) -> Self {
        self.config.carrier.cookie.same_site = same_site;
        self
    }

    /// Persistent cookies carry `Max-Age` equal to the absolute lifetime and survive a
    /// browser restart; by default the cookie ends with the browser session.
    pub fn with_persistent_cookie(mut self, persistent: bool) -> Self {
        self.config.carrier.cookie.persistent = persistent;
        self
    }

    /// Carries the token in the header `name` instead of a cookie, for clients that do
    /// not keep cookies (gRPC metadata such as `x-session`). A new token comes back in the
    /// same response header when the session is created or its ID cycled; an empty value
    /// there means the session ended. Cookie settings are then unused.
    pub fn with_header(mut self, name: HeaderName) -> Self {
        self.config.carrier.header = Some(name);
        self
    }

    /// A session unused for this long ends (default 24 h).
    pub fn with_idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.expiry.idle_timeout = timeout;
        self
    }

    /// A session ends this long after its creation, however active (default 7 days).
    pub fn with_absolute_lifetime(mut self, lifetime: Duration) -> Self {
        self.config.expiry.absolute_lifetime = lifetime;
        self
    }

    /// A request that only reads refreshes the idle timeout once this much has passed
    /// since the last refresh (default: an eighth of the idle timeout).
    pub fn with_refresh_after(mut self, interval: Duration) -> Self {
        self.config.expiry.refresh_after = Some(interval);
        self
    }

    /// The clock that expiry is measured with (default: the system clock). An injected
    /// clock is the layer's time as it stands: the store's clock is then not followed
    /// (see [`with_store_clock`](Self::with_store_clock)), so that a test that moves
    /// this clock moves time for the store too.
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.config.expiry.clock = LocalClock::custom(clock);
        self
    }

    /// Whether sessions are timed by the store's clock (default: yes, unless
    /// [`with_clock`](Self::with_clock) injected one). The layer reads the store's clock
    /// when it is built (or at its first request, outside a Tokio runtime) and a minute
    /// after each reading (started by a request, which does not wait for it), and runs
    /// its own clock at the measured offset, so that instances whose clocks differ still
    /// agree on when a session ends; until the first reading is back, it uses its own. Only stores that report a
    /// clock ([`SessionStore::time`](crate::store::SessionStore::time)) have one to
    /// follow: this crate's Redis and PostgreSQL stores do. Token mode always uses the
    /// layer's clock.
    pub fn with_store_clock(mut self, follow: bool) -> Self {
        self.config.follow_store_clock = Some(follow);
        self
    }

    /// The limit on each store call (default 1 s); past it the request fails as unavailable.
    /// In token mode, the limit on each revocation-store call.
    pub fn with_store_timeout(mut self, timeout: Duration) -> Self {
        self.config.backend = self.config.backend.with_timeout(timeout);
        self
    }

    /// Allows each user at most `limit` live sessions (ASVS 5.0 7.1.2). Whenever a
    /// session is bound to a user ([`Session::set_user_id`](crate::Session::set_user_id),
    /// usually at login), the user's sessions beyond `limit` are ended, the oldest
    /// binding (login) first, as the store reports it
    /// ([`SessionSummary::bound_at`](crate::store::SessionSummary::bound_at)). The newest
    /// binding wins: when two logins of one user race, every instance ranks them alike,
    /// so one of them stays (the other's response carries a cookie that is already
    /// ended) and they never end each other. Costs the binding request one listing of
    /// the user's sessions and one `destroy` per session ended. If the store fails during that
    /// clean-up, the binding still succeeds (it was saved) and the failure is logged; the
    /// next binding enforces the limit again. Zero is a [`ConfigError`], and so is any
    /// limit in token mode ([`ConfigError::NeedsStore`]), which lists no user's sessions.
    pub fn with_max_sessions_per_user(mut self, limit: usize) -> Self {
        self.config.max_sessions_per_user = Some(limit);
        self
    }

    /// Store mode: the most bytes a session may hold (default 64 KiB), counting each
    /// key and its value's JSON text. A write that would pass it is refused whole with
    /// [`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge) before it reaches the store:
    /// `insert`, `increment` and the other writes return it at once (a handler using `?`
    /// under axum answers 413). The bound is exact for a request that has read the
    /// session (any `get`, `keys` or `update`); one that writes without reading is
    /// measured by its own writes only, which keeps a blind write at one store call, so
    /// a handler that adds keys named by its input should read the session first. In
    /// token mode the cookie is the bound, and this is a [`ConfigError`].
    pub fn with_max_session_size(mut self, bytes: usize) -> Self {
        self.config.size_limits.session = bytes;
        self
    }

    /// Store mode: the most bytes one value may hold with its key (default 32 KiB); see
    /// [`with_max_session_size`](Self::with_max_session_size). Zero, or more than the
    /// session's bound, is a [`ConfigError`].
    pub fn with_max_value_size(mut self, bytes: usize) -> Self {
        self.config.size_limits.value = bytes;
        self
    }

    /// Shapes the response sent when the session cannot be loaded or saved.
    pub fn with_on_failure<F2>(self, on_failure: F2) -> SessionLayerBuilder<F2> {
        SessionLayerBuilder {
            config: self.config,
            on_failure,
        }
    }
}

impl<F> fmt::Debug for SessionLayerBuilder<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionLayerBuilder")
            .field("config", &self.config)
            .field("on_failure", &std::any::type_name::<F>())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Key;
    use crate::MemoryStore;

    fn builder() -> SessionLayerBuilder {
        SessionLayer::builder(MemoryStore::new(), Key::generate())
    }

    #[test]
    fn defaults_build() {
        assert!(builder().build().is_ok());
        assert!(builder().with_cookie_name("__Host-id").build().is_ok());
    }

    #[test]
    fn bad_cookie_attributes_are_errors_when_built() {
        for name in ["", "a b", "a;b", "a=b", "é", "a\nb"] {
            assert_eq!(
                builder().with_cookie_name(name).build().err(),
                Some(ConfigError::CookieName),
                "{name:?}"
            );
        }
        for path in ["/a\nb", "/a;b", "relative", "/\u{7f}"] {
            assert_eq!(
                builder().with_cookie_path(path).build().err(),
                Some(ConfigError::CookiePath),
                "{path:?}"
            );
        }
        for domain in ["", "a b", "a;b", "a\tb"] {
            assert_eq!(
                builder().with_cookie_domain(domain).build().err(),
                Some(ConfigError::CookieDomain),
                "{domain:?}"
            );
        }
    }

    #[test]
    fn cookie_prefix_rules_are_errors_when_built() {
        for name in ["__Host-id", "__host-id", "__HOST-sid"] {
            assert!(builder().with_cookie_name(name).build().is_ok(), "{name}");
            for broken in [
                builder().with_secure(false),
                builder().with_cookie_path("/app"),
                builder().with_cookie_domain("example.com"),
            ] {
                assert_eq!(
                    broken.with_cookie_name(name).build().err(),
                    Some(ConfigError::CookiePrefix),
                    "{name}"
                );
            }
        }
        for name in ["__Secure-id", "__secure-id"] {
            assert!(builder()
                .with_cookie_name(name)
                .with_cookie_path("/app")
                .with_cookie_domain("example.com")
                .build()
                .is_ok());
            assert_eq!(
                builder()
                    .with_cookie_name(name)
                    .with_secure(false)
                    .build()
                    .err(),
                Some(ConfigError::CookiePrefix),
                "{name}"
            );
        }
        // The default name always fits: it follows Secure, Path and Domain.
        for default in [
            builder().with_secure(false),
            builder().with_cookie_path("/app"),
            builder().with_cookie_domain("example.com"),
        ] {
            assert!(default.build().is_ok());
        }
    }

    #[test]
    fn bad_durations_are_errors_when_built() {
        let zero = Duration::ZERO;
        assert!(matches!(
            builder().with_idle_timeout(zero).build(),
            Err(ConfigError::ZeroDuration("idle timeout"))
        ));
        assert!(matches!(
            builder().with_store_timeout(zero).build(),
            Err(ConfigError::ZeroDuration("store timeout"))
        ));
        assert!(matches!(
            builder().with_refresh_after(zero).build(),
            Err(ConfigError::ZeroDuration("refresh interval"))
        ));
        let hour = Duration::from_secs(3600);
        assert!(matches!(
            builder()
                .with_idle_timeout(2 * hour)
                .with_absolute_lifetime(hour)
                .build(),
            Err(ConfigError::IdleExceedsAbsolute)
        ));
    }

    #[test]
    fn debug_names_a_closure_hook_without_requiring_debug() {
        let layer = builder()
            .with_on_failure(
                |_: &crate::Error, _: crate::failure::Protocol| http::Response::new(()),
            )
            .build()
            .unwrap();
        let text = format!("{layer:?}");
        assert!(text.contains("SessionLayer"), "{text}");
    }
}
