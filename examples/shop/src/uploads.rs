//! Chunked uploads: progress in the session, chunks in the shared store.
//!
//! With `SESSION_ENCRYPT`, a chunk's bytes are sealed before they are stored and opened
//! at completion (`crate::sealing`).
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
use crate::objects::{ObjectUploads, PART_SIZE};

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
    /// With object storage: the S3 multipart upload's ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    multipart: Option<String>,
    /// With object storage: when the sweep may abort it (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires: Option<u64>,
    /// With object storage, once completed: the object's SHA-256 (the upload's record
    /// then stays, so that `GET /uploads/{id}` names the object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct Created {
    upload: String,
    /// The size of every chunk the client should send but the last.
    chunk_size: usize,
}

#[derive(Serialize)]
pub(crate) struct Progress {
    upload: String,
    name: String,
    size: u64,
    received: Vec<u32>,
    bytes: u64,
    /// With object storage, once completed: the object's key in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    object_key: Option<String>,
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
    /// With object storage: the object's key in the bucket.
    #[serde(skip_serializing_if = "Option::is_none")]
    object_key: Option<String>,
}

fn meta_key(id: &str) -> String {
    format!("upload:{id}")
}

fn chunk_prefix(id: &str) -> String {
    format!("upload:{id}:chunk:")
}

/// With object storage: part `n`'s ETag.
fn etag_key(id: &str, n: u32) -> String {
    format!("upload:{id}:etag:{n}")
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
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
    let (multipart, expires, chunk_size) = match &state.objects {
        Some(objects) => {
            let (multipart, expires) = objects.create(&state.chunks, &upload).await?;
            (Some(multipart), Some(expires), PART_SIZE)
        }
        None => (None, None, MAX_CHUNK),
    };
    let meta = Meta {
        name,
        size,
        multipart,
        expires,
        sha256: None,
    };
    session.insert(meta_key(&upload), &meta)?;
    Ok((StatusCode::CREATED, Json(Created { upload, chunk_size })))
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
    if let (Some(objects), Some(multipart)) = (&state.objects, &meta.multipart) {
        if meta.sha256.is_some() {
            return Err(ApiError::Conflict("the upload is complete"));
        }
        if meta
            .expires
            .is_some_and(|expires| expires <= crate::chunks::now_ms())
        {
            return Err(ApiError::Conflict("the upload expired: start it again"));
        }
        let expected = part_len(meta.size, n).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "chunk {n} is beyond the upload's size in parts of {PART_SIZE} bytes"
            ))
        })?;
        if len != expected {
            return Err(ApiError::BadRequest(format!(
                "chunk {n} must have {expected} bytes: parts of {PART_SIZE} bytes, \
                 but for the last"
            )));
        }
        // The part is in the bucket before its ETag is recorded: acknowledged means kept.
        let body = sealed(&state, &id, n, body);
        let etag = objects.put_part(&id, multipart, n, body).await?;
        session.insert(etag_key(&id, n), &etag)?;
        session.insert(format!("{}{n}", chunk_prefix(&id)), &len)?;
        chunks.retain(|(seen, _)| *seen != n);
        chunks.push((n, len));
        chunks.sort_unstable();
        let (received, bytes) = totals(&chunks);
        return Ok(Json(Received { received, bytes }));
    }
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
    let body = sealed(&state, &id, n, body);
    state.chunks.put(&id, n, body).await?;
    session.insert(format!("{}{n}", chunk_prefix(&id)), &len)?;
    chunks.push((n, len));
    chunks.sort_unstable();
    let (received, bytes) = totals(&chunks);
    Ok(Json(Received { received, bytes }))
}

/// `body` as it is stored: sealed as piece `n` of upload `id` with `SESSION_ENCRYPT`.
fn sealed<S>(state: &AppState<S>, id: &str, n: u32, body: Bytes) -> Bytes {
    match &state.uploads_seal {
        Some(seal) => Bytes::from(seal.seal(id, n, &body)),
        None => body,
    }
}

/// The length of part `n` of an upload of `size` bytes in object storage, if it has one.
fn part_len(size: u64, n: u32) -> Option<u64> {
    let start = u64::from(n) * PART_SIZE as u64;
    (start < size).then(|| (size - start).min(PART_SIZE as u64))
}

pub(crate) async fn status(
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Progress>, ApiError> {
    let (_, meta, chunks) = progress(&session, &id).await?;
    let (mut received, mut bytes) = totals(&chunks);
    let mut object_key = None;
    if meta.sha256.is_some() {
        let parts = meta.size.div_ceil(PART_SIZE as u64);
        received = (0..u32::try_from(parts).unwrap_or(u32::MAX)).collect();
        bytes = meta.size;
        object_key = Some(ObjectUploads::key_of(&id));
    }
    Ok(Json(Progress {
        upload: id,
        name: meta.name,
        size: meta.size,
        received,
        bytes,
        object_key,
    }))
}

pub(crate) async fn complete<S: SessionStore>(
    State(state): State<AppState<S>>,
    session: Session,
    Path(id): Path<String>,
) -> Result<Json<Completed>, ApiError> {
    let (user, mut meta, chunks) = progress(&session, &id).await?;
    if let (Some(sha256), Some(_)) = (&meta.sha256, &state.objects) {
        // Completed before: the same answer again.
        return Ok(Json(Completed {
            bytes: meta.size,
            sha256: sha256.clone(),
            object_key: Some(ObjectUploads::key_of(&id)),
        }));
    }
    let (received, bytes) = totals(&chunks);
    let contiguous = received.iter().enumerate().all(|(i, n)| *n as usize == i);
    if bytes != meta.size || !contiguous {
        return Err(ApiError::Conflict("not every chunk has been received"));
    }
    if let (Some(objects), Some(multipart)) = (&state.objects, meta.multipart.clone()) {
        if meta
            .expires
            .is_some_and(|expires| expires <= crate::chunks::now_ms())
        {
            return Err(ApiError::Conflict("the upload expired: start it again"));
        }
        let mut etags = Vec::with_capacity(received.len());
        for n in &received {
            let etag = session.get::<String>(&etag_key(&id, *n)).await?;
            etags.push(etag.ok_or(ApiError::Conflict("a part's ETag is missing"))?);
        }
        let (stored, sha256) = objects
            .complete(
                &state.chunks,
                &id,
                &multipart,
                etags,
                state.uploads_seal.as_ref(),
            )
            .await?;
        if stored != meta.size {
            return Err(ApiError::Conflict("the stored object has another size"));
        }
        for n in &received {
            session.remove(format!("{}{n}", chunk_prefix(&id)));
            session.remove(etag_key(&id, *n));
        }
        meta.sha256 = Some(sha256.clone());
        session.insert(meta_key(&id), &meta)?;
        state.chunks.release(&user, &id, meta.size).await?;
        return Ok(Json(Completed {
            bytes: stored,
            sha256,
            object_key: Some(ObjectUploads::key_of(&id)),
        }));
    }
    let count = u32::try_from(received.len()).unwrap_or(u32::MAX);
    let mut hasher = Sha256::new();
    for (chunk, (n, len)) in state
        .chunks
        .get_all(&id, count)
        .await?
        .into_iter()
        .zip(&chunks)
    {
        let chunk = chunk.ok_or(ApiError::Conflict("a chunk expired before completion"))?;
        let chunk = match &state.uploads_seal {
            Some(seal) => seal.open(&id, *n, &chunk).ok_or(ApiError::Conflict(
                "a stored chunk does not open: it was changed at rest",
            ))?,
            None => chunk,
        };
        if chunk.len() as u64 != *len {
            return Err(ApiError::Conflict("a chunk changed during completion"));
        }
        hasher.update(&chunk);
    }
    let sha256 = hex(&hasher.finalize());
    // No longer in progress: it leaves the session and the user's count.
    session.remove(meta_key(&id));
    for (n, _) in &chunks {
        session.remove(format!("{}{n}", chunk_prefix(&id)));
    }
    state.chunks.release(&user, &id, meta.size).await?;
    Ok(Json(Completed {
        bytes,
        sha256,
        object_key: None,
    }))
}
