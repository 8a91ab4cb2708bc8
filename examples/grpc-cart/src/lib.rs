//! A gRPC cart service (tonic) behind [`tower_stateless::SessionLayer`].
//!
//! The layer wraps the whole tonic server. gRPC clients keep no cookies, so the session
//! token travels in the `x-session` metadata ([`SESSION_HEADER`]): the server sends a new
//! token in the response headers when it creates a session or cycles its ID (at login),
//! and an empty value when the session ends (at logout). Handlers find the
//! [`Session`] in the request extensions, where tonic copies it from the HTTP request.
//!
//! Everything per-user lives in the session: the user under `"user"`, and one key per
//! SKU, `"cart:<sku>"`, so two requests adding different SKUs never overwrite each other,
//! whichever instance serves them. Any instance sharing the store and the keys can serve
//! any call.
//!
//! - [`CartService`] implements the RPCs of `proto/cart.proto`; [`serve`] runs it.
//! - [`TokenJar`] and [`SessionChannel`] are the client side: they keep the token from
//!   response headers and send it with every request.
//! - On a store outage the layer answers `UNAVAILABLE`; after a failed RPC (any non-OK
//!   status) it saves nothing the handler wrote.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use grpc_cart::pb::{AddItemRequest, GetCartRequest, LoginRequest};
//!
//! let mut cart = grpc_cart::connect("http://127.0.0.1:50051", grpc_cart::TokenJar::new()).await?;
//! cart.login(LoginRequest { user: "alice".into() }).await?;
//! cart.add_item(AddItemRequest { sku: "socks".into(), qty: 2 }).await?;
//! let items = cart.get_cart(GetCartRequest {}).await?.into_inner().items;
//! # let _ = items; Ok(()) }
//! ```

mod client;
mod config;

use std::future::Future;

use http::HeaderName;
use tokio::net::TcpListener;
use tonic::metadata::errors::InvalidMetadataValue;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::transport::server::TcpIncoming;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tower_stateless::store::SessionStore;
use tower_stateless::{Keys, Session, SessionLayer, SessionLayerBuilder};

pub use crate::client::{connect, SessionChannel, TokenJar};
pub use crate::config::Config;

/// Code generated from `proto/cart.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("cart");
}

use pb::cart_server::{Cart, CartServer};
use pb::{
    AddItemReply, AddItemRequest, GetCartReply, GetCartRequest, Item, LoginReply, LoginRequest,
    LogoutReply, LogoutRequest,
};

/// The metadata (HTTP header) carrying the session token, both ways.
pub const SESSION_HEADER: &str = "x-session";
/// Response metadata naming the instance that answered.
pub const INSTANCE_HEADER: &str = "x-instance";
/// A cart holds at most this many units in all.
pub const MAX_CART_UNITS: u32 = 1000;

/// Session key of the logged-in user's name.
const USER: &str = "user";
/// Prefix of the per-SKU session keys.
const CART_PREFIX: &str = "cart:";
/// Longest accepted user name and SKU, in bytes.
const MAX_NAME_LEN: usize = 64;

/// The session layer configured for gRPC: tokens in [`SESSION_HEADER`], signed with `keys`.
pub fn session_layer(store: impl SessionStore, keys: impl Into<Keys>) -> SessionLayer {
    session_layer_builder(store, keys)
        .build()
        .expect("the default settings with a header carrier are valid")
}

/// [`session_layer`]'s settings, to change more of them.
pub fn session_layer_builder(
    store: impl SessionStore,
    keys: impl Into<Keys>,
) -> SessionLayerBuilder {
    SessionLayer::builder(store, keys).with_header(HeaderName::from_static(SESSION_HEADER))
}

/// Serves `service` on `listener` behind `layer` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    layer: SessionLayer,
    service: CartService,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(layer)
        .add_service(CartServer::new(service))
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}

/// The cart RPCs; all state is in the caller's session.
#[derive(Debug, Clone)]
pub struct CartService {
    instance: AsciiMetadataValue,
}

impl CartService {
    /// A service that names itself `instance` in the [`INSTANCE_HEADER`] of its replies.
    pub fn new(instance: &str) -> Result<Self, InvalidMetadataValue> {
        Ok(Self {
            instance: MetadataValue::try_from(instance)?,
        })
    }

    fn reply<T>(&self, message: T) -> Response<T> {
        let mut response = Response::new(message);
        response
            .metadata_mut()
            .insert(INSTANCE_HEADER, self.instance.clone());
        response
    }
}

#[tonic::async_trait]
impl Cart for CartService {
    async fn login(&self, request: Request<LoginRequest>) -> Result<Response<LoginReply>, Status> {
        let session = session_of(&request)?;
        let user = request.into_inner().user.trim().to_owned();
        check_name("user", &user)?;
        // A new ID at every login: an ID planted before login is worthless after it.
        session.cycle_id();
        session.insert(USER, &user).map_err(to_status)?;
        session.set_user_id(user.clone());
        Ok(self.reply(LoginReply { user }))
    }

    async fn logout(
        &self,
        request: Request<LogoutRequest>,
    ) -> Result<Response<LogoutReply>, Status> {
        session_of(&request)?.destroy();
        Ok(self.reply(LogoutReply {}))
    }

    async fn add_item(
        &self,
        request: Request<AddItemRequest>,
    ) -> Result<Response<AddItemReply>, Status> {
        let session = session_of(&request)?;
        current_user(&session).await?;
        let AddItemRequest { sku, qty } = request.into_inner();
        check_name("sku", &sku)?;
        let qty = u32::try_from(qty)
            .ok()
            .filter(|qty| (1..=MAX_CART_UNITS).contains(qty))
            .ok_or_else(|| {
                Status::invalid_argument(format!("qty must be 1 to {MAX_CART_UNITS}"))
            })?;
        let key = format!("{CART_PREFIX}{sku}");
        let before: u32 = session.get(&key).await.map_err(to_status)?.unwrap_or(0);
        let total = before.saturating_add(qty);
        session.insert(key, &total).map_err(to_status)?;
        // Written first, checked afterwards: a non-OK status makes the layer save
        // nothing, so the insert above is dropped if the cart is now too full.
        let cart_units = items(&session)
            .await?
            .iter()
            .fold(0u32, |sum, item| sum.saturating_add(item.qty));
        if cart_units > MAX_CART_UNITS {
            return Err(Status::failed_precondition(format!(
                "a cart holds at most {MAX_CART_UNITS} units"
            )));
        }
        Ok(self.reply(AddItemReply { total, cart_units }))
    }

    async fn get_cart(
        &self,
        request: Request<GetCartRequest>,
    ) -> Result<Response<GetCartReply>, Status> {
        let session = session_of(&request)?;
        let user = current_user(&session).await?;
        let items = items(&session).await?;
        Ok(self.reply(GetCartReply { user, items }))
    }
}

/// The session the layer put in the request.
fn session_of<T>(request: &Request<T>) -> Result<Session, Status> {
    request
        .extensions()
        .get::<Session>()
        .cloned()
        .ok_or_else(|| Status::internal("the session layer is missing"))
}

/// The logged-in user, or `UNAUTHENTICATED`.
async fn current_user(session: &Session) -> Result<String, Status> {
    session
        .get::<String>(USER)
        .await
        .map_err(to_status)?
        .ok_or_else(|| Status::unauthenticated("log in first"))
}

/// The cart, sorted by SKU (session keys come sorted, all with the same prefix).
async fn items(session: &Session) -> Result<Vec<Item>, Status> {
    let mut items = Vec::new();
    for key in session.keys().await.map_err(to_status)? {
        let Some(sku) = key.strip_prefix(CART_PREFIX) else {
            continue;
        };
        if let Some(qty) = session.get::<u32>(&key).await.map_err(to_status)? {
            items.push(Item {
                sku: sku.to_owned(),
                qty,
            });
        }
    }
    Ok(items)
}

fn check_name(what: &str, value: &str) -> Result<(), Status> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(Status::invalid_argument(format!(
            "{what} must be 1 to {MAX_NAME_LEN} bytes, without control characters"
        )));
    }
    Ok(())
}

/// A session error as a gRPC status. Store failures need no care here: the layer
/// answers `UNAVAILABLE` for them whatever the handler returns.
fn to_status(error: tower_stateless::Error) -> Status {
    if error.is_unavailable() {
        Status::unavailable("session store unavailable")
    } else if error.kind() == tower_stateless::ErrorKind::Ended {
        Status::aborted("the session ended during the request")
    } else {
        tracing::error!(%error, "session data unusable");
        Status::internal("session data unusable")
    }
}
