//! Durable revocations: a logout, log-out-everywhere or `cycle_id` is acknowledged only
//! once it has reached enough replicas, so a failover right after it cannot bring the
//! ended session back.
//!
//! Redis replicates asynchronously. `WAIT n timeout` blocks the calling connection until
//! every write made *on that connection* has reached `n` replicas, so revocations run on
//! a connection of their own: a `WAIT` on the shared multiplexed connection would stall
//! every other request queued behind it.

use std::future::Future;
use std::time::Duration;

use super::conn::{Conn, Source};
use super::store::RedisStore;
use crate::error::StoreError;

/// The revocation connection and what to wait for.
pub(super) struct Durability {
    conn: Conn,
    replicas: u32,
    timeout: Duration,
}

impl Durability {
    /// Opens the revocation connection to where `source` points. `replicas` and `timeout`
    /// are not zero (the builder checks them first).
    pub(super) async fn open(
        source: &Source,
        replicas: u32,
        timeout: Duration,
    ) -> Result<Self, StoreError> {
        Ok(Self {
            conn: source.connect().await?,
            replicas,
            timeout,
        })
    }
}

impl RedisStore {
    /// Runs a revoking operation: as is, or on the revocation connection followed by a
    /// `WAIT` on it.
    pub(super) async fn revoke<T, F, Fut>(&self, operation: F) -> Result<T, StoreError>
    where
        F: FnOnce(RedisStore) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let Some(durability) = &self.durability else {
            return operation(self.clone()).await;
        };
        let mut revoker = self.clone();
        revoker.conn = durability.conn.clone();
        revoker.durability = None;
        let outcome = operation(revoker).await?;
        let timeout_ms = u64::try_from(durability.timeout.as_millis()).unwrap_or(u64::MAX);
        let confirmed: u64 = ::redis::cmd("WAIT")
            .arg(durability.replicas)
            .arg(timeout_ms)
            .query_async(&mut durability.conn.clone())
            .await
            .map_err(StoreError::backend)?;
        if confirmed < u64::from(durability.replicas) {
            return Err(StoreError::backend(format!(
                "the change reached {confirmed} of {} replicas in {:?}",
                durability.replicas, durability.timeout
            )));
        }
        Ok(outcome)
    }
}
