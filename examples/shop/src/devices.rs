//! A user's devices: the live sessions of the logged-in user, the current one marked, and
//! logging out all the others.

use axum::extract::State;
use axum::Json;
use serde::Serialize;
use tower_stateless::store::{SessionStore, SessionSummary};
use tower_stateless::Session;

use crate::account::current_user;
use crate::app::AppState;
use crate::error::ApiError;

/// Sessions "log out my other devices" ends per store call.
const LOG_OUT_BATCH: usize = 500;
/// Listings "log out my other devices" goes through at most: 10,000 sessions.
const LOG_OUT_PASSES: usize = 10;

/// One of the user's sessions, as `GET /sessions` lists it.
#[derive(Serialize)]
pub(crate) struct Device {
    /// The session's hashed ID: names it, but cannot be used as a token.
    id: String,
    created_ms: u64,
    last_seen_ms: u64,
    current: bool,
}

/// The logged-in user's live sessions, most recently used first.
pub(crate) async fn list<S: SessionStore>(
    State(state): State<AppState<S>>,
    session: Session,
) -> Result<Json<Vec<Device>>, ApiError> {
    let (current, mut sessions) = sessions_of_current_user(&state, &session).await?;
    sessions.sort_by_key(|summary| std::cmp::Reverse(summary.metadata.refreshed_at));
    let devices = sessions
        .into_iter()
        .map(|summary| Device {
            current: summary.id == current,
            id: summary.id.to_string(),
            created_ms: summary.metadata.created_at.as_millis(),
            last_seen_ms: summary.metadata.refreshed_at.as_millis(),
        })
        .collect();
    Ok(Json(devices))
}

#[derive(Serialize)]
pub(crate) struct Ended {
    ended: usize,
}

/// Ends every session of the logged-in user but this one ("log out my other devices").
pub(crate) async fn log_out_others<S: SessionStore>(
    State(state): State<AppState<S>>,
    session: Session,
) -> Result<Json<Ended>, ApiError> {
    let mut ended = 0;
    // A listing holds at most `MAX_LISTED` sessions, the newest: list again until only
    // this one is left (a bounded number of times).
    for _ in 0..LOG_OUT_PASSES {
        let (current, sessions) = sessions_of_current_user(&state, &session).await?;
        let others: Vec<_> = (sessions.into_iter())
            .map(|summary| summary.id)
            .filter(|id| *id != current)
            .collect();
        if others.is_empty() {
            break;
        }
        // One store call per batch (a pipeline on Redis, one statement on PostgreSQL).
        for batch in others.chunks(LOG_OUT_BATCH) {
            (state.store.destroy_many(batch).await).map_err(tower_stateless::Error::from)?;
        }
        ended += others.len();
    }
    Ok(Json(Ended { ended }))
}

/// This request's hashed session ID and every live session of its user; 401 when logged out.
async fn sessions_of_current_user<S: SessionStore>(
    AppState {
        store, token_mode, ..
    }: &AppState<S>,
    session: &Session,
) -> Result<(tower_stateless::store::HashedId, Vec<SessionSummary>), ApiError> {
    let user = current_user(session).await?;
    if *token_mode {
        return Err(ApiError::NoSessionList);
    }
    // A logged-in request always carries a verified token.
    let current = session.hashed_id().ok_or(ApiError::Unauthorized)?;
    let sessions = store
        .sessions_of_user(&user, session.expiry())
        .await
        .map_err(tower_stateless::Error::from)?;
    Ok((current, sessions))
}
