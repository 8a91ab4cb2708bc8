//! Chunked uploads: progress in the session, chunks in the shared store.
//!
//! Each received chunk is its own session key (`upload:<id>:chunk:<n>` = its length),
//! so chunks arriving in parallel at different instances never overwrite each other's
//! progress: the per-key change sets do the merging.
//!
//! Uploads take a logged-in session (401 otherwise). A user has at most
//! [`MAX_IN_PROGRESS`] uploads in progress, of at most [`MAX_RESERVED`] bytes in all
//! (counted in the chunk store, across the user's sessions, until completed or a day
//! old). Every chunk but the last has at least [`MIN_CHUNK`] bytes: each chunk is a
//! session key that every later request of the upload reads, so tiny chunks would make
//! the work grow with the square of the upload's size.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tower_stateless::store::SessionStore;
use tower_stateless::Session;

use crate::account::current_user;
use crate::app::AppState;
use crate::chunks::{Limits, Reservation};
use crate::error::ApiError;
use crate::json::JsonBody;

/// The largest chunk accepted.
pub const MAX_CHUNK: usize = 1024 * 1024;
/// The smallest chunk accepted, but for an upload's last one.
pub const MIN_CHUNK: usize = 64 * 1024;
/// The largest upload accepted (a demo limit): at most 1025 chunks.
pub const MAX_SIZE: u64 = 64 * MAX_CHUNK as u64;
/// Uploads one user may have in progress.
pub const MAX_IN_PROGRESS: usize = 3;
/// Bytes one user's uploads in progress may add up to (declared sizes).
pub const MAX_RESERVED: u64 = 2 * MAX_SIZE;

#[derive(Serialize, Deserialize)]
pub(crate) struct NewUpload {
    name: String,
    size: u64,
}

#[derive(Serialize, Deserialize)]
struct Meta {
    name: String,
    size: u64,
}

#[derive(Serialize)]
pub(crate) struct Created {
    upload: String,
}

#[derive(Serialize)]
pub(crate) struct Progress {
    upload: String,
    name: String,
    size: u64,
    received: Vec<u32>,
    bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct Received {
    received: Vec<u32>,
    bytes: u64,
}

#[derive(Serialize)]
pub(crate) struct Completed {
    bytes: u64,
    sha256: String,
}

fn meta_key(id: &str) -> String {
    format!("upload:{id}")
}

fn chunk_prefix(id: &str) -> String {
    format!("upload:{id}:chunk:")
}

pub(crate) async fn create<S: SessionStore>(
    State(state): State<AppState<S>>,
    session: Session,
    JsonBody(NewUpload { name, size }): JsonBody<NewUpload>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    if name.is_empty() || name.len() > 255 {
        return Err(ApiError::BadRequest(
            "name must be 1 to 255 characters".into(),
        ));
    }
    if size == 0 || size > MAX_SIZE {
        return Err(ApiError::BadRequest(format!(
            "size must be 1 to {MAX_SIZE} bytes"
        )));
    }
    let user = current_user(&session).await?;
    let upload = crate::ids::random_id("up");
    let limits = Limits {
        uploads: MAX_IN_PROGRESS,
        bytes: MAX_RESERVED,
    };
    match state.chunks.reserve(&user, &upload, size, limits).await? {
        Reservation::Granted => {}
        Reservation::TooMany => {
            return Err(ApiError::Limit("too many uploads in progress"));
        }
        Reservation::TooLarge => {
            return Err(ApiError::Limit("uploads in progress too large in all"));
        }
    }
    session.insert(meta_key(&upload), &Meta { name, size })?;
    Ok((StatusCode::CREATED, Json(Created { upload })))
}

/// The logged-in user, the upload's metadata and its received chunks (sorted); 401 for
/// an anonymous session, 404 if this session did not start the upload.
async fn progress(
    session: &Session,
    id: &str,
) -> Result<(String, Meta, Vec<(u32, u64)>), ApiError> {
    let user = current_user(session).await?;
    let meta: Meta = session
        .get(&meta_key(id))
        .await?
        .ok_or(ApiError::NotFound)?;
    let prefix = chunk_prefix(id);
    let mut chunks = Vec::new();
    for key in session.keys().await? {
        if let Some(n) = key.strip_prefix(&prefix).and_then(|n| n.parse().ok()) {
            chunks.push((n, session.get::<u64>(&key).await?.unwrap_or(0)));
        }
    }
    chunks.sort_unstable();
    Ok((user, meta, chunks))
}

fn totals(chunks: &[(u32, u64)]) -> (Vec<u32>, u64) {
    (
        chunks.iter().map(|(n, _)| *n).collect(),
        chunks.iter().map(|(_, len)| len).sum(),
    )
}

pub(crate) async fn put_chunk<S: SessionStore>(
    State(state): State<AppState<S>>,
    session: Session,
    Path((id, n)): Path<(String, u32)>,
    body: Bytes,
) -> Result<Json<Received>, ApiError> {
    let (_, meta, mut chunks) = progress(&session, &id).await?;
    if body.is_empty() {
        return Err(ApiError::BadRequest("empty chunk".into()));
    }
    let len = body.len() as u64;
    if u64::from(n) >= meta.size.div_ceil(MIN_CHUNK as u64) {
        return Err(ApiError::BadRequest(format!(
            "chunk {n} is beyond the upload's size in chunks of {MIN_CHUNK} bytes"
        )));
    }
    chunks.retain(|(seen, _)| *seen != n);
    // Only the last chunk may be short: no short chunk before a later one.
    let short = |len: u64| len < MIN_CHUNK as u64;
    let misplaced_short = if short(len) {
        chunks
            .iter()
            .any(|(other, other_len)| *other > n || short(*other_len))
    } else {
        chunks
            .iter()
            .any(|(other, other_len)| *other < n && short(*other_len))
    };
    if misplaced_short {
        return Err(ApiError::BadRequest(format!(
            "every chunk but the last must have at least {MIN_CHUNK} bytes"
        )));
    }
    if totals(&chunks).1 + len > meta.size {
        return Err(ApiError::BadRequest(
            "chunk exceeds the declared size".into(),
        ));
    }
    // The chunk is stored before its progress is recorded: acknowledged means kept.
    state.chunks.put(&id, n, body).await?;
    session.insert(format!("{}{n}", chunk_prefix(&id)), &len)?;
    chunks.push((n, len));
    chunks.sort_unstable();
    let (received, bytes) = totals(&chunks);
    Ok(Json(Received { received, bytes }))
}

pub(crate) async fn status(
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    let (_, meta, chunks) = progress(&session, &id).await?;
    let (received, bytes) = totals(&chunks);
    Ok(Json(Progress {
        upload: id,
        name: meta.name,
        size: meta.size,
        received,
        bytes,
    }))
}

pub(crate) async fn complete<S: SessionStore>(
    State(state): State<AppState<S>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Completed>, ApiError> {
    let (user, meta, chunks) = progress(&session, &id).await?;
    let (received, bytes) = totals(&chunks);
    let contiguous = received.iter().enumerate().all(|(i, n)| *n as usize == i);
    if bytes != meta.size || !contiguous {
        return Err(ApiError::Conflict("not every chunk has been received"));
    }
    let count = u32::try_from(received.len()).unwrap_or(u32::MAX);
    let mut hasher = Sha256::new();
    for (chunk, (_, len)) in state
        .chunks
        .get_all(&id, count)
        .await?
        .into_iter()
        .zip(&chunks)
    {
        let chunk = chunk.ok_or(ApiError::Conflict("a chunk expired before completion"))?;
        if chunk.len() as u64 != *len {
            return Err(ApiError::Conflict("a chunk changed during completion"));
        }
        hasher.update(&chunk);
    }
    let sha256 = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    // No longer in progress: it leaves the session and the user's count.
    session.remove(meta_key(&id));
    for (n, _) in &chunks {
        session.remove(format!("{}{n}", chunk_prefix(&id)));
    }
    state.chunks.release(&user, &id, meta.size).await?;
    Ok(Json(Completed { bytes, sha256 }))
}
