//! Where upload chunks live: in Redis beside the sessions (never on an instance's disk),
//! or in process memory when the shop runs on the in-memory store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use redis::AsyncCommands;
use tower_stateless::RedisConnection;

/// Unfinished uploads are dropped after a day.
const CHUNK_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// Chunk storage shared by every instance (or, in memory mode, by none).
#[derive(Clone, Debug)]
pub enum Chunks {
    Memory(Arc<Mutex<HashMap<String, Bytes>>>),
    /// The session store's own connection (single node or cluster).
    Redis(RedisConnection),
}

/// A chunk store failure: the request gets a 503.
#[derive(Debug)]
pub struct ChunkError(pub redis::RedisError);

impl Chunks {
    pub fn memory() -> Self {
        Self::Memory(Arc::default())
    }

    /// The key of chunk `n`; the hash tag keeps an upload's chunks in one cluster slot.
    fn key(upload: &str, n: u32) -> String {
        format!("shop:chunk:{{{upload}}}:{n}")
    }

    pub async fn put(&self, upload: &str, n: u32, bytes: Bytes) -> Result<(), ChunkError> {
        let key = Self::key(upload, n);
        match self {
            Self::Memory(map) => {
                map.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(key, bytes);
                Ok(())
            }
            Self::Redis(conn) => conn
                .clone()
                .set_ex(key, bytes.as_ref(), CHUNK_TTL.as_secs())
                .await
                .map_err(ChunkError),
        }
    }

    /// Chunks `0..count` in order; `None` for any that is missing.
    pub async fn get_all(
        &self,
        upload: &str,
        count: u32,
    ) -> Result<Vec<Option<Vec<u8>>>, ChunkError> {
        let keys: Vec<String> = (0..count).map(|n| Self::key(upload, n)).collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Self::Memory(map) => {
                let map = map.lock().unwrap_or_else(|p| p.into_inner());
                Ok(keys
                    .iter()
                    .map(|k| map.get(k).map(|b| b.to_vec()))
                    .collect())
            }
            Self::Redis(conn) => conn.clone().mget(keys).await.map_err(ChunkError),
        }
    }
}
