//! Store failures, slow stores, failed handlers and concurrent logouts.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use tower_stateless::failure::Protocol;
use tower_stateless::Error;

use crate::App;

#[tokio::test]
async fn a_failing_load_is_a_503_that_keeps_the_cookie() {
    let app = App::new();
    let cookie = app.login("alice").await;
    app.store.set_failing(true);
    for path in ["/get/user", "/incr/n", "/swallow/user"] {
        let reply = app
            .send(
                if path == "/incr/n" { "POST" } else { "GET" },
                path,
                Some(&cookie),
            )
            .await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(reply.headers[header::RETRY_AFTER], "1", "{path}");
        assert!(
            reply.set_cookies().is_empty(),
            "{path}: never a replacement cookie that logs out"
        );
    }
    // Requests that do not need the store are still served.
    assert_eq!(
        app.send("GET", "/get/a", None).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send("GET", "/untouched", Some(&cookie)).await.status,
        StatusCode::OK
    );

    app.store.set_failing(false);
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.body,
        "\"alice\"",
        "nobody was logged out"
    );
}

#[tokio::test]
async fn a_failing_save_is_a_503_not_a_200() {
    let app = App::new();
    let cookie = app.login("alice").await;
    app.store.set_failing(true);
    let blind = app.send("POST", "/set/a/1", Some(&cookie)).await;
    assert_eq!(blind.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(blind.set_cookies().is_empty());
    let new_session = app.send("POST", "/set/a/1", None).await;
    assert_eq!(new_session.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        new_session.set_cookies().is_empty(),
        "no cookie for a session that was never stored"
    );
    let logout = app.send("POST", "/logout", Some(&cookie)).await;
    assert_eq!(
        logout.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a logout that did not happen is not acknowledged"
    );
    assert!(logout.set_cookies().is_empty());

    app.store.set_failing(false);
    assert_eq!(
        app.send("GET", "/get/a", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.body,
        "\"alice\""
    );
}

#[tokio::test]
async fn a_slow_store_times_out_into_a_503() {
    let app = App::with(|layer| layer.with_store_timeout(Duration::from_millis(100)));
    let cookie = app.login("alice").await;
    app.store.set_stall(Some(Duration::from_secs(30)));
    for (method, path) in [("GET", "/get/user"), ("POST", "/set/a/1")] {
        let started = Instant::now();
        let reply = app.send(method, path, Some(&cookie)).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert!(reply.headers.contains_key(header::RETRY_AFTER));
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} answered within the timeout, not the stall"
        );
    }
}

#[tokio::test]
async fn the_failure_response_can_be_shaped() {
    let app = App::with(|layer| layer.with_store_timeout(Duration::from_millis(50)));
    let shaped = crate::instrumented::Instrumented::default();
    let app2 = {
        let keys = tower_stateless::Keys::new(crate::key(1));
        let layer = tower_stateless::SessionLayer::builder(shaped.clone(), keys)
            .with_on_failure(|error: &Error, protocol: Protocol| {
                assert_eq!(protocol, Protocol::Http);
                Response::builder()
                    .status(StatusCode::SERVICE_UNAVAILABLE)
                    .header(header::RETRY_AFTER, "7")
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(format!("{{\"error\":\"{error}\"}}")))
                    .unwrap()
            })
            .build()
            .unwrap();
        axum::Router::new()
            .route(
                "/set",
                axum::routing::post(|s: tower_stateless::Session| async move {
                    s.insert("a", &1).unwrap()
                }),
            )
            .layer(layer)
    };
    drop(app);
    shaped.set_failing(true);
    let response = tower::ServiceExt::oneshot(
        app2,
        axum::http::Request::post("/set")
            .body(Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()[header::RETRY_AFTER], "7");
    let body = http_body_util::BodyExt::collect(response.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(&body[..], br#"{"error":"session store failed"}"#);
}

#[tokio::test]
async fn nothing_is_saved_when_the_handler_fails() {
    let app = App::new();
    let cookie = app.login("alice").await;
    app.store.take_calls();
    let reply = app.send("POST", "/fail/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(app.store.calls().is_empty(), "no write-back after a 5xx");
    assert!(reply.set_cookies().is_empty());
    let anonymous = app.send("POST", "/fail/a", None).await;
    assert!(
        anonymous.set_cookies().is_empty(),
        "no session created by a failed request"
    );
    assert!(app.store.take_calls().is_empty());
    assert_eq!(
        app.send("GET", "/get/a", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_concurrent_logout_is_never_undone() {
    let app = App::new();
    let cookie = app.login("alice").await;
    // Between this request's load and its write, another request logs the user out.
    app.store.log_out_before_write("alice");
    let reply = app.send("POST", "/incr/n", Some(&cookie)).await;
    assert_eq!(
        reply.status,
        StatusCode::CONFLICT,
        "the change was dropped, and said so"
    );
    assert!(
        reply.set_cookies().is_empty(),
        "no cookie revives the session, and none is removed: the logout did that"
    );
    assert!(app.store.memory.is_empty(), "the session stays destroyed");
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}
