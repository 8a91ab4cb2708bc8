//! What handlers answer when something goes wrong.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::chunks;

/// An error and its causes, `": "`-separated, each said once, for a log line or a
/// startup message. The store's own wrapper ("session store backend failed") is left
/// out where a cause says more.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut cause = match error.source() {
        Some(source)
            if error
                .downcast_ref::<tower_stateless::store::StoreError>()
                .is_some() =>
        {
            Some(source)
        }
        _ => Some(error),
    };
    while let Some(error) = cause {
        let message = error.to_string();
        if !text.ends_with(&message) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&message);
        }
        cause = error.source();
    }
    text
}

/// What handlers answer with when something goes wrong.
#[derive(Debug)]
pub(crate) enum ApiError {
    BadRequest(String),
    Unauthorized,
    NotFound,
    UnsupportedMediaType,
    /// A per-user limit on uploads in progress.
    Limit(&'static str),
    Conflict(&'static str),
    /// Token mode: sessions live in cookies, and nothing lists a user's.
    NoSessionList,
    Session(tower_stateless::Error),
    Chunks(chunks::ChunkError),
    Objects(crate::objects::ObjectError),
}

impl From<crate::objects::ObjectError> for ApiError {
    fn from(error: crate::objects::ObjectError) -> Self {
        Self::Objects(error)
    }
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

/// A 503 that tells the client to try again (another instance, or the same one) soon.
fn unavailable(what: &'static str) -> Response {
    let retry = [(axum::http::header::RETRY_AFTER, "1")];
    (StatusCode::SERVICE_UNAVAILABLE, retry, what).into_response()
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
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send Content-Type: application/json".to_owned(),
            ),
            Self::Limit(why) => (StatusCode::TOO_MANY_REQUESTS, why.to_owned()),
            Self::Conflict(why) => (StatusCode::CONFLICT, why.to_owned()),
            Self::NoSessionList => (
                StatusCode::NOT_IMPLEMENTED,
                "token mode keeps sessions in cookies: nothing lists a user's sessions".to_owned(),
            ),
            // A cart of thousands of lines, or a token past its cookie's budget: the
            // client's own doing, said in words.
            Self::Session(error) if error.kind() == tower_stateless::ErrorKind::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "the session is full: remove cart lines or check out first".to_owned(),
            ),
            Self::Session(error) => return error.into_response(),
            Self::Objects(error) => {
                tracing::warn!(%error, "object storage unavailable");
                return unavailable("object storage unavailable");
            }
            Self::Chunks(error) => {
                tracing::warn!(error = %error.0, "chunk store unavailable");
                return unavailable("chunk store unavailable");
            }
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}
