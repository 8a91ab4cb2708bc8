//! Durable revocations: a logout, log-out-everywhere or `cycle_id` is acknowledged only
//! once it has reached enough replicas, so a failover right after it cannot bring the
//! ended session back.
//!
//! Redis replicates asynchronously. `WAIT n timeout` blocks the calling connection until
//! every write made *on that connection* has reached `n` replicas, so revocations run on
//! a connection of their own: a `WAIT` on the shared multiplexed connection would stall
//! every other request queued behind it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use super::conn::Conn;
use super::sentinel::Follower;
use super::store::RedisStore;
use crate::config::ConfigError;
use crate::store::StoreError;

/// Where the store connected, kept to open the revocation connection later. Holds
/// credentials: never printed.
#[derive(Clone)]
pub(super) enum Source {
    Single(String),
    Cluster(Vec<String>),
    /// The store's follower of the master, shared by all its connections.
    Sentinel(Arc<Follower>),
}

impl Source {
    async fn connect(&self) -> Result<Conn, StoreError> {
        match self {
            Self::Single(url) => Conn::single(url).await,
            Self::Cluster(nodes) => Conn::cluster(nodes).await,
            Self::Sentinel(follower) => Ok(Conn::sentinel(follower)),
        }
    }
}

/// The revocation connection and what to wait for.
pub(super) struct Durability {
    conn: Conn,
    replicas: u32,
    timeout: Duration,
}

impl RedisStore {
    /// Acknowledges [`destroy`](crate::store::SessionStore::destroy),
    /// [`destroy_sessions_of_user`](crate::store::SessionStore::destroy_sessions_of_user)
    /// and [`cycle_id`](crate::store::SessionStore::cycle_id) only once the change has
    /// reached `replicas` replicas (Redis `WAIT`), waiting at most `timeout`; if fewer
    /// confirm in time, the call fails (the layer answers 503 and the client may retry:
    /// each of these calls can be repeated safely). A failover can then never promote a
    /// replica that still holds a session whose end was acknowledged.
    ///
    /// Opens a second connection, used only by these calls. On a cluster the wait runs
    /// on every primary, and a primary that is down fails the call. Keep `timeout` below
    /// the layer's store timeout, or the layer gives up first. What this costs is in
    /// BENCHMARKS.md ("Durable revocations").
    ///
    /// `replicas` and `timeout` must not be zero ([`ConfigError`]); the connection may
    /// fail to open ([`StoreError`]).
    pub async fn with_durable_revocations(
        mut self,
        replicas: u32,
        timeout: Duration,
    ) -> Result<Self, DurableRevocationsError> {
        if replicas == 0 {
            return Err(ConfigError::ZeroDuration("number of replicas to wait for").into());
        }
        if timeout.is_zero() {
            return Err(ConfigError::ZeroDuration("replication wait timeout").into());
        }
        let conn = self.source.connect().await?;
        self.durability = Some(Arc::new(Durability {
            conn,
            replicas,
            timeout,
        }));
        Ok(self)
    }

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

/// Why [`RedisStore::with_durable_revocations`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum DurableRevocationsError {
    /// A setting is zero.
    Config(ConfigError),
    /// The revocation connection could not be opened.
    Store(StoreError),
}

impl std::fmt::Display for DurableRevocationsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Config(_) => f.write_str("invalid durable-revocation settings"),
            Self::Store(_) => f.write_str("could not open the revocation connection"),
        }
    }
}

impl std::error::Error for DurableRevocationsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Config(error) => Some(error),
            Self::Store(error) => Some(error),
        }
    }
}

impl From<ConfigError> for DurableRevocationsError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

impl From<StoreError> for DurableRevocationsError {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}
