//! The statements. Every read and every write of a session is one statement, checked
//! against the layer's [`Expiry`](crate::store::Expiry) inside it.
//!
//! Parameters shared by the per-session statements: `$1` the hashed ID, `$2` and `$3`
//! the liveness bounds (a session is live while `refreshed_at > $2 AND created_at > $3`,
//! i.e. `now - idle_timeout` and `now - absolute_lifetime`: the rule of
//! [`Expiry::is_live`](crate::store::Expiry::is_live)), `$4` the idle timeout and `$5`
//! now, in milliseconds of the layer's clock.
//!
//! `expires_at` is only for the sweeper, and is the database's clock: `now()` plus what is
//! left of the session's life, rounded up to the next whole minute. The rounding keeps a
//! row's index entries unchanged across the writes of one minute, so that PostgreSQL
//! updates it in place (a HOT update, in the room the fill factor leaves).

/// Keeps the liveness rule written once.
macro_rules! live {
    ($row:literal) => {
        concat!($row, ".refreshed_at > $2 AND ", $row, ".created_at > $3")
    };
}

/// `expires_at` for a session refreshed now that will live `$ttl` more milliseconds.
macro_rules! expires_at {
    ($ttl:literal) => {
        concat!(
            "date_bin('1 minute', now() + (",
            $ttl,
            ")::bigint * interval '1 millisecond', timestamptz '2000-01-01') + interval '1 minute'"
        )
    };
}

/// Now, in milliseconds of the database's clock: the binding time `bound_at`.
macro_rules! db_millis {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// The advisory-lock keys of the migration and the sweeper (fixed, so that every
/// instance takes the same lock).
pub(super) const MIGRATION_LOCK: i64 = 0x7473_6c73_6d69_6701; // "tslsmig\x01"
pub(super) const SWEEP_LOCK: i64 = 0x7473_6c73_7377_7001; // "tslsswp\x01"

/// The database's clock, in milliseconds since the epoch.
pub(super) const NOW: &str = concat!("SELECT ", db_millis!(), " AS now");

/// A live session's data, user and times.
pub(super) const LOAD: &str = concat!(
    "SELECT data, user_id, created_at, refreshed_at FROM tower_stateless_sessions AS s \
     WHERE s.id = $1 AND ",
    live!("s")
);

/// A new session, unless a live one holds the ID (a dead one not yet swept is replaced).
/// `$4` is the new session's time to live; `$5` its data, `$6` its user, `$7` and `$8`
/// its creation and refresh times. Returns a row only if it wrote.
pub(super) const CREATE: &str = concat!(
    "INSERT INTO tower_stateless_sessions AS s \
     (id, data, user_id, created_at, refreshed_at, version, expires_at, bound_at) \
     VALUES ($1, $5, $6, $7, $8, 1, ",
    expires_at!("$4"),
    ", CASE WHEN $6::text IS NULL THEN NULL ELSE ",
    db_millis!(),
    " END) ON CONFLICT (id) DO UPDATE SET data = EXCLUDED.data, user_id = EXCLUDED.user_id, \
     created_at = EXCLUDED.created_at, refreshed_at = EXCLUDED.refreshed_at, \
     version = s.version + 1, expires_at = EXCLUDED.expires_at, bound_at = EXCLUDED.bound_at \
     WHERE NOT (",
    live!("s"),
    ") RETURNING 1"
);

/// A stored value's sum with the delta `d`, or NULL if the value is not a JSON integer
/// within `i64` (absent counts as 0): the rule of `add_to_stored`, in SQL. Nested `CASE`s,
/// because `AND` does not fix the order in which its operands are evaluated and the cast
/// must not see a value that is not a number.
macro_rules! sum {
    ($f:literal, $d:literal) => {
        concat!(
            "CASE WHEN s.data ->> ",
            $f,
            " IS NULL THEN ",
            $d,
            "::numeric \
             WHEN (s.data ->> ",
            $f,
            ") !~ '^-?(0|[1-9][0-9]*)$' THEN NULL \
             WHEN (s.data ->> ",
            $f,
            ")::numeric NOT BETWEEN -9223372036854775808 AND 9223372036854775807 \
             THEN NULL ELSE (s.data ->> ",
            $f,
            ")::numeric + ",
            $d,
            " END"
        )
    };
}

/// Whether a sum fits in an `i64` (false if it is NULL: the stored value is no integer).
macro_rules! fits_i64 {
    ($sum:expr) => {
        concat!(
            "(",
            $sum,
            ") BETWEEN -9223372036854775808 AND 9223372036854775807 IS TRUE"
        )
    };
}

/// A change set, in one statement: `apply`, `touch`, `increment` and `cycle_id`.
///
/// `$6` clear, `$7` the removed fields, `$8` the set fields (a JSON object of field ->
/// JSON text), `$9`/`$10` the incremented fields and their deltas (only fields the
/// change set neither clears, sets nor removes: the others are set fields by then), `$11`
/// keep the user, else `$12` is the new one (NULL unbinds), `$13` the new ID for
/// `cycle_id` (NULL keeps it). A write that binds a user sets `bound_at`, as a login that
/// repeats itself binds anew; one that keeps the user keeps it. Writes nothing, and returns no row, if the session is not
/// live or an increment is rejected; else returns one row.
pub(super) const APPLY: &str = concat!(
    "UPDATE tower_stateless_sessions AS s SET \
     id = coalesce($13::text, s.id), \
     data = (CASE WHEN $6 THEN '{}'::jsonb ELSE s.data - $7::text[] END) || $8::jsonb \
       || (SELECT coalesce(jsonb_object_agg(f, (",
    sum!("f", "d"),
    ")::text), '{}'::jsonb) FROM unnest($9::text[], $10::bigint[]) AS i(f, d)), \
     user_id = CASE WHEN $11 THEN s.user_id ELSE $12::text END, \
     bound_at = CASE WHEN $11 THEN s.bound_at WHEN $12::text IS NULL THEN NULL ELSE ",
    db_millis!(),
    " END, refreshed_at = $5, version = s.version + 1, expires_at = ",
    expires_at!("LEAST($4, s.created_at - $3)"),
    " WHERE s.id = $1 AND ",
    live!("s"),
    " AND NOT EXISTS (SELECT 1 FROM unnest($9::text[], $10::bigint[]) AS i(f, d) WHERE (",
    sum!("f", "d"),
    ") NOT BETWEEN -9223372036854775808 AND 9223372036854775807 IS NOT FALSE) \
     RETURNING 1"
);

/// `increment`: adds `$7` to field `$6`, only if the session is live and the sum fits,
/// and returns the new value. [`APPLY`] can do it too, but this is the common write of a
/// busy session (a cart line), and under contention on one row PostgreSQL evaluates a
/// write again for each row version it waited for: without `APPLY`'s general change-set
/// subqueries it ran 1,911–1,995 increments per second on one row where `APPLY` ran
/// 1,121–1,643 (pgbench, 32 clients, a read and a write per transaction).
pub(super) const INCREMENT: &str = concat!(
    "UPDATE tower_stateless_sessions AS s SET \
     data = s.data || jsonb_build_object($6::text, (",
    sum!("$6::text", "$7::bigint"),
    ")::text), refreshed_at = $5, version = s.version + 1, expires_at = ",
    expires_at!("LEAST($4, s.created_at - $3)"),
    " WHERE s.id = $1 AND ",
    live!("s"),
    " AND ",
    fits_i64!(sum!("$6::text", "$7::bigint")),
    " RETURNING s.data ->> $6::text"
);

/// Why [`APPLY`] (or [`INCREMENT`]) wrote nothing: the stored values of the incremented fields `$4`, in
/// order, if the session is live (no row if it is not).
pub(super) const STORED: &str = concat!(
    "SELECT ARRAY(SELECT s.data ->> f FROM unnest($4::text[]) WITH ORDINALITY AS i(f, n) \
     ORDER BY n) FROM tower_stateless_sessions AS s WHERE s.id = $1 AND ",
    live!("s")
);

/// Compare-and-set of field `$6`: to `$7` (NULL removes it), only if it holds `$8` (NULL:
/// absent). Returns a row only if it wrote.
pub(super) const COMPARE_AND_SET: &str = concat!(
    "UPDATE tower_stateless_sessions AS s SET \
     data = CASE WHEN $7::text IS NULL THEN s.data - $6::text \
       ELSE s.data || jsonb_build_object($6::text, $7::text) END, \
     refreshed_at = $5, version = s.version + 1, expires_at = ",
    expires_at!("LEAST($4, s.created_at - $3)"),
    " WHERE s.id = $1 AND ",
    live!("s"),
    " AND (s.data ->> $6::text) IS NOT DISTINCT FROM $8::text RETURNING 1"
);

/// The value of field `$4` of a live session (a row holding NULL if absent; no row if
/// the session is not live).
pub(super) const FIELD: &str = concat!(
    "SELECT s.data ->> $4::text FROM tower_stateless_sessions AS s WHERE s.id = $1 AND ",
    live!("s")
);

/// Deletes session `$1` if it is dead (`$2`, `$3` as above): a remnant the sweeper has
/// not reached yet, in the way of a `cycle_id`.
pub(super) const DROP_IF_DEAD: &str = concat!(
    "DELETE FROM tower_stateless_sessions AS s WHERE s.id = $1 AND NOT (",
    live!("s"),
    ")"
);

pub(super) const DESTROY: &str = "DELETE FROM tower_stateless_sessions WHERE id = $1";

/// Deletes the sessions whose IDs are in the array `$1`.
pub(super) const DESTROY_MANY: &str =
    "DELETE FROM tower_stateless_sessions WHERE id = ANY($1::text[])";

/// The live sessions of user `$1` (`$2`, `$3` as above), the `$4` most recently bound
/// (rows from before `bound_at` last).
pub(super) const SESSIONS_OF_USER: &str = concat!(
    "SELECT s.id, s.created_at, s.refreshed_at, s.bound_at FROM tower_stateless_sessions AS s \
     WHERE s.user_id = $1 AND ",
    live!("s"),
    " ORDER BY s.bound_at DESC NULLS LAST, s.created_at DESC LIMIT $4"
);

/// Every session of user `$1`. One statement, so a session moving to a new ID meanwhile
/// (`cycle_id` updates the row's key in place) is caught: PostgreSQL re-checks the
/// `WHERE` on the moved row once the move commits, and deletes it there.
pub(super) const DESTROY_SESSIONS_OF_USER: &str =
    "DELETE FROM tower_stateless_sessions WHERE user_id = $1";

/// One batch of the sweep: up to `$1` rows past their `expires_at` by the database's
/// clock, in index order, skipping rows a request holds right now.
pub(super) const SWEEP: &str = "DELETE FROM tower_stateless_sessions WHERE id IN (\
     SELECT id FROM tower_stateless_sessions WHERE expires_at < now() \
     ORDER BY expires_at LIMIT $1 FOR UPDATE SKIP LOCKED)";

pub(super) const TRY_LOCK: &str = "SELECT pg_try_advisory_xact_lock($1)";
