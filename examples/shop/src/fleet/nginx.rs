//! nginx as the fleet's round-robin load balancer.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::net::wait_until_ready;
use super::process::{Signal, Started, Supervised};

/// A running nginx in front of the instances.
#[derive(Debug)]
pub struct Nginx {
    process: Supervised,
    port: u16,
}

impl Nginx {
    /// Starts nginx on `port`, balancing over `upstreams` (loopback ports), `/fleet/` sent
    /// to the `control` port if given, with its
    /// config, temp files and logs under `dir`, its process group recorded in `started`.
    /// Stopping it (or dropping it) asks the master for a graceful quit (SIGQUIT), which
    /// ends its workers too; what is left after 5 s is killed, group and all.
    pub fn start(
        upstreams: &[u16],
        port: u16,
        control: Option<u16>,
        dir: &Path,
        started: &Started,
    ) -> std::io::Result<Self> {
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(prefix.join("logs"))?;
        let config_path = prefix.join("nginx.conf");
        std::fs::write(&config_path, config(upstreams, port, control, &prefix))?;
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
        let mut nginx = Self { process, port };
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

fn config(upstreams: &[u16], port: u16, control: Option<u16>, prefix: &Path) -> String {
    let prefix = prefix.display();
    let servers: String = upstreams
        .iter()
        // One failure takes an instance out for a second; then it is tried again.
        .map(|p| format!("        server 127.0.0.1:{p} max_fails=1 fail_timeout=1s;\n"))
        .collect();
    // As root, workers would switch to `nobody` and could not write our temp dirs.
    let user = if is_root() { "user root;\n" } else { "" };
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
    client_body_temp_path {prefix}/client_body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    client_max_body_size 6m;
    # The whole response head must fit in proxy_buffer_size (default one 4 KiB page, a 502
    # past it): a token-mode Set-Cookie alone may take 4096 bytes, the layer's budget.
    proxy_buffer_size 8k;
    proxy_buffers 8 8k;
    proxy_busy_buffers_size 16k;
    upstream shop {{
{servers}        keepalive 32;
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
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}
