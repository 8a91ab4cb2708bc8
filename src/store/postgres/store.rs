//! `PostgresStore`: the store, its builder, and the per-session calls.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{NoTls, Row, Statement};

use super::error;
use super::sweeper::{self, Sweeper};
use super::{schema, sql};
use crate::error::StoreError;
use crate::expiry::Expiry;
use crate::id::HashedId;
use crate::record::{add_to_stored, ChangeSet, IncrementError, Metadata, Record, UserChange};
use crate::store::{
    Applied, Created, Cycled, Incremented, SessionStore, SessionSummary, Swapped, MAX_LISTED,
};
use crate::time::Timestamp;

/// How long to wait for a connection: from the pool, or a new one from the server. An
/// outage then fails a call (503) in about this time rather than waiting it out.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// How often a write is tried again when a concurrent write changed what decided its
/// outcome (a value an increment or compare-and-set was rejected on changed before the
/// store could say why; a dead session held the new ID of a `cycle_id`).
const ATTEMPTS: usize = 8;
/// The sweeper's interval unless [`PostgresStoreBuilder::sweep_every`] sets another.
const DEFAULT_SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Longest time to live written, in milliseconds (about 30 years), so that `now()` plus
/// it stays a valid timestamp whatever the configured timeouts.
const MAX_TTL_MILLIS: i64 = 1_000_000_000_000;

/// Sessions in PostgreSQL: one row per session, shared by every instance of a service.
///
/// Connects through a pool of connections (deadpool-postgres over tokio-postgres) that
/// replaces broken ones by itself: while PostgreSQL is down or restarting every call
/// fails within about two seconds with a [`StoreError`] (the layer answers 503 with
/// `Retry-After`), and calls succeed again once it is back, with the same store. Clones
/// are cheap and share the pool.
///
/// # Schema
///
/// Created or migrated when the store connects (versioned in `tower_stateless_schema`,
/// under an advisory lock, so several instances may start at once):
///
/// ```sql
/// CREATE TABLE tower_stateless_sessions (
///     id text PRIMARY KEY,         -- the hashed session ID, never the raw one
///     data jsonb NOT NULL,         -- field -> its JSON text, as a JSON string
///     user_id text,                -- the bound user, for log-out-everywhere
///     created_at bigint NOT NULL,  -- the layer's clock, ms since the epoch
///     refreshed_at bigint NOT NULL,
///     version bigint NOT NULL,     -- counts writes
///     expires_at timestamptz NOT NULL  -- the database's clock: when the sweeper may delete it
/// ) WITH (fillfactor = 70);
/// CREATE INDEX tower_stateless_sessions_expires_at ON tower_stateless_sessions (expires_at);
/// CREATE INDEX tower_stateless_sessions_user_id ON tower_stateless_sessions (user_id)
///     WHERE user_id IS NOT NULL;
/// ```
///
/// Values are kept as JSON strings holding the exact JSON text, because jsonb normalizes
/// JSON (spacing, key order, `\u0000`) and values come back byte for byte. A field name
/// or value holding the character U+0000 cannot be stored (PostgreSQL's text has no NUL):
/// such a write fails with a [`StoreError`].
///
/// # Writes
///
/// Every write is one statement that checks the session is live under the layer's
/// [`Expiry`] and changes only what the change set names (`data - removed || set`, sums
/// for increments, a version bump), so concurrent writes to different fields all land and
/// a session destroyed or expired meanwhile is never revived. `cycle_id` updates the row's
/// key in place, so that log-out-everywhere (one `DELETE … WHERE user_id = $1`) also
/// deletes a session that moves while it runs. A background task deletes rows past
/// `expires_at` ([`PostgresStoreBuilder::sweep_every`]); reads never return an expired
/// session even before that.
///
/// # Requirements
///
/// PostgreSQL 14 or later (`date_bin`); tested with PostgreSQL 15. Connections are made
/// without TLS: keep the database on a private network or loopback. The statements a
/// least-privilege role needs are in the README ("PostgreSQL").
#[derive(Clone)]
pub struct PostgresStore {
    pool: Pool,
    /// Host, port, database and user, for `Debug`; never the password.
    target: Arc<str>,
    sweeper: Option<Arc<Sweeper>>,
}

/// Settings for [`PostgresStore`], then [`connect`](Self::connect).
#[derive(Clone)]
#[must_use]
pub struct PostgresStoreBuilder {
    url: String,
    max_connections: Option<usize>,
    sweep_every: Option<Duration>,
}

impl PostgresStore {
    /// Connects with the default settings: see [`builder`](Self::builder).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::builder(url).connect().await
    }

    /// Settings for a store on the database at `url`: `postgres://user:password@host:port/db`
    /// or the key-value form (`host=… user=…`), as libpq takes them.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder {
            url: url.into(),
            max_connections: None,
            sweep_every: Some(DEFAULT_SWEEP_EVERY),
        }
    }

    /// Deletes the rows past their `expires_at` now, as the background sweep does (and
    /// nothing if another instance is sweeping); returns how many it deleted.
    pub async fn sweep(&self) -> Result<u64, StoreError> {
        sweeper::sweep(&self.pool).await
    }

    /// A pooled connection and `statement`, prepared once per connection.
    async fn prepared(&self, statement: &str) -> Result<(Object, Statement), StoreError> {
        let client = self.pool.get().await.map_err(error::pool)?;
        let prepared = client
            .prepare_cached(statement)
            .await
            .map_err(error::backend)?;
        Ok((client, prepared))
    }

    async fn query_opt(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let (client, statement) = self.prepared(statement).await?;
        client
            .query_opt(&statement, params)
            .await
            .map_err(error::backend)
    }

    async fn execute(
        &self,
        statement: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let (client, statement) = self.prepared(statement).await?;
        client
            .execute(&statement, params)
            .await
            .map_err(error::backend)
    }

    /// A change set on session `id` (moved to `new_id` if given), in one statement.
    async fn write(
        &self,
        id: &HashedId,
        new_id: Option<&HashedId>,
        changes: &Changes<'_>,
        expiry: Expiry,
    ) -> Result<Written, StoreError> {
        let live = Live::of(expiry);
        let new_id = new_id.map(HashedId::as_str);
        for _ in 0..ATTEMPTS {
            let (client, statement) = self.prepared(sql::APPLY).await?;
            let written = client
                .query_opt(
                    &statement,
                    &[
                        &id.as_str(),
                        &live.refreshed_after,
                        &live.created_after,
                        &live.idle,
                        &live.now,
                        &changes.clear,
                        &changes.removed,
                        &changes.set,
                        &changes.incremented,
                        &changes.deltas,
                        &changes.keep_user,
                        &changes.user,
                        &new_id,
                    ],
                )
                .await;
            drop(client);
            match written {
                Ok(Some(_)) => return Ok(Written::Saved),
                Ok(None) if changes.incremented.is_empty() => return Ok(Written::Gone),
                Ok(None) => match self.rejection(id, changes, &live).await? {
                    Some(Some(why)) => return Ok(Written::Rejected(why)),
                    Some(None) => {} // a concurrent write made the increments fit: again
                    None => return Ok(Written::Gone),
                },
                Err(failure) if new_id.is_some() && error::is_unique_violation(&failure) => {
                    let new_id = new_id.unwrap_or_default();
                    let dropped = self
                        .execute(
                            sql::DROP_IF_DEAD,
                            &[&new_id, &live.refreshed_after, &live.created_after],
                        )
                        .await?;
                    if dropped == 0 {
                        return Ok(Written::IdInUse);
                    }
                }
                Err(failure) => return Err(error::backend(failure)),
            }
        }
        Err(StoreError::backend(
            "the session kept changing under a write",
        ))
    }

    /// Why a write with increments wrote nothing: `None` if the session is not live,
    /// else the first increment (in field order) that does not fit now, if any.
    async fn rejection(
        &self,
        id: &HashedId,
        changes: &Changes<'_>,
        live: &Live,
    ) -> Result<Option<Option<IncrementError>>, StoreError> {
        let Some(row) = self
            .query_opt(
                sql::STORED,
                &[
                    &id.as_str(),
                    &live.refreshed_after,
                    &live.created_after,
                    &changes.incremented,
                ],
            )
            .await?
        else {
            return Ok(None);
        };
        let stored: Vec<Option<String>> = row.try_get(0).map_err(|_| error::corrupt("data"))?;
        let why = (changes.deltas.iter().zip(&stored))
            .find_map(|(delta, stored)| add_to_stored(stored.as_deref(), *delta).err());
        Ok(Some(why))
    }
}

impl PostgresStoreBuilder {
    /// At most this many connections to PostgreSQL from this store (default: four per
    /// CPU core). A call waits up to two seconds for a free one, then fails.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = Some(max.max(1));
        self
    }

    /// How often to delete expired rows (default: every minute), or `None` for never
    /// (another instance, or a job of yours calling [`PostgresStore::sweep`], does it).
    /// Instances never sweep at the same time; reads never return an expired session
    /// whatever this is.
    pub fn sweep_every(mut self, every: Option<Duration>) -> Self {
        self.sweep_every = every.filter(|every| !every.is_zero());
        self
    }

    /// Connects, and creates or migrates the schema. Fails, naming the step and the
    /// server, if the URL does not parse, the server cannot be reached now, or the
    /// schema cannot be brought up to date, so that a misconfigured service does not
    /// start.
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|cause| {
            error::connect_failed("parse the database URL", "(unparsed URL)", cause)
        })?;
        let target = describe(&config);
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECTION_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tower-stateless");
        }
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let mut pool = Pool::builder(manager)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(CONNECTION_TIMEOUT))
            .create_timeout(Some(CONNECTION_TIMEOUT))
            .recycle_timeout(Some(CONNECTION_TIMEOUT));
        if let Some(max) = self.max_connections {
            pool = pool.max_size(max);
        }
        let pool = pool
            .build()
            .map_err(|cause| error::connect_failed("build the connection pool", &target, cause))?;
        let mut client = pool
            .get()
            .await
            .map_err(|cause| error::connect_failed("connect", &target, error::pool(cause)))?;
        schema::migrate(&mut client).await.map_err(|cause| {
            error::connect_failed("create or migrate the sessions schema", &target, cause)
        })?;
        drop(client);
        let sweeper = self
            .sweep_every
            .map(|every| Sweeper::start(pool.clone(), every));
        Ok(PostgresStore {
            pool,
            target: target.into(),
            sweeper,
        })
    }
}

/// `postgres://user@host:port/db` for messages: never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = (config.get_hosts().iter())
        .zip(config.get_ports().iter().chain(std::iter::repeat(&5432)))
        .map(|(host, port)| match host {
            Host::Tcp(name) => format!("{name}:{port}"),
            #[cfg(unix)]
            Host::Unix(path) => format!("{}:{port}", path.display()),
        })
        .collect();
    let user = config
        .get_user()
        .map(|user| format!("{user}@"))
        .unwrap_or_default();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgres://{user}{}/{db}", hosts.join(","))
}

/// The liveness bounds and times of an [`Expiry`], as the statements take them (see
/// `sql.rs`).
struct Live {
    refreshed_after: i64,
    created_after: i64,
    idle: i64,
    now: i64,
}

impl Live {
    fn of(expiry: Expiry) -> Self {
        let now = millis(expiry.now);
        let span = |duration: Duration| i64::try_from(duration.as_millis()).unwrap_or(i64::MAX);
        Self {
            refreshed_after: now.saturating_sub(span(expiry.idle_timeout)),
            created_after: now.saturating_sub(span(expiry.absolute_lifetime)),
            idle: span(expiry.idle_timeout).min(MAX_TTL_MILLIS),
            now,
        }
    }
}

fn millis(time: Timestamp) -> i64 {
    i64::try_from(time.as_millis()).unwrap_or(i64::MAX)
}

fn timestamp(row: &Row, column: &str) -> Result<Timestamp, StoreError> {
    let millis: i64 = row.try_get(column).map_err(|_| error::corrupt(column))?;
    u64::try_from(millis)
        .map(Timestamp::from_millis)
        .map_err(|_| error::corrupt(column))
}

/// A change set as [`sql::APPLY`] takes it.
struct Changes<'a> {
    clear: bool,
    removed: Vec<&'a str>,
    /// Field -> JSON text; sent as a JSON object of strings.
    set: Json<BTreeMap<&'a str, Cow<'a, str>>>,
    incremented: Vec<&'a str>,
    deltas: Vec<i64>,
    keep_user: bool,
    user: Option<&'a str>,
}

impl<'a> Changes<'a> {
    fn of(changes: &'a ChangeSet) -> Self {
        let mut set: BTreeMap<&str, Cow<'_, str>> = BTreeMap::new();
        let mut removed = Vec::new();
        for (field, value) in &changes.fields {
            match value {
                Some(value) => {
                    set.insert(field, Cow::Borrowed(value));
                }
                None => removed.push(field.as_str()),
            }
        }
        let (mut incremented, mut deltas) = (Vec::new(), Vec::new());
        for (field, delta) in &changes.increments {
            // A field the change set clears, sets or removes starts from nothing: it
            // simply becomes its delta (as `ChangeSet::apply_to` has it).
            if changes.clear || changes.fields.contains_key(field) {
                set.insert(field, Cow::Owned(delta.to_string()));
            } else {
                incremented.push(field.as_str());
                deltas.push(*delta);
            }
        }
        let (keep_user, user) = match &changes.user {
            UserChange::Keep => (true, None),
            UserChange::Bind(user) => (false, Some(user.as_str())),
            UserChange::Unbind => (false, None),
        };
        Self {
            clear: changes.clear,
            removed,
            set: Json(set),
            incremented,
            deltas,
            keep_user,
            user,
        }
    }

    /// One increment, nothing else.
    fn increment(field: &'a str, delta: i64) -> Self {
        Self {
            clear: false,
            removed: Vec::new(),
            set: Json(BTreeMap::new()),
            incremented: vec![field],
            deltas: vec![delta],
            keep_user: true,
            user: None,
        }
    }
}

/// What [`PostgresStore::write`] did.
enum Written {
    Saved,
    Gone,
    Rejected(IncrementError),
    IdInUse,
}

// Debug output may reach logs: where it connects (no password) and the pool's state.
impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = self.pool.status();
        f.debug_struct("PostgresStore")
            .field("target", &self.target)
            .field("connections", &status.size)
            .field("max_connections", &status.max_size)
            .field("sweeper", &self.sweeper.is_some())
            .finish()
    }
}

impl fmt::Debug for PostgresStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = (self.url.parse::<tokio_postgres::Config>())
            .map_or_else(|_| "(unparsed URL)".to_owned(), |config| describe(&config));
        f.debug_struct("PostgresStoreBuilder")
            .field("target", &target)
            .field("max_connections", &self.max_connections)
            .field("sweep_every", &self.sweep_every)
            .finish()
    }
}

impl SessionStore for PostgresStore {
    async fn load(&self, id: &HashedId, expiry: Expiry) -> Result<Option<Record>, StoreError> {
        let live = Live::of(expiry);
        let Some(row) = self
            .query_opt(
                sql::LOAD,
                &[&id.as_str(), &live.refreshed_after, &live.created_after],
            )
            .await?
        else {
            return Ok(None);
        };
        let Json(data): Json<HashMap<String, String>> =
            row.try_get("data").map_err(|_| error::corrupt("data"))?;
        let metadata = Metadata {
            created_at: timestamp(&row, "created_at")?,
            refreshed_at: timestamp(&row, "refreshed_at")?,
            user_id: row
                .try_get("user_id")
                .map_err(|_| error::corrupt("user_id"))?,
        };
        Ok(Some(Record::new(data, metadata)))
    }

    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        let live = Live::of(expiry);
        let ttl = expiry
            .expires_at(&record.metadata)
            .saturating_since(expiry.now);
        let ttl = i64::try_from(ttl.as_millis())
            .unwrap_or(i64::MAX)
            .min(MAX_TTL_MILLIS);
        let data: BTreeMap<&str, &str> = (record.data.iter())
            .map(|(field, value)| (field.as_str(), value.as_str()))
            .collect();
        let written = self
            .query_opt(
                sql::CREATE,
                &[
                    &id.as_str(),
                    &live.refreshed_after,
                    &live.created_after,
                    &ttl,
                    &Json(data),
                    &record.metadata.user_id,
                    &millis(record.metadata.created_at),
                    &millis(record.metadata.refreshed_at),
                ],
            )
            .await?;
        Ok(match written {
            Some(_) => Created::Saved,
            None => Created::IdInUse,
        })
    }

    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, StoreError> {
        Ok(
            match self.write(id, None, &Changes::of(changes), expiry).await? {
                Written::Saved => Applied::Saved,
                Written::Gone | Written::IdInUse => Applied::Gone,
                Written::Rejected(why) => Applied::Rejected(why),
            },
        )
    }

    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        Ok(
            match self
                .write(old, Some(new), &Changes::of(changes), expiry)
                .await?
            {
                Written::Saved => Cycled::Saved,
                Written::Gone => Cycled::Gone,
                Written::Rejected(why) => Cycled::Rejected(why),
                Written::IdInUse => Cycled::IdInUse,
            },
        )
    }

    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        let live = Live::of(expiry);
        for _ in 0..ATTEMPTS {
            let written = self
                .query_opt(
                    sql::INCREMENT,
                    &[
                        &id.as_str(),
                        &live.refreshed_after,
                        &live.created_after,
                        &live.idle,
                        &live.now,
                        &field,
                        &delta,
                    ],
                )
                .await?;
            if let Some(row) = written {
                let value: Option<String> = row.try_get(0).map_err(|_| error::corrupt("data"))?;
                let value = value.and_then(|value| value.parse().ok());
                return value
                    .map(Incremented::Value)
                    .ok_or_else(|| error::corrupt("an incremented value"));
            }
            match self
                .rejection(id, &Changes::increment(field, delta), &live)
                .await?
            {
                Some(Some(why)) => return Ok(Incremented::Rejected(why)),
                Some(None) => {} // a concurrent write made the increment fit: again
                None => return Ok(Incremented::Gone),
            }
        }
        Err(StoreError::backend(
            "the session kept changing under a write",
        ))
    }

    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        let live = Live::of(expiry);
        for _ in 0..ATTEMPTS {
            let swapped = self
                .query_opt(
                    sql::COMPARE_AND_SET,
                    &[
                        &id.as_str(),
                        &live.refreshed_after,
                        &live.created_after,
                        &live.idle,
                        &live.now,
                        &field,
                        &new,
                        &expected,
                    ],
                )
                .await?;
            if swapped.is_some() {
                return Ok(Swapped::Saved);
            }
            let current = self
                .query_opt(
                    sql::FIELD,
                    &[
                        &id.as_str(),
                        &live.refreshed_after,
                        &live.created_after,
                        &field,
                    ],
                )
                .await?;
            let Some(current) = current else {
                return Ok(Swapped::Gone);
            };
            let current: Option<String> = current.try_get(0).map_err(|_| error::corrupt("data"))?;
            // Changed back to the expected value meanwhile: try again.
            if current.as_deref() != expected {
                return Ok(Swapped::Conflict(current));
            }
        }
        Err(StoreError::backend(
            "the field kept changing under a compare-and-set",
        ))
    }

    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.execute(sql::DESTROY, &[&id.as_str()]).await?;
        Ok(())
    }

    async fn destroy_many(&self, ids: &[HashedId]) -> Result<(), StoreError> {
        let ids: Vec<&str> = ids.iter().map(HashedId::as_str).collect();
        self.execute(sql::DESTROY_MANY, &[&ids]).await?;
        Ok(())
    }

    async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        let live = Live::of(expiry);
        let (client, statement) = self.prepared(sql::SESSIONS_OF_USER).await?;
        let rows = client
            .query(
                &statement,
                &[
                    &user_id,
                    &live.refreshed_after,
                    &live.created_after,
                    &(MAX_LISTED as i64),
                ],
            )
            .await
            .map_err(error::backend)?;
        rows.iter()
            .map(|row| {
                let id: String = row.try_get("id").map_err(|_| error::corrupt("id"))?;
                let metadata = Metadata {
                    created_at: timestamp(row, "created_at")?,
                    refreshed_at: timestamp(row, "refreshed_at")?,
                    user_id: Some(user_id.to_owned()),
                };
                let summary = SessionSummary::new(HashedId::from_stored(id), metadata);
                let bound_at: Option<i64> = row
                    .try_get("bound_at")
                    .map_err(|_| error::corrupt("bound_at"))?;
                Ok(
                    match bound_at.and_then(|millis| u64::try_from(millis).ok()) {
                        Some(millis) => summary.with_bound_at(Timestamp::from_millis(millis)),
                        None => summary,
                    },
                )
            })
            .collect()
    }

    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        let deleted = self
            .execute(sql::DESTROY_SESSIONS_OF_USER, &[&user_id])
            .await?;
        Ok(usize::try_from(deleted).unwrap_or(usize::MAX))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.query_opt("SELECT 1", &[]).await?;
        Ok(())
    }

    /// The database's `clock_timestamp()`.
    async fn time(&self) -> Result<Option<Timestamp>, StoreError> {
        let row = self.query_opt(sql::NOW, &[]).await?;
        row.map(|row| timestamp(&row, "now")).transpose()
    }
}
