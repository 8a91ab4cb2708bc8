//! One shop instance of the fleet: the shop binary with its settings in its environment.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::net::wait_until_ready;
use super::process::{Signal, Started, Supervised};
use super::READY_LIMIT;

const HEALTH_PROBE: &[u8] = b"GET /healthz HTTP/1.0\r\n\r\n";

/// One shop process.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    pub port: u16,
    process: Option<Supervised>,
    command: Vec<(String, String)>,
    binary: PathBuf,
    log: PathBuf,
    started: Started,
}

impl Instance {
    /// An instance not started yet: `binary` with `env`, its output appended to `log`,
    /// each of its process groups recorded in `started`.
    pub(super) fn new(
        name: String,
        port: u16,
        binary: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
        started: &Started,
    ) -> Self {
        Self {
            name,
            port,
            process: None,
            command: env,
            binary,
            log,
            started: started.clone(),
        }
    }

    /// SIGKILL: a crash, with no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Graceful stop (SIGTERM), as a rolling deploy does.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(5));
        }
    }

    pub fn start(&mut self) -> std::io::Result<()> {
        self.kill();
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "RUST_LOG"));
        command.envs(self.command.iter().map(|(k, v)| (k, v)));
        self.process = Some(Supervised::spawn(
            self.name.clone(),
            command,
            &self.log,
            Signal::SIGTERM,
            &self.started,
        )?);
        if wait_until_ready(self.port, HEALTH_PROBE, b"HTTP/1.0 200", READY_LIMIT) {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "{} did not become healthy: see {}",
                self.name,
                self.log.display()
            )))
        }
    }

    pub fn is_running(&self) -> bool {
        self.process.as_ref().is_some_and(Supervised::is_running)
    }

    /// The shop's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Supervised::pid)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }
}
