//! Durable revocations on a real primary and replica: a logout (or log-out-everywhere, or
//! `cycle_id`) followed at once by the primary's death and the replica's promotion.
//!
//! Replication is asynchronous; to make "the replica is behind" happen on every round
//! rather than by luck, each round stalls the replica (`DEBUG SLEEP`, as a long fork,
//! swap or a paused VM would) and drops its link just before the revocation, so the
//! change cannot reach it until it wakes, half a second later. The primary is SIGKILLed
//! the moment the call returns, and the replica promoted.
//!
//! `DURABLE_ROUNDS` sets the rounds per case (default 10).

#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::time::{Duration, Instant};

use sessions::{new_id, now};
use support::RedisServer;
use tower_stateless::store::{
    ChangeSet, Created, Cycled, HashedId, Metadata, Record, SessionStore,
};
use tower_stateless::{ConfigError, RedisStore};

/// Generous: the replica reconnects on its next once-a-second cron tick.
const WAIT_TIMEOUT: Duration = Duration::from_secs(3);

fn rounds() -> usize {
    std::env::var("DURABLE_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(10)
}

fn key(id: &HashedId) -> String {
    format!("{}{{{id}}}", RedisStore::DEFAULT_PREFIX)
}

/// How long the replica stalls in each round.
const STALL: Duration = Duration::from_millis(500);

/// A primary and one replica that has caught up with it.
struct Pair {
    primary: RedisServer,
    replica: RedisServer,
}

impl Pair {
    fn start() -> Option<Self> {
        let primary = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"])?;
        let port = primary.port().to_string();
        let replica = RedisServer::start_with(&[
            "--replicaof",
            "127.0.0.1",
            &port,
            "--enable-debug-command",
            "local",
        ])?;
        let pair = Self { primary, replica };
        pair.wait_for_link();
        Some(pair)
    }

    fn wait_for_link(&self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !self
            .replica
            .cli(&["INFO", "replication"])
            .contains("master_link_status:up")
        {
            assert!(Instant::now() < deadline, "the replica never linked up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything written so far is on the replica.
    fn sync(&self) {
        assert_eq!(self.primary.cli(&["WAIT", "1", "5000"]), "1");
    }

    /// The replica stalls for [`STALL`] and its link drops: nothing written from now
    /// on reaches it before it wakes. Returns once the replica is asleep.
    fn stall_replica(&self) -> std::thread::JoinHandle<()> {
        let port = self.replica.port();
        let sleeper = std::thread::spawn(move || {
            support::cli(port, &["DEBUG", "SLEEP", &STALL.as_secs_f64().to_string()]);
        });
        while answers_ping_within(port, Duration::from_millis(50)) {}
        self.primary.cli(&["CLIENT", "KILL", "TYPE", "replica"]);
        sleeper
    }

    /// The primary dies at once (SIGKILL) and the replica takes over; returns whether
    /// `key` exists on the new primary.
    fn fail_over_and_check(mut self, key: &str) -> bool {
        // (The replica answers once it wakes; the primary is gone by then.)
        self.primary.stop();
        self.replica.cli(&["REPLICAOF", "NO", "ONE"]);
        self.replica.cli(&["EXISTS", key]) == "1"
    }
}

/// Whether a server answers `PING` within `limit` (a stalled one does not).
fn answers_ping_within(port: u16, limit: Duration) -> bool {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(b"PING\r\n").unwrap();
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok()
}

async fn store_on(pair: &Pair, durable: bool) -> RedisStore {
    let mut store = RedisStore::builder(pair.primary.url());
    if durable {
        store = store.durable_revocations(1, WAIT_TIMEOUT);
    }
    store.connect().await.unwrap()
}

async fn new_session(store: &RedisStore, user: Option<&str>) -> HashedId {
    let expiry = now();
    let id = new_id();
    let mut metadata = Metadata::new(expiry.now);
    metadata.user_id = user.map(str::to_owned);
    let record = Record::new([("cart:socks".to_owned(), "1".to_owned())].into(), metadata);
    assert_eq!(
        store.create(&id, &record, expiry).await.unwrap(),
        Created::Saved
    );
    id
}

/// The three revocations.
#[derive(Debug, Clone, Copy)]
enum Revocation {
    Logout,
    LogOutEverywhere,
    CycleId,
}

/// One round: (whether the revocation was acknowledged, whether the ended session is
/// alive on the promoted replica).
async fn round(revocation: Revocation, durable: bool) -> Option<(bool, bool)> {
    let pair = Pair::start()?;
    let store = store_on(&pair, durable).await;
    let id = new_session(&store, Some("ada")).await;
    pair.sync();
    let sleeper = pair.stall_replica();
    let acknowledged = match revocation {
        Revocation::Logout => store.destroy(&id).await.is_ok(),
        Revocation::LogOutEverywhere => store.destroy_sessions_of_user("ada").await.is_ok(),
        Revocation::CycleId => {
            let cycled = store
                .cycle_id(&id, &new_id(), &ChangeSet::default(), now())
                .await;
            matches!(cycled, Ok(Cycled::Saved))
        }
    };
    let revived = pair.fail_over_and_check(&key(&id));
    sleeper.join().unwrap();
    Some((acknowledged, revived))
}

/// Rounds of one case: (acknowledged, revived after an acknowledgement).
async fn rounds_of(revocation: Revocation, durable: bool, rounds: usize) -> (usize, usize) {
    let (mut acknowledged, mut revived) = (0, 0);
    for _ in 0..rounds {
        let Some((acked, alive)) = round(revocation, durable).await else {
            return (0, 0);
        };
        acknowledged += usize::from(acked);
        revived += usize::from(acked && alive);
    }
    eprintln!(
        "{revocation:?}, durable revocations {}: {acknowledged} of {rounds} acknowledged, \
         {revived} revived by the failover",
        if durable { "on" } else { "off" }
    );
    (acknowledged, revived)
}

#[tokio::test]
async fn an_acknowledged_logout_survives_a_failover_only_when_durable() {
    let rounds = rounds();
    let (acknowledged, revived) = rounds_of(Revocation::Logout, true, rounds).await;
    assert_eq!(revived, 0, "durable: an acknowledged logout was undone");
    // The replica wakes well within the wait: every logout is acknowledged.
    assert_eq!(acknowledged, rounds);

    // Without the option, what the durable rounds prevent: the same scenario revives the
    // session (the call returned while the replica was asleep). Not every time on a
    // loaded machine: the replica may wake and resync before the primary's SIGKILL.
    let (acknowledged, revived) = rounds_of(Revocation::Logout, false, rounds).await;
    assert_eq!(acknowledged, rounds);
    assert!(
        revived > 0,
        "without durable revocations, no logout was undone"
    );
}

#[tokio::test]
async fn log_out_everywhere_and_cycle_id_are_durable_too() {
    let rounds = rounds().div_ceil(2);
    for revocation in [Revocation::LogOutEverywhere, Revocation::CycleId] {
        let (acknowledged, revived) = rounds_of(revocation, true, rounds).await;
        assert_eq!(
            revived, 0,
            "{revocation:?}: an acknowledged revocation was undone"
        );
        assert_eq!(acknowledged, rounds, "{revocation:?}");
    }
}

#[tokio::test]
async fn without_enough_replicas_a_revocation_fails_instead_of_claiming_durability() {
    let Some(lonely) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(lonely.url())
        .durable_revocations(1, Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let id = new_session(&store, None).await;
    let started = Instant::now();
    let error = store.destroy(&id).await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the wait is bounded"
    );
    let cause = std::error::Error::source(&error).map(ToString::to_string);
    assert_eq!(
        cause.as_deref(),
        Some("the change reached 0 of 1 replicas in 100ms")
    );
    // The delete did happen on the primary; repeating the logout is safe and fails the
    // same way until a replica confirms.
    assert_eq!(lonely.cli(&["EXISTS", &key(&id)]), "0");
    assert!(store.destroy(&id).await.is_err());
    // Other calls do not wait.
    let other = new_session(&store, None).await;
    assert!(store.load(&other, now()).await.unwrap().is_some());
}

#[tokio::test]
async fn zero_settings_are_configuration_errors() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    for (replicas, timeout) in [(0, Duration::from_secs(1)), (1, Duration::ZERO)] {
        let error = RedisStore::builder(server.url())
            .durable_revocations(replicas, timeout)
            .connect()
            .await
            .unwrap_err();
        let cause = std::error::Error::source(&error);
        assert!(
            cause.is_some_and(|cause| cause.is::<ConfigError>()),
            "{error:?}"
        );
    }
}
