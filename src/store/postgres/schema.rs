//! The schema, created or migrated at connect: versioned, idempotent, and safe with
//! several instances starting at once.
//!
//! `tower_stateless_schema` records the versions applied. A connect that finds the
//! newest version there runs no DDL at all, so a role without `CREATE` connects once an
//! owner has migrated. Otherwise it takes a transaction-scoped advisory lock, reads the
//! version again (another instance may have migrated meanwhile), and applies what is
//! missing in the same transaction: PostgreSQL's DDL is transactional, so a migration
//! lands whole or not at all.

use deadpool_postgres::Client;

use super::error;
use super::sql::MIGRATION_LOCK;
use crate::error::StoreError;

/// The migrations, in order; version `n` is `MIGRATIONS[n - 1]`. Never edit one that has
/// shipped: add the next.
const MIGRATIONS: &[&str] = &[
    // 1: the sessions. `id` is the hashed session ID (base64url SHA-256), never the raw
    // one. `data` maps each field to its JSON text as a JSON string: jsonb would
    // normalize the JSON itself (spacing, key order, duplicate keys, `\u0000`), and the
    // layer promises values back byte for byte. `created_at`/`refreshed_at` are the
    // layer's clock in milliseconds, what liveness is judged by; `expires_at` is the
    // database's clock, what the sweeper deletes by. A fill factor of 70 leaves room in
    // each page for the new version of a row, so that the common write (data and times;
    // the indexed `id`, `user_id` and minute-rounded `expires_at` unchanged) is a HOT
    // update.
    "CREATE TABLE tower_stateless_sessions (
        id text PRIMARY KEY,
        data jsonb NOT NULL,
        user_id text,
        created_at bigint NOT NULL,
        refreshed_at bigint NOT NULL,
        version bigint NOT NULL,
        expires_at timestamptz NOT NULL
    ) WITH (fillfactor = 70);
    CREATE INDEX tower_stateless_sessions_expires_at
        ON tower_stateless_sessions (expires_at);
    CREATE INDEX tower_stateless_sessions_user_id
        ON tower_stateless_sessions (user_id) WHERE user_id IS NOT NULL;",
    // 2: when a write last bound the session to its user, in milliseconds of the
    // database's clock, so that every instance ranks a user's sessions alike (the session
    // limit). NULL for rows bound before this version: ranked by creation time.
    "ALTER TABLE tower_stateless_sessions ADD COLUMN bound_at bigint;",
];

/// The schema version this build writes.
pub(super) const VERSION: i32 = MIGRATIONS.len() as i32;

const CREATE_VERSIONS: &str = "CREATE TABLE IF NOT EXISTS tower_stateless_schema (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
)";
const READ_VERSION: &str = "SELECT coalesce(max(version), 0) FROM tower_stateless_schema";

/// Brings the schema to [`VERSION`]; returns the version found before.
pub(super) async fn migrate(client: &mut Client) -> Result<i32, StoreError> {
    if let Some(found) = current_version(client).await? {
        if found == VERSION {
            return Ok(found);
        }
    }
    let transaction = client.transaction().await.map_err(error::backend)?;
    transaction
        .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(error::backend)?;
    transaction
        .batch_execute(CREATE_VERSIONS)
        .await
        .map_err(error::backend)?;
    let found: i32 = transaction
        .query_one(READ_VERSION, &[])
        .await
        .map_err(error::backend)?
        .try_get(0)
        .map_err(error::backend)?;
    if found > VERSION {
        return Err(StoreError::backend(format!(
            "the sessions schema is at version {found}, newer than this build knows ({VERSION}); \
             upgrade tower-stateless"
        )));
    }
    for (version, migration) in (1..).zip(MIGRATIONS).skip(found as usize) {
        transaction
            .batch_execute(migration)
            .await
            .map_err(error::backend)?;
        transaction
            .execute(
                "INSERT INTO tower_stateless_schema (version) VALUES ($1)",
                &[&version],
            )
            .await
            .map_err(error::backend)?;
    }
    transaction.commit().await.map_err(error::backend)?;
    Ok(found)
}

/// The version recorded, or `None` if there is no version table yet.
async fn current_version(client: &Client) -> Result<Option<i32>, StoreError> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('tower_stateless_schema') IS NOT NULL",
            &[],
        )
        .await
        .map_err(error::backend)?
        .try_get(0)
        .map_err(error::backend)?;
    if !exists {
        return Ok(None);
    }
    let version = client
        .query_one(READ_VERSION, &[])
        .await
        .map_err(error::backend)?;
    Ok(Some(version.try_get(0).map_err(error::backend)?))
}
