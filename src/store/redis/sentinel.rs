//! A connection to whichever server Redis Sentinel names as the master, that follows a
//! failover.
//!
//! redis-rs's `SentinelClient` finds the master (asking the sentinels, then checking the
//! server's role) but returns a plain multiplexed connection, which keeps talking to the
//! old master after a failover. This wrapper keeps one such connection and forgets it as
//! soon as a call shows that it no longer reaches a writable master (the connection
//! broke, or the server answers `READONLY` because it was demoted): that call fails
//! (the layer answers 503), and the next one asks the sentinels again.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::sentinel::{SentinelClient, SentinelServerType};
use ::redis::{AsyncConnectionConfig, Cmd, Pipeline, RedisError, RedisFuture, RedisResult, Value};

use crate::error::StoreError;

/// A cheap handle; clones share the client and the current connection.
#[derive(Clone)]
pub(super) struct SentinelConn {
    client: Arc<tokio::sync::Mutex<SentinelClient>>,
    /// The connection to the master last found, with a number that tells it apart from
    /// the ones before it (so a late failure cannot drop a newer connection).
    current: Arc<Mutex<Option<(u64, MultiplexedConnection)>>>,
    config: AsyncConnectionConfig,
}

impl SentinelConn {
    /// Asks `sentinels` (`redis://host:port` each) for the master named `master` and
    /// connects to it; fails if none can be reached now.
    pub(super) async fn connect(
        sentinels: &[String],
        master: &str,
        connection_timeout: Duration,
        response_timeout: Duration,
    ) -> Result<Self, StoreError> {
        let client =
            SentinelClient::build(sentinels.to_vec(), master, None, SentinelServerType::Master)
                .map_err(StoreError::backend)?;
        let conn = Self {
            client: Arc::new(tokio::sync::Mutex::new(client)),
            current: Arc::default(),
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(connection_timeout))
                .set_response_timeout(Some(response_timeout)),
        };
        conn.connection().await.map_err(StoreError::backend)?;
        Ok(conn)
    }

    /// The current master connection, or a new one found through the sentinels.
    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        if let Some(current) = self.current.lock().expect("not poisoned").clone() {
            return Ok(current);
        }
        // One lookup at a time: callers waiting here reuse what the first one found.
        let mut client = self.client.lock().await;
        if let Some(current) = self.current.lock().expect("not poisoned").clone() {
            return Ok(current);
        }
        let connection = client
            .get_async_connection_with_config(&self.config)
            .await?;
        let mut current = self.current.lock().expect("not poisoned");
        let generation = current.as_ref().map_or(0, |(generation, _)| generation + 1);
        *current = Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// After a failed call on connection `generation`: forget it if the failure means it
    /// no longer reaches a writable master.
    fn after_failure(&self, generation: u64, error: &RedisError) {
        let lost_master = error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.is_timeout()
            || error.code() == Some("READONLY");
        if !lost_master {
            return;
        }
        let mut current = self.current.lock().expect("not poisoned");
        if current
            .as_ref()
            .is_some_and(|(current, _)| *current == generation)
        {
            tracing::warn!(%error, "lost the Redis master; asking the sentinels again");
            *current = None;
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (generation, mut connection) = self.connection().await?;
            let result = connection.req_packed_command(cmd).await;
            if let Err(error) = &result {
                self.after_failure(generation, error);
            }
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let (generation, mut connection) = self.connection().await?;
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            if let Err(error) = &result {
                self.after_failure(generation, error);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        0
    }
}
