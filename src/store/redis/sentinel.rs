//! Following the master that Redis Sentinel names, as its client guidelines describe:
//! before a call fails, not only after.
//!
//! One [`Follower`] per store, shared by its command connection, its revocation
//! connection and its cache's invalidation stream, knows the master the store writes to:
//!
//! - It listens to every sentinel's events. A failover's leader announces itself
//!   (`+elected-leader`, `+selected-slave`, ...) some 100 ms before it promotes the
//!   replica: from then on the store sends nothing anywhere (calls fail at once, the
//!   layer answers 503) until the chosen replica answers `ROLE` as master, or a sentinel
//!   announces `+switch-master`, or the failover is aborted. So no write lands on the old
//!   master after the promotion, where it would be lost: after a planned failover the old
//!   master keeps answering as master for about 10 s, until Sentinel turns it into a
//!   replica and it drops its data.
//! - Every second it asks every sentinel `SENTINEL GET-MASTER-ADDR-BY-NAME`, in case an
//!   event was missed, and moves only when a majority of the sentinels given agree: one
//!   stale sentinel cannot point the store at the wrong node.
//! - Every new connection to a master must answer `ROLE` as master.
//! - A call that shows the master is gone or no longer takes writes (the connection
//!   broke, `READONLY`) forgets it: the next call asks the sentinels. One refused by a
//!   server that may be changing hands (`NOREPLICAS`, `MASTERDOWN`, `LOADING`, `BUSY`,
//!   `TRYAGAIN`, `CLUSTERDOWN`) makes it ask the sentinels at once.
//!
//! When the master changes, every connection to the old one is dropped at once and the
//! cache, which watches [`Follower::changes`], is flushed and re-homed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::{
    AsyncConnectionConfig, Client, Cmd, ConnectionAddr, ConnectionInfo, ErrorKind,
    IntoConnectionInfo, Pipeline, RedisError, RedisFuture, RedisResult, Value,
};
use futures_util::future::{join_all, select, Either};
use futures_util::StreamExt as _;
use tokio::sync::{mpsc, watch, Notify};

use super::conn::{node_url, redact, CONNECTION_TIMEOUT, RESPONSE_TIMEOUT};
use crate::error::StoreError;

/// How often every sentinel is asked where the master is, in case an event was missed.
const POLL: Duration = Duration::from_secs(1);
/// While a failover is under way: how often the replica being promoted is asked its role.
const CANDIDATE_CHECK: Duration = Duration::from_millis(50);
/// The longest the store refuses calls for a failover that neither ends nor aborts;
/// then it asks the sentinels again.
const FENCE_LIMIT: Duration = Duration::from_secs(5);
/// How long after moving to a promoted replica, ahead of the sentinels, the store
/// ignores them naming the old master: they learn of the move within a second or two,
/// and Sentinel turns the old master into a replica about 10 s after a planned failover.
const LEFT_LIMIT: Duration = Duration::from_secs(15);
/// How long a sentinel may take to answer, or a node to answer `ROLE`.
const QUICK: Duration = Duration::from_millis(500);
/// Waits between attempts to subscribe to a sentinel again.
const RESUBSCRIBE_WAIT: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(2));

/// The sentinel events that tell where the master is going.
const EVENTS: [&str; 10] = [
    "+elected-leader",
    "+failover-state-select-slave",
    "+selected-slave",
    "+failover-state-send-slaveof-noone",
    "+failover-state-wait-promotion",
    "+promoted-slave",
    "+switch-master",
    "-failover-abort-not-elected",
    "-failover-abort-no-good-slave",
    "-failover-abort-slave-timeout",
];

/// A server's address as the sentinels name it.
pub(super) type Node = (String, u16);

/// Where the master named `name` is, kept up to date; see the module's documentation.
pub(super) struct Follower {
    name: String,
    sentinels: Vec<Sentinel>,
    /// Credentials and TLS for the master and replicas; the address is replaced by the one
    /// the sentinels name.
    node: ConnectionInfo,
    state: Mutex<State>,
    /// Notified on every change of `state` that matters to a connection or the cache.
    changes: watch::Sender<()>,
    /// One resolution through the sentinels at a time.
    resolving: tokio::sync::Mutex<()>,
    /// Wakes the watcher to ask the sentinels now.
    poll_now: Arc<Notify>,
    /// The connections to the master, dropped at once when it changes.
    slots: Mutex<Vec<Weak<Slot>>>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

struct Sentinel {
    info: ConnectionInfo,
    /// Kept for the periodic question; reopened after a failure.
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

#[derive(Default)]
struct State {
    /// Bumped whenever `master` changes (also to or from unknown): a connection opened in
    /// an older epoch is not used again.
    epoch: u64,
    /// The master the store writes to; `None` until the sentinels are asked again.
    master: Option<Node>,
    /// A failover is under way: no calls until it ends, or until this instant at most.
    fenced_until: Option<Instant>,
    /// The replica that failover promotes, once a sentinel named it.
    candidate: Option<Node>,
    /// The master the store left for a promoted replica before most sentinels knew:
    /// they keep naming it (and it keeps answering as master) for a while, which must
    /// not bring the store back to it.
    left: Option<(Node, Instant)>,
}

impl State {
    fn is_fenced(&self) -> bool {
        self.fenced_until
            .is_some_and(|until| Instant::now() < until)
    }

    /// The master left for a promoted replica, while the sentinels may still name it.
    fn left(&self) -> Option<&Node> {
        let (node, until) = self.left.as_ref()?;
        (Instant::now() < *until).then_some(node)
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
    }
}

impl Follower {
    /// Asks `sentinels` (`redis://` URLs, with their own credentials if any) where the
    /// master `name` is, checks that it answers as master, and starts following it.
    /// `node` holds the credentials and TLS settings for the master (its address is not
    /// used).
    pub(super) async fn start(
        sentinels: &[String],
        name: &str,
        node: ConnectionInfo,
    ) -> Result<Arc<Self>, StoreError> {
        if sentinels.is_empty() {
            return Err(StoreError::backend("no Redis Sentinel given"));
        }
        let named = sentinels
            .iter()
            .map(|url| redact(url))
            .collect::<Vec<_>>()
            .join(",");
        let sentinels = sentinels
            .iter()
            .map(|url| {
                // The parser's error is not passed on: the URL may hold a password.
                let info = node_url(url).as_str().into_connection_info().map_err(|_| {
                    StoreError::backend(format!(
                        "not a Redis Sentinel address (host:port or redis://:password@host:port): {}",
                        redact(url)
                    ))
                })?;
                Ok(Sentinel {
                    info,
                    connection: tokio::sync::Mutex::default(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let follower = Arc::new(Self {
            name: name.to_owned(),
            sentinels,
            node,
            state: Mutex::default(),
            changes: watch::Sender::new(()),
            resolving: tokio::sync::Mutex::default(),
            poll_now: Arc::default(),
            slots: Mutex::default(),
            tasks: Mutex::default(),
        });
        follower.master().await.map_err(|error| {
            StoreError::backend(format!(
                "cannot find the master {name:?} through the Redis Sentinels at {named}: {error}"
            ))
        })?;
        let (sender, events) = mpsc::channel(64);
        let mut tasks = Vec::with_capacity(follower.sentinels.len() + 1);
        for sentinel in &follower.sentinels {
            let listening = listen(sentinel.info.clone(), sender.clone());
            tasks.push(tokio::spawn(listening).abort_handle());
        }
        let watching =
            watch_sentinels(Arc::downgrade(&follower), follower.poll_now.clone(), events);
        tasks.push(tokio::spawn(watching).abort_handle());
        *lock(&follower.tasks) = tasks;
        Ok(follower)
    }

    /// The master to write to now and the epoch it was learned in; asks the sentinels if
    /// it is not known. Fails at once while a failover is under way.
    pub(super) async fn master(&self) -> RedisResult<(u64, Node)> {
        if let Some(known) = self.known()? {
            return Ok(known);
        }
        let _one = self.resolving.lock().await;
        if let Some(known) = self.known()? {
            return Ok(known);
        }
        self.resolve().await
    }

    /// Whether `epoch` is still the one the store writes in, with no failover under way:
    /// the cache's heartbeat, which must not trust a node's own word that it is master.
    pub(super) fn writes_in(&self, epoch: u64) -> bool {
        let state = lock(&self.state);
        state.epoch == epoch && state.master.is_some() && !state.is_fenced()
    }

    /// Changes of master, and the starts and ends of failovers.
    pub(super) fn changes(&self) -> watch::Receiver<()> {
        self.changes.subscribe()
    }

    /// The settings to reach `node`: its address with the credentials and TLS given.
    pub(super) fn node_info(&self, (host, port): &Node) -> ConnectionInfo {
        super::tracking::at(&self.node, host, *port)
    }

    fn known(&self) -> RedisResult<Option<(u64, Node)>> {
        let state = lock(&self.state);
        if state.is_fenced() {
            return Err(failing_over());
        }
        if state.fenced_until.is_some() {
            // A fence that ran out: the master is asked of the sentinels again.
            return Ok(None);
        }
        Ok(state.master.clone().map(|master| (state.epoch, master)))
    }

    /// Asks every sentinel; the node most of them name (and that answers as master)
    /// becomes the master.
    async fn resolve(&self) -> RedisResult<(u64, Node)> {
        let (named, why_not) = self.ask_sentinels().await;
        let left = lock(&self.state).left().cloned();
        let most = named
            .into_iter()
            .filter(|(node, _)| Some(node) != left.as_ref())
            .max_by_key(|(_, votes)| *votes);
        let Some((node, _)) = most else {
            return Err(RedisError::from((
                ErrorKind::Io,
                "no Redis Sentinel answered where the master is",
                why_not.unwrap_or_default(),
            )));
        };
        self.connect_master(&node).await?;
        Ok(self.install(node, false))
    }

    /// How many sentinels name each node as the master, of those that answered, and why
    /// the last of those that did not answer did not.
    async fn ask_sentinels(&self) -> (HashMap<Node, usize>, Option<String>) {
        let asks = self.sentinels.iter().map(|sentinel| async move {
            let answer = tokio::time::timeout(QUICK, sentinel.master_addr(&self.name)).await;
            match answer {
                Ok(Ok(node)) => Ok(node),
                Ok(Err(error)) => {
                    tracing::debug!(%error, "a Redis Sentinel did not say where the master is");
                    Err(format!("{}: {error}", sentinel.info.addr()))
                }
                Err(_) => Err(format!(
                    "{}: no answer within {QUICK:?}",
                    sentinel.info.addr()
                )),
            }
        });
        let mut named = HashMap::new();
        let mut why_not = None;
        for answer in join_all(asks).await {
            match answer {
                Ok(node) => *named.entry(node).or_insert(0) += 1,
                Err(why) => why_not = Some(why),
            }
        }
        (named, why_not)
    }

    /// A new connection to `node`, which must answer `ROLE` as master.
    pub(super) async fn connect_master(&self, node: &Node) -> RedisResult<MultiplexedConnection> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut connection = Client::open(self.node_info(node))?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        let role: Value = ::redis::cmd("ROLE").query_async(&mut connection).await?;
        if !is_master(&role) {
            return Err(RedisError::from((
                ErrorKind::Server(::redis::ServerErrorKind::ReadOnly),
                "the node Sentinel names is not a master (yet)",
            )));
        }
        Ok(connection)
    }

    /// Makes `node` the master, in a new epoch unless it already is; ends any failover.
    /// `ahead`: the sentinels may not name it yet (a promoted replica seen before
    /// `+switch-master`).
    fn install(&self, node: Node, ahead: bool) -> (u64, Node) {
        let mut state = lock(&self.state);
        state.fenced_until = None;
        state.candidate = None;
        if state.master.as_ref() == Some(&node) {
            if !ahead {
                state.left = None;
            }
            let epoch = state.epoch;
            drop(state);
            self.changes.send_replace(());
            return (epoch, node);
        }
        tracing::info!(host = %node.0, port = node.1, "following the Redis master Sentinel names");
        let left = state.master.replace(node.clone());
        if ahead {
            state.left = left.map(|left| (left, Instant::now() + LEFT_LIMIT));
        }
        state.epoch += 1;
        let epoch = state.epoch;
        drop(state);
        self.close_connections();
        (epoch, node)
    }

    /// After a call in `epoch` showed the master gone or demoted: forget it, so that the
    /// next call asks the sentinels.
    fn forget(&self, epoch: u64, error: &RedisError) {
        let mut state = lock(&self.state);
        if state.epoch != epoch || state.master.is_none() {
            return;
        }
        tracing::warn!(%error, "lost the Redis master; asking the sentinels again");
        state.epoch += 1;
        state.master = None;
        drop(state);
        self.close_connections();
    }

    /// A failover is under way (`candidate`: the replica it promotes, once named).
    fn fence(&self, candidate: Option<Node>) {
        let mut state = lock(&self.state);
        if !state.is_fenced() {
            tracing::warn!("a Redis Sentinel failover started; store calls fail until it ends");
            state.fenced_until = Some(Instant::now() + FENCE_LIMIT);
        }
        if candidate.is_some() {
            state.candidate = candidate;
        }
        drop(state);
        self.changes.send_replace(());
    }

    fn unfence(&self) {
        let mut state = lock(&self.state);
        state.fenced_until = None;
        state.candidate = None;
        drop(state);
        self.changes.send_replace(());
    }

    /// Drops every connection to the master (each reconnects on its next call) and tells
    /// the cache.
    fn close_connections(&self) {
        lock(&self.slots).retain(|slot| match slot.upgrade() {
            Some(slot) => {
                lock(&slot.current).take();
                true
            }
            None => false,
        });
        self.changes.send_replace(());
    }

    fn on_event(&self, channel: &str, payload: &str) -> Option<Node> {
        let words: Vec<&str> = payload.split_whitespace().collect();
        // `master <name> <ip> <port>`, or `slave <ip:port> <ip> <port> @ <name> <ip> <port>`.
        let about_ours = match words.first() {
            Some(&"master") => words.get(1) == Some(&self.name.as_str()),
            Some(&"slave") => {
                words.get(4) == Some(&"@") && words.get(5) == Some(&self.name.as_str())
            }
            // `+switch-master <name> <old ip> <old port> <new ip> <new port>`.
            _ => words.first() == Some(&self.name.as_str()),
        };
        if !about_ours {
            return None;
        }
        let node_at = |host: usize| -> Option<Node> {
            Some((
                (*words.get(host)?).to_owned(),
                words.get(host + 1)?.parse().ok()?,
            ))
        };
        match channel {
            "+elected-leader" | "+failover-state-select-slave" => self.fence(None),
            "+selected-slave"
            | "+failover-state-send-slaveof-noone"
            | "+failover-state-wait-promotion"
            | "+promoted-slave" => self.fence(node_at(2)),
            "+switch-master" => return node_at(3),
            channel if channel.starts_with("-failover-abort") => self.unfence(),
            _ => {}
        }
        None
    }

    /// During a failover: the replica being promoted, once it answers as master.
    async fn promoted_candidate(&self) -> Option<Node> {
        let candidate = {
            let state = lock(&self.state);
            state.candidate.clone().filter(|_| state.is_fenced())
        }?;
        let answer = tokio::time::timeout(QUICK, self.connect_master(&candidate)).await;
        matches!(answer, Ok(Ok(_))).then_some(candidate)
    }

    /// A fence that ran out: forget the master, so that the next call asks the sentinels.
    fn end_overdue_fence(&self) {
        let mut state = lock(&self.state);
        if state
            .fenced_until
            .is_some_and(|until| Instant::now() >= until)
        {
            tracing::warn!(
                "a Redis Sentinel failover did not end in time; asking the sentinels again"
            );
            state.fenced_until = None;
            state.candidate = None;
            state.epoch += 1;
            state.master = None;
            drop(state);
            self.close_connections();
        }
    }

    /// The node a majority of the sentinels given names, if the store writes elsewhere
    /// (and did not just leave it for a promoted replica).
    async fn majority_elsewhere(&self) -> Option<Node> {
        let (named, _) = self.ask_sentinels().await;
        let majority = named
            .into_iter()
            .find(|(_, votes)| *votes * 2 > self.sentinels.len())
            .map(|(node, _)| node)?;
        let mut state = lock(&self.state);
        if state.master.as_ref() == Some(&majority) {
            // The sentinels caught up with a move made ahead of them.
            state.left = None;
            return None;
        }
        (state.left() != Some(&majority)).then_some(majority)
    }

    /// Moves to `node` once it answers as master.
    async fn move_to(&self, node: Node) {
        match self.connect_master(&node).await {
            Ok(_) => {
                self.install(node, false);
            }
            Err(error) => {
                tracing::debug!(%error, "the master Sentinel named does not answer as master yet");
                self.poll_now.notify_one();
            }
        }
    }
}

impl Sentinel {
    async fn master_addr(&self, name: &str) -> RedisResult<Node> {
        let mut connection = self.connection.lock().await;
        if connection.is_none() {
            let config = AsyncConnectionConfig::new()
                .set_connection_timeout(Some(QUICK))
                .set_response_timeout(Some(QUICK));
            let opened = Client::open(self.info.clone())?
                .get_multiplexed_async_connection_with_config(&config)
                .await?;
            *connection = Some(opened);
        }
        let Some(open) = connection.as_mut() else {
            unreachable!("opened above");
        };
        let answer = ::redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(name)
            .query_async::<Option<(String, u16)>>(open)
            .await;
        match answer {
            Ok(Some(node)) => Ok(node),
            Ok(None) => Err(RedisError::from((
                ErrorKind::MasterNameNotFoundBySentinel,
                "the sentinel does not know this master",
            ))),
            Err(error) => {
                *connection = None;
                Err(error)
            }
        }
    }
}

/// Forwards a sentinel's events to the watcher, subscribing again whenever the
/// connection drops; ends when the watcher is gone.
async fn listen(sentinel: ConnectionInfo, events: mpsc::Sender<(String, String)>) {
    let mut wait = RESUBSCRIBE_WAIT.0;
    loop {
        let subscribed = async {
            let mut pubsub = Client::open(sentinel.clone())?.get_async_pubsub().await?;
            pubsub.subscribe(&EVENTS[..]).await?;
            RedisResult::Ok(pubsub)
        };
        match tokio::time::timeout(CONNECTION_TIMEOUT, subscribed).await {
            Ok(Ok(pubsub)) => {
                wait = RESUBSCRIBE_WAIT.0;
                let mut messages = pubsub.into_on_message();
                while let Some(message) = messages.next().await {
                    let channel = message.get_channel_name().to_owned();
                    let payload: String = message.get_payload().unwrap_or_default();
                    if events.send((channel, payload)).await.is_err() {
                        return;
                    }
                }
                tracing::debug!("a Redis Sentinel's event stream ended; subscribing again");
            }
            Ok(Err(error)) => tracing::debug!(%error, "cannot subscribe to a Redis Sentinel"),
            Err(_) => tracing::debug!("subscribing to a Redis Sentinel timed out"),
        }
        if events.is_closed() {
            return;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RESUBSCRIBE_WAIT.1);
    }
}

/// Acts on the sentinels' events, follows a failover's candidate, and asks the sentinels
/// every [`POLL`]; ends with the follower.
async fn watch_sentinels(
    follower: Weak<Follower>,
    poll_now: Arc<Notify>,
    mut events: mpsc::Receiver<(String, String)>,
) {
    let mut last_poll = Instant::now();
    let mut poll_due = false;
    loop {
        let fenced = match follower.upgrade() {
            Some(follower) => lock(&follower.state).is_fenced(),
            None => return,
        };
        let wait = if fenced {
            CANDIDATE_CHECK
        } else {
            POLL.saturating_sub(last_poll.elapsed())
        };
        let woken = {
            let event = std::pin::pin!(events.recv());
            let poll = std::pin::pin!(poll_now.notified());
            let timer = std::pin::pin!(tokio::time::sleep(wait));
            match select(event, select(poll, timer)).await {
                Either::Left((Some(event), _)) => Some(event),
                Either::Left((None, _)) => return,
                Either::Right((Either::Left(_), _)) => {
                    poll_due = true;
                    None
                }
                Either::Right((Either::Right(_), _)) => None,
            }
        };
        let Some(follower) = follower.upgrade() else {
            return;
        };
        if let Some((channel, payload)) = woken {
            if let Some(node) = follower.on_event(&channel, &payload) {
                follower.move_to(node).await;
            }
        }
        if let Some(promoted) = follower.promoted_candidate().await {
            follower.install(promoted, true);
        }
        follower.end_overdue_fence();
        if poll_due || last_poll.elapsed() >= POLL {
            (last_poll, poll_due) = (Instant::now(), false);
            if let Some(node) = follower.majority_elsewhere().await {
                follower.move_to(node).await;
            }
        }
    }
}

/// One connection to the master, of one purpose (commands, or revocations and their
/// `WAIT`), reopened in each new epoch.
#[derive(Default)]
struct Slot {
    current: Mutex<Option<(u64, MultiplexedConnection)>>,
    connecting: tokio::sync::Mutex<()>,
}

/// A connection to whichever server the follower says is the master; cheap to clone
/// (clones share the connection).
#[derive(Clone)]
pub(super) struct SentinelConn {
    follower: Arc<Follower>,
    slot: Arc<Slot>,
}

impl SentinelConn {
    /// A connection of its own to the master `follower` follows (opened on first use).
    pub(super) fn new(follower: Arc<Follower>) -> Self {
        let slot = Arc::new(Slot::default());
        lock(&follower.slots).push(Arc::downgrade(&slot));
        Self { follower, slot }
    }

    async fn connection(&self) -> RedisResult<(u64, MultiplexedConnection)> {
        let (epoch, node) = self.follower.master().await?;
        let current = || {
            lock(&self.slot.current)
                .clone()
                .filter(|(opened, _)| *opened == epoch)
        };
        if let Some(current) = current() {
            return Ok(current);
        }
        let _one = self.slot.connecting.lock().await;
        if let Some(current) = current() {
            return Ok(current);
        }
        match self.follower.connect_master(&node).await {
            Ok(connection) => {
                *lock(&self.slot.current) = Some((epoch, connection.clone()));
                Ok((epoch, connection))
            }
            Err(error) => {
                self.follower.forget(epoch, &error);
                Err(error)
            }
        }
    }

    /// After a failed call in `epoch`: forget the master if it is gone or demoted; ask
    /// the sentinels now if the server may be changing hands.
    fn after_failure(&self, epoch: u64, error: &RedisError) {
        let code = error.code();
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_unrecoverable_error()
            || error.is_timeout()
            || code == Some("READONLY")
        {
            self.follower.forget(epoch, error);
        } else if matches!(
            code,
            Some("NOREPLICAS" | "MASTERDOWN" | "LOADING" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN")
        ) {
            self.follower.poll_now.notify_one();
        }
    }
}

impl ConnectionLike for SentinelConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let (epoch, mut connection) = self.connection().await?;
            let result = connection.req_packed_command(cmd).await;
            if let Err(error) = &result {
                self.after_failure(epoch, error);
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
            let (epoch, mut connection) = self.connection().await?;
            let result = connection
                .req_packed_commands(pipeline, offset, count)
                .await;
            if let Err(error) = &result {
                self.after_failure(epoch, error);
            }
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.follower.node.redis_settings().db()
    }
}

/// The name Sentinel knows the master by, and the settings (credentials, TLS, database)
/// for the master and replicas, from `master`: the bare name, or a URL with the name in
/// the host's place (`redis://user:password@<name>/<db>`, `rediss://…`).
pub(super) fn master_settings(master: &str) -> Result<(String, ConnectionInfo), StoreError> {
    let url = if master.contains("://") {
        master.to_owned()
    } else {
        // No credentials, no TLS; the host is replaced by the one the sentinels name.
        format!("redis://{master}")
    };
    // The URL holds a password: the parser's error is not passed on.
    let node = url
        .as_str()
        .into_connection_info()
        .map_err(|_| StoreError::backend("the Sentinel master is neither a name nor a URL"))?;
    let name = match node.addr() {
        ConnectionAddr::Tcp(host, _) | ConnectionAddr::TcpTls { host, .. } => host.clone(),
        _ => {
            return Err(StoreError::backend(
                "the Sentinel master URL names no master",
            ))
        }
    };
    Ok((name, node))
}

fn failing_over() -> RedisError {
    RedisError::from((
        ErrorKind::Io,
        "a Redis Sentinel failover is under way; no calls until it ends",
    ))
}

/// Whether a `ROLE` reply says master.
pub(super) fn is_master(reply: &Value) -> bool {
    match reply {
        Value::Array(fields) => matches!(
            fields.first(),
            Some(Value::BulkString(role)) if role.as_slice() == b"master"
        ),
        _ => false,
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn follower() -> Follower {
        Follower {
            name: "sessions".to_owned(),
            sentinels: Vec::new(),
            node: "redis://127.0.0.1".into_connection_info().unwrap(),
            state: Mutex::new(State {
                epoch: 1,
                master: Some(("127.0.0.1".to_owned(), 7000)),
                ..State::default()
            }),
            changes: watch::Sender::new(()),
            resolving: tokio::sync::Mutex::default(),
            poll_now: Arc::default(),
            slots: Mutex::default(),
            tasks: Mutex::default(),
        }
    }

    #[test]
    fn a_failover_of_our_master_fences_and_names_the_replica() {
        let follower = follower();
        assert!(follower.writes_in(1));
        assert_eq!(
            follower.on_event("+elected-leader", "master other 127.0.0.1 7100"),
            None
        );
        assert!(follower.writes_in(1), "another master's failover");
        follower.on_event("+elected-leader", "master sessions 127.0.0.1 7000");
        assert!(!follower.writes_in(1), "fenced");
        assert!(follower.known().is_err());
        follower.on_event(
            "+selected-slave",
            "slave 127.0.0.1:7001 127.0.0.1 7001 @ sessions 127.0.0.1 7000",
        );
        assert_eq!(
            lock(&follower.state).candidate,
            Some(("127.0.0.1".to_owned(), 7001))
        );
        follower.on_event(
            "-failover-abort-slave-timeout",
            "master sessions 127.0.0.1 7000",
        );
        assert!(follower.writes_in(1), "aborted: the old master again");
    }

    #[test]
    fn a_switch_names_the_new_master() {
        let follower = follower();
        assert_eq!(
            follower.on_event("+switch-master", "sessions 127.0.0.1 7000 127.0.0.1 7001"),
            Some(("127.0.0.1".to_owned(), 7001))
        );
        assert_eq!(
            follower.on_event("+switch-master", "other 127.0.0.1 7000 127.0.0.1 7001"),
            None
        );
        let (epoch, _) = follower.install(("127.0.0.1".to_owned(), 7001), false);
        assert!(!follower.writes_in(1) && follower.writes_in(epoch));
    }

    #[test]
    fn a_master_is_a_name_or_a_url() {
        let (name, node) = master_settings("sessions").unwrap();
        assert_eq!(name, "sessions");
        assert_eq!(node.redis_settings().password(), None);
        let (name, node) = master_settings("rediss://app:pw@sessions/2").unwrap();
        assert_eq!(name, "sessions");
        assert_eq!(node.redis_settings().password(), Some("pw"));
        assert_eq!(node.redis_settings().username(), Some("app"));
        assert_eq!(node.redis_settings().db(), 2);
        assert!(matches!(node.addr(), ConnectionAddr::TcpTls { .. }));
        let error = master_settings("redis://app:s3cret@[::1").unwrap_err();
        assert!(!format!("{error:?}").contains("s3cret"));
    }

    #[test]
    fn reads_a_role_reply() {
        let role = |name: &str| Value::Array(vec![Value::BulkString(name.as_bytes().to_vec())]);
        assert!(is_master(&role("master")));
        assert!(!is_master(&role("slave")));
        assert!(!is_master(&Value::Nil));
    }
}
