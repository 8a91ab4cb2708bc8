//! The smallest app on tower-stateless: it counts your visits in the session.
//!
//! Run it with `cargo run --example counter` (`PORT=4000 cargo run --example counter` for
//! another port than 3000), then keep the cookie between requests:
//!
//! ```sh
//! curl -c jar -b jar localhost:3000    # visit number 1
//! curl -c jar -b jar localhost:3000    # visit number 2
//! ```

use axum::{routing::get, Router};
use tower_stateless::{Key, MemoryStore, Session, SessionLayer};

async fn count(session: Session) -> Result<String, tower_stateless::Error> {
    let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
    session.insert("visits", &visits)?;
    Ok(format!("visit number {visits}\n"))
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::var("PORT")
        .map_or(Ok(3000), |p| p.parse())
        .expect("PORT: a port");
    // Plain HTTP here: a `Secure` cookie (the default) is sent back only over HTTPS, so
    // turn it off for this demo. Behind HTTPS, keep the default.
    let layer = SessionLayer::builder(MemoryStore::new(), Key::generate())
        .with_secure(false)
        .build()
        .expect("valid session settings");
    let app = Router::new().route("/", get(count)).layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    println!("counting visits on http://127.0.0.1:{port}");
    axum::serve(listener, app).await.expect("server");
}
