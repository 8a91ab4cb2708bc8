//! A real PostgreSQL server for tests: `initdb` into a temporary directory, started with
//! `pg_ctl` on a free loopback port (its socket in that directory too), stopped by PID
//! when dropped. Never the machine's own server.
//!
//! Run as root, the server runs as the `postgres` user (PostgreSQL refuses root), through
//! `runuser`. If the PostgreSQL binaries are missing, `start` returns `None` after a loud
//! message; under CI (`CI=true`) it panics instead.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::{describe, free_port, run, tail, TempDir};

/// How long the server may take to start or stop.
const STARTUP: Duration = Duration::from_secs(30);

/// A PostgreSQL server on `127.0.0.1`, stopped on drop.
#[derive(Debug)]
pub struct PostgresServer {
    port: u16,
    bin: PathBuf,
    dir: TempDir,
    /// The postmaster's PID while it runs.
    pid: Option<u32>,
}

impl PostgresServer {
    /// A fresh server (database `postgres`, user `postgres`, no password); `None` if
    /// PostgreSQL is not installed (outside CI).
    pub fn start() -> Option<Self> {
        let bin = postgres_bin()?;
        let dir = TempDir::new("postgres");
        let mut server = Self {
            port: free_port(false),
            bin,
            dir,
            pid: None,
        };
        if is_root() {
            let output = run(Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&server.dir.0));
            assert!(output.status.success(), "chown: {}", describe(&output));
        }
        let output = run(server
            .as_postgres("initdb")
            .arg("-D")
            .arg(server.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ]));
        assert!(output.status.success(), "initdb: {}", describe(&output));
        server.launch();
        Some(server)
    }

    /// One server shared by the tests of this process that run at the same time; it stops
    /// when the last of them drops its handle.
    pub fn shared() -> Option<Arc<Self>> {
        static SHARED: Mutex<Weak<PostgresServer>> = Mutex::new(Weak::new());
        let mut shared = SHARED.lock().unwrap_or_else(|poison| poison.into_inner());
        if let Some(server) = shared.upgrade() {
            return Some(server);
        }
        let server = Arc::new(Self::start()?);
        *shared = Arc::downgrade(&server);
        Some(server)
    }

    /// `postgres://postgres@127.0.0.1:<port>/postgres`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// The port it listens on (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `psql -c <sql>` as `postgres` and returns its output (unaligned, tuples only),
    /// trimmed; panics if it fails.
    pub fn psql(&self, sql: &str) -> String {
        let output = run(self.as_postgres("psql").args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-c",
            sql,
        ]));
        assert!(
            output.status.success(),
            "psql {sql:?}: {}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.pid.is_some()
    }

    /// Stops the server (a fast shutdown: clients see their connections end) and waits
    /// until it has exited.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid.take() else {
            return;
        };
        let _ = Command::new("kill")
            .args(["-INT", &pid.to_string()])
            .status();
        let deadline = Instant::now() + STARTUP;
        while alive(pid) && Instant::now() < deadline {
            sleep(Duration::from_millis(20));
        }
        if alive(pid) {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }

    /// Starts it again on the same port and data, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }

    fn data(&self) -> PathBuf {
        self.dir.0.join("data")
    }

    fn launch(&mut self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c shared_buffers=64MB",
            self.port,
            self.dir.0.display()
        );
        let log = self.dir.0.join("postgres.log");
        let output = run(self
            .as_postgres("pg_ctl")
            .args(["start", "-w", "-t", "30", "-D"])
            .arg(self.data())
            .arg("-l")
            .arg(&log)
            .arg("-o")
            .arg(&options));
        assert!(
            output.status.success(),
            "pg_ctl start: {}\nlog:\n{}",
            describe(&output),
            tail(&log)
        );
        let pid_file = std::fs::read_to_string(self.data().join("postmaster.pid"))
            .expect("read postmaster.pid");
        let pid = pid_file
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .expect("a PID in postmaster.pid");
        self.pid = Some(pid);
    }

    /// `tool` from PostgreSQL's bin directory, run as `postgres` when we are root.
    fn as_postgres(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        command.stdin(Stdio::null());
        command
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn is_root() -> bool {
    let output = run(Command::new("id").arg("-u"));
    String::from_utf8_lossy(&output.stdout).trim() == "0"
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`, `pg_ctl` and `psql`.
/// If there is none: panics under CI (`CI=true`), otherwise says loudly that the test is
/// skipped.
fn postgres_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            ["initdb", "pg_ctl", "psql", "postgres"]
                .iter()
                .all(|tool| bin.join(tool).exists())
                .then_some((version, bin))
        })
        .collect();
    found.sort();
    if let Some((_, bin)) = found.pop() {
        return Some(bin);
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("no PostgreSQL under /usr/lib/postgresql/*/bin; CI must install it (apt-get install postgresql)");
    }
    eprintln!();
    eprintln!("**********************************************************************");
    eprintln!("SKIPPED: no PostgreSQL under /usr/lib/postgresql/*/bin, so this test did not run.");
    eprintln!("Install it (e.g. apt-get install postgresql) to run it.");
    eprintln!("**********************************************************************");
    eprintln!();
    None
}
