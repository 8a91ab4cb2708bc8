//! `bench-peers baseline`: `GET /me` does exactly one `HGETALL` of a fixed key through a
//! multiplexed redis-rs connection (`ConnectionManager`, as the shop's store uses) and
//! answers the `user` field as JSON. No cookie, no signature, no session: the physical
//! limit of a session read on axum + redis-rs + this Redis.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use redis::aio::ConnectionManager;
use serde::Serialize;

use crate::common::{connected, serve, Settings};

const PROGRAM: &str = "baseline";
/// The one key read by every request, seeded at start.
const KEY: &str = "bench-peers:baseline";

#[derive(Serialize)]
struct User {
    user: String,
}

pub(crate) async fn run(settings: Settings) {
    let client = connected(PROGRAM, redis::Client::open(settings.redis_url.as_str()));
    let mut conn = connected(PROGRAM, ConnectionManager::new(client).await);
    // The fields of a logged-in shop session's hash, as RedisStore writes them.
    let seed: [(&str, &str); 6] = [
        (":created", "1795322310001"),
        (":refreshed", "1795322310001"),
        (":v", "1"),
        (":gen", "0"),
        (":user", "bench"),
        ("user", "\"bench\""),
    ];
    let mut hset = redis::cmd("HSET");
    hset.arg(KEY);
    for (field, value) in seed {
        hset.arg(field).arg(value);
    }
    connected(PROGRAM, hset.query_async::<()>(&mut conn).await);

    let app = Router::new().route("/me", get(me)).with_state(conn);
    serve(PROGRAM, &settings, app).await;
}

async fn me(State(mut conn): State<ConnectionManager>) -> Result<Json<User>, StatusCode> {
    let fields: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(KEY)
        .query_async(&mut conn)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    let user = fields
        .get("user")
        .and_then(|value| serde_json::from_str(value).ok())
        .ok_or(StatusCode::UNAUTHORIZED)?;
    Ok(Json(User { user }))
}
