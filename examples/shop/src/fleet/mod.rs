//! A fleet on one machine: Redis, N shop instances sharing `SESSION_KEYS`, and nginx
//! in front, routing each session to the instance that caches it (or in round robin).
//! Used by `shop fleet` and by the fleet tests.
//!
//! Only processes, ports and files: the fleet knows the shop as a binary to start with
//! its settings in the environment, never its HTTP code.

pub mod control;
mod instance;
mod net;
mod nginx;
mod process;
mod procfs;
mod redis;
mod run;
mod scratch;

use std::path::{Path, PathBuf};
use std::time::Duration;

pub use self::instance::Instance;
pub use self::net::{free_port, wait_until_ready};
pub use self::nginx::Nginx;
pub use self::process::{on_path, Started, Supervised};
pub use self::procfs::{children, group_members, is_alive, survivors};
pub use self::redis::RedisProcess;
pub use self::run::run;
pub use self::scratch::ScratchDir;

/// How long a process of the fleet has to answer its first probe.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// Where the fleet keeps sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FleetStore {
    /// Start a private `redis-server` with these extra arguments.
    OwnRedis(Vec<String>),
    /// Use this Redis.
    Redis(String),
    /// Use the store these shop variables name, e.g. `REDIS_SENTINELS` with
    /// `REDIS_SENTINEL_MASTER`, or `REDIS_CLUSTER_NODES`.
    Env(Vec<(String, String)>),
    /// Each instance keeps sessions in its own memory: the failure this crate exists to fix.
    Memory,
}

/// How nginx spreads requests over the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Balance {
    /// By the session cookie (`hash $cookie_id consistent`): a session's requests go to
    /// one instance, where its session is cached, while that instance is up; requests
    /// without a cookie go round robin. Correctness never depends on it.
    #[default]
    Session,
    /// Each request to the next instance.
    RoundRobin,
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
    /// The port of the [`control`] endpoint on loopback, which nginx then serves under
    /// `/fleet/` (the page's fleet panel); none: no panel.
    pub control: Option<u16>,
    pub balance: Balance,
}

/// Redis (unless memory), the instances, and nginx in front. Dropping it (a panic
/// included) stops nginx, then the instances, then Redis; no process it started, nor
/// anything they forked, outlives it.
#[derive(Debug)]
pub struct Fleet {
    pub redis: Option<RedisProcess>,
    pub instances: Vec<Instance>,
    pub nginx: Nginx,
    started: Started,
    dir: ScratchDir,
}

impl Fleet {
    pub fn start(config: FleetConfig) -> std::io::Result<Self> {
        let dir = ScratchDir::new("fleet")?;
        let started = Started::default();
        let (redis, store_env) = match &config.store {
            FleetStore::OwnRedis(args) => {
                let redis = RedisProcess::start(args, &started)?;
                let url = redis.url();
                (Some(redis), vec![("REDIS_URL".to_owned(), url)])
            }
            FleetStore::Redis(url) => (None, vec![("REDIS_URL".to_owned(), url.clone())]),
            FleetStore::Env(env) => (None, env.clone()),
            FleetStore::Memory => (None, Vec::new()),
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
            env.extend(store_env.iter().cloned());
            env.extend(config.env.iter().cloned());
            let log = dir.path().join(format!("{name}.log"));
            let mut instance =
                Instance::new(name, port, config.shop_binary.clone(), env, log, &started);
            instance.start()?;
            instances.push(instance);
        }
        let ports: Vec<u16> = instances.iter().map(|i| i.port).collect();
        let port = if config.port == 0 {
            free_port(None)
        } else {
            config.port
        };
        let nginx = Nginx::start(
            &ports,
            config.balance,
            port,
            config.control,
            dir.path(),
            &started,
        )?;
        Ok(Self {
            redis,
            instances,
            nginx,
            started,
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

    /// Keeps the logs (and the rest of the scratch directory) after the fleet stops.
    pub fn keep_logs(&mut self) {
        self.dir.keep();
    }

    /// The process group of every process this fleet started so far, restarts included:
    /// each is the process ID of a child it started (redis-server, a shop, nginx), and
    /// whatever that child forked is in its group. After the fleet is dropped,
    /// [`survivors`] of these must be none.
    pub fn process_groups(&self) -> Vec<u32> {
        self.started.groups()
    }
}

impl Drop for Fleet {
    /// The front first, so no request reaches a stopping instance, and the store last.
    fn drop(&mut self) {
        self.nginx.stop();
        for instance in &mut self.instances {
            instance.stop();
        }
        if let Some(redis) = &mut self.redis {
            redis.stop();
        }
    }
}

/// One random 64-byte key, base64, shared by every instance of the fleet.
fn shared_key() -> String {
    use base64::Engine as _;
    let mut bytes = [0u8; 64];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}
