//! What handlers answer when something goes wrong, and the JSON body parser that
//! answers 400 for anything malformed.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;

use crate::chunks;

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
