//! Store calls per request: the layer costs at most what the handler needs.

use axum::http::StatusCode;

use crate::App;

#[tokio::test]
async fn cookie_less_request_makes_no_call() {
    let app = App::new();
    let reply = app.send("GET", "/get/a", None).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(app.store.calls(), Vec::<&str>::new());
    assert!(
        reply.set_cookies().is_empty(),
        "reading nothing sets nothing"
    );
}

#[tokio::test]
async fn untouched_session_makes_no_call() {
    let app = App::new();
    let cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    app.store.take_calls();
    let reply = app.send("GET", "/untouched", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.store.calls(), Vec::<&str>::new());
    assert!(reply.set_cookies().is_empty());
}

#[tokio::test]
async fn read_is_one_call() {
    let app = App::new();
    let cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    app.store.take_calls();
    let reply = app.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(reply.body, "\"1\"");
    assert_eq!(app.store.calls(), ["load"]);
}

#[tokio::test]
async fn blind_write_is_one_call() {
    let app = App::new();
    // A new session: one create.
    let cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    assert_eq!(app.store.take_calls(), ["create"]);
    // An existing session: one apply, no load first.
    let reply = app.send("POST", "/set/b/2", Some(&cookie)).await;
    assert_eq!(app.store.take_calls(), ["apply"]);
    assert!(reply.set_cookies().is_empty(), "the ID did not change");
    assert_eq!(app.send("GET", "/keys", Some(&cookie)).await.body, "a,b");
}

#[tokio::test]
async fn read_then_write_is_two_calls() {
    let app = App::new();
    let cookie = app.send("POST", "/incr/n", None).await.cookie().unwrap();
    app.store.take_calls();
    assert_eq!(app.send("POST", "/incr/n", Some(&cookie)).await.body, "2");
    assert_eq!(app.store.calls(), ["load", "apply"]);
}

#[tokio::test]
async fn login_is_one_call() {
    let app = App::new();
    app.login("alice").await;
    assert_eq!(
        app.store.take_calls(),
        ["create"],
        "anonymous login creates"
    );
    let cookie = app
        .send("POST", "/set/cart/socks", None)
        .await
        .cookie()
        .unwrap();
    app.store.take_calls();
    let reply = app.send("POST", "/login/alice", Some(&cookie)).await;
    assert_eq!(
        app.store.take_calls(),
        ["cycle_id"],
        "login over a session cycles it in one call"
    );
    assert_ne!(reply.cookie().unwrap(), cookie);
}
