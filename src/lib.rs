//! Stateless servers, shared state: sessions for any tower service, kept in a shared store.
//!
//! A [`SessionLayer`] reads a signed session cookie, hands the handler a [`Session`]
//! through request extensions, loads the session from a store only if the handler reads
//! it, and afterwards writes back only the keys that changed, in one atomic store call
//! that never revives a session destroyed meanwhile. Any instance can then serve any
//! request, and instances can be killed at any time.
//!
//! ```
//! use axum::{routing::get, Router};
//! use tower_stateless::{Key, MemoryStore, Session, SessionLayer};
//!
//! async fn visits(session: Session) -> Result<String, tower_stateless::Error> {
//!     let visits: u64 = session.get("visits").await?.unwrap_or(0) + 1;
//!     session.insert("visits", &visits)?;
//!     Ok(format!("visit number {visits}"))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/", get(visits))
//!     .layer(SessionLayer::new(MemoryStore::new(), Key::generate()));
//! # let _ = app;
//! ```
//!
//! With feature `token`, `SessionLayer::tokens` keeps each session sealed in its
//! own cookie instead (no store; optional revocations): same `Session` API, trade-offs in
//! the README's "Token mode".
//!
//! Applications use the items at the crate root; store authors implement
//! [`store::SessionStore`] and run the `conformance` suite (feature `conformance`). See
//! `ARCHITECTURE.md` for the path of a request and the store contract.
#![forbid(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod atomic;
mod backend;
mod carrier;
mod config;
#[cfg(feature = "conformance")]
pub mod conformance;
mod cookie;
mod dispatch;
mod error;
mod events;
mod expiry;
#[cfg(feature = "axum")]
mod extract;
pub mod failure;
mod future;
pub mod grpc;
mod id;
mod keys;
mod layer;
mod limit;
mod metrics;
mod plan;
mod protocol;
mod record;
mod service;
mod session;
mod size;
mod snapshot;
pub mod store;
mod time;
#[cfg(feature = "token")]
mod token;
mod writeback;

pub use crate::error::ConfigError;
pub use crate::error::{Error, ErrorKind, KeyError};
pub use crate::expiry::Clock;
#[cfg(feature = "axum")]
pub use crate::extract::MissingSessionLayer;
pub use crate::future::ResponseFuture;
pub use crate::keys::{Key, Keys};
pub use crate::layer::{SessionLayer, SessionLayerBuilder};
pub use crate::service::SessionService;
pub use crate::session::Session;
pub use crate::store::memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use crate::store::postgres::PostgresStore;
#[cfg(feature = "redis")]
pub use crate::store::redis::RedisStore;
#[cfg(feature = "encryption")]
pub use crate::store::sealed::Sealed;
#[cfg(feature = "token")]
pub use crate::token::TokenSessions;
pub use ::cookie::SameSite;

/// README.md's code blocks, compiled and run as doctests so that they cannot rot.
#[cfg(all(
    doctest,
    feature = "axum",
    feature = "redis",
    feature = "postgres",
    feature = "encryption",
    feature = "token"
))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

#[cfg(feature = "__fuzz")]
#[doc(hidden)]
pub mod __fuzz;

#[doc(hidden)]
pub mod __bench {
    //! Not public API: entry points for this crate's own benchmarks only.

    use crate::id::SessionId;
    use crate::keys::Keys;

    /// Signs one fixed, freshly generated ID under `keys`' signing key each call.
    pub fn signer(keys: Keys, name: &'static str) -> impl Fn() -> String {
        let id = SessionId::generate().expect("OS random source");
        move || keys.sign(name, &id)
    }

    /// Whether `token` verifies under `keys`.
    pub fn verify(keys: &Keys, name: &str, token: &str) -> bool {
        keys.verify(name, token.as_bytes()).is_ok()
    }

    #[cfg(feature = "token")]
    pub use crate::token::bench::{open, sealer};
}
