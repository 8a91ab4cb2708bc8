//! The two kinds of connection a [`RedisStore`](super::RedisStore) can hold, behind one type.

use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClientBuilder;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{
    Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisFuture, RedisResult,
    Value,
};

use super::sentinel::{Follower, SentinelConn};
use crate::error::StoreError;

/// How long to wait for a TCP (and TLS) connection to be set up.
pub(super) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How long to wait for a reply before failing the call. The layer has its own, usually
/// shorter, timeout per request; this one catches a connection that went silent.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a cluster call is retried (after a redirect, or a node that failed).
const CLUSTER_RETRIES: u32 = 3;
/// The shortest and longest wait before a cluster retry, in milliseconds.
const CLUSTER_RETRY_WAIT_MS: (u64, u64) = (10, 80);

/// A multiplexed connection that reconnects by itself; cheap to clone.
#[derive(Clone)]
pub(super) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    /// The master that Redis Sentinel names, followed across failovers.
    Sentinel(SentinelConn),
}

impl Conn {
    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// Prefers RESP3 unless the URL chooses a protocol: over RESP3 the server's
    /// disconnect reaches the idle connection, which reconnects before the next call
    /// instead of failing it. Falls back to RESP2 for servers without `HELLO` (Redis 5).
    pub(super) async fn single(url: &str) -> Result<Self, StoreError> {
        let info = url.into_connection_info().map_err(|error| {
            StoreError::backend(format!(
                "not a Redis URL (redis://[user:password@]host:port[/db] or rediss://...): {error}"
            ))
        })?;
        let target = format!("Redis at {}", info.addr());
        Self::single_at(url, info)
            .await
            .map_err(|error| Unreachable::error(target, error))
    }

    async fn single_at(url: &str, info: ConnectionInfo) -> RedisResult<Self> {
        if !url.contains("protocol=") {
            let settings = info
                .redis_settings()
                .clone()
                .set_protocol(ProtocolVersion::RESP3);
            match manager(info.clone().set_redis_settings(settings)).await {
                Ok(manager) => return Ok(Self::Single(manager)),
                Err(error) if error.is_io_error() || error.is_timeout() => return Err(error),
                Err(error) => tracing::debug!(%error, "RESP3 refused; using RESP2"),
            }
        }
        Ok(Self::Single(manager(info).await?))
    }

    /// A connection of its own to the master `follower` follows.
    pub(super) fn sentinel(follower: &Arc<Follower>) -> Self {
        Self::Sentinel(SentinelConn::new(follower.clone()))
    }

    pub(super) async fn cluster(nodes: &[String]) -> Result<Self, StoreError> {
        if nodes.is_empty() {
            return Err(StoreError::backend("no Redis Cluster node given"));
        }
        // Retries come quickly (10 to 80 ms apart, where redis-rs waits 1.28 s or more by
        // default): a call to a primary that just died fails well within the layer's store
        // timeout instead of waiting it out, and once its replica is promoted the next
        // retry or call finds it.
        let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .retries(CLUSTER_RETRIES)
            .min_retry_wait(CLUSTER_RETRY_WAIT_MS.0)
            .max_retry_wait(CLUSTER_RETRY_WAIT_MS.1)
            .retry_wait_formula(CLUSTER_RETRY_WAIT_MS.0, 2)
            .connection_timeout(CONNECTION_TIMEOUT)
            .response_timeout(RESPONSE_TIMEOUT)
            .build()
            .map_err(|error| {
                StoreError::backend(format!("Redis Cluster nodes {nodes:?}: {error}"))
            })?;
        let connection = client.get_async_connection().await.map_err(|error| {
            Unreachable::error(format!("the Redis Cluster at {}", nodes.join(",")), error)
        })?;
        Ok(Self::Cluster(connection))
    }
}

/// Where the store connected, kept to open more connections later (the revocation
/// connection, the cache's invalidation stream). Holds credentials: never printed.
#[derive(Clone)]
pub(super) enum Source {
    Single(String),
    Cluster(Vec<String>),
    /// The store's follower of the master, shared by all its connections.
    Sentinel(Arc<Follower>),
}

impl Source {
    /// A new connection to where the store connected.
    pub(super) async fn connect(&self) -> Result<Conn, StoreError> {
        match self {
            Self::Single(url) => Conn::single(url).await,
            Self::Cluster(nodes) => Conn::cluster(nodes).await,
            Self::Sentinel(follower) => Ok(Conn::sentinel(follower)),
        }
    }
}

/// A connection that could not be set up: where it was tried, and why. An I/O error
/// from a server that is not Redis (an HTTP port, say) says only "broken pipe" or
/// "connection reset", so the message asks the question.
#[derive(Debug)]
pub(super) struct Unreachable {
    target: String,
    cause: ::redis::RedisError,
}

impl Unreachable {
    pub(super) fn error(target: String, cause: ::redis::RedisError) -> StoreError {
        StoreError::backend(Self { target, cause })
    }
}

impl std::fmt::Display for Unreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot connect to {}: {}", self.target, self.cause)?;
        if self.cause.is_io_error() && !self.cause.is_connection_refusal() {
            f.write_str(" (is a Redis server listening there?)")?;
        }
        Ok(())
    }
}

impl std::error::Error for Unreachable {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

async fn manager(info: ConnectionInfo) -> RedisResult<ConnectionManager> {
    let client = ::redis::Client::open(info)?;
    // Reconnects are retried briefly and then reported: every call fails fast while
    // Redis is down (and the layer answers 503), and the next call tries again.
    let config = ConnectionManagerConfig::new()
        .set_number_of_retries(1)
        .set_min_delay(Duration::from_millis(50))
        .set_max_delay(Duration::from_millis(500))
        .set_connection_timeout(Some(CONNECTION_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    ConnectionManager::new_with_config(client, config).await
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
            Self::Sentinel(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Sentinel(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
            Self::Sentinel(connection) => connection.get_db(),
        }
    }
}

/// The store's own multiplexed connection, for an application's commands beside the
/// sessions (e.g. data that must outlive any instance): no second connection to set up,
/// and the same reconnection and timeouts. Cheap to clone; use it with any
/// `redis::AsyncCommands` method.
#[derive(Clone)]
pub struct RedisConnection(pub(super) Conn);

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.0.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

impl std::fmt::Debug for RedisConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnection")
            .field("cluster", &self.0.is_cluster())
            .finish()
    }
}

/// A node given as `host:port` becomes `redis://host:port`; URLs are kept as they are.
pub(super) fn node_url(node: &str) -> String {
    if node.contains("://") {
        node.to_owned()
    } else {
        format!("redis://{node}")
    }
}

/// `url` with everything before its last `@` (user name, password) replaced by `***`, for
/// `Debug` and logs. Errs on the side of hiding: a password may hold unescaped `/` or `#`.
pub(super) fn redact(url: &str) -> String {
    let (scheme, rest) = url
        .split_once("://")
        .map_or(("", url), |(scheme, rest)| (scheme, rest));
    match rest.rsplit_once('@') {
        Some((_, host)) if scheme.is_empty() => format!("***@{host}"),
        Some((_, host)) => format!("{scheme}://***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_credentials() {
        assert_eq!(
            redact("redis://app:s3cret@db:6379/2"),
            "redis://***@db:6379/2"
        );
        assert_eq!(redact("rediss://:p@ss@db"), "rediss://***@db");
        assert_eq!(redact("redis://db:6379"), "redis://db:6379");
        assert_eq!(redact("user:pw@db:6379"), "***@db:6379");
        assert_eq!(redact("db:6379"), "db:6379");
        assert_eq!(redact("redis://u:pa/ss#x@db:1/0"), "redis://***@db:1/0");
    }

    #[test]
    fn nodes_become_urls() {
        assert_eq!(node_url("127.0.0.1:7000"), "redis://127.0.0.1:7000");
        assert_eq!(node_url("rediss://h:1"), "rediss://h:1");
    }
}
