//! Real `redis-server` processes for tests: a single server and a three-primary cluster.
//!
//! Each lives on free loopback ports with its own temporary directory and is killed when
//! dropped. Include it with `mod support;` (from a test in a subdirectory:
//! `#[path = "../support/mod.rs"] mod support;`), then:
//!
//! ```ignore
//! let Some(server) = support::RedisServer::start() else { return };
//! let store = RedisStore::connect(&server.url()).await?;
//! ```
//!
//! If `redis-server` is not on `PATH`, `start` returns `None` after a loud message, so a
//! developer without Redis can still run the other tests; under CI (`CI=true`) it panics
//! instead, so Redis tests can never be skipped silently there.

#![allow(dead_code, unreachable_pub)]

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::sleep;
use std::time::{Duration, Instant};

mod postgres;
#[allow(unused_imports)] // Not every test that includes this module starts PostgreSQL.
pub use self::postgres::PostgresServer;

/// How long a server may take to answer `PING` after it was spawned.
const STARTUP: Duration = Duration::from_secs(10);
/// How long a new cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_STARTUP: Duration = Duration::from_secs(20);
/// Attempts at finding ports, in case another test grabs one between check and bind.
const PORT_ATTEMPTS: usize = 5;

/// A `redis-server` on `127.0.0.1`, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    /// The TLS port, if it also listens for `rediss://`.
    tls_port: Option<u16>,
    /// Where its certificate, key and CA are (`make_certificates`): its own directory,
    /// or one that a group of servers shares.
    certificates: Option<PathBuf>,
    dir: TempDir,
    args: Vec<String>,
    child: Option<Child>,
}

impl RedisServer {
    /// A fresh server with no persistence; `None` if Redis is not installed (outside CI).
    pub fn start() -> Option<Self> {
        Self::start_with(&[])
    }

    /// A fresh server with extra `redis-server` arguments, e.g.
    /// `&["--appendonly", "yes", "--appendfsync", "always"]` to survive [`restart`](Self::restart)
    /// with its data, or `&["--maxmemory-policy", "allkeys-lru"]`.
    pub fn start_with(args: &[&str]) -> Option<Self> {
        if !redis_installed() {
            return None;
        }
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        Some(Self::spawn_on_free_port(args, false, Tls::No))
    }

    /// A fresh server that also accepts TLS on [`tls_url`](Self::tls_url), with a
    /// certificate for `127.0.0.1` signed by a new CA ([`tls_ca`](Self::tls_ca)); `None`
    /// if Redis or `openssl` is not installed (outside CI).
    pub fn start_tls() -> Option<Self> {
        if !redis_installed() || !installed(&["openssl"], "openssl") {
            return None;
        }
        Some(Self::spawn_on_free_port(Vec::new(), false, Tls::OwnCa))
    }

    /// A fresh server like [`start_with`](Self::start_with) that also accepts TLS, with
    /// the certificate in `certificates` (made by [`tls_certificates`]), which other
    /// servers and sentinels of a group share; `None` as for `start_tls`.
    pub fn start_tls_with(args: &[&str], certificates: &Path) -> Option<Self> {
        if !redis_installed() || !installed(&["openssl"], "openssl") {
            return None;
        }
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let shared = Tls::Shared(certificates.to_owned());
        Some(Self::spawn_on_free_port(args, false, shared))
    }

    fn spawn_on_free_port(args: Vec<String>, cluster_bus: bool, tls: Tls) -> Self {
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(cluster_bus);
            let dir = TempDir::new("redis");
            let certificates = match &tls {
                Tls::No => None,
                Tls::OwnCa => {
                    make_certificates(&dir.0);
                    Some(dir.0.clone())
                }
                Tls::Shared(certificates) => Some(certificates.clone()),
            };
            let tls_port = certificates.is_some().then(|| free_port(false));
            let mut server = Self {
                port,
                tls_port,
                certificates,
                dir,
                args: args.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(failure) => last_failure = failure,
            }
        }
        panic!("could not start redis-server: {last_failure}");
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// `rediss://127.0.0.1:<TLS port>`; panics unless started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("started with start_tls")
        )
    }

    /// The CA certificate (PEM) that signed the TLS certificate, e.g. for `SSL_CERT_FILE`.
    pub fn tls_ca(&self) -> PathBuf {
        self.certificates
            .as_ref()
            .expect("started with TLS")
            .join("ca.crt")
    }

    /// The TLS port; panics unless started with TLS.
    pub fn tls_port(&self) -> u16 {
        self.tls_port.expect("started with TLS")
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its working directory (data files, `redis.log`).
    pub fn dir(&self) -> &Path {
        &self.dir.0
    }

    /// Whether the process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server at once (like a crash); clients see their connections drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and directory and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + STARTUP;
        loop {
            match self.spawn() {
                Ok(()) => return,
                // The port may linger for a moment after the kill.
                Err(failure) if Instant::now() < deadline => {
                    eprintln!(
                        "redis-server restart on port {} failed, retrying: {failure}",
                        self.port
                    );
                    sleep(Duration::from_millis(100));
                }
                Err(failure) => panic!(
                    "could not restart redis-server on port {}: {failure}",
                    self.port
                ),
            }
        }
    }

    /// Runs `redis-cli -p <port> <args>` and returns its standard output, trimmed; panics
    /// if it fails or prints an error. Handy for `SCRIPT FLUSH`, `KEYS *`, `PTTL k`, `ACL SETUSER`.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let dir = self.dir.0.clone();
        let log = dir.join("redis.log");
        let mut command = Command::new("redis-server");
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(&log)
            .args(&self.args);
        if let (Some(tls_port), Some(certificates)) = (self.tls_port, &self.certificates) {
            command.arg("--tls-port").arg(tls_port.to_string());
            command
                .arg("--tls-cert-file")
                .arg(certificates.join("server.crt"));
            command
                .arg("--tls-key-file")
                .arg(certificates.join("server.key"));
            command
                .arg("--tls-ca-cert-file")
                .arg(certificates.join("ca.crt"));
            command.args(["--tls-auth-clients", "no"]);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = command
            .spawn()
            .map_err(|error| format!("spawning redis-server: {error}"))?;
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status}; log:\n{}",
                    tail(&log)
                ));
            }
            if ping(self.port) {
                self.child = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "redis-server did not answer PING in {STARTUP:?}; log:\n{}",
                    tail(&log)
                ));
            }
            sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis Cluster of three primaries (and a replica each, if asked) on `127.0.0.1`,
/// killed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<RedisServer>,
}

impl RedisCluster {
    /// A fresh cluster with every slot assigned; `None` if Redis is not installed (outside CI).
    pub fn start() -> Option<Self> {
        Self::start_with(0, "5000")
    }

    /// Three primaries with a replica each, quick to fail over: a primary that does not
    /// answer for 1 s is replaced by its replica. The first three servers are the
    /// primaries.
    pub fn start_with_replicas() -> Option<Self> {
        Self::start_with(1, "1000")
    }

    fn start_with(replicas: usize, node_timeout: &str) -> Option<Self> {
        if !redis_installed() {
            return None;
        }
        let args = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            node_timeout,
        ];
        let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
        let servers: Vec<RedisServer> = (0..3 * (1 + replicas))
            .map(|_| RedisServer::spawn_on_free_port(args.clone(), true, Tls::No))
            .collect();
        let cluster = Self { servers };
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        create.args(cluster.nodes());
        create.args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"]);
        let output = run(&mut create);
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            describe(&output)
        );
        cluster.wait_until_ok();
        if replicas > 0 {
            // `cluster_state:ok` comes before every primary has heard of its replica.
            wait_for(
                "every primary lists a replica, linked up",
                CLUSTER_STARTUP,
                || cluster.replicas_linked_up(),
            );
        }
        Some(cluster)
    }

    /// Whether there are three primaries and each one's `CLUSTER NODES` names a replica
    /// whose replication link is up.
    fn replicas_linked_up(&self) -> bool {
        let primaries: Vec<usize> = (0..self.servers.len())
            .filter(|&i| self.is_primary(i))
            .collect();
        primaries.len() == 3
            && primaries.iter().all(|&primary| {
                self.replica_of(primary).is_some_and(|replica| {
                    self.servers[replica]
                        .cli(&["INFO", "replication"])
                        .contains("master_link_status:up")
                })
            })
    }

    fn wait_until_ok(&self) {
        let deadline = Instant::now() + CLUSTER_STARTUP;
        loop {
            let ok = self.servers.iter().all(|server| {
                let info = run(Command::new("redis-cli")
                    .arg("-p")
                    .arg(server.port.to_string())
                    .args(["CLUSTER", "INFO"]));
                String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok")
            });
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok in {CLUSTER_STARTUP:?}"
            );
            sleep(Duration::from_millis(50));
        }
    }

    /// `host:port` of every node, as `RedisTarget::cluster` takes them.
    pub fn nodes(&self) -> Vec<String> {
        self.servers.iter().map(RedisServer::addr).collect()
    }

    /// The nodes themselves, e.g. to run `redis-cli` on each or to stop one.
    pub fn servers(&self) -> &[RedisServer] {
        &self.servers
    }

    /// Mutable access to the nodes, for outage tests.
    pub fn servers_mut(&mut self) -> &mut [RedisServer] {
        &mut self.servers
    }
}

/// A Redis Sentinel (`redis-server --sentinel`) on `127.0.0.1` watching one master,
/// killed on drop. Quick to act: a master is down after 1 s without an answer.
#[derive(Debug)]
pub struct RedisSentinel {
    port: u16,
    /// The TLS port, if it also listens for `rediss://`.
    tls_port: Option<u16>,
    _dir: TempDir,
    child: Child,
}

impl RedisSentinel {
    /// A sentinel watching the master on `master_port` under `name`, with `quorum`;
    /// `None` if Redis is not installed (outside CI).
    pub fn start(name: &str, master_port: u16, quorum: u32) -> Option<Self> {
        Self::start_on(name, master_port, quorum, None)
    }

    /// A sentinel that also listens for `rediss://` and speaks TLS to the servers and the
    /// other sentinels (`tls-replication yes`), with the certificate in `certificates`;
    /// `master_port` is the master's TLS port.
    pub fn start_tls(
        name: &str,
        master_port: u16,
        quorum: u32,
        certificates: &Path,
    ) -> Option<Self> {
        Self::start_on(name, master_port, quorum, Some(certificates))
    }

    fn start_on(
        name: &str,
        master_port: u16,
        quorum: u32,
        certificates: Option<&Path>,
    ) -> Option<Self> {
        if !redis_installed() {
            return None;
        }
        let mut last_failure = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port(false);
            let dir = TempDir::new("sentinel");
            let config = dir.0.join("sentinel.conf");
            let tls_port = certificates.map(|_| free_port(false));
            let tls = match (tls_port, certificates) {
                (Some(tls_port), Some(certificates)) => format!(
                    "tls-port {tls_port}\ntls-cert-file {crt}\ntls-key-file {key}\n\
                     tls-ca-cert-file {ca}\ntls-auth-clients no\ntls-replication yes\n",
                    crt = certificates.join("server.crt").display(),
                    key = certificates.join("server.key").display(),
                    ca = certificates.join("ca.crt").display(),
                ),
                _ => String::new(),
            };
            std::fs::write(
                &config,
                format!(
                    "port {port}\nbind 127.0.0.1\ndir {dir}\nlogfile {log}\n{tls}\
                     sentinel monitor {name} 127.0.0.1 {master_port} {quorum}\n\
                     sentinel down-after-milliseconds {name} 1000\n\
                     sentinel failover-timeout {name} 10000\n\
                     sentinel parallel-syncs {name} 1\n",
                    dir = dir.0.display(),
                    log = dir.0.join("sentinel.log").display(),
                ),
            )
            .expect("write sentinel.conf");
            let mut child = Command::new("redis-server")
                .arg(&config)
                .arg("--sentinel")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server --sentinel");
            let deadline = Instant::now() + STARTUP;
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_failure = format!(
                        "sentinel exited with {status}; log:\n{}",
                        tail(&dir.0.join("sentinel.log"))
                    );
                    break;
                }
                if ping(port) {
                    return Some(Self {
                        port,
                        tls_port,
                        _dir: dir,
                        child,
                    });
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = "sentinel did not answer PING".to_owned();
                    break;
                }
                sleep(Duration::from_millis(20));
            }
        }
        panic!("could not start a sentinel: {last_failure}");
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The plain (not TLS) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis-cli -p <port> <args>`, trimmed.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }

    /// `rediss://127.0.0.1:<TLS port>`; panics unless started with [`start_tls`](Self::start_tls).
    pub fn tls_url(&self) -> String {
        format!(
            "rediss://127.0.0.1:{}",
            self.tls_port.expect("started with start_tls")
        )
    }
}

impl Drop for RedisSentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A master, one replica and three sentinels (quorum 2) watching it under `name`, ready
/// to fail over: the replica has linked up and every sentinel knows it and the others.
#[derive(Debug)]
pub struct SentinelGroup {
    pub name: String,
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<RedisSentinel>,
    /// With TLS: the certificate every server and sentinel shares, and its CA.
    certificates: Option<TempDir>,
}

impl SentinelGroup {
    pub fn start(name: &str) -> Option<Self> {
        Self::start_on(name, false)
    }

    /// The same group speaking TLS among itself (`tls-replication yes`), the sentinels
    /// watching the servers' TLS ports, every one of them also listening for `rediss://`
    /// with one certificate for `127.0.0.1` ([`tls_ca`](Self::tls_ca) signed it). The
    /// plain ports stay open for `cli`. `None` if Redis or `openssl` is not installed
    /// (outside CI).
    pub fn start_tls(name: &str) -> Option<Self> {
        Self::start_on(name, true)
    }

    fn start_on(name: &str, tls: bool) -> Option<Self> {
        let certificates = if tls {
            if !redis_installed() || !installed(&["openssl"], "openssl") {
                return None;
            }
            let certificates = TempDir::new("certificates");
            make_certificates(&certificates.0);
            Some(certificates)
        } else {
            None
        };
        let server = |args: &[&str]| match &certificates {
            Some(certificates) => {
                let mut args = args.to_vec();
                args.extend(["--tls-replication", "yes"]);
                RedisServer::start_tls_with(&args, &certificates.0)
            }
            None => RedisServer::start_with(args),
        };
        let master = server(&["--repl-diskless-sync-delay", "0"])?;
        let master_port = match &certificates {
            Some(_) => master.tls_port(),
            None => master.port(),
        };
        let port = master_port.to_string();
        let replica = server(&["--replicaof", "127.0.0.1", &port])?;
        wait_for("the replica links up", Duration::from_secs(15), || {
            replica
                .cli(&["INFO", "replication"])
                .contains("master_link_status:up")
        });
        let sentinels: Vec<RedisSentinel> = (0..3)
            .map(|_| match &certificates {
                Some(certificates) => {
                    RedisSentinel::start_tls(name, master_port, 2, &certificates.0)
                }
                None => RedisSentinel::start(name, master_port, 2),
            })
            .collect::<Option<_>>()?;
        let listed = |sentinel: &RedisSentinel, what: &str| {
            (sentinel.cli(&["SENTINEL", what, name]).lines())
                .filter(|line| *line == "name")
                .count()
        };
        for sentinel in &sentinels {
            wait_for(
                "the sentinels find each other",
                Duration::from_secs(30),
                || listed(sentinel, "replicas") == 1 && listed(sentinel, "sentinels") == 2,
            );
        }
        Some(Self {
            name: name.to_owned(),
            master,
            replica,
            sentinels,
            certificates,
        })
    }

    /// The CA that signed the TLS group's certificate, for `SSL_CERT_FILE`; panics unless
    /// started with [`start_tls`](Self::start_tls).
    pub fn tls_ca(&self) -> PathBuf {
        let certificates = self.certificates.as_ref().expect("started with start_tls");
        certificates.0.join("ca.crt")
    }

    /// `host:port` of every sentinel, as `RedisTarget::sentinel` takes them.
    pub fn sentinel_addrs(&self) -> Vec<String> {
        self.sentinels.iter().map(RedisSentinel::addr).collect()
    }

    /// Whether the replica has been promoted.
    pub fn promoted(&self) -> bool {
        is_master(self.replica.port)
    }

    /// Waits until every sentinel names the replica as the master (after a failover).
    pub fn wait_until_the_sentinels_name_the_replica(&self) {
        let promoted = match &self.certificates {
            Some(_) => self.replica.tls_port(),
            None => self.replica.port(),
        };
        let promoted = promoted.to_string();
        for sentinel in &self.sentinels {
            wait_for(
                "every sentinel names the promoted replica",
                Duration::from_secs(30),
                || {
                    sentinel
                        .cli(&["SENTINEL", "GET-MASTER-ADDR-BY-NAME", &self.name])
                        .ends_with(&promoted)
                },
            );
        }
    }
}

impl RedisCluster {
    /// Whether server `index` is a primary, as the cluster sees it now.
    pub fn is_primary(&self, index: usize) -> bool {
        is_master(self.servers[index].port)
    }

    /// The server that replicates server `primary`, if any.
    pub fn replica_of(&self, primary: usize) -> Option<usize> {
        let nodes = self.servers[primary].cli(&["CLUSTER", "NODES"]);
        let id_of = |address: &str| {
            nodes.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                (fields.get(1)?.split('@').next()? == address).then(|| fields[0].to_owned())
            })
        };
        let primary_id = id_of(&self.servers[primary].addr())?;
        (0..self.servers.len()).find(|&index| {
            nodes.lines().any(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                fields.get(1).and_then(|a| a.split('@').next()) == Some(&self.servers[index].addr())
                    && fields.get(3) == Some(&primary_id.as_str())
            })
        })
    }
}

/// Waits until `ready`, polling every 50 ms; panics after `limit`.
pub fn wait_for(what: &str, limit: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ready() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        sleep(Duration::from_millis(50));
    }
}

/// Whether `redis-server` and `redis-cli` can be run (see [`installed`]).
fn redis_installed() -> bool {
    installed(&["redis-server", "redis-cli"], "redis-server")
}

/// Whether every tool can be run. If not: panics under CI (`CI=true`), otherwise says
/// loudly that the test is skipped and how to get `package`.
fn installed(tools: &[&str], package: &str) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .copied()
        .filter(|tool| {
            Command::new(tool)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_err()
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{missing:?} not found on PATH; CI must install them (apt-get install {package})");
    }
    eprintln!();
    eprintln!("**********************************************************************");
    eprintln!("SKIPPED: {missing:?} not on PATH, so this Redis test did not run.");
    eprintln!("Install them (e.g. apt-get install {package}) to run it.");
    eprintln!("**********************************************************************");
    eprintln!();
    false
}

/// A CA and a certificate for `127.0.0.1` signed by it, in `dir` (`ca.crt`, `server.crt`,
/// `server.key`).
fn make_certificates(dir: &Path) {
    let key = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let ca = [
        &["req", "-x509"][..],
        &key,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=test CA",
        ],
    ];
    let request = [
        &["req"][..],
        &key,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ];
    let sign = [
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "2",
        "-extfile",
        "san.ext",
    ];
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").expect("write san.ext");
    for step in [ca.concat(), request.concat(), sign.to_vec()] {
        let output = run(Command::new("openssl").args(&step).current_dir(dir));
        assert!(
            output.status.success(),
            "openssl {step:?} failed: {}",
            describe(&output)
        );
    }
}

/// A loopback port nobody listens on; with `cluster_bus`, port + 10000 is free too.
fn free_port(cluster_bus: bool) -> u16 {
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        if !cluster_bus {
            return port;
        }
        if let Some(bus) = port.checked_add(10_000) {
            if TcpListener::bind((Ipv4Addr::LOCALHOST, bus)).is_ok() {
                return port;
            }
        }
    }
}

/// Whether a server on `port` answers `PING` with `PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && &reply == b"+PONG\r\n"
}

/// Whether the server on `port` answers `ROLE` as a master. Polled while a failover runs, so
/// a connection the server closes counts as "not yet": Sentinel kills every normal client of
/// a replica as it promotes it (`CLIENT KILL TYPE normal`), `redis-cli` included.
fn is_master(port: u16) -> bool {
    let output = run(Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .arg("ROLE"));
    output.status.success() && String::from_utf8_lossy(&output.stdout).starts_with("master")
}

pub fn cli(port: u16, args: &[&str]) -> String {
    let output = run(Command::new("redis-cli")
        .arg("-p")
        .arg(port.to_string())
        .args(args));
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        output.status.success() && !stdout.starts_with("ERR") && !stdout.starts_with("(error)"),
        "redis-cli {args:?} failed: {}",
        describe(&output)
    );
    stdout
}

fn run(command: &mut Command) -> Output {
    command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"))
}

fn describe(output: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Runs the ignored test `name` of this test binary in a child process with `env`, for
/// settings that are process-wide (`SSL_CERT_FILE`), and panics with its output unless
/// it passed.
pub fn run_in_child(name: &str, env: &[(&str, String)]) {
    let output = Command::new(std::env::current_exe().expect("the test binary"))
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .envs(env.iter().map(|(key, value)| (key, value)))
        .output()
        .expect("run the test binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "{name} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A directory under the system temp dir, removed on drop.
#[derive(Debug)]
struct TempDir(PathBuf);

/// Whether a server makes its own certificate (and CA) or uses a group's.
enum Tls {
    No,
    OwnCa,
    Shared(PathBuf),
}

impl TempDir {
    fn new(label: &str) -> Self {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "tower-stateless-{label}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
