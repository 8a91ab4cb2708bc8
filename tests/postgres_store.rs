//! `PostgresStore` against a real PostgreSQL started by the test (never the machine's
//! own): the conformance suite, plus what only PostgreSQL has (schema migration, the
//! sweeper, a least-privilege role, restarts, connect errors).

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

#[path = "clocks/mod.rs"]
mod clocks;
#[path = "logins/mod.rs"]
mod logins;
#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use support::PostgresServer;
use tower_stateless::store::{
    Applied, ChangeSet, Created, Cycled, Expiry, HashedId, Incremented, Metadata, Record,
    SessionStore, SessionSummary, StoreError, Swapped, Timestamp,
};
use tower_stateless::PostgresStore;

/// A store on a server it keeps running (shared with the tests running at the same
/// time, it stops when the last such store is dropped).
struct OnServer {
    store: PostgresStore,
    server: Arc<PostgresServer>,
}

/// `None` only outside CI without PostgreSQL installed (the support module says so loudly).
async fn on_shared_server() -> Option<OnServer> {
    let server = PostgresServer::shared()?;
    let store = PostgresStore::builder(server.url())
        .max_connections(8)
        .connect()
        .await
        .expect("connect to the test server");
    Some(OnServer { store, server })
}

mod conformance {
    // One test per case. These cannot skip: without PostgreSQL they fail, saying so.
    tower_stateless::conformance_tests!(async {
        super::on_shared_server()
            .await
            .expect("the conformance cases need PostgreSQL (apt-get install postgresql)")
    });
}

/// Two simultaneous logins of one user under a limit of one session: one stays, every
/// time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_logins_under_a_limit_of_one_leave_one_session() {
    let Some(on) = on_shared_server().await else {
        return;
    };
    assert_eq!(
        logins::rounds_left_without_a_session(on.store, 100).await,
        0
    );
}

/// Two instances whose clocks differ by 20 minutes time sessions alike by following the
/// store's clock; on their own clocks the fast one ends a fresh session and the slow
/// one keeps one past its lifetime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skewed_instances_time_sessions_by_the_stores_clock() {
    let Some(on) = on_shared_server().await else {
        return;
    };
    let seen = clocks::two_skewed_instances(on.store.clone(), true).await;
    assert_eq!(seen, clocks::Seen::agreeing());
    let seen = clocks::two_skewed_instances(on.store, false).await;
    assert_eq!(seen, clocks::Seen::on_own_clocks());
}

/// The conformance cases run on the store; the wrapper only keeps the server running.
impl SessionStore for OnServer {
    async fn load(&self, id: &HashedId, expiry: Expiry) -> Result<Option<Record>, StoreError> {
        self.store.load(id, expiry).await
    }
    async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, StoreError> {
        self.store.create(id, record, expiry).await
    }
    async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, StoreError> {
        self.store.apply(id, changes, expiry).await
    }
    async fn touch(&self, id: &HashedId, expiry: Expiry) -> Result<Applied, StoreError> {
        self.store.touch(id, expiry).await
    }
    async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, StoreError> {
        self.store.cycle_id(old, new, changes, expiry).await
    }
    async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, StoreError> {
        self.store.increment(id, field, delta, expiry).await
    }
    async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, StoreError> {
        (self.store)
            .compare_and_set(id, field, expected, new, expiry)
            .await
    }
    async fn destroy(&self, id: &HashedId) -> Result<(), StoreError> {
        self.store.destroy(id).await
    }
    async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, StoreError> {
        self.store.sessions_of_user(user_id, expiry).await
    }
    async fn destroy_sessions_of_user(&self, user_id: &str) -> Result<usize, StoreError> {
        self.store.destroy_sessions_of_user(user_id).await
    }
    async fn ping(&self) -> Result<(), StoreError> {
        self.store.ping().await
    }
}

/// A new session bound to `user`, holding `a` = 1.
async fn session(store: &PostgresStore, user: Option<&str>) -> (HashedId, Expiry) {
    let expiry = sessions::now();
    let mut metadata = Metadata::new(expiry.now);
    metadata.user_id = user.map(str::to_owned);
    let record = Record::new([("a".to_owned(), "1".to_owned())].into(), metadata);
    let id = sessions::new_id();
    let created = store.create(&id, &record, expiry).await.unwrap();
    assert_eq!(created, Created::Saved);
    (id, expiry)
}

/// A database left at schema version 1 (before `bound_at`) is migrated at connect, and
/// its sessions are still listed, with no binding time (the limit ranks them by creation).
#[tokio::test]
async fn a_version_1_schema_is_migrated_and_its_sessions_still_listed() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let now = SystemTime::now();
    let millis = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    server.psql(&format!(
        "CREATE TABLE tower_stateless_schema (version integer PRIMARY KEY, \
           applied_at timestamptz NOT NULL DEFAULT now()); \
         INSERT INTO tower_stateless_schema (version) VALUES (1); \
         CREATE TABLE tower_stateless_sessions (id text PRIMARY KEY, data jsonb NOT NULL, \
           user_id text, created_at bigint NOT NULL, refreshed_at bigint NOT NULL, \
           version bigint NOT NULL, expires_at timestamptz NOT NULL) WITH (fillfactor = 70); \
         INSERT INTO tower_stateless_sessions VALUES ('{id}', '{{}}', 'ada', {millis}, \
           {millis}, 1, now() + interval '1 hour');",
        id = "v1-session",
    ));
    let store = PostgresStore::connect(&server.url()).await.unwrap();
    assert_eq!(
        server.psql("SELECT string_agg(version::text, ',') FROM tower_stateless_schema"),
        "1,2"
    );
    let expiry = Expiry::new(
        Timestamp::from_system_time(now),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    );
    let listed = store.sessions_of_user("ada", expiry).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, HashedId::from_stored("v1-session"));
    assert_eq!(listed[0].bound_at, None);
}

#[tokio::test]
async fn the_schema_is_created_once_by_instances_starting_together() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let url = server.url();
    let starts = (0..8).map(|_| {
        let url = url.clone();
        tokio::spawn(async move { PostgresStore::connect(&url).await })
    });
    for start in starts {
        start.await.unwrap().expect("every instance connects");
    }
    assert_eq!(
        server.psql("SELECT string_agg(version::text, ',') FROM tower_stateless_schema"),
        "1,2",
        "each migration, recorded once"
    );
    assert_eq!(
        server.psql(
            "SELECT reloptions::text FROM pg_class WHERE relname = 'tower_stateless_sessions'"
        ),
        "{fillfactor=70}"
    );
    let indexes = server.psql(
        "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes \
         WHERE tablename = 'tower_stateless_sessions'",
    );
    assert_eq!(
        indexes,
        "tower_stateless_sessions_expires_at,tower_stateless_sessions_pkey,\
         tower_stateless_sessions_user_id"
    );
    // Connecting again runs no DDL and finds the same version.
    PostgresStore::connect(&url).await.unwrap();
    assert_eq!(
        server.psql("SELECT count(*) FROM tower_stateless_schema"),
        "2"
    );
}

#[tokio::test]
async fn rows_hold_the_hashed_id_and_no_raw_value_outside_the_data() {
    let Some(on) = on_shared_server().await else {
        return;
    };
    let (id, _) = session(&on.store, Some("zoe")).await;
    let row = on.server.psql(&format!(
        "SELECT data::text || '|' || user_id || '|' || version FROM tower_stateless_sessions \
         WHERE id = '{}'",
        id.as_str()
    ));
    assert_eq!(row, r#"{"a": "1"}|zoe|1"#);
    on.store.destroy(&id).await.unwrap();
}

#[tokio::test]
async fn the_sweeper_deletes_expired_rows_in_batches_and_spares_live_ones() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let store = PostgresStore::builder(server.url())
        .sweep_every(None)
        .connect()
        .await
        .unwrap();
    let (live, expiry) = session(&store, None).await;
    // 2500 rows past their expires_at (more than two batches), written as a crashed
    // instance would have left them.
    server.psql(
        "INSERT INTO tower_stateless_sessions \
         (id, data, user_id, created_at, refreshed_at, version, expires_at) \
         SELECT 'expired-' || n, '{}', NULL, 0, 0, 1, now() - interval '1 hour' \
         FROM generate_series(1, 2500) AS n",
    );
    assert_eq!(store.sweep().await.unwrap(), 2500);
    assert_eq!(
        server.psql("SELECT count(*) FROM tower_stateless_sessions"),
        "1",
        "only the live session is left"
    );
    assert!(store.load(&live, expiry).await.unwrap().is_some());
    assert_eq!(store.sweep().await.unwrap(), 0);

    // While another instance holds the sweep lock, a sweep leaves the round to it.
    let holder = PostgresStore::builder(server.url())
        .sweep_every(None)
        .connect()
        .await
        .unwrap();
    server.psql(
        "INSERT INTO tower_stateless_sessions \
         (id, data, user_id, created_at, refreshed_at, version, expires_at) \
         VALUES ('expired-x', '{}', NULL, 0, 0, 1, now() - interval '1 hour')",
    );
    let (mut client, connection) = tokio_postgres::connect(&server.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    let sweeping = client.transaction().await.unwrap();
    // The sweeper's lock key (src/store/postgres/sql.rs, SWEEP_LOCK).
    sweeping
        .execute("SELECT pg_advisory_xact_lock(8391169773835612161)", &[])
        .await
        .unwrap();
    assert_eq!(
        store.sweep().await.unwrap(),
        0,
        "the lock is held elsewhere"
    );
    sweeping.rollback().await.unwrap();
    assert_eq!(holder.sweep().await.unwrap(), 1);
    drop(client);
    connection.await.unwrap().unwrap();
}

// Multi-threaded: the wait below blocks its thread while the sweeper runs on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_background_sweeper_runs_at_its_interval() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let store = PostgresStore::connect(&server.url()).await.unwrap();
    drop(store);
    server.psql(
        "INSERT INTO tower_stateless_sessions \
         (id, data, user_id, created_at, refreshed_at, version, expires_at) \
         SELECT 'expired-' || n, '{}', NULL, 0, 0, 1, now() - interval '1 hour' \
         FROM generate_series(1, 10) AS n",
    );
    let _store = PostgresStore::builder(server.url())
        .sweep_every(Some(Duration::from_millis(100)))
        .connect()
        .await
        .unwrap();
    support::wait_for(
        "the sweeper deletes 10 rows",
        Duration::from_secs(10),
        || server.psql("SELECT count(*) FROM tower_stateless_sessions") == "0",
    );
}

#[tokio::test]
async fn a_least_privilege_role_runs_every_call() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    // The owner migrates once; the application's role then needs only these grants
    // (README, "PostgreSQL").
    PostgresStore::connect(&server.url()).await.unwrap();
    server.psql(
        "CREATE ROLE app LOGIN; \
         GRANT SELECT ON tower_stateless_schema TO app; \
         GRANT SELECT, INSERT, UPDATE, DELETE ON tower_stateless_sessions TO app;",
    );
    let url = format!("postgres://app@127.0.0.1:{}/postgres", server.port());
    let store = Arc::new(PostgresStore::connect(&url).await.unwrap());
    tower_stateless::conformance::all(store.clone()).await;
    store.sweep().await.unwrap();

    // Without the grants it cannot even connect, and says which step failed where.
    server.psql("CREATE ROLE nobody LOGIN");
    let url = format!("postgres://nobody@127.0.0.1:{}/postgres", server.port());
    let error = PostgresStore::connect(&url).await.unwrap_err();
    let text = chain(&error);
    assert!(
        text.contains("could not create or migrate the sessions schema")
            && text.contains(&format!("127.0.0.1:{}", server.port()))
            && text.contains("42501"),
        "{text}"
    );
}

/// The error and its causes, `": "`-separated.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(next) = cause {
        text.push_str(": ");
        text.push_str(&next.to_string());
        cause = next.source();
    }
    text
}

#[tokio::test]
async fn connect_errors_name_the_step_and_the_address_and_no_password() {
    let error = PostgresStore::connect("postgres://app:s3cret@127.0.0.1:1/db")
        .await
        .unwrap_err();
    let text = chain(&error);
    assert!(
        text.contains("could not connect (PostgreSQL at postgres://app@127.0.0.1:1/db)"),
        "{text}"
    );
    assert!(!text.contains("s3cret") && !format!("{error:?}").contains("s3cret"));

    let error = PostgresStore::connect("mysql://what:s3cret@host/db")
        .await
        .unwrap_err();
    let text = chain(&error);
    assert!(text.contains("could not parse the database URL"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");

    let builder = PostgresStore::builder("postgres://app:s3cret@127.0.0.1:1/db");
    assert!(!format!("{builder:?}").contains("s3cret"));
}

#[tokio::test]
async fn the_same_store_serves_again_after_a_restart() {
    let Some(mut server) = PostgresServer::start() else {
        return;
    };
    let store = PostgresStore::builder(server.url())
        .sweep_every(None)
        .connect()
        .await
        .unwrap();
    let (id, expiry) = session(&store, Some("una")).await;

    server.stop();
    for _ in 0..3 {
        let outcome = tokio::time::timeout(Duration::from_secs(10), store.load(&id, expiry)).await;
        let error = outcome
            .expect("a call to a stopped server fails, in bounded time")
            .unwrap_err();
        assert!(matches!(error, StoreError::Backend(_)), "{error:?}");
    }
    assert!(store.ping().await.is_err());

    server.restart();
    let back = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(5), store.ping()).await {
            Ok(Ok(())) => break,
            _ if back.elapsed() < Duration::from_secs(10) => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            outcome => panic!(
                "still failing {:?} after the restart: {outcome:?}",
                back.elapsed()
            ),
        }
    }
    // PostgreSQL keeps its data: the session is there, and the same store writes again.
    let changes = ChangeSet::default().with_set("b", "2");
    assert_eq!(
        store.apply(&id, &changes, expiry).await.unwrap(),
        Applied::Saved
    );
    let loaded = store.load(&id, expiry).await.unwrap().unwrap();
    assert_eq!(loaded.data.len(), 2);
    assert_eq!(loaded.metadata.user_id.as_deref(), Some("una"));
}

// Multi-threaded: the wait below blocks its thread.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_common_write_updates_the_row_in_place() {
    let Some(server) = PostgresServer::start() else {
        return;
    };
    let store = PostgresStore::builder(server.url())
        .sweep_every(None)
        .connect()
        .await
        .unwrap();
    let (id, _) = session(&store, Some("hot")).await;
    for n in 0..50 {
        let changes = ChangeSet::default().with_set(format!("f{}", n % 5), n.to_string());
        let applied = store.apply(&id, &changes, sessions::now()).await.unwrap();
        assert_eq!(applied, Applied::Saved);
    }
    // The server publishes its counters within about a second of each transaction.
    let counts = || {
        server.psql(
            "SELECT n_tup_upd || ' ' || n_tup_hot_upd FROM pg_stat_user_tables \
             WHERE relname = 'tower_stateless_sessions'",
        )
    };
    support::wait_for("50 updates counted", Duration::from_secs(20), || {
        counts().starts_with("50 ")
    });
    let hot: u32 = counts().split(' ').nth(1).unwrap().parse().unwrap();
    eprintln!("HOT updates: {hot} of 50");
    // A write that crosses a whole minute of the database's clock moves `expires_at` to
    // the next minute, and that one is not HOT.
    assert!(hot >= 48, "{hot} of 50 updates were HOT");
}
