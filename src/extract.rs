//! axum integration: `Session` as an extractor, errors as responses.

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::request::Parts;
use http::StatusCode;

use crate::error::Error;
use crate::session::Session;

/// Rejection of the [`Session`] extractor: the route is not behind a `SessionLayer`.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct MissingSessionLayer;

impl std::fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no Session in request extensions: is the route behind tower_stateless::SessionLayer?",
        )
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        (StatusCode::INTERNAL_SERVER_ERROR, self.to_string()).into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Session>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}

/// Lets handlers use `?` on session calls. The layer replaces the response of any
/// store failure with its own 503 anyway; this gives the handler's answer the same shape.
impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = crate::protocol::http_status(self.kind());
        (status, self.to_string()).into_response()
    }
}
