//! `bench-peers tower-sessions` and `bench-peers tower-sessions-moka`: the shop's
//! `POST /login`, `POST /logout`, `GET /me`, `POST /cart/items` and `GET /cart/items/{sku}` on
//! tower-sessions 0.14 and tower-sessions-redis-store 0.16 (fred), with the shop's handler
//! logic (examples/shop/src/account.rs and cart.rs), JSON answers and cookie settings: name
//! `id`, `HttpOnly`, `SameSite=Lax`, `Path=/`, `Secure` off for plain HTTP, expiry after
//! 24 h of inactivity (the shop's default idle timeout).
//!
//! `tower-sessions-moka` puts tower-sessions' `CachingSessionStore` in front of the same
//! Redis store, with a `MokaStore` (tower-sessions-moka-store 0.15) as the cache: a session
//! found in this instance's cache is not read from Redis, every save and delete goes to both.
//! The cache is per instance: another instance's changes and deletions never reach it.
//! `MOKA_CAPACITY=N` bounds it to N sessions (default 10000, the shop's `SESSION_CACHE` in
//! scripts/loadtest.sh).
//!
//! `run_sqlx` (`bench-peers tower-sessions-sqlx`) runs the same routes on
//! tower-sessions-sqlx-store 0.15's `PostgresStore` (sqlx 0.8, a `PgPool` of `PG_POOL`
//! connections, default 8: what `PostgresStore` of tower-stateless opens on two cores)
//! against `DATABASE_URL`, after its own `migrate()`.
//!
//! `TS_ALWAYS_SAVE=1` turns on `with_always_save(true)`: tower-sessions then writes the
//! session back after every request, which is how it slides the expiry on reads.
//! `FRED_POOL=N` uses N Redis connections (default 1, as the shop's one multiplexed
//! connection).

use axum::body::Bytes;
use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use tower_sessions::cookie::time::Duration;
use tower_sessions::cookie::SameSite;
use tower_sessions::{CachingSessionStore, Expiry, Session, SessionManagerLayer, SessionStore};
use tower_sessions_moka_store::MokaStore;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;

use crate::common::{connected, serve, with_instance_header, Settings};

const USER: &str = "user";
const ITEM_PREFIX: &str = "cart:";
const MAX_SKU_LEN: usize = 64;
/// The most units one add may carry, as in the shop.
const MAX_QTY: u64 = 1000;

/// Which store the session layer uses.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cache {
    /// Redis alone.
    None,
    /// `CachingSessionStore`: a moka cache of this many sessions in front of Redis.
    Moka { capacity: u64 },
}

impl Cache {
    /// The peer's name: its log prefix and `x-instance` header.
    pub(crate) fn program(self) -> &'static str {
        match self {
            Self::None => "tower-sessions",
            Self::Moka { .. } => "tower-sessions-moka",
        }
    }

    /// The moka peer's capacity from `MOKA_CAPACITY`, else 10000.
    pub(crate) fn moka_from_env() -> Self {
        let capacity = std::env::var("MOKA_CAPACITY")
            .ok()
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(10_000);
        Self::Moka { capacity }
    }
}

pub(crate) async fn run(settings: Settings, cache: Cache) {
    let program = cache.program();
    let pool_size = std::env::var("FRED_POOL")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(1);
    let always_save = matches!(std::env::var("TS_ALWAYS_SAVE").as_deref(), Ok("1" | "true"));
    let config = connected(program, Config::from_url(&settings.redis_url));
    let pool = connected(program, Pool::new(config, None, None, None, pool_size));
    // The connection task runs in the background; wait for the first connection.
    let _connection = pool.connect();
    connected(program, pool.wait_for_connect().await);

    let redis = RedisStore::new(pool);
    let app = match cache {
        Cache::None => routes(redis, always_save),
        Cache::Moka { capacity } => routes(
            CachingSessionStore::new(MokaStore::new(Some(capacity)), redis),
            always_save,
        ),
    };
    let app = with_instance_header(app, &format!("{program}:{}", settings.port));
    serve(program, &settings, app).await;
}

/// `bench-peers tower-sessions-sqlx`: the routes on tower-sessions-sqlx-store's PostgreSQL
/// store, at `DATABASE_URL`.
pub(crate) async fn run_sqlx(settings: Settings) {
    use tower_sessions_sqlx_store::sqlx::postgres::PgPoolOptions;
    use tower_sessions_sqlx_store::PostgresStore;

    let program = "tower-sessions-sqlx";
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let connections = std::env::var("PG_POOL")
        .ok()
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(8);
    let pool = PgPoolOptions::new()
        .max_connections(connections)
        .connect(&url)
        .await;
    let store = PostgresStore::new(connected(program, pool));
    connected(program, store.migrate().await);
    let always_save = matches!(std::env::var("TS_ALWAYS_SAVE").as_deref(), Ok("1" | "true"));
    let app = with_instance_header(
        routes(store, always_save),
        &format!("{program}:{}", settings.port),
    );
    serve(program, &settings, app).await;
}

/// The shop's routes on tower-sessions with `store`.
fn routes<S: SessionStore + Clone>(store: S, always_save: bool) -> Router {
    let layer = SessionManagerLayer::new(store)
        .with_secure(false)
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_path("/")
        .with_expiry(Expiry::OnInactivity(Duration::hours(24)))
        .with_always_save(always_save);
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/cart/items", post(add))
        .route("/cart/items/{sku}", get(item))
        .layer(layer)
}

/// The shop's error answers: JSON `{"error": ...}`, 500 for a store failure.
#[derive(Debug)]
enum ApiError {
    BadRequest(String),
    Unauthorized,
    Session(tower_sessions::session::Error),
}

impl From<tower_sessions::session::Error> for ApiError {
    fn from(error: tower_sessions::session::Error) -> Self {
        Self::Session(error)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            Self::BadRequest(why) => (StatusCode::BAD_REQUEST, why),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "log in first".to_owned()),
            Self::Session(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()),
        };
        (status, Json(serde_json::json!({ "error": message }))).into_response()
    }
}

fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::BadRequest(format!("invalid JSON body: {error}")))
}

async fn current_user(session: &Session) -> Result<String, ApiError> {
    session
        .get::<String>(USER)
        .await?
        .ok_or(ApiError::Unauthorized)
}

#[derive(Serialize, Deserialize)]
struct User {
    user: String,
}

#[derive(Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u64,
}

async fn login(session: Session, body: Bytes) -> Result<Json<User>, ApiError> {
    let User { user } = parse(&body)?;
    let user = user.trim().to_owned();
    if user.is_empty() || user.len() > 64 {
        return Err(ApiError::BadRequest(
            "user must be 1 to 64 characters".into(),
        ));
    }
    session.cycle_id().await?;
    session.insert(USER, &user).await?;
    Ok(Json(User { user }))
}

async fn logout(session: Session) -> Result<StatusCode, ApiError> {
    session.flush().await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn me(session: Session) -> Result<Json<User>, ApiError> {
    Ok(Json(User {
        user: current_user(&session).await?,
    }))
}

async fn add(session: Session, body: Bytes) -> Result<Json<Item>, ApiError> {
    let Item { sku, qty } = parse(&body)?;
    if !(1..=MAX_QTY).contains(&qty) {
        return Err(ApiError::BadRequest(format!("qty must be 1 to {MAX_QTY}")));
    }
    if sku.is_empty() || sku.len() > MAX_SKU_LEN {
        return Err(ApiError::BadRequest(format!(
            "sku must be 1 to {MAX_SKU_LEN} characters"
        )));
    }
    current_user(&session).await?;
    let key = format!("{ITEM_PREFIX}{sku}");
    let qty = session
        .get::<u64>(&key)
        .await?
        .unwrap_or(0)
        .saturating_add(qty);
    session.insert(&key, qty).await?;
    Ok(Json(Item { sku, qty }))
}

/// One cart line, 0 when absent, as the shop's `GET /cart/items/{sku}`.
async fn item(session: Session, Path(sku): Path<String>) -> Result<Json<Item>, ApiError> {
    current_user(&session).await?;
    let qty = session
        .get::<u64>(&format!("{ITEM_PREFIX}{sku}"))
        .await?
        .unwrap_or(0);
    Ok(Json(Item { sku, qty }))
}
