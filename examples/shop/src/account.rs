//! Logging in and out: the session is bound to the user's name (its user binding, which
//! also lets the store log the user out everywhere), and holds nothing else about them.

use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use tower_stateless::Session;

use crate::error::ApiError;
use crate::json::JsonBody;

/// The logged-in user, or 401.
pub(crate) async fn current_user(session: &Session) -> Result<String, ApiError> {
    session.user_id().await?.ok_or(ApiError::Unauthorized)
}

#[derive(Serialize, Deserialize)]
pub(crate) struct User {
    user: String,
}

pub(crate) async fn login(
    session: Session,
    JsonBody(User { user }): JsonBody<User>,
) -> Result<Json<User>, ApiError> {
    let user = user.trim().to_owned();
    if user.is_empty() || user.len() > 64 {
        return Err(ApiError::BadRequest(
            "user must be 1 to 64 characters".into(),
        ));
    }
    // A new ID at every login: a session ID planted before login is worthless after it.
    session.cycle_id();
    session.set_user_id(user.clone());
    Ok(Json(User { user }))
}

pub(crate) async fn logout(session: Session) -> StatusCode {
    session.destroy();
    StatusCode::NO_CONTENT
}

pub(crate) async fn me(session: Session) -> Result<Json<User>, ApiError> {
    Ok(Json(User {
        user: current_user(&session).await?,
    }))
}
