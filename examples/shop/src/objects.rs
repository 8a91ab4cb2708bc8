//! Uploads in S3-compatible object storage (`UPLOADS_BUCKET`): each upload is one S3
//! multipart upload that any instance can continue. The session holds only the upload's
//! multipart ID (in its metadata) and each part's length and ETag; the bytes go from the
//! request straight to the bucket, never to Redis nor to an instance's disk; with
//! `SESSION_ENCRYPT`, each part sealed first (`crate::sealing`), so the object is the
//! sealed parts, opened in order when the upload is completed.
//!
//! S3 wants every part but the last to be at least 5 MiB, so here a chunk is a part of
//! exactly [`PART_SIZE`] bytes, but for the last. An upload not completed within its
//! expiry is aborted by a sweep that every instance runs, from a list of uploads in
//! progress kept beside the per-user counts ([`Chunks`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt as _;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{ObjectStoreExt as _, PutPayload};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chunks::Chunks;
use crate::error::ApiError;
use crate::sealing::UploadSeal;
use crate::Config;

/// The size of every part but an upload's last: S3's least.
pub const PART_SIZE: usize = 5 * 1024 * 1024;
/// Abandoned uploads aborted by one sweep, at most.
const SWEEP_BATCH: usize = 100;

/// The bucket that uploads go to, and how long one may stay unfinished.
#[derive(Clone)]
pub struct ObjectUploads {
    store: Arc<AmazonS3>,
    bucket: Arc<str>,
    expiry: Duration,
}

impl fmt::Debug for ObjectUploads {
    /// The bucket's name only: the client's settings hold credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectUploads")
            .field("bucket", &self.bucket)
            .field("expiry", &self.expiry)
            .finish_non_exhaustive()
    }
}

/// An object storage failure.
#[derive(Debug)]
pub struct ObjectError(pub(crate) object_store::Error);

impl fmt::Display for ObjectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl From<object_store::Error> for ObjectError {
    fn from(error: object_store::Error) -> Self {
        Self(error)
    }
}

/// An upload in progress, as the sweep's list names it.
#[derive(Serialize, Deserialize)]
struct Pending {
    key: String,
    multipart: String,
}

impl ObjectUploads {
    /// The client of `bucket` that the standard `AWS_*` variables describe
    /// (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`,
    /// `AWS_ALLOW_HTTP`, ...); uploads unfinished after `expiry` are aborted.
    pub fn from_env(bucket: &str, expiry: Duration) -> Result<Self, String> {
        // For https endpoints; an error only says that a provider is installed already.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let store = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .build()
            .map_err(|error| format!("UPLOADS_BUCKET: {error}"))?;
        Ok(Self {
            store: Arc::new(store),
            bucket: bucket.into(),
            expiry,
        })
    }

    /// The object an upload becomes.
    pub(crate) fn key_of(upload: &str) -> String {
        format!("uploads/{upload}")
    }

    /// Starts the multipart upload of `upload` and lists it for the sweep; its
    /// multipart ID, and when the sweep may abort it (ms since the Unix epoch).
    pub(crate) async fn create(
        &self,
        chunks: &Chunks,
        upload: &str,
    ) -> Result<(String, u64), ApiError> {
        let key = Self::key_of(upload);
        let multipart = self
            .store
            .create_multipart(&Path::from(key.as_str()))
            .await
            .map_err(ObjectError)?;
        let pending = pending_member(&key, &multipart);
        match chunks.track_pending(&pending, self.expiry).await {
            Ok(expires) => Ok((multipart, expires)),
            Err(error) => {
                self.abort(&key, &multipart).await;
                Err(error.into())
            }
        }
    }

    /// Sends part `n` (0-based); its ETag.
    pub(crate) async fn put_part(
        &self,
        upload: &str,
        multipart: &str,
        n: u32,
        bytes: Bytes,
    ) -> Result<String, ObjectError> {
        let path = Path::from(Self::key_of(upload));
        let part = self
            .store
            .put_part(
                &path,
                &multipart.to_owned(),
                n as usize,
                PutPayload::from(bytes),
            )
            .await?;
        Ok(part.content_id)
    }

    /// Joins the parts (ETags in order) into the object, unlists the upload, and answers
    /// the object's length and SHA-256, read back from the bucket. An upload completed
    /// before, whose answer was lost, is found by its object.
    pub(crate) async fn complete(
        &self,
        chunks: &Chunks,
        upload: &str,
        multipart: &str,
        etags: Vec<String>,
        seal: Option<&UploadSeal>,
    ) -> Result<(u64, String), ApiError> {
        let key = Self::key_of(upload);
        let path = Path::from(key.as_str());
        let parts = etags
            .into_iter()
            .map(|content_id| PartId { content_id })
            .collect();
        if let Err(error) = self
            .store
            .complete_multipart(&path, &multipart.to_owned(), parts)
            .await
        {
            if self.store.head(&path).await.is_err() {
                return Err(ObjectError(error).into());
            }
        }
        chunks
            .untrack_pending(&pending_member(&key, multipart))
            .await?;
        match seal {
            None => Ok(self.digest(&path).await?),
            Some(seal) => self.digest_sealed(&path, upload, seal).await,
        }
    }

    async fn digest(&self, path: &Path) -> Result<(u64, String), ObjectError> {
        let mut stream = self.store.get(path).await?.into_stream();
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        while let Some(piece) = stream.next().await {
            let piece = piece?;
            len += piece.len() as u64;
            hasher.update(&piece);
        }
        Ok((len, crate::uploads::hex(&hasher.finalize())))
    }

    /// [`digest`](Self::digest) of the plaintext of an object made of sealed parts: each
    /// but the last is [`PART_SIZE`] bytes sealed, opened as it streams in, in order.
    async fn digest_sealed(
        &self,
        path: &Path,
        upload: &str,
        seal: &UploadSeal,
    ) -> Result<(u64, String), ApiError> {
        const SEALED_PART: usize = PART_SIZE + UploadSeal::OVERHEAD;
        let changed = || ApiError::Conflict("a stored part does not open: it was changed at rest");
        let mut stream = self
            .store
            .get(path)
            .await
            .map_err(ObjectError)?
            .into_stream();
        let (mut hasher, mut len, mut n) = (Sha256::new(), 0u64, 0u32);
        let mut buffer: Vec<u8> = Vec::with_capacity(SEALED_PART);
        let mut open = |sealed: &[u8], n: u32| -> Option<()> {
            let plain = seal.open(upload, n, sealed)?;
            len += plain.len() as u64;
            hasher.update(&plain);
            Some(())
        };
        while let Some(piece) = stream.next().await {
            buffer.extend_from_slice(&piece.map_err(ObjectError)?);
            // A full part is opened once more follows: the last may be full too.
            while buffer.len() > SEALED_PART {
                open(&buffer[..SEALED_PART], n).ok_or_else(changed)?;
                buffer.drain(..SEALED_PART);
                n += 1;
            }
        }
        open(&buffer, n).ok_or_else(changed)?;
        Ok((len, crate::uploads::hex(&hasher.finalize())))
    }

    async fn abort(&self, key: &str, multipart: &str) {
        let result = self
            .store
            .abort_multipart(&Path::from(key), &multipart.to_owned())
            .await;
        if let Err(error) = result {
            if !matches!(error, object_store::Error::NotFound { .. }) {
                tracing::warn!(%error, "cannot abort an upload");
            }
        }
    }

    /// Aborts the uploads whose expiry has passed, again and again, a few times per
    /// expiry (at most every minute). Every instance runs it; an upload aborted twice is
    /// no harm.
    pub async fn sweep(self, chunks: Chunks) {
        let every = (self.expiry / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
        loop {
            tokio::time::sleep(every).await;
            match chunks.expired_pending(SWEEP_BATCH).await {
                Ok(expired) => {
                    for member in expired {
                        if let Ok(pending) = serde_json::from_str::<Pending>(&member) {
                            self.abort(&pending.key, &pending.multipart).await;
                        }
                        if let Err(error) = chunks.untrack_pending(&member).await {
                            tracing::warn!(error = %error.0, "upload sweep");
                        }
                    }
                }
                Err(error) => tracing::warn!(error = %error.0, "upload sweep"),
            }
        }
    }
}

/// Object storage for uploads if `UPLOADS_BUCKET` is set, with its sweep running; else
/// none, and the log says where chunks are kept instead.
pub(crate) fn start(config: &Config, chunks: &Chunks) -> Result<Option<ObjectUploads>, String> {
    let Some(bucket) = &config.uploads_bucket else {
        let place = match chunks {
            Chunks::Memory(_) => "in this process's memory, which other instances cannot see",
            Chunks::Redis(..) => "in Redis, beside the sessions",
        };
        tracing::info!("UPLOADS_BUCKET is not set: upload chunks are kept {place}");
        return Ok(None);
    };
    let objects = ObjectUploads::from_env(bucket, config.uploads_expiry)?;
    tracing::info!(
        bucket = %bucket,
        "uploads go to object storage (UPLOADS_BUCKET) as S3 multipart uploads"
    );
    tokio::spawn(objects.clone().sweep(chunks.clone()));
    Ok(Some(objects))
}

fn pending_member(key: &str, multipart: &str) -> String {
    serde_json::to_string(&Pending {
        key: key.to_owned(),
        multipart: multipart.to_owned(),
    })
    .expect("two strings serialize")
}
