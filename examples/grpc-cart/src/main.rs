//! `cargo run -p grpc-cart`: the cart service on 127.0.0.1:$PORT (default 50051);
//! `cargo run -p grpc-cart -- client login alice`: one call from the shell.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use grpc_cart::pb::{AddItemRequest, GetCartRequest, LoginRequest, LogoutRequest};
use grpc_cart::{CartService, Config, TokenJar, INSTANCE_HEADER};
use http::HeaderValue;
use tokio::net::TcpListener;
use tower_stateless::{MemoryStore, RedisStore};

/// The example gRPC cart service on tower-stateless: the session token travels in the
/// `x-session` metadata, so any instance sharing SESSION_KEYS and a Redis serves any call.
#[derive(Debug, Parser)]
#[command(
    name = "grpc-cart",
    after_help = "The server's settings are environment variables:\n  \
        PORT          listening port on 127.0.0.1 [default: 50051]\n  \
        INSTANCE      name sent in every reply's x-instance metadata [default: grpc-cart:<port>]\n  \
        SESSION_KEYS  comma-separated base64 keys (openssl rand -base64 32), shared by every \
        instance [default: a random key]\n  \
        REDIS_URL     sessions in this Redis [default: in this process's memory]\n  \
        RUST_LOG      log filter [default: info]"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Call a running server once, keeping the session token in a file between calls.
    Client {
        /// The server's address.
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        url: String,
        /// Where the session token is kept between calls (like curl's cookie jar).
        #[arg(long, default_value = "grpc-cart.token")]
        jar: PathBuf,
        #[command(subcommand)]
        call: Call,
    },
}

#[derive(Debug, Subcommand)]
enum Call {
    /// Log in as USER (a new session).
    Login { user: String },
    /// Add QTY of SKU to the cart.
    Add { sku: String, qty: i32 },
    /// Print the cart.
    Cart,
    /// End the session.
    Logout,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => return fail(1, &format!("cannot start the tokio runtime: {error}")),
    };
    let result = match cli.command {
        None | Some(Command::Serve) => runtime.block_on(serve()),
        Some(Command::Client { url, jar, call }) => runtime.block_on(client(&url, &jar, call)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err((code, message)) => fail(code, &message),
    }
}

fn fail(code: u8, message: &str) -> ExitCode {
    eprintln!("grpc-cart: {message}");
    ExitCode::from(code)
}

/// A failure: the exit code (2 for a bad setting, 1 otherwise) and what to say.
type Failure = (u8, String);

async fn serve() -> Result<(), Failure> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_stateless=info".into()),
        )
        .init();
    let config = Config::from_env().map_err(|error| (2, error))?;
    if config.keys_generated {
        tracing::warn!(
            "SESSION_KEYS is not set: using a random key, so instances will not share sessions \
             and every session dies with this process"
        );
    }
    let layer = match &config.redis_url {
        Some(url) => {
            let store = RedisStore::connect(url).await.map_err(|error| {
                let cause = std::error::Error::source(&error)
                    .map_or_else(|| error.to_string(), ToString::to_string);
                (1, format!("REDIS_URL: {cause}"))
            })?;
            tracing::info!(?store, "sessions in Redis (REDIS_URL)");
            grpc_cart::session_layer(store, config.keys.clone())
        }
        None => {
            tracing::warn!(
                "REDIS_URL is not set: sessions are kept in this process's memory (MemoryStore), \
                 which one instance only can see and a restart loses"
            );
            grpc_cart::session_layer(MemoryStore::new(), config.keys.clone())
        }
    };
    let service = CartService::new(&config.instance)
        .map_err(|error| (2, format!("INSTANCE={}: {error}", config.instance)))?;
    let address = (Ipv4Addr::LOCALHOST, config.port);
    let listener = TcpListener::bind(address).await.map_err(|error| {
        let port = config.port;
        (
            1,
            format!("cannot listen on 127.0.0.1:{port}: {error} (set PORT to use another port)"),
        )
    })?;
    tracing::info!(instance = %config.instance, "grpc-cart listening on http://127.0.0.1:{}", config.port);
    grpc_cart::serve(listener, layer, service, shutdown())
        .await
        .map_err(|error| (1, format!("server failed: {error}")))
}

async fn shutdown() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut terminate) => {
                terminate.recv().await;
            }
            // Without a SIGTERM handler, Ctrl-C still stops the server.
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}

/// One call: the token comes from `jar_file` and goes back into it (an ended session
/// removes the file). Prints the reply and the instance that served it.
async fn client(url: &str, jar_file: &Path, call: Call) -> Result<(), Failure> {
    let jar = TokenJar::new();
    match std::fs::read_to_string(jar_file) {
        Ok(token) => {
            let token = HeaderValue::from_str(token.trim())
                .map_err(|_| (2, format!("{}: not a session token", jar_file.display())))?;
            jar.set_token(Some(token));
        }
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err((1, format!("cannot read {}: {error}", jar_file.display()))),
    }
    let mut cart = grpc_cart::connect(url, jar.clone())
        .await
        .map_err(|error| (1, format!("cannot connect to {url}: {error}")))?;
    let status = |error: tonic::Status| (1, format!("{:?}: {}", error.code(), error.message()));
    let (text, instance) = match call {
        Call::Login { user } => {
            let reply = cart.login(LoginRequest { user }).await.map_err(status)?;
            let instance = instance_of(reply.metadata());
            (
                format!("logged in as {}", reply.into_inner().user),
                instance,
            )
        }
        Call::Add { sku, qty } => {
            let reply = cart
                .add_item(AddItemRequest {
                    sku: sku.clone(),
                    qty,
                })
                .await
                .map_err(status)?;
            let instance = instance_of(reply.metadata());
            let reply = reply.into_inner();
            let text = format!(
                "{sku}: {} ({} units in the cart)",
                reply.total, reply.cart_units
            );
            (text, instance)
        }
        Call::Cart => {
            let reply = cart.get_cart(GetCartRequest {}).await.map_err(status)?;
            let instance = instance_of(reply.metadata());
            let reply = reply.into_inner();
            let mut text = format!("cart of {}:", reply.user);
            for item in reply.items {
                text.push_str(&format!("\n  {} x {}", item.qty, item.sku));
            }
            (text, instance)
        }
        Call::Logout => {
            let reply = cart.logout(LogoutRequest {}).await.map_err(status)?;
            ("logged out".to_owned(), instance_of(reply.metadata()))
        }
    };
    save(jar_file, jar.token())?;
    println!("{text}\n(served by {instance})");
    Ok(())
}

fn instance_of(metadata: &tonic::metadata::MetadataMap) -> String {
    metadata
        .get(INSTANCE_HEADER)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("?")
        .to_owned()
}

/// Keeps `token` in `path`, readable by this user only; no token removes the file.
fn save(path: &Path, token: Option<String>) -> Result<(), Failure> {
    let failed = |error: std::io::Error| (1, format!("cannot write {}: {error}", path.display()));
    match token {
        Some(token) => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .map_err(failed)?;
            file.write_all(token.as_bytes()).map_err(failed)
        }
        None => match std::fs::remove_file(path) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => Err(failed(error)),
            _ => Ok(()),
        },
    }
}
