//! A Redis server that refuses writes from inside the session scripts (fenced with
//! `min-replicas-to-write`: NOREPLICAS; a replica: READONLY) is a store outage: every
//! write fails with a `StoreError` (the layer answers 503 with `Retry-After`), never a
//! rejected increment (409 "not an integer"), and nothing is written. Only the scripts'
//! own refusals of a value (not an integer, overflow) stay rejections.

#![allow(missing_docs, unreachable_pub)]

#[path = "support/sessions.rs"]
mod sessions;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::routing::post;
use axum::Router;
use sessions::{new_id, now};
use support::{wait_for, RedisServer};
use tower::ServiceExt;
use tower_stateless::store::{
    ChangeSet, Created, IncrementError, Incremented, Metadata, Record, SessionStore, Swapped,
};
use tower_stateless::{Key, RedisStore, Session, SessionLayer};

fn record(pairs: &[(&str, &str)]) -> Record {
    let data = pairs
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    Record::new(data, Metadata::new(now().now))
}

/// A change set that adds 1 to `n`.
fn one_increment() -> ChangeSet {
    let mut changes = ChangeSet::default();
    changes.increments = BTreeMap::from([("n".to_owned(), 1)]);
    changes
}

#[tokio::test]
async fn a_fenced_master_fails_every_write_and_keeps_the_data() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let id = new_id();
    let saved = store
        .create(&id, &record(&[("n", "5"), ("word", "x")]), now())
        .await
        .unwrap();
    assert_eq!(saved, Created::Saved);

    server.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    let refused = store.increment(&id, "n", 1, now()).await;
    assert!(refused.is_err(), "increment: {refused:?}");
    let refused = store.increment(&id, "word", 1, now()).await;
    assert!(refused.is_err(), "increment of a word: {refused:?}");
    let changes = one_increment();
    let refused = store.apply(&id, &changes, now()).await;
    assert!(refused.is_err(), "apply with an increment: {refused:?}");
    let refused = store
        .compare_and_set(&id, "n", Some("5"), Some("6"), now())
        .await;
    assert!(refused.is_err(), "compare-and-set: {refused:?}");
    let refused = store.create(&new_id(), &record(&[]), now()).await;
    assert!(refused.is_err(), "create: {refused:?}");
    let read = store.load(&id, now()).await.unwrap().unwrap();
    assert_eq!(read.data["n"], "5", "reads still work, nothing was written");

    server.cli(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
    assert_eq!(
        store.increment(&id, "word", 1, now()).await.unwrap(),
        Incremented::Rejected(IncrementError::NotAnInteger)
    );
    assert_eq!(
        store.increment(&id, "n", i64::MAX, now()).await.unwrap(),
        Incremented::Rejected(IncrementError::Overflow)
    );
    assert_eq!(
        store.increment(&id, "n", 1, now()).await.unwrap(),
        Incremented::Value(6)
    );
    assert_eq!(
        store
            .compare_and_set(&id, "n", Some("6"), Some("7"), now())
            .await
            .unwrap(),
        Swapped::Saved
    );
}

#[tokio::test]
async fn a_replica_fails_every_write() {
    // Without the delay Redis puts before a diskless sync (5 s by default), which a
    // 5-second WAIT raced on a loaded machine.
    let Some(master) = RedisServer::start_with(&["--repl-diskless-sync-delay", "0"]) else {
        return;
    };
    let port = master.port().to_string();
    let Some(replica) = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]) else {
        return;
    };
    wait_for("the replica links up", Duration::from_secs(30), || {
        (replica.cli(&["INFO", "replication"])).contains("master_link_status:up")
    });
    let writer = RedisStore::connect(&master.url()).await.unwrap();
    let id = new_id();
    let saved = writer.create(&id, &record(&[("n", "1")]), now()).await;
    assert_eq!(saved.unwrap(), Created::Saved);
    assert_eq!(master.cli(&["WAIT", "1", "15000"]), "1");
    let store = RedisStore::connect(&replica.url()).await.unwrap();
    let refused = store.increment(&id, "n", 1, now()).await;
    assert!(refused.is_err(), "increment on a replica: {refused:?}");
    let changes = one_increment();
    let refused = store.apply(&id, &changes, now()).await;
    assert!(refused.is_err(), "apply on a replica: {refused:?}");
}

#[tokio::test]
async fn through_the_layer_a_fenced_master_is_a_503_with_retry_after() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let app = Router::new()
        .route(
            "/incr",
            post(|session: Session| async move {
                session.increment("n", 1).await.map(|n| n.to_string())
            }),
        )
        .layer(SessionLayer::new(store, Key::from_bytes(&[9; 32]).unwrap()));
    let send = |cookie: Option<String>| {
        let app = app.clone();
        async move {
            let mut request = Request::post("/incr");
            if let Some(cookie) = cookie {
                request = request.header(header::COOKIE, cookie);
            }
            app.oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap()
        }
    };
    let first = send(None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let cookie = first.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    server.cli(&["CONFIG", "SET", "min-replicas-to-write", "1"]);
    let refused = send(Some(cookie.clone())).await;
    assert_eq!(refused.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers().contains_key(header::RETRY_AFTER));

    server.cli(&["CONFIG", "SET", "min-replicas-to-write", "0"]);
    let again = send(Some(cookie)).await;
    assert_eq!(again.status(), StatusCode::OK);
    let body = axum::body::to_bytes(again.into_body(), 64).await.unwrap();
    assert_eq!(&body[..], b"2", "the refused increment wrote nothing");
}
