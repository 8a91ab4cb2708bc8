//! What the peers share: settings, the shop's `x-instance` header, serving.

use std::net::{Ipv4Addr, SocketAddr};

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use axum::Router;

/// Where to listen and which Redis to use.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Empty for a peer that uses no Redis.
    pub(crate) redis_url: String,
    pub(crate) port: u16,
}

impl Settings {
    /// From the command line, else the environment; exits with a usage line if unusable.
    /// A Redis URL is required when `redis` is true, and ignored otherwise.
    pub(crate) fn from_args_or_env(program: &str, args: Vec<String>, redis: bool) -> Self {
        match Self::parse(args, |name| std::env::var(name).ok(), redis) {
            Ok(settings) => settings,
            Err(error) => {
                eprintln!("{program}: {error}");
                eprintln!("usage: bench-peers {program} [--redis-url URL] [--port N]   (or REDIS_URL, PORT)");
                std::process::exit(2);
            }
        }
    }

    fn parse(
        args: impl IntoIterator<Item = String>,
        var: impl Fn(&str) -> Option<String>,
        redis: bool,
    ) -> Result<Self, String> {
        let (mut redis_url, mut port) = (var("REDIS_URL"), var("PORT"));
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let slot = match arg.as_str() {
                "--redis-url" => &mut redis_url,
                "--port" => &mut port,
                other => return Err(format!("unknown argument {other}")),
            };
            *slot = Some(args.next().ok_or(format!("{arg} needs a value"))?);
        }
        let redis_url = match redis_url.filter(|url| !url.trim().is_empty()) {
            Some(url) if redis => url,
            Some(_) => String::new(),
            None if redis => return Err("no Redis URL (--redis-url or REDIS_URL)".to_owned()),
            None => String::new(),
        };
        let port = port.ok_or("no port (--port or PORT)")?;
        let port = port
            .trim()
            .parse()
            .map_err(|_| format!("{port} is not a port number"))?;
        Ok(Self { redis_url, port })
    }

    /// The address to listen on: loopback only.
    pub(crate) fn address(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }
}

/// Adds `x-instance` to every response, as the shop's router does, so that the peers'
/// stacks differ from the shop's only in the session layer.
pub(crate) fn with_instance_header(router: Router, instance: &str) -> Router {
    let instance = HeaderValue::from_str(instance).expect("a valid header value");
    router.layer(axum::middleware::map_response(
        move |mut response: Response| {
            let instance = instance.clone();
            async move {
                response
                    .headers_mut()
                    .insert(HeaderName::from_static("x-instance"), instance);
                response
            }
        },
    ))
}

/// Serves `app` on `settings.address()` until SIGTERM or Ctrl-C.
#[expect(
    clippy::exit,
    reason = "a benchmark server that cannot listen has nothing to do"
)]
pub(crate) async fn serve(program: &str, settings: &Settings, app: Router) {
    let address = settings.address();
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("{program}: cannot listen on {address}: {error}");
            std::process::exit(1);
        }
    };
    eprintln!("{program}: listening on http://{address}");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await
        .expect("server failed");
}

async fn shutdown() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

/// Exits with a message when Redis cannot be reached at start.
#[expect(
    clippy::exit,
    reason = "a benchmark server without Redis has nothing to do"
)]
pub(crate) fn connected<T, E: std::fmt::Display>(program: &str, result: Result<T, E>) -> T {
    result.unwrap_or_else(|error| {
        eprintln!("{program}: cannot connect to Redis: {error}");
        std::process::exit(1);
    })
}
