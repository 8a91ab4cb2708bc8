//! `Session::update` under contention on real Redis: 400 requests, 20 at a time, each
//! adding 1 to one key of one session by compare-and-set. Asserted: every request either
//! stored its update (200) or gave up with 409 (`Contended`), and the stored value counts
//! exactly the 200s (no update lost or doubled). Printed: how many gave up.

#![allow(missing_docs, unreachable_pub)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use support::RedisServer;
use tower::ServiceExt;
use tower_stateless::{Key, RedisStore, Session, SessionLayer};

const REQUESTS: usize = 400;
const CONCURRENCY: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contended_updates_lose_nothing() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let app = Router::new()
        .route(
            "/add",
            post(|session: Session| async move {
                let stored = session
                    .update("n", |n: Option<i64>| Some(n.unwrap_or(0) + 1))
                    .await?;
                Ok::<_, tower_stateless::Error>(stored.unwrap_or(0).to_string())
            }),
        )
        .route(
            "/n",
            get(|session: Session| async move {
                let n: Option<i64> = session.get("n").await?;
                Ok::<_, tower_stateless::Error>(n.unwrap_or(0).to_string())
            }),
        )
        .layer(SessionLayer::new(store, Key::from_bytes(&[5; 32]).unwrap()));
    let send = move |method: &'static str, path: &'static str, cookie: Option<Arc<str>>| {
        let app = app.clone();
        async move {
            let mut request = Request::builder().method(method).uri(path);
            if let Some(cookie) = cookie {
                request = request.header(header::COOKIE, &*cookie);
            }
            let response = app
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = response.status();
            let cookie = response.headers().get(header::SET_COOKIE).map(|value| {
                value
                    .to_str()
                    .unwrap()
                    .split(';')
                    .next()
                    .unwrap()
                    .to_owned()
            });
            let body = axum::body::to_bytes(response.into_body(), 1024)
                .await
                .unwrap();
            (status, cookie, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (status, cookie, _) = send("POST", "/add", None).await;
    assert_eq!(status, StatusCode::OK);
    let cookie: Arc<str> = cookie.expect("a session cookie").into();

    let workers = (0..CONCURRENCY).map(|_| {
        let (send, cookie) = (send.clone(), cookie.clone());
        tokio::spawn(async move {
            let (mut stored, mut gave_up) = (0, 0);
            for _ in 0..REQUESTS / CONCURRENCY {
                match send("POST", "/add", Some(cookie.clone())).await.0 {
                    StatusCode::OK => stored += 1,
                    StatusCode::CONFLICT => gave_up += 1,
                    other => panic!("unexpected {other}"),
                }
            }
            (stored, gave_up)
        })
    });
    let (mut stored, mut gave_up) = (0, 0);
    for worker in workers.collect::<Vec<_>>() {
        let (s, g) = worker.await.unwrap();
        stored += s;
        gave_up += g;
    }
    let (_, _, value) = send("GET", "/n", Some(cookie)).await;
    eprintln!(
        "update contention: {REQUESTS} updates of one key, {CONCURRENCY} at a time: \
         {stored} stored, {gave_up} gave up (409)"
    );
    assert_eq!(stored + gave_up, REQUESTS);
    assert_eq!(
        value,
        (stored + 1).to_string(),
        "every stored update counted once"
    );
}
