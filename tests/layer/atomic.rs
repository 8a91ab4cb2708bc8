//! Immediate and deferred atomic operations, and the rules for writes to sessions that
//! ended: what a request that saw its session live, or never did, may write.

use std::sync::Arc;

use axum::http::StatusCode;
use tokio::sync::Notify;

use crate::App;

/// `/slow-incr` signals once it has loaded the session, then waits to be released.
pub static SLOW_LOADED: Notify = Notify::const_new();
pub static SLOW_RELEASE: Notify = Notify::const_new();
/// Held by each test that uses `/slow-incr`, so that two never share the signals.
pub static SLOW_ROUTE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn increment_runs_at_once_in_one_store_call() {
    let app = App::new();
    let reply = app.send("POST", "/add/n/5", None).await;
    assert_eq!(reply.body, "5");
    assert_eq!(app.store.calls(), ["create"], "a new session, made at once");
    let cookie = reply.cookie().expect("the new session's token");

    app.store.take_calls();
    let reply = app.send("POST", "/add/n/-2", Some(&cookie)).await;
    assert_eq!(reply.body, "3");
    assert_eq!(app.store.calls(), ["increment"], "no load, no write-back");
    assert!(reply.set_cookies().is_empty());
    assert_eq!(app.send("GET", "/get/n", Some(&cookie)).await.body, "3");
}

#[tokio::test]
async fn concurrent_increments_and_updates_all_count() {
    let app = Arc::new(App::new());
    let cookie = app.login("alice").await;
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (app, cookie) = (app.clone(), cookie.clone());
            tokio::spawn(async move {
                let add = app.send("POST", "/add/socks/1", Some(&cookie)).await;
                let append = app
                    .send("POST", &format!("/append/log/{i}"), Some(&cookie))
                    .await;
                (add.status, append.status)
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (StatusCode::OK, StatusCode::OK));
    }
    assert_eq!(
        app.send("GET", "/get/socks", Some(&cookie)).await.body,
        "64"
    );
    let log = app.send("GET", "/get/log", Some(&cookie)).await.body;
    let log: Vec<String> = serde_json::from_str(&log).unwrap();
    assert_eq!(log.len(), 64, "every update landed");
}

#[tokio::test]
async fn immediate_operations_survive_a_5xx_deferred_ones_do_not() {
    let app = App::new();
    let cookie = app.login("alice").await;
    let reply = app.send("POST", "/add-then-fail/now", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(app.send("GET", "/get/now", Some(&cookie)).await.body, "1");
    assert_eq!(
        app.send("GET", "/get/later", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deferred_increments_apply_with_the_other_changes_all_or_nothing() {
    let app = App::new();
    let cookie = app.login("alice").await;
    assert_eq!(
        app.send("POST", "/add-later/n/2", Some(&cookie))
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(app.send("GET", "/get/n", Some(&cookie)).await.body, "2");

    // A stored value that is not an integer: the response is a 409 and nothing is saved.
    app.send("POST", "/set/word/hello", Some(&cookie)).await;
    let reply = app.send("POST", "/add-later/word/1", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        app.send("GET", "/get/word", Some(&cookie)).await.body,
        "\"hello\""
    );
}

#[tokio::test]
async fn overflow_and_non_integers_are_clear_errors() {
    let app = App::new();
    let cookie = app.login("alice").await;
    app.send("POST", &format!("/add/n/{}", i64::MAX), Some(&cookie))
        .await;
    let reply = app.send("POST", "/add/n/1", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.body.contains("overflow"), "{}", reply.body);
    assert_eq!(
        app.send("GET", "/get/n", Some(&cookie)).await.body,
        i64::MAX.to_string(),
        "never a reset"
    );
    app.send("POST", "/set/word/hello", Some(&cookie)).await;
    let reply = app.send("POST", "/add/word/1", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert!(reply.body.contains("not an integer"), "{}", reply.body);
}

#[tokio::test]
async fn an_increment_on_a_stale_cookie_starts_a_new_session() {
    let app = App::new();
    let cookie = app.login("alice").await;
    app.send("POST", "/logout", Some(&cookie)).await;
    app.store.take_calls();
    let reply = app.send("POST", "/add/n/1", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.store.calls(), ["increment", "create"]);
    let fresh = reply.cookie().expect("a new session");
    assert_ne!(fresh, cookie);
    assert_eq!(
        app.send("GET", "/get/user", Some(&fresh)).await.status,
        StatusCode::NOT_FOUND,
        "not the logged-out session revived"
    );
}

#[tokio::test]
async fn an_increment_after_a_concurrent_logout_is_refused() {
    let app = App::new();
    let cookie = app.login("alice").await;
    // The handler reads the session live; then, before its increment, a logout lands.
    app.store.log_out_before_write("alice");
    let reply = app.send("POST", "/read-then-add/n", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "the logout wins");
    assert!(reply.set_cookies().is_empty());
    assert!(
        app.store.memory.is_empty(),
        "nothing was revived or created"
    );
}

#[tokio::test]
async fn removals_with_nothing_stored_cost_nothing() {
    let app = App::new();
    for path in ["/remove/a", "/clear"] {
        let reply = app.send("POST", path, None).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(reply.set_cookies().is_empty(), "{path}: no cookie");
    }
    assert!(app.store.calls().is_empty(), "no store call");
    assert!(app.store.memory.is_empty());
}

#[tokio::test]
async fn a_request_that_began_before_the_login_does_not_log_the_user_out() {
    a_login_races_a_request_that_began_before_it(App::new()).await;
}

/// A request loads its session and waits; meanwhile a login on the same cookie cycles the
/// ID; then the request writes. Its write must be dropped (409) with no cookie that could
/// replace the login's, and the user stays logged in. In store mode and token mode alike.
pub async fn a_login_races_a_request_that_began_before_it(app: App) {
    let _slow_route = SLOW_ROUTE.lock().await;
    let app = Arc::new(app);
    let anonymous = app
        .send("POST", "/set/cart/socks", None)
        .await
        .cookie()
        .unwrap();
    let slow = {
        let (app, cookie) = (app.clone(), anonymous.clone());
        tokio::spawn(async move { app.send("POST", "/slow-incr/n", Some(&cookie)).await })
    };
    SLOW_LOADED.notified().await;
    let login = app.send("POST", "/login/alice", Some(&anonymous)).await;
    let logged_in = login.cookie().expect("the login's cookie");
    SLOW_RELEASE.notify_one();
    let slow = slow.await.unwrap();
    assert_eq!(slow.status, StatusCode::CONFLICT, "its write is dropped");
    assert!(
        slow.set_cookies().is_empty(),
        "and it sends no cookie that could replace the login's"
    );
    assert_eq!(
        app.send("GET", "/get/user", Some(&logged_in)).await.body,
        "\"alice\"",
        "still logged in"
    );
}
