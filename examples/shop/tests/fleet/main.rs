//! The fleet, with real processes: redis-server, several shop binaries, nginx in front.
//! Instances are killed and restarted, and Redis too, under traffic. After each test no
//! process the fleet started, nor any it forked, is left alive.

#![allow(missing_docs)]

mod client;
#[path = "../../../../tests/support/mod.rs"]
mod support;
#[path = "../tools/mod.rs"]
mod tools;

use std::collections::{BTreeSet, HashSet};
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;
use shop::fleet::{group_members, survivors, Balance, Fleet, FleetConfig, FleetStore};

use client::{Client, Reply};

/// Fleet tests share two cores: one at a time keeps their timings meaningful.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// Every scenario stops by itself after this long.
const SCENARIO_LIMIT: Duration = Duration::from_secs(120);

/// Whether redis-server and nginx are here. Under CI a missing one is a failure.
fn tools_present() -> bool {
    tools::present(
        "fleet",
        &[
            ("redis-server", &["redis-server"]),
            ("nginx", &["nginx", "/usr/sbin/nginx"]),
        ],
    )
}

/// Printed past the test harness's capture, so the figures show in every run.
fn report(line: &str) {
    let _ = writeln!(std::io::stderr(), "fleet: {line}");
}

/// A fleet in round robin: each request to the next instance.
fn start(store: FleetStore) -> Arc<Mutex<Fleet>> {
    start_in(store, "store")
}

/// A fleet in round robin whose instances run with `SESSION_MODE=mode`.
fn start_in(store: FleetStore, mode: &str) -> Arc<Mutex<Fleet>> {
    start_balanced(store, mode, Balance::RoundRobin)
}

fn start_balanced(store: FleetStore, mode: &str, balance: Balance) -> Arc<Mutex<Fleet>> {
    let config = FleetConfig {
        shop_binary: env!("CARGO_BIN_EXE_shop").into(),
        instances: 3,
        store,
        port: 0,
        env: vec![
            ("RUST_LOG".into(), "warn".into()),
            ("SESSION_MODE".into(), mode.into()),
        ],
        control: None,
        balance,
    };
    Arc::new(Mutex::new(Fleet::start(config).expect("fleet starts")))
}

/// Drops the fleet (the test must hold the last handle to it) and checks that it had
/// started `expected` process groups and that no process of any of them is alive.
fn stop_and_check(fleet: Arc<Mutex<Fleet>>, expected: usize) {
    let fleet = Arc::into_inner(fleet)
        .expect("the test holds the last handle to its fleet")
        .into_inner()
        .unwrap();
    let groups = fleet.process_groups();
    let nginx = fleet.nginx.pid().expect("nginx runs");
    // The check below can see a worker left behind: nginx's master and worker are there.
    assert!(
        group_members(nginx).len() >= 2,
        "nginx's group holds its master and a worker: {:?}",
        group_members(nginx)
    );
    drop(fleet);
    let left = survivors(&groups);
    report(&format!(
        "stopped: {} process groups started, survivors {left:?}",
        groups.len()
    ));
    assert_eq!(groups.len(), expected, "process groups started: {groups:?}");
    assert!(
        left.is_empty(),
        "alive after the fleet was dropped: {left:?}"
    );
}

fn port(fleet: &Arc<Mutex<Fleet>>) -> u16 {
    fleet.lock().unwrap().nginx.port()
}

fn add_body(sku: &str) -> Option<Vec<u8>> {
    Some(json!({"sku": sku, "qty": 1}).to_string().into_bytes())
}

async fn login(client: &Client) {
    login_as(client, "alice").await;
}

async fn login_as(client: &Client, user: &str) {
    let body = json!({ "user": user }).to_string().into_bytes();
    let (reply, _) = client
        .request_retrying("POST", "/login", Some(body), false)
        .await;
    assert_eq!(reply.expect("login").status, 200);
}

/// SKUs in the cart, or `None` if the user is logged out.
async fn cart(client: &Client) -> Option<BTreeSet<String>> {
    let (reply, _) = client.request_retrying("GET", "/cart", None, true).await;
    let reply = reply.expect("GET /cart");
    (reply.status == 200).then(|| {
        reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|item| item["sku"].as_str().unwrap().to_owned())
            .collect()
    })
}

/// What a traffic run saw.
#[derive(Default)]
struct Tally {
    acknowledged: Mutex<Vec<String>>,
    logged_out: AtomicU32,
    proxy_retries: AtomicU32,
    unavailable: AtomicU32,
    other_failures: AtomicU32,
    instances: Mutex<HashSet<String>>,
    /// Times of 503 answers and of successes, for the outage test.
    outages: Mutex<Vec<Instant>>,
    successes: Mutex<Vec<Instant>>,
}

impl Tally {
    fn acked(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Adds `sku`: retries proxy failures; 503s are retried too if `through_outages`.
    async fn add(&self, client: &Client, sku: &str, through_outages: bool) {
        let (reply, attempts) = client
            .request_retrying("POST", "/cart/items", add_body(sku), false)
            .await;
        self.proxy_retries
            .fetch_add(attempts.proxy_retries, Ordering::Relaxed);
        match reply {
            Ok(Reply {
                status: 200,
                instance,
                ..
            }) => {
                self.acknowledged.lock().unwrap().push(sku.to_owned());
                self.successes.lock().unwrap().push(Instant::now());
                self.instances.lock().unwrap().extend(instance);
            }
            Ok(Reply {
                status: 401,
                instance,
                ..
            }) => {
                self.logged_out.fetch_add(1, Ordering::Relaxed);
                self.instances.lock().unwrap().extend(instance);
            }
            Ok(Reply { status: 503, .. }) => {
                self.unavailable.fetch_add(1, Ordering::Relaxed);
                self.outages.lock().unwrap().push(Instant::now());
                if through_outages {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Box::pin(self.add(client, sku, through_outages)).await;
                }
            }
            Ok(Reply { status, json, .. }) => {
                self.other_failures.fetch_add(1, Ordering::Relaxed);
                report(&format!(
                    "POST /cart/items {sku}: unexpected {status} {json}"
                ));
            }
            Err(failed) => {
                self.other_failures.fetch_add(1, Ordering::Relaxed);
                report(&failed.0);
            }
        }
    }

    /// Acknowledged SKUs missing from `cart` (all of them if logged out).
    fn lost(&self, cart: &Option<BTreeSet<String>>) -> usize {
        let acked = self.acknowledged.lock().unwrap();
        match cart {
            Some(cart) => acked.iter().filter(|sku| !cart.contains(*sku)).count(),
            None => acked.len(),
        }
    }

    fn summary(&self, cart: &Option<BTreeSet<String>>) -> String {
        let mut instances: Vec<String> = self.instances.lock().unwrap().iter().cloned().collect();
        instances.sort();
        format!(
            "acknowledged={} lost={} logged_out={} retried={} unavailable_503={} other_failures={} instances_seen={:?}",
            self.acked(),
            self.lost(cart),
            self.logged_out.load(Ordering::Relaxed),
            self.proxy_retries.load(Ordering::Relaxed),
            self.unavailable.load(Ordering::Relaxed),
            self.other_failures.load(Ordering::Relaxed),
            instances
        )
    }
}

/// 4 writers add 600 distinct SKUs; a third of the way in an instance is SIGKILLed,
/// two thirds in it is started again: in round robin shop-1, with the session routed by
/// its cookie the instance that serves it. Then the fleet, which started `groups`
/// process groups, is stopped and checked.
async fn kill_scenario(store: FleetStore, groups: usize) -> (Arc<Tally>, Option<BTreeSet<String>>) {
    kill_scenario_balanced(store, groups, Balance::RoundRobin).await
}

async fn kill_scenario_balanced(
    store: FleetStore,
    groups: usize,
    balance: Balance,
) -> (Arc<Tally>, Option<BTreeSet<String>>) {
    let fleet = start_balanced(store, "store", balance);
    let client = Client::new(port(&fleet));
    login(&client).await;
    let victim = match balance {
        Balance::RoundRobin => 0,
        Balance::Session => {
            let (me, _) = client.request_retrying("GET", "/me", None, false).await;
            let home = me.expect("GET /me").instance.expect("x-instance");
            let fleet = fleet.lock().unwrap();
            (fleet.instances.iter())
                .position(|instance| instance.name == home)
                .expect("the instance that served")
        }
    };
    let tally = Arc::new(Tally::default());
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..4 {
        let (client, tally) = (client.clone(), tally.clone());
        writers.spawn(async move {
            for i in 0..150 {
                tally
                    .add(&client, &format!("w{writer}-{i:03}"), false)
                    .await;
            }
        });
    }
    let attempted = |tally: &Tally| {
        tally.acked()
            + tally.logged_out.load(Ordering::Relaxed) as usize
            + tally.other_failures.load(Ordering::Relaxed) as usize
    };
    let deadline = Instant::now() + SCENARIO_LIMIT;
    while attempted(&tally) < 200 && Instant::now() < deadline && !writers.is_empty() {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fleet.lock().unwrap().instances[victim].kill();
    report(&format!(
        "killed shop-{} after {} requests",
        victim + 1,
        attempted(&tally)
    ));
    while attempted(&tally) < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let restarter = {
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || fleet.lock().unwrap().instances[victim].start())
    };
    report(&format!(
        "restarting shop-{} after {} requests",
        victim + 1,
        attempted(&tally)
    ));
    tokio::time::timeout(SCENARIO_LIMIT, async {
        while writers.join_next().await.is_some() {}
    })
    .await
    .expect("writers finish");
    restarter
        .await
        .unwrap()
        .expect("the killed instance restarts");
    let cart = cart(&client).await;
    stop_and_check(fleet, groups);
    (tally, cart)
}

/// The kill scenario in round robin, and with nginx routing the session by its cookie,
/// where the instance killed is the one the session is routed to (and cached on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_loses_nothing() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    for balance in [Balance::RoundRobin, Balance::Session] {
        let store = FleetStore::OwnRedis(Vec::new());
        let (tally, cart) = kill_scenario_balanced(store, 6, balance).await;
        report(&format!(
            "kill test (Redis, {balance:?}): {}",
            tally.summary(&cart)
        ));
        kill_lost_nothing(&tally, &cart, balance);
    }
}

/// What a kill scenario must end with: every add acknowledged and in the cart, nobody
/// logged out; in round robin every instance served, routed by session the session's
/// own instance and another while that one was down.
fn kill_lost_nothing(tally: &Tally, cart: &Option<BTreeSet<String>>, balance: Balance) {
    assert_eq!(tally.acked(), 600, "every add was acknowledged");
    assert_eq!(tally.lost(cart), 0, "every acknowledged SKU is in the cart");
    assert_eq!(
        tally.logged_out.load(Ordering::Relaxed),
        0,
        "never logged out"
    );
    let served = tally.instances.lock().unwrap().len();
    match balance {
        Balance::RoundRobin => assert_eq!(served, 3, "all 3 instances served traffic"),
        Balance::Session => assert!(served >= 2, "another instance took over"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lesson_in_memory_sessions_lose_users() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let (tally, cart) = kill_scenario(FleetStore::Memory, 5).await;
    report(&format!(
        "kill test (MemoryStore, expected to fail): {}",
        tally.summary(&cart)
    ));
    let logged_out = tally.logged_out.load(Ordering::Relaxed);
    assert!(
        logged_out > 0 || tally.lost(&cart) > 0,
        "in-memory sessions must show logouts or lost items, or the kill test cannot tell the difference"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_survives_the_death_of_the_instance_that_took_its_first_chunks() {
    use sha2::{Digest, Sha256};
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let fleet = start(FleetStore::OwnRedis(Vec::new()));
    let client = Client::new(port(&fleet));
    login(&client).await;
    let data: Vec<u8> = (0..1_700_000u32)
        .map(|i| (i.wrapping_mul(31) % 253) as u8)
        .collect();
    let chunks: Vec<&[u8]> = data.chunks(256 * 1024).collect();
    let body = json!({"name": "big.bin", "size": data.len()})
        .to_string()
        .into_bytes();
    let (created, _) = client
        .request_retrying("POST", "/uploads", Some(body), false)
        .await;
    let id = created.unwrap().json["upload"].as_str().unwrap().to_owned();

    let mut served_by: Vec<String> = Vec::new();
    let mut retried = 0;
    for (n, chunk) in chunks.iter().enumerate() {
        if n == 2 {
            let first = served_by[0].clone();
            let mut fleet = fleet.lock().unwrap();
            let victim = fleet
                .instances
                .iter_mut()
                .find(|i| i.name == first)
                .unwrap();
            victim.kill();
            report(&format!("upload: killed {first}, which took chunk 0"));
        }
        let path = format!("/uploads/{id}/chunks/{n}");
        let (reply, attempts) = client
            .request_retrying("PUT", &path, Some(chunk.to_vec()), false)
            .await;
        retried += attempts.proxy_retries;
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "chunk {n}: {}", reply.json);
        served_by.push(reply.instance.unwrap());
    }
    let (done, _) = client
        .request_retrying("POST", &format!("/uploads/{id}/complete"), None, false)
        .await;
    let done = done.unwrap();
    stop_and_check(fleet, 5);
    let expected: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    report(&format!(
        "upload test: chunks={} bytes={} served_by={served_by:?} retried={retried} sha256_match={}",
        chunks.len(),
        data.len(),
        done.json["sha256"] == expected.as_str()
    ));
    assert_eq!(done.status, 200);
    assert_eq!(done.json, json!({"bytes": data.len(), "sha256": expected}));
    assert!(
        served_by[..2].iter().collect::<HashSet<_>>().len() == 2,
        "the first chunks went through different instances"
    );
    assert!(
        !served_by[2..].contains(&served_by[0]),
        "the killed instance served nothing after its death"
    );
}

/// Steady traffic from 2 writers until `stop`, bounded in count.
fn steady_traffic(
    client: &Client,
    tally: &Arc<Tally>,
    stop: &Arc<AtomicBool>,
    through_outages: bool,
) -> tokio::task::JoinSet<()> {
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..2 {
        let (client, tally, stop) = (client.clone(), tally.clone(), stop.clone());
        writers.spawn(async move {
            for i in 0..5000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                tally
                    .add(&client, &format!("s{writer}-{i:04}"), through_outages)
                    .await;
            }
        });
    }
    writers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    for balance in [Balance::RoundRobin, Balance::Session] {
        rolling_restart(balance).await;
    }
}

async fn rolling_restart(balance: Balance) {
    let fleet = start_balanced(FleetStore::OwnRedis(Vec::new()), "store", balance);
    let client = Client::new(port(&fleet));
    login(&client).await;
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let mut writers = steady_traffic(&client, &tally, &stop, false);
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || {
            let mut fleet = fleet.lock().unwrap();
            fleet.instances[i].stop();
            fleet.instances[i].start()
        })
        .await
        .unwrap()
        .expect("instance restarts");
        report(&format!(
            "rolling restart: shop-{} restarted after {} acks",
            i + 1,
            tally.acked()
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    while writers.join_next().await.is_some() {}
    let cart = cart(&client).await;
    stop_and_check(fleet, 8);
    report(&format!(
        "rolling restart test ({balance:?}): {}",
        tally.summary(&cart)
    ));
    assert!(tally.acked() > 0);
    assert_eq!(tally.lost(&cart), 0, "no lost cart items");
    assert_eq!(tally.logged_out.load(Ordering::Relaxed), 0, "no logouts");
    assert_eq!(tally.other_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_under_traffic_is_an_outage_not_a_loss() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let aof = ["--appendonly", "yes", "--appendfsync", "always"]
        .map(String::from)
        .to_vec();
    let fleet = start(FleetStore::OwnRedis(aof));
    let client = Client::new(port(&fleet));
    login(&client).await;
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let mut writers = steady_traffic(&client, &tally, &stop, true);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let down_at = Instant::now();
    fleet.lock().unwrap().redis.as_mut().unwrap().kill();
    let acked_at_kill = tally.acked();
    tokio::time::sleep(Duration::from_secs(1)).await;
    {
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || {
            fleet.lock().unwrap().redis.as_mut().unwrap().restart()
        })
        .await
        .unwrap()
        .expect("redis restarts");
    }
    let up_at = Instant::now();
    let recovered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(at) = tally
                .successes
                .lock()
                .unwrap()
                .iter()
                .find(|at| **at > up_at)
            {
                return *at;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("service comes back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    while writers.join_next().await.is_some() {}

    let cart = cart(&client).await;
    let outages = tally.outages.lock().unwrap().clone();
    let outside = outages
        .iter()
        .filter(|at| **at < down_at || **at > recovered)
        .count();
    let running = fleet
        .lock()
        .unwrap()
        .instances
        .iter()
        .filter(|i| i.is_running())
        .count();
    stop_and_check(fleet, 6);
    report(&format!(
        "redis restart test: {} acked_before_kill={acked_at_kill} down_for={:?} recovered_after_restart={:?} 503s_outside_outage={outside} instances_running={running}",
        tally.summary(&cart),
        up_at - down_at,
        recovered - up_at,
    ));
    assert!(
        tally.unavailable.load(Ordering::Relaxed) > 0,
        "the outage was seen as 503s"
    );
    assert_eq!(outside, 0, "503s only while Redis was down");
    assert!(
        recovered - up_at <= Duration::from_secs(2),
        "full service within 2 s"
    );
    assert_eq!(running, 3, "no instance restarted");
    assert_eq!(tally.lost(&cart), 0, "no acknowledged item lost");
    assert_eq!(tally.logged_out.load(Ordering::Relaxed), 0);
}

#[test]
fn a_test_that_panics_leaves_no_process_behind() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let groups = Arc::new(Mutex::new(Vec::new()));
    let seen = groups.clone();
    let outcome = std::thread::spawn(move || {
        let fleet = start(FleetStore::OwnRedis(Vec::new()));
        *seen.lock().unwrap() = fleet.lock().unwrap().process_groups();
        panic!("deliberate: a test failing while its fleet runs");
    })
    .join();
    assert!(outcome.is_err(), "the thread panicked");
    let groups = groups.lock().unwrap().clone();
    let left = survivors(&groups);
    report(&format!(
        "panic test: {} process groups started, survivors {left:?}",
        groups.len()
    ));
    assert_eq!(groups.len(), 5, "redis, 3 shops and nginx: {groups:?}");
    assert!(left.is_empty(), "alive after the panic: {left:?}");
}

/// A `shop fleet` process that a failing test does not leave running: on drop it and
/// every process group it started are killed.
struct FleetProcess(std::process::Child);

impl Drop for FleetProcess {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            for group in shop::fleet::children(self.0.id()) {
                let group = nix::unistd::Pid::from_raw(group as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// `shop fleet` as a person runs it, stopped by SIGTERM as a service manager would. It
/// must not read the serving variables (PORT here is not a port).
#[test]
fn shop_fleet_starts_serves_and_leaves_nothing_when_stopped() {
    shop_fleet_command(&[], "store");
}

/// The same in token mode (`--session-mode token`): a logout through nginx makes the
/// cookie dead on whichever instance the next request reaches.
#[test]
fn shop_fleet_runs_in_token_mode() {
    shop_fleet_command(&["--session-mode", "token"], "token");
}

fn shop_fleet_command(extra: &[&str], mode: &str) {
    use std::io::{BufRead as _, BufReader};
    use std::process::{Command, Stdio};

    if !tools_present() {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    let mut fleet = FleetProcess(
        Command::new(env!("CARGO_BIN_EXE_shop"))
            .args(["fleet", "--port", "0"])
            .args(extra)
            .env("FLEET_INSTANCES", "2")
            .env("PORT", "not-a-port")
            .env("RUST_LOG", "warn")
            .env_remove("REDIS_URL")
            .env_remove("FLEET_PORT")
            .env_remove("SESSION_MODE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("shop fleet starts"),
    );
    let pid = fleet.0.id();
    // Its output, line by line, read on a thread so that waiting for it is bounded.
    let (lines, output) = std::sync::mpsc::channel();
    let stdout = BufReader::new(fleet.0.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            let _ = lines.send(line);
        }
    });
    let deadline = Instant::now() + SCENARIO_LIMIT;
    let mut printed = Vec::new();
    while !printed
        .iter()
        .any(|line: &String| line.starts_with("Ctrl-C"))
    {
        let wait = deadline.saturating_duration_since(Instant::now());
        match output.recv_timeout(wait) {
            Ok(line) => printed.push(line),
            Err(_) => panic!("shop fleet did not come up (its errors are above): {printed:?}"),
        }
    }
    let url = printed[0]
        .rsplit(' ')
        .next()
        .and_then(|url| url.strip_prefix("http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no URL in {:?}", printed[0]));
    let port: u16 = url.parse().expect("nginx's port");
    assert!(
        printed[0].contains(&format!("({mode} mode)")),
        "{printed:?}"
    );
    let client = Client::new(port);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (reply, _) = runtime.block_on(client.request_retrying("GET", "/healthz", None, false));
    assert_eq!(reply.expect("GET /healthz through nginx").status, 200);
    runtime.block_on(async {
        login(&client).await;
        let cookie = client.cookie();
        for _ in 0..4 {
            let me = client.request("GET", "/me", None).await.expect("GET /me");
            assert_eq!(me.status, 200, "logged in on every instance");
        }
        let logout = client
            .request("POST", "/logout", None)
            .await
            .expect("logout");
        assert_eq!(logout.status, 204);
        let replay = Client::with_cookie(port, cookie);
        for _ in 0..4 {
            let me = replay.request("GET", "/me", None).await.expect("GET /me");
            assert_eq!(me.status, 401, "the logged-out cookie is dead everywhere");
        }
    });

    // What it started: its children, each leading a process group.
    let groups = shop::fleet::children(pid);
    assert_eq!(
        groups.len(),
        4,
        "redis, 2 shops, nginx: {groups:?} {printed:?}"
    );
    assert!(
        groups.iter().any(|group| group_members(*group).len() >= 2),
        "one group (nginx's) holds a master and its worker"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .expect("SIGTERM to shop fleet");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = fleet.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "shop fleet still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let left = survivors(&groups);
    report(&format!(
        "shop fleet: {} children, {status}, survivors {left:?}",
        groups.len()
    ));
    assert!(status.success(), "{status}");
    assert!(left.is_empty(), "alive after shop fleet stopped: {left:?}");
    // The logs outlive the fleet, where it says.
    let kept = std::iter::from_fn(|| output.recv_timeout(Duration::from_secs(5)).ok())
        .find_map(|line| {
            line.strip_prefix("fleet: stopped; the logs are kept in ")
                .map(std::path::PathBuf::from)
        })
        .expect("shop fleet says where its logs are");
    assert!(kept.join("shop-1.log").is_file(), "{}", kept.display());
    let _ = std::fs::remove_dir_all(&kept);
}

/// Steady traffic through the fleet on the store `env` names; `kill` takes its primary
/// down (SIGKILL) and `promoted` tells when a replica has taken over. Returns the figures
/// line; asserts that nobody was logged out and that writes resumed.
async fn failover_under_traffic(
    label: &str,
    env: Vec<(String, String)>,
    kill: impl FnOnce(),
    promoted: impl Fn() -> bool + Send + 'static,
) {
    // Routed by session, as `shop fleet` runs: a session's instance and its cache see the
    // failover first-hand.
    let fleet = start_balanced(FleetStore::Env(env), "store", Balance::Session);
    let client = Client::new(port(&fleet));
    login(&client).await;
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let mut writers = steady_traffic(&client, &tally, &stop, true);

    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked_at_kill = tally.acked();
    kill();
    let down_at = Instant::now();
    let promoted_at = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !promoted() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(Instant::now())
    })
    .await
    .unwrap()
    .expect("a replica is promoted");
    let recovered = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(at) = (tally.successes.lock().unwrap().iter())
                .find(|at| **at > promoted_at)
                .copied()
            {
                return at;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .expect("service comes back");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    while writers.join_next().await.is_some() {}

    let cart = cart(&client).await;
    stop_and_check(fleet, 4);
    report(&format!(
        "{label}: {} acked_before_kill={acked_at_kill} promoted_after_kill={:?} writing_again_after_promotion={:?}",
        tally.summary(&cart),
        promoted_at - down_at,
        recovered.saturating_duration_since(promoted_at),
    ));
    assert!(tally.acked() > acked_at_kill, "writes resumed");
    assert_eq!(tally.logged_out.load(Ordering::Relaxed), 0, "no logouts");
    assert!(cart.is_some(), "the user is still logged in");
    assert_eq!(tally.other_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_under_traffic_logs_nobody_out() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let Some(group) = support::SentinelGroup::start("shop") else {
        return;
    };
    let env = vec![
        (
            "REDIS_SENTINELS".to_owned(),
            group.sentinel_addrs().join(","),
        ),
        ("REDIS_SENTINEL_MASTER".to_owned(), group.name.clone()),
    ];
    let group = Arc::new(Mutex::new(group));
    let (killer, watcher) = (group.clone(), group.clone());
    failover_under_traffic(
        "sentinel failover test",
        env,
        move || killer.lock().unwrap().master.stop(),
        move || watcher.lock().unwrap().promoted(),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_primary_kill_under_traffic_logs_nobody_out() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    // Every primary's replica is linked up when this returns.
    let Some(cluster) = support::RedisCluster::start_with_replicas() else {
        return;
    };
    let env = vec![("REDIS_CLUSTER_NODES".to_owned(), cluster.nodes().join(","))];
    let cluster = Arc::new(Mutex::new(cluster));
    // The primary that holds the one user's session, known once the fleet has logged in.
    let (killer, watcher) = (cluster.clone(), cluster.clone());
    let heir = Arc::new(Mutex::new(None));
    let heir_set = heir.clone();
    failover_under_traffic(
        "cluster primary kill test",
        env,
        move || {
            let mut cluster = killer.lock().unwrap();
            let victim = (0..6)
                .filter(|&i| cluster.is_primary(i))
                .find(|&i| {
                    !cluster.servers()[i]
                        .cli(&["--scan", "--pattern", "session:{*"])
                        .is_empty()
                })
                .expect("a primary holds the session");
            *heir_set.lock().unwrap() = cluster.replica_of(victim);
            cluster.servers_mut()[victim].stop();
        },
        move || {
            let heir = heir.lock().unwrap().expect("the victim had a replica");
            watcher.lock().unwrap().is_primary(heir)
        },
    )
    .await;
}

/// Token mode: a session lives in its cookie, so concurrent requests of one session would
/// race (the last cookie wins). Each writer is a user of its own, adding SKUs one request
/// at a time, and moves to a new user (a new login, a new cookie) every `per_session`
/// adds, to stay within the cookie's 4096 bytes, until it has added `count` or `stop` is
/// set. Returns every user it was, for their carts to be checked.
async fn token_writer(
    port: u16,
    tally: Arc<Tally>,
    writer: usize,
    count: usize,
    per_session: usize,
    stop: Arc<AtomicBool>,
) -> Vec<Client> {
    let mut clients: Vec<Client> = Vec::new();
    for i in 0..count {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if i % per_session == 0 {
            let client = Client::new(port);
            login_as(&client, &format!("writer-{writer}-{}", clients.len())).await;
            clients.push(client);
        }
        let client = clients.last().expect("a client logged in");
        tally.add(client, &format!("t{writer}-{i:04}"), false).await;
    }
    clients
}

/// Every SKU in the carts of `clients`; `None` if any of them is logged out.
async fn carts(clients: &[Client]) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for client in clients {
        all.extend(cart(client).await?);
    }
    Some(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_loses_nothing_in_token_mode() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    token_kill_scenario(FleetStore::OwnRedis(Vec::new()), 6, "Redis for revocations").await;
}

/// The store-free demo: no Redis at all, each instance with only the shared key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_token_mode_no_store_is_needed_and_killing_an_instance_loses_nothing() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    token_kill_scenario(FleetStore::Memory, 5, "no store").await;
}

/// 4 users add 150 SKUs each; a third of the way in instance 1 is SIGKILLed, two
/// thirds in it is started again.
async fn token_kill_scenario(store: FleetStore, groups: usize, what: &str) {
    let fleet = start_in(store, "token");
    let port = port(&fleet);
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(token_writer(port, tally, writer, 150, 150, stop))
        })
        .collect();
    let deadline = Instant::now() + SCENARIO_LIMIT;
    while tally.acked() < 200 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    fleet.lock().unwrap().instances[0].kill();
    report(&format!(
        "token mode: killed shop-1 after {} acks",
        tally.acked()
    ));
    while tally.acked() < 400 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let restarter = {
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || fleet.lock().unwrap().instances[0].start())
    };
    let mut clients = Vec::new();
    for writer in writers {
        clients.extend(writer.await.unwrap());
    }
    restarter.await.unwrap().expect("shop-1 restarts");
    let cart = carts(&clients).await;
    stop_and_check(fleet, groups);
    report(&format!(
        "kill test (token mode, {what}): {}",
        tally.summary(&cart)
    ));
    kill_lost_nothing(&tally, &cart, Balance::RoundRobin);
    assert_eq!(tally.other_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_loses_nothing_in_token_mode() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let fleet = start_in(FleetStore::OwnRedis(Vec::new()), "token");
    let port = port(&fleet);
    let (tally, stop) = (Arc::new(Tally::default()), Arc::new(AtomicBool::new(false)));
    let writers: Vec<_> = (0..2)
        .map(|writer| {
            let (tally, stop) = (tally.clone(), stop.clone());
            tokio::spawn(token_writer(port, tally, writer, 5000, 100, stop))
        })
        .collect();
    for i in 0..3 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let fleet = fleet.clone();
        tokio::task::spawn_blocking(move || {
            let mut fleet = fleet.lock().unwrap();
            fleet.instances[i].stop();
            fleet.instances[i].start()
        })
        .await
        .unwrap()
        .expect("instance restarts");
        report(&format!(
            "rolling restart (token mode): shop-{} restarted after {} acks",
            i + 1,
            tally.acked()
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut clients = Vec::new();
    for writer in writers {
        clients.extend(writer.await.unwrap());
    }
    let cart = carts(&clients).await;
    stop_and_check(fleet, 8);
    report(&format!(
        "rolling restart test (token mode, {} users): {}",
        clients.len(),
        tally.summary(&cart)
    ));
    assert!(tally.acked() > 0);
    assert_eq!(tally.lost(&cart), 0, "no lost cart items");
    assert_eq!(tally.logged_out.load(Ordering::Relaxed), 0, "no logouts");
    assert_eq!(tally.other_failures.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_token_mode_a_logout_on_one_instance_is_refused_by_the_others() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let fleet = start_in(FleetStore::OwnRedis(Vec::new()), "token");
    let ports: Vec<u16> = instances(&fleet)
        .into_iter()
        .map(|(_, port)| port)
        .collect();
    let rounds = 300;
    let (mut accepted, mut accepted_later) = (0, 0);
    for round in 0..rounds {
        let (a, others) = (
            ports[round % 3],
            [ports[(round + 1) % 3], ports[(round + 2) % 3]],
        );
        let client = Client::new(a);
        login_as(&client, &format!("user-{round}")).await;
        let cookie = client.cookie();
        for port in others {
            let copy = Client::with_cookie(port, cookie.clone());
            let me = copy.request("GET", "/me", None).await.expect("GET /me");
            assert_eq!(me.status, 200, "round {round}: live everywhere before");
        }
        let logout = client
            .request("POST", "/logout", None)
            .await
            .expect("logout");
        assert_eq!(logout.status, 204);
        for port in others {
            let copy = Client::with_cookie(port, cookie.clone());
            let me = copy.request("GET", "/me", None).await.expect("GET /me");
            if me.status != 401 {
                // The other instance's cache may not have read Redis's invalidation yet
                // (ARCHITECTURE, "What bounds staleness"): within moments it must have.
                accepted += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
                let again = copy.request("GET", "/me", None).await.expect("GET /me");
                if again.status != 401 {
                    accepted_later += 1;
                }
            }
        }
    }
    stop_and_check(fleet, 5);
    report(&format!(
        "token mode: {rounds} logouts, {} replays on other instances, {accepted} accepted \
         at once, {accepted_later} still accepted 200 ms later",
        rounds * 2
    ));
    assert_eq!(
        accepted_later, 0,
        "a logged-out cookie is dead on every instance once its cache has caught up"
    );
    // The window is a few ms; at most 2 % of the replays fall in it, even on a loaded
    // machine (ARCHITECTURE's revocation_latency figures: up to 1.9 %).
    assert!(
        accepted * 50 <= rounds * 2,
        "{accepted} of {} replays accepted at once",
        rounds * 2
    );
}

/// Token mode fills a cart until the layer refuses (413): the last accepted answer, whose
/// `Set-Cookie` is within a cart line of the 4096-byte budget, comes back through nginx
/// (whose default 4 KiB `proxy_buffer_size` would answer 502), and so does the cart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_filled_to_its_budget_passes_through_nginx() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let fleet = start_in(FleetStore::Memory, "token");
    let client = Client::new(port(&fleet));
    login(&client).await;
    let (mut accepted, mut last, mut refused) = (Vec::new(), None, None);
    // A line takes about 100 bytes of token: the budget is reached within 45.
    for n in 0..200 {
        let sku = format!("{n:0>64}");
        let reply = (client.request("POST", "/cart/items", add_body(&sku)).await)
            .unwrap_or_else(|failed| panic!("add {n}: {}", failed.0));
        match reply.status {
            200 => {
                accepted.push(sku);
                last = reply.set_cookie;
            }
            413 => {
                refused = Some(reply);
                break;
            }
            status => panic!("add {n}: {status} after {} accepted", accepted.len()),
        }
    }
    let refused = refused.expect("the layer refuses a line past the budget");
    assert_eq!(
        refused.json["error"],
        "the session is full: remove cart lines or check out first"
    );
    assert_eq!(refused.set_cookie, None, "no oversized cookie");
    let last = last.expect("each add sets the cookie");
    report(&format!(
        "token budget: {} lines, last Set-Cookie {} bytes, refused with 413",
        accepted.len(),
        last.len()
    ));
    assert!(
        (4096 - 120..=4096).contains(&last.len()),
        "{} bytes",
        last.len()
    );
    let held = cart(&client).await.expect("still logged in");
    assert_eq!(held, accepted.into_iter().collect::<BTreeSet<_>>());
    stop_and_check(fleet, 4);
}

/// Started as root (as CI is), nginx's workers run as an unprivileged user, and still
/// take a chunk too large for memory (1 MiB: nginx writes it to its client body temp
/// directory, which they must be able to write).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_workers_run_unprivileged_and_buffer_large_bodies() {
    use sha2::Digest as _;
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let fleet = start_in(FleetStore::OwnRedis(Vec::new()), "store");
    let master = fleet.lock().unwrap().nginx.pid().expect("nginx runs");
    let workers: Vec<u32> = group_members(master)
        .into_iter()
        .filter(|pid| *pid != master)
        .collect();
    assert!(!workers.is_empty(), "nginx has workers");
    let user_of = |pid: u32| {
        let out = std::process::Command::new("ps")
            .args(["-o", "user=", "-p", &pid.to_string()])
            .output()
            .expect("ps runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let (master_user, worker_users): (String, Vec<String>) = (
        user_of(master),
        workers.iter().map(|pid| user_of(*pid)).collect(),
    );
    report(&format!(
        "nginx: master runs as {master_user}, workers as {worker_users:?}"
    ));
    if master_user == "root" {
        assert!(
            worker_users
                .iter()
                .all(|user| !user.is_empty() && user != "root"),
            "{worker_users:?}"
        );
    }

    let client = Client::new(port(&fleet));
    login(&client).await;
    let size = 1024 * 1024;
    let body = json!({"name": "big.bin", "size": size})
        .to_string()
        .into_bytes();
    let created = client
        .request("POST", "/uploads", Some(body))
        .await
        .expect("POST /uploads");
    assert_eq!(created.status, 201, "{:?}", created.json);
    let id = created.json["upload"].as_str().unwrap().to_owned();
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let put = client
        .request(
            "PUT",
            &format!("/uploads/{id}/chunks/0"),
            Some(bytes.clone()),
        )
        .await
        .expect("PUT chunk");
    assert_eq!(put.status, 200, "{:?}", put.json);
    let done = client
        .request("POST", &format!("/uploads/{id}/complete"), None)
        .await
        .expect("complete");
    assert_eq!(done.status, 200, "{:?}", done.json);
    let expected: String = sha2::Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(done.json["sha256"], expected.as_str());
    stop_and_check(fleet, 5);
}

/// The kill test with sessions in PostgreSQL (`DATABASE_URL`, a server the test starts):
/// 4 writers, 600 adds, instance 1 SIGKILLed and restarted under traffic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_an_instance_loses_nothing_on_postgres() {
    if !tools_present() {
        return;
    }
    let Some(postgres) = support::PostgresServer::start() else {
        return;
    };
    let _serial = SERIAL.lock().await;
    let store = FleetStore::Env(vec![("DATABASE_URL".to_owned(), postgres.url())]);
    // 3 shops, the restarted one and nginx: PostgreSQL is the test's, not the fleet's.
    let (tally, cart) = kill_scenario(store, 5).await;
    report(&format!("kill test (PostgreSQL): {}", tally.summary(&cart)));
    kill_lost_nothing(&tally, &cart, Balance::RoundRobin);
}

/// The fleet's instances: (name, port).
fn instances(fleet: &Arc<Mutex<Fleet>>) -> Vec<(String, u16)> {
    let fleet = fleet.lock().unwrap();
    (fleet.instances.iter())
        .map(|instance| (instance.name.clone(), instance.port))
        .collect()
}

/// Reads `client`'s cart until it is `expected` (counted once in `stale` if the first
/// read was not), within 5 s: another instance's cache may not have applied Redis's
/// invalidation yet (ARCHITECTURE, "What bounds staleness"), but must within moments.
async fn cart_becomes(client: &Client, expected: &BTreeSet<String>, stale: &mut usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut first = true;
    loop {
        let seen = cart(client).await.expect("logged in");
        if seen == *expected {
            return;
        }
        if first {
            *stale += 1;
            first = false;
        }
        assert!(
            Instant::now() < deadline,
            "the cart never showed every add: {seen:?} vs {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// nginx routes a session by its cookie to one instance, which caches it; requests that
/// land elsewhere (sent there directly, as when that instance is down) are still right:
/// adds made on any instance all land, each is read on the other side, and a logout on
/// another instance ends the session on the one that caches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_routed_to_one_instance_is_served_right_by_any_other() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let fleet = start_balanced(FleetStore::OwnRedis(Vec::new()), "store", Balance::Session);
    let routed = Client::new(port(&fleet));
    login(&routed).await;
    let (me, _) = routed.request_retrying("GET", "/me", None, false).await;
    let home = me.unwrap().instance.unwrap();
    let others: Vec<u16> = (instances(&fleet).into_iter())
        .filter(|(name, _)| *name != home)
        .map(|(_, port)| port)
        .collect();
    let elsewhere =
        |round: usize| Client::with_cookie(others[round % others.len()], routed.cookie());
    let (mut acked, mut stale, mut routed_to) = (BTreeSet::new(), 0, HashSet::new());
    const ROUNDS: usize = 60;
    for round in 0..ROUNDS {
        // Even rounds add through nginx and read elsewhere; odd ones the other way round.
        let (writer, reader) = if round % 2 == 0 {
            (routed.clone(), elsewhere(round))
        } else {
            (elsewhere(round), routed.clone())
        };
        let sku = format!("r{round:02}");
        let (reply, _) = writer
            .request_retrying("POST", "/cart/items", add_body(&sku), false)
            .await;
        let reply = reply.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.json);
        if round % 2 == 0 {
            routed_to.extend(reply.instance);
        }
        acked.insert(sku);
        cart_becomes(&reader, &acked, &mut stale).await;
    }
    let logout = elsewhere(0).request("POST", "/logout", None).await.unwrap();
    assert_eq!(logout.status, 204);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut accepted_after_logout = 0;
    loop {
        let me = routed.request("GET", "/me", None).await.unwrap();
        routed_to.extend(me.instance);
        if me.status == 401 {
            break;
        }
        accepted_after_logout += 1;
        assert!(Instant::now() < deadline, "the logout never reached {home}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_and_check(fleet, 5);
    report(&format!(
        "routed by session to {home}: {ROUNDS} adds alternating with reads on the other \
         side, {stale} first reads stale; {accepted_after_logout} reads accepted after a \
         logout elsewhere; nginx sent the session to {routed_to:?}"
    ));
    assert_eq!(
        routed_to,
        HashSet::from([home]),
        "nginx kept the session on one instance"
    );
    // The window is a few ms (ARCHITECTURE's revocation_latency figures: up to 1.9 %).
    assert!(
        stale * 10 <= ROUNDS,
        "{stale} of {ROUNDS} first reads stale"
    );
}

/// `GET /metrics` of the instance on `port`, as text.
async fn metrics_of(port: u16) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).await.unwrap();
    text
}

/// The value of the Prometheus counter `name` in `metrics` (0 if absent).
fn counter(metrics: &str, name: &str) -> u64 {
    (metrics.lines())
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |value| value.trim().parse().unwrap())
}

/// The session cache's hit rate over 3 instances, in round robin and routed by session:
/// 12 users each add to their cart and read it 20 times. Printed (BENCHMARKS.md); asserted:
/// routing by session raises it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routing_by_session_raises_the_cache_hit_rate() {
    if !tools_present() {
        return;
    }
    let _serial = SERIAL.lock().await;
    let mut rates = Vec::new();
    for balance in [Balance::RoundRobin, Balance::Session] {
        let fleet = start_balanced(FleetStore::OwnRedis(Vec::new()), "store", balance);
        let nginx = port(&fleet);
        let mut users = tokio::task::JoinSet::new();
        for user in 0..12 {
            users.spawn(async move {
                let client = Client::new(nginx);
                login_as(&client, &format!("user-{user}")).await;
                for round in 0..20 {
                    let (added, _) = client
                        .request_retrying(
                            "POST",
                            "/cart/items",
                            add_body(&format!("s{round}")),
                            false,
                        )
                        .await;
                    assert_eq!(added.unwrap().status, 200);
                    assert!(cart(&client).await.is_some());
                }
            });
        }
        while let Some(done) = users.join_next().await {
            done.unwrap();
        }
        // The instances publish their cache's counts every second.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let (mut hits, mut misses) = (0, 0);
        for (_, port) in instances(&fleet) {
            let metrics = metrics_of(port).await;
            hits += counter(&metrics, "session_cache_hits_total");
            misses += counter(&metrics, "session_cache_misses_total")
                + counter(&metrics, "session_cache_bypasses_total");
        }
        stop_and_check(fleet, 5);
        let rate = hits as f64 / (hits + misses).max(1) as f64;
        report(&format!(
            "cache hit rate, 3 instances, {balance:?}: {:.1} % ({hits} hits, {misses} misses)",
            rate * 100.0
        ));
        assert!(hits + misses >= 240, "every GET /cart read a session");
        rates.push(rate);
    }
    assert!(
        rates[1] > rates[0],
        "routing by session raises the hit rate: {rates:?}"
    );
}
