//! The shop: every bit of per-user state lives in the session, so any instance can
//! serve any request and any instance can die without anyone noticing.

mod cart;
mod chunks;
mod config;
pub mod fleet;
mod uploads;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_stateless::{Session, SessionLayer, SessionStore};

pub use crate::chunks::Chunks;
pub use crate::config::{Config, StoreChoice};

/// The session key holding the logged-in user's name.
const USER: &str = "user";

/// What handlers share: the session store (for health checks) and the chunk store.
#[derive(Clone)]
pub struct AppState<S> {
    pub store: S,
    pub chunks: Chunks,
}

/// The shop's routes behind `layer`.
pub fn router<S: SessionStore + Clone>(
    state: AppState<S>,
    layer: SessionLayer,
    instance: &str,
) -> Router {
    let instance = HeaderValue::from_str(instance).expect("INSTANCE is a valid header value");
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/cart", get(cart::list))
        .route("/cart/items", post(cart::add))
        .route("/cart/items/{sku}", get(cart::item))
        .route("/checkout", post(cart::checkout))
        .route("/uploads", post(uploads::create))
        .route("/uploads/{id}", get(uploads::status))
        .route(
            "/uploads/{id}/chunks/{n}",
            put(uploads::put_chunk::<S>).layer(DefaultBodyLimit::max(uploads::MAX_CHUNK)),
        )
        .route("/uploads/{id}/complete", post(uploads::complete::<S>))
        .route("/healthz", get(healthz::<S>))
        .with_state(state)
        .layer(layer)
        .layer(axum::middleware::map_response(
            move |mut response: Response| {
                let instance = instance.clone();
                async move {
                    response
                        .headers_mut()
                        .insert(HeaderName::from_static("x-instance"), instance);
                    response
                }
            },
        ))
}

/// What handlers answer with when something goes wrong.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(String),
    Unauthorized,
    NotFound,
    Conflict(&'static str),
    Session(tower_stateless::Error),
    Chunks(chunks::ChunkError),
}

impl From<chunks::ChunkError> for ApiError {
    fn from(error: chunks::ChunkError) -> Self {
        Self::Chunks(error)
    }
}

impl From<tower_stateless::Error> for ApiError {
    fn from(error: tower_stateless::Error) -> Self {
        Self::Session(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "log in first".to_owned()),
            Self::NotFound => (
                StatusCode::NOT_FOUND,
                "no such upload in this session".to_owned(),
            ),
            Self::Conflict(why) => (StatusCode::CONFLICT, why.to_owned()),
            Self::Session(error) => return error.into_response(),
            Self::Chunks(error) => {
                tracing::warn!(error = %error.0, "chunk store unavailable");
                let retry = [(axum::http::header::RETRY_AFTER, "1")];
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    retry,
                    "chunk store unavailable",
                )
                    .into_response();
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

/// Parses a JSON body, answering 400 (not axum's 415/422) for anything malformed.
pub(crate) fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))
}

/// The logged-in user, or 401.
pub(crate) async fn current_user(session: &Session) -> Result<String, ApiError> {
    session
        .get::<String>(USER)
        .await?
        .ok_or(ApiError::Unauthorized)
}

#[derive(Serialize, Deserialize)]
struct User {
    user: String,
}

async fn login(session: Session, body: axum::body::Bytes) -> Result<Json<User>, ApiError> {
    let User { user } = parse(&body)?;
    let user = user.trim().to_owned();
    if user.is_empty() || user.len() > 64 {
        return Err(ApiError::BadRequest(
            "user must be 1 to 64 characters".into(),
        ));
    }
    // A new ID at every login: a session ID planted before login is worthless after it.
    session.cycle_id();
    session.insert(USER, &user)?;
    session.set_user_id(user.clone());
    Ok(Json(User { user }))
}

async fn logout(session: Session) -> StatusCode {
    session.destroy();
    StatusCode::NO_CONTENT
}

async fn me(session: Session) -> Result<Json<User>, ApiError> {
    Ok(Json(User {
        user: current_user(&session).await?,
    }))
}

/// A random ID for orders and uploads: `<prefix>_<16 hex digits>`.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{prefix}_{:016x}", u64::from_be_bytes(bytes))
}

async fn healthz<S: SessionStore>(State(state): State<AppState<S>>) -> StatusCode {
    match state.store.ping().await {
        Ok(()) => StatusCode::OK,
        Err(error) => {
            tracing::warn!(%error, "health check: session store unavailable");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}
