//! The layer end to end: an axum app behind `SessionLayer` on an instrumented store.

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

mod atomic;
mod calls;
mod events;
mod failures;
mod hostile;
mod instrumented;
mod lifecycle;
mod limits;
mod logs;
mod protocols;
#[cfg(feature = "token")]
mod tokens;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;
use tower_stateless::{Key, Keys, Session, SessionLayer, SessionLayerBuilder};

use instrumented::Instrumented;

/// A clock the tests move by hand.
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    const START_MS: u64 = 1_800_000_000_000;

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(Self::START_MS + self.0.load(Ordering::SeqCst))
    }
}

pub fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).unwrap()
}

/// The cookie with one character of its tag changed.
pub fn tamper(cookie: &str) -> String {
    let mut bytes = cookie.as_bytes().to_vec();
    let at = bytes.len() - 10;
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    String::from_utf8(bytes).unwrap()
}

/// Routes that each use the session one way.
fn routes() -> Router {
    Router::new()
        .route("/untouched", get(|_session: Session| async { "untouched" }))
        .route(
            "/get/{key}",
            get(|session: Session, Path(key): Path<String>| async move {
                match session.get::<serde_json::Value>(&key).await {
                    Ok(Some(value)) => value.to_string().into_response(),
                    Ok(None) => StatusCode::NOT_FOUND.into_response(),
                    Err(error) => error.into_response(),
                }
            }),
        )
        .route(
            "/set/{key}/{value}",
            post(
                |session: Session, Path((key, value)): Path<(String, String)>| async move {
                    session.insert(key, &value).unwrap();
                    "set"
                },
            ),
        )
        .route(
            "/incr/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                let n: u64 = session.get(&key).await?.unwrap_or(0) + 1;
                session.insert(key, &n)?;
                Ok::<_, tower_stateless::Error>(n.to_string())
            }),
        )
        .route(
            "/add/{key}/{delta}",
            post(
                |session: Session, Path((key, delta)): Path<(String, i64)>| async move {
                    session.increment(&key, delta).await.map(|n| n.to_string())
                },
            ),
        )
        .route(
            "/add-later/{key}/{delta}",
            post(
                |session: Session, Path((key, delta)): Path<(String, i64)>| async move {
                    session.increment_later(key, delta)
                },
            ),
        )
        .route(
            "/add-then-fail/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.increment(&key, 1).await.unwrap();
                session.increment_later("later", 1).unwrap();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/append/{key}/{item}",
            post(
                |session: Session, Path((key, item)): Path<(String, String)>| async move {
                    let list = session
                        .update(&key, |list: Option<Vec<String>>| {
                            let mut list = list.unwrap_or_default();
                            list.push(item.clone());
                            Some(list)
                        })
                        .await?;
                    Ok::<_, tower_stateless::Error>(list.unwrap_or_default().len().to_string())
                },
            ),
        )
        .route(
            "/read-then-add/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.get::<serde_json::Value>("user").await?;
                session.increment(&key, 1).await.map(|n| n.to_string())
            }),
        )
        .route(
            "/slow-incr/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                let n: u64 = session.get(&key).await?.unwrap_or(0) + 1;
                atomic::SLOW_LOADED.notify_one();
                atomic::SLOW_RELEASE.notified().await;
                session.insert(key, &n)?;
                Ok::<_, tower_stateless::Error>(n.to_string())
            }),
        )
        .route(
            "/swallow/{key}",
            get(|session: Session, Path(key): Path<String>| async move {
                // A careless handler that treats a store failure as "no value".
                let value: Option<String> = session.get(&key).await.unwrap_or(None);
                format!("{value:?}")
            }),
        )
        .route(
            "/remove/{key}",
            post(|session: Session, Path(key): Path<String>| async move { session.remove(key) }),
        )
        .route(
            "/clear",
            post(|session: Session| async move { session.clear() }),
        )
        .route(
            "/keys",
            get(|session: Session| async move { session.keys().await.map(|keys| keys.join(",")) }),
        )
        .route(
            "/login/{user}",
            post(|session: Session, Path(user): Path<String>| async move {
                session.cycle_id();
                session.insert("user", &user).unwrap();
                session.set_user_id(user);
                "welcome"
            }),
        )
        .route(
            "/fill/{key}/{len}",
            post(
                |session: Session, Path((key, len)): Path<(String, usize)>| async move {
                    session.insert(key, &"x".repeat(len)).map(|()| "filled")
                },
            ),
        )
        .route(
            "/fill-many/{len}",
            post(|session: Session, Path(len): Path<usize>| async move {
                let value = "x".repeat(len);
                let mut count = 0;
                while session.insert(format!("k{count}"), &value).is_ok() {
                    count += 1;
                }
                count.to_string()
            }),
        )
        .route(
            "/bind/{user}",
            post(|session: Session, Path(user): Path<String>| async move {
                session.set_user_id(user);
                "bound"
            }),
        )
        .route(
            "/logout",
            post(|session: Session| async move { session.destroy() }),
        )
        .route(
            "/hashed-id",
            get(|session: Session| async move {
                session
                    .hashed_id()
                    .map_or_else(|| "none".to_owned(), |id| id.to_string())
            }),
        )
        .route(
            "/fail/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.insert(key, "lost").unwrap();
                StatusCode::INTERNAL_SERVER_ERROR
            }),
        )
        .route(
            "/cached/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.insert(key, "v").unwrap();
                ([(header::CACHE_CONTROL, "private, max-age=5")], "cached")
            }),
        )
        .route(
            "/public/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.insert(key, "v").unwrap();
                ([(header::CACHE_CONTROL, "public, max-age=3600")], "public")
            }),
        )
        .route(
            "/shared/{key}",
            post(|session: Session, Path(key): Path<String>| async move {
                session.insert(key, "v").unwrap();
                let mut headers = axum::http::HeaderMap::new();
                headers.append(header::CACHE_CONTROL, "max-age=60".parse().unwrap());
                headers.append(header::CACHE_CONTROL, "S-MAXAGE=600".parse().unwrap());
                (headers, "shared")
            }),
        )
        .route(
            "/logout-public",
            post(|session: Session| async move {
                session.destroy();
                ([(header::CACHE_CONTROL, "public")], "bye")
            }),
        )
        .route(
            "/public-read/{key}",
            get(|session: Session, Path(key): Path<String>| async move {
                let _ = session.get::<serde_json::Value>(&key).await;
                ([(header::CACHE_CONTROL, "public, max-age=3600")], "public")
            }),
        )
}

/// The app, its store, and its clock.
pub struct App {
    pub store: Instrumented,
    pub clock: ManualClock,
    router: Router,
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    /// The `name=token` pair to send back, if the response set a (non-removal) cookie.
    pub fn cookie(&self) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .next_back()
    }

    pub fn removes_cookie(&self) -> bool {
        self.set_cookies().iter().any(|c| c.contains("Max-Age=0"))
    }
}

impl Default for App {
    fn default() -> Self {
        Self::with(|layer| layer)
    }
}

impl App {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) -> Self {
        Self::with_keys(Keys::new(key(1)), configure)
    }

    pub fn with_keys(
        keys: Keys,
        configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> Self {
        Self::sharing(Instrumented::default(), keys, configure)
    }

    /// Another app (an "instance") on the same store and clock.
    pub fn sharing(
        store: Instrumented,
        keys: Keys,
        configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> Self {
        let builder = SessionLayer::builder(store.clone(), keys);
        Self::on(store, routes(), builder, configure)
    }

    /// An instance in token mode: no store at all (`store` stays untouched, so tests can
    /// assert that nothing reached one).
    #[cfg(feature = "token")]
    pub fn tokens(
        tokens: tower_stateless::TokenSessions,
        keys: Keys,
        configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> Self {
        let handle = tokens.clone();
        let everywhere = post(move |session: Session| {
            let tokens = handle.clone();
            async move {
                let user = session.user_id().await?.unwrap_or_default();
                tokens
                    .destroy_sessions_of_user(&user, session.expiry())
                    .await
                    .map(|()| "everywhere")
            }
        });
        let routes = routes().route("/logout-everywhere", everywhere);
        let builder = SessionLayer::tokens_builder(tokens.clone(), keys);
        Self::on(Instrumented::default(), routes, builder, configure)
    }

    fn on(
        store: Instrumented,
        routes: Router,
        builder: SessionLayerBuilder,
        configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder,
    ) -> Self {
        let clock = ManualClock::default();
        let now = clock.clone();
        let layer = configure(builder.with_clock(move || now.now()))
            .build()
            .unwrap();
        Self {
            store,
            clock,
            router: routes.layer(layer),
        }
    }

    pub async fn send(&self, method: &str, path: &str, cookie: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.request(request.body(Body::empty()).unwrap()).await
    }

    pub async fn request(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = String::from_utf8(body.collect().await.unwrap().to_bytes().to_vec()).unwrap();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    /// Logs `user` in and returns the session cookie.
    pub async fn login(&self, user: &str) -> String {
        let reply = self.send("POST", &format!("/login/{user}"), None).await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.cookie().expect("login sets a cookie")
    }
}
