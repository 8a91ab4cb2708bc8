//! `bench-peers no-io`: axum answering `GET /me` with the body the shop's `GET /me` answers
//! for a logged-in user, `{"user":"bench"}`, serialized per request as the shop's `Json`
//! does, with no I/O at all: no cookie, no session, no Redis. The HTTP limit of axum on this
//! machine, the ceiling of any session read.

use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

use crate::common::{serve, Settings};

const PROGRAM: &str = "no-io";

#[derive(Serialize)]
struct User {
    user: &'static str,
}

pub(crate) async fn run(settings: Settings) {
    let app = Router::new().route("/me", get(me));
    serve(PROGRAM, &settings, app).await;
}

async fn me() -> Json<User> {
    Json(User { user: "bench" })
}
