//! A fleet on one machine: Redis, N shop instances sharing `SESSION_KEYS`, and nginx
//! in round robin in front. Used by `shop fleet` and by the fleet tests.

mod nginx;
mod process;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub use self::nginx::Nginx;
pub use self::process::{free_port, on_path, wait_until_ready, ScratchDir, Supervised};

const READY_LIMIT: Duration = Duration::from_secs(20);
const HEALTH_PROBE: &[u8] = b"GET /healthz HTTP/1.0\r\n\r\n";

/// Where the fleet keeps sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetStore {
    /// Start a private `redis-server` with these extra arguments.
    OwnRedis(Vec<String>),
    /// Use this Redis.
    Redis(String),
    /// Each instance keeps sessions in its own memory: the failure this crate exists to fix.
    Memory,
}

/// How to build a fleet.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    pub shop_binary: PathBuf,
    pub instances: usize,
    pub store: FleetStore,
    /// nginx's port (0: a free one).
    pub port: u16,
    /// Extra environment for every instance.
    pub env: Vec<(String, String)>,
}

/// A private redis-server.
#[derive(Debug)]
pub struct RedisProcess {
    process: Option<Supervised>,
    port: u16,
    args: Vec<String>,
    dir: ScratchDir,
}

impl RedisProcess {
    pub fn start(args: &[String]) -> std::io::Result<Self> {
        let mut redis = Self {
            process: None,
            port: free_port(None),
            args: args.to_vec(),
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
        self.process = Some(Supervised::spawn("redis-server", command, &log)?);
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

/// One shop process.
#[derive(Debug)]
pub struct Instance {
    pub name: String,
    pub port: u16,
    process: Option<Supervised>,
    command: Vec<(String, String)>,
    binary: PathBuf,
    log: PathBuf,
}

impl Instance {
    /// SIGKILL: a crash, with no chance to flush anything.
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// Graceful stop (SIGTERM), as a rolling deploy does.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.terminate(Duration::from_secs(5));
        }
    }

    pub fn start(&mut self) -> std::io::Result<()> {
        self.kill();
        let mut command = Command::new(&self.binary);
        command
            .env_clear()
            .envs(std::env::vars().filter(|(k, _)| k == "PATH" || k == "RUST_LOG"));
        command.envs(self.command.iter().map(|(k, v)| (k, v)));
        self.process = Some(Supervised::spawn(self.name.clone(), command, &self.log)?);
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

    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(Supervised::is_running)
    }

    pub fn log(&self) -> &Path {
        &self.log
    }
}

/// Redis (unless memory), the instances, and nginx in front.
#[derive(Debug)]
pub struct Fleet {
    pub redis: Option<RedisProcess>,
    pub instances: Vec<Instance>,
    pub nginx: Nginx,
    dir: ScratchDir,
}

impl Fleet {
    pub fn start(config: FleetConfig) -> std::io::Result<Self> {
        let dir = ScratchDir::new("fleet")?;
        let (redis, redis_url) = match &config.store {
            FleetStore::OwnRedis(args) => {
                let redis = RedisProcess::start(args)?;
                let url = redis.url();
                (Some(redis), Some(url))
            }
            FleetStore::Redis(url) => (None, Some(url.clone())),
            FleetStore::Memory => (None, None),
        };
        let keys = shared_key();
        let mut instances = Vec::with_capacity(config.instances);
        for i in 0..config.instances {
            let port = free_port(None);
            let name = format!("shop-{}", i + 1);
            let mut env = vec![
                ("PORT".to_owned(), port.to_string()),
                ("INSTANCE".to_owned(), name.clone()),
                ("SESSION_KEYS".to_owned(), keys.clone()),
                // The fleet speaks plain HTTP on loopback; browsers and curl get the cookie back.
                ("COOKIE_SECURE".to_owned(), "false".to_owned()),
            ];
            if let Some(url) = &redis_url {
                env.push(("REDIS_URL".to_owned(), url.clone()));
            }
            env.extend(config.env.iter().cloned());
            let log = dir.path().join(format!("{name}.log"));
            let mut instance = Instance {
                name,
                port,
                process: None,
                command: env,
                binary: config.shop_binary.clone(),
                log,
            };
            instance.start()?;
            instances.push(instance);
        }
        let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
        let port = if config.port == 0 {
            free_port(None)
        } else {
            config.port
        };
        let nginx = Nginx::start(&ports, port, dir.path())?;
        Ok(Self {
            redis,
            instances,
            nginx,
            dir,
        })
    }

    /// The load balancer's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.nginx.port())
    }

    /// Where the logs are.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// One random 64-byte key, base64, shared by every instance of the fleet.
fn shared_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
