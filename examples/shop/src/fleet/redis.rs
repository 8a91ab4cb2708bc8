//! The fleet's private redis-server: killed and restarted on the same port and data
//! directory by the tests.

use std::process::Command;
use std::time::Duration;

use super::net::{free_port, wait_until_ready};
use super::process::{Signal, Started, Supervised};
use super::scratch::ScratchDir;
use super::READY_LIMIT;

/// A private redis-server.
#[derive(Debug)]
pub struct RedisProcess {
    process: Option<Supervised>,
    port: u16,
    args: Vec<String>,
    started: Started,
    dir: ScratchDir,
}

impl RedisProcess {
    /// Starts redis-server with `args` on a free port; its process group is recorded in
    /// `started`.
    pub fn start(args: &[String], started: &Started) -> std::io::Result<Self> {
        let mut redis = Self {
            process: None,
            port: free_port(None),
            args: args.to_vec(),
            started: started.clone(),
            dir: ScratchDir::new("redis")?,
        };
        redis.restart()?;
        Ok(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Graceful stop (SIGTERM), SIGKILL after 5 s.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.stop(Duration::from_secs(5));
        }
    }

    /// redis-server's process ID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().and_then(Supervised::pid)
    }

    /// Starts (again) on the same port and data directory.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        let mut command = Command::new("redis-server");
        command
            .args([
                "--bind",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.args);
        let log = self.dir.path().join("redis.log");
        self.process = Some(Supervised::spawn(
            "redis-server",
            command,
            &log,
            Signal::SIGTERM,
            &self.started,
        )?);
        if wait_until_ready(self.port, b"PING\r\n", b"+PONG", READY_LIMIT) {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "redis-server did not start: see {}",
                log.display()
            )))
        }
    }
}
