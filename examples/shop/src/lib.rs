//! The shop: every bit of per-user state lives in the session, so any instance can
//! serve any request and any instance can die without anyone noticing.
//!
//! The HTTP app is [`app`], its handlers (`account`, `cart`, `uploads`) and
//! their errors and JSON bodies; [`serve`] runs it as a process, as [`Config`] says. [`fleet`] runs
//! several such processes behind nginx: it knows the shop only as a binary to start.
//! [`cli`] is the command line of both.

mod account;
mod app;
mod cart;
mod chunks;
pub mod cli;
mod config;
mod devices;
mod digests;
mod error;
pub mod fleet;
mod ids;
mod instance;
mod json;
mod objects;
mod page;
mod sealing;
pub mod serve;
mod signals;
mod uploads;

pub use crate::app::{app, App, AppState};
pub use crate::chunks::Chunks;
pub use crate::config::{Config, StoreChoice};
pub use crate::digests::UserDigests;
pub use crate::instance::{InstanceFuture, WithInstance};
pub use crate::objects::{ObjectUploads, PART_SIZE};
pub use crate::sealing::UploadSeal;
pub use crate::uploads::{MAX_CHUNK, MAX_IN_PROGRESS, MAX_RESERVED, MAX_SIZE, MIN_CHUNK};
