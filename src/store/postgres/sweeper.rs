//! Removes expired rows in the background. Reads never need it (every statement checks
//! liveness itself): it only keeps the table from growing.
//!
//! Sweeps cannot pile up across instances: each batch runs in a transaction that first
//! takes a transaction-scoped advisory lock with `pg_try_advisory_xact_lock`, and an
//! instance that does not get it leaves the round to the one that did. A batch deletes
//! up to [`BATCH`] rows in `expires_at` index order, skipping (`SKIP LOCKED`) rows a
//! request is writing, so a sweep never waits on a request nor a request on a sweep.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::task::JoinHandle;

use super::error;
use super::sql::{SWEEP, SWEEP_LOCK, TRY_LOCK};
use crate::error::StoreError;

/// Rows per batch: small enough that one batch holds its locks briefly.
pub(super) const BATCH: i64 = 1000;

/// The sweeper task; it stops when the last clone of the store is dropped.
#[derive(Debug)]
pub(super) struct Sweeper(JoinHandle<()>);

impl Sweeper {
    pub(super) fn start(pool: Pool, every: Duration) -> Arc<Self> {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate: sweep what a previous run left.
            loop {
                ticks.tick().await;
                match sweep(&pool).await {
                    Ok(0) => {}
                    Ok(deleted) => tracing::debug!(deleted, "swept expired sessions"),
                    // An outage: the next round tries again.
                    Err(error) => tracing::debug!(%error, "could not sweep expired sessions"),
                }
            }
        });
        Arc::new(Self(task))
    }
}

impl Drop for Sweeper {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// One round: batches until one comes back short, or another instance holds the lock.
/// Returns how many rows it deleted.
pub(super) async fn sweep(pool: &Pool) -> Result<u64, StoreError> {
    let mut client = pool.get().await.map_err(error::pool)?;
    let mut deleted = 0;
    loop {
        let transaction = client.transaction().await.map_err(error::backend)?;
        let locked: bool = transaction
            .query_one(TRY_LOCK, &[&SWEEP_LOCK])
            .await
            .map_err(error::backend)?
            .try_get(0)
            .map_err(error::backend)?;
        if !locked {
            return Ok(deleted);
        }
        let batch = transaction
            .execute(SWEEP, &[&BATCH])
            .await
            .map_err(error::backend)?;
        transaction.commit().await.map_err(error::backend)?;
        deleted += batch;
        if batch < BATCH as u64 {
            return Ok(deleted);
        }
    }
}
