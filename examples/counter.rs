//! The smallest app on tower-stateless: it counts your visits in the session.
//!
//! Run it with `cargo run --example counter` (`PORT=4000 cargo run --example counter` for
//! another port than 3000), then keep the cookie between requests:
//!
//! ```sh
//! curl -c jar -b jar localhost:3000    # visit number 1
//! curl -c jar -b jar localhost:3000    # visit number 2
//! ```

use std::process::ExitCode;

use axum::{routing::get, Router};
use tower_stateless::{Key, MemoryStore, Session, SessionLayer};

async fn count(session: Session) -> Result<String, tower_stateless::Error> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", &visits)?;
    Ok(format!("visit number {visits}\n"))
}

#[tokio::main]
async fn main() -> ExitCode {
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("counter: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> Result<(), String> {
    let port: u16 = match std::env::var("PORT") {
        Ok(port) => port
            .trim()
            .parse()
            .map_err(|_| format!("PORT={port:?} is not a port number (1-65535)"))?,
        Err(_) => 3000,
    };
    // Plain HTTP here: a `Secure` cookie (the default) is sent back only over HTTPS, so
    // turn it off for this demo. Behind HTTPS, keep the default. `Key::generate()` is a
    // key for this process only: instances that share sessions must share a key.
    let layer = SessionLayer::builder(MemoryStore::new(), Key::generate())
        .with_secure(false)
        .build()
        .map_err(|error| format!("session settings: {error}"))?;
    let app = Router::new().route("/", get(count)).layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|error| {
            format!("cannot listen on 127.0.0.1:{port}: {error} (set PORT to use another port)")
        })?;
    println!("counting visits on http://127.0.0.1:{port}");
    axum::serve(listener, app)
        .await
        .map_err(|error| format!("server failed: {error}"))
}
