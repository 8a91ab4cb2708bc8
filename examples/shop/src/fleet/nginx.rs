//! nginx as the fleet's load balancer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::net::wait_until_ready;
use super::process::{Signal, Started, Supervised};
use super::Balance;

/// A running nginx in front of the instances.
#[derive(Debug)]
pub struct Nginx {
    process: Supervised,
    port: u16,
    /// As root: the workers' own temp directory, removed after nginx stops.
    _temp: Option<tempfile::TempDir>,
}

/// The unprivileged account nginx's workers run as when the fleet runs as root.
const WORKER_USER: &str = "nobody";

impl Nginx {
    /// Starts nginx on `port`, balancing over `upstreams` (loopback ports) as `balance`
    /// says, `/fleet/` sent
    /// to the `control` port if given, with its
    /// config and logs under `dir`, its process group recorded in `started`. As root, its
    /// workers run as `nobody` (with its own group), and their temp files go to a
    /// directory of theirs, since they cannot enter `dir` (mode 0700, root's); otherwise
    /// under `dir` too.
    /// Stopping it (or dropping it) asks the master for a graceful quit (SIGQUIT), which
    /// ends its workers too; what is left after 5 s is killed, group and all.
    pub fn start(
        upstreams: &[u16],
        balance: Balance,
        port: u16,
        control: Option<u16>,
        dir: &Path,
        started: &Started,
    ) -> std::io::Result<Self> {
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs"))?;
        let (worker, temp) = if is_root() {
            let (worker, temp) = worker_temp_dir()?;
            (Some(worker), Some(temp))
        } else {
            (None, None)
        };
        let temp_path = temp
            .as_ref()
            .map_or(prefix.clone(), |t| t.path().to_owned());
        let config_path = prefix.join("nginx.conf");
        let config = config(
            upstreams,
            balance,
            port,
            control,
            &prefix,
            &temp_path,
            worker.as_deref(),
        );
        std::fs::write(&config_path, config)?;
        let mut command = Command::new(nginx_binary());
        command
            .arg("-p")
            .arg(&prefix)
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(prefix.join("logs/error.log"));
        let process = Supervised::spawn(
            "nginx",
            command,
            &prefix.join("logs/stdout.log"),
            Signal::SIGQUIT,
            started,
        )?;
        let mut nginx = Self {
            process,
            port,
            _temp: temp,
        };
        if !wait_until_ready(
            port,
            b"GET /healthz HTTP/1.0\r\n\r\n",
            b"HTTP/1.1 ",
            Duration::from_secs(20),
        ) {
            nginx.process.kill();
            return Err(std::io::Error::other(format!(
                "nginx did not start: see {}",
                prefix.join("logs/error.log").display()
            )));
        }
        Ok(nginx)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The master's process ID, which is also the process group of its workers, while
    /// it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// Graceful quit (SIGQUIT to the master), then SIGKILL to the group after 5 s.
    pub fn stop(&mut self) {
        self.process.stop(Duration::from_secs(5));
    }
}

/// Debian installs nginx in /usr/sbin, which is not always on a user's PATH.
fn nginx_binary() -> &'static str {
    if super::process::on_path("nginx") {
        "nginx"
    } else {
        "/usr/sbin/nginx"
    }
}

/// The workers' `user` line (`nobody` and its group) and a temp directory owned by them.
fn worker_temp_dir() -> std::io::Result<(String, tempfile::TempDir)> {
    let missing = |what: String| std::io::Error::new(std::io::ErrorKind::NotFound, what);
    let user = nix::unistd::User::from_name(WORKER_USER)
        .map_err(std::io::Error::from)?
        .ok_or_else(|| missing(format!("no user {WORKER_USER} for nginx's workers")))?;
    let group = nix::unistd::Group::from_gid(user.gid)
        .map_err(std::io::Error::from)?
        .ok_or_else(|| missing(format!("no group for {WORKER_USER}")))?;
    let temp = super::scratch::private_temp_dir("shop-nginx-")?;
    std::os::unix::fs::chown(
        temp.path(),
        Some(user.uid.as_raw()),
        Some(user.gid.as_raw()),
    )?;
    Ok((format!("{WORKER_USER} {}", group.name), temp))
}

/// The session cookie's name as the fleet's instances set it: the layer's name without
/// the `Secure` flag (the fleet sets `COOKIE_SECURE=false`).
const SESSION_COOKIE: &str = "id";

fn config(
    upstreams: &[u16],
    balance: Balance,
    port: u16,
    control: Option<u16>,
    prefix: &Path,
    temp: &Path,
    worker: Option<&str>,
) -> String {
    let (prefix, temp) = (prefix.display(), temp.display());
    let servers: String = upstreams
        .iter()
        // One failure takes an instance out for a second; then it is tried again.
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    // Consistent hashing: when an instance goes, only its sessions move.
    let balance = match balance {
        Balance::Session => format!("        hash $cookie_{SESSION_COOKIE} consistent;\n"),
        Balance::RoundRobin => String::new(),
    };
    // As root, never root workers: they parse every request.
    let user = worker.map(|w| format!("user {w};\n")).unwrap_or_default();
    // The host as the browser sent it: the control endpoint refuses non-loopback names.
    let control = control
        .map(|p| {
            format!(
                "        location /fleet/ {{\n            proxy_pass http://127.0.0.1:{p};\n            \
                 proxy_set_header Host $http_host;\n        }}\n"
            )
        })
        .unwrap_or_default();
    format!(
        r#"{user}worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/client_body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    client_max_body_size 6m;
    # The whole response head must fit in proxy_buffer_size (default one 4 KiB page, a 502
    # past it): a token-mode Set-Cookie alone may take 4096 bytes, the layer's budget.
    proxy_buffer_size 8k;
    proxy_buffers 8 8k;
    proxy_busy_buffers_size 16k;
    upstream shop {{
{balance}{servers}        keepalive 32;
    }}
    server {{
        listen 127.0.0.1:{port};
{control}        location / {{
            proxy_pass http://shop;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
            proxy_read_timeout 10s;
        }}
    }}
}}
"#
    )
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}
