//! The limit on each user's live sessions, and `Session::hashed_id`.

use std::time::Duration;

use axum::http::StatusCode;
use tower_stateless::store::{Expiry, SessionStore, Timestamp};
use tower_stateless::{ConfigError, Key, SessionLayer};

use crate::App;

/// Whether the session behind `cookie` is still there (its `user` key reads back).
async fn alive(app: &App, cookie: &str) -> bool {
    let reply = app.send("GET", "/get/user", Some(cookie)).await;
    match reply.status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        status => panic!("unexpected {status}"),
    }
}

async fn hashed_ids_of(app: &App, user: &str) -> Vec<String> {
    let expiry = Expiry::new(
        Timestamp::from_system_time(app.clock.now()),
        Duration::from_secs(3600),
        Duration::from_secs(86_400),
    );
    let mut ids: Vec<String> = app
        .store
        .sessions_of_user(user, expiry)
        .await
        .unwrap()
        .into_iter()
        .map(|session| session.id.to_string())
        .collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_login_beyond_the_limit_ends_the_oldest_login() {
    let app = App::with(|layer| layer.with_max_sessions_per_user(2));
    let first = app.login("ada").await;
    app.clock.advance(Duration::from_secs(1));
    let second = app.login("ada").await;
    app.clock.advance(Duration::from_secs(1));
    // Using the first device again does not make it a newer login.
    let reply = app.send("POST", "/set/seen/yes", Some(&first)).await;
    assert_eq!(reply.status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(1));
    let bob = app.login("bob").await;

    let third = app.login("ada").await;
    assert!(!alive(&app, &first).await, "the oldest login ends");
    assert!(alive(&app, &second).await);
    assert!(alive(&app, &third).await);
    assert_eq!(hashed_ids_of(&app, "ada").await.len(), 2);
    // Another user's sessions are not counted or touched.
    assert!(alive(&app, &bob).await);
}

#[tokio::test]
async fn the_newest_login_wins_and_a_tie_leaves_exactly_one() {
    let app = App::with(|layer| layer.with_max_sessions_per_user(1));
    let first = app.login("ada").await;
    app.clock.advance(Duration::from_millis(1));
    let second = app.login("ada").await;
    assert!(!alive(&app, &first).await);
    assert!(alive(&app, &second).await);
    // Logins in one millisecond rank by ID, alike on every instance: one of them stays.
    app.clock.advance(Duration::from_millis(1));
    let (third, fourth) = (app.login("ada").await, app.login("ada").await);
    let alive_now = [
        alive(&app, &second).await,
        alive(&app, &third).await,
        alive(&app, &fourth).await,
    ];
    assert_eq!(alive_now, [false, !alive_now[2], alive_now[2]]);
    assert_eq!(hashed_ids_of(&app, "ada").await.len(), 1);
}

#[tokio::test]
async fn without_a_limit_sessions_accumulate() {
    let app = App::new();
    for _ in 0..5 {
        app.login("ada").await;
    }
    assert_eq!(hashed_ids_of(&app, "ada").await.len(), 5);
}

#[tokio::test]
async fn a_zero_limit_is_a_configuration_error() {
    let error = SessionLayer::builder(tower_stateless::MemoryStore::new(), Key::generate())
        .with_max_sessions_per_user(0)
        .build()
        .unwrap_err();
    assert_eq!(error, ConfigError::ZeroSessionLimit);
}

#[tokio::test]
async fn hashed_id_names_the_session_as_the_store_lists_it() {
    let app = App::new();
    let anonymous = app.send("GET", "/hashed-id", None).await;
    assert_eq!(anonymous.body, "none");
    let forged = app.send("GET", "/hashed-id", Some("id=forged")).await;
    assert_eq!(forged.body, "none");

    let phone = app.login("ada").await;
    let laptop = app.login("ada").await;
    let phone_id = app.send("GET", "/hashed-id", Some(&phone)).await.body;
    let laptop_id = app.send("GET", "/hashed-id", Some(&laptop)).await.body;
    assert_ne!(phone_id, laptop_id);
    let mut expected = vec![phone_id.clone(), laptop_id];
    expected.sort();
    assert_eq!(hashed_ids_of(&app, "ada").await, expected);
    // Never the raw token.
    assert!(!phone.contains(&phone_id));
}

/// Store mode's size bound: 100 bytes per value, 1,000 per session in these tests.
fn bounded(layer: tower_stateless::SessionLayerBuilder) -> tower_stateless::SessionLayerBuilder {
    layer.with_max_value_size(100).with_max_session_size(1_000)
}

#[tokio::test]
async fn a_value_over_its_bound_is_refused_with_413_and_not_stored() {
    let app = App::with(bounded);
    let cookie = app.login("ada").await;
    app.store.take_calls();
    let reply = app.send("POST", "/fill/big/100", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(reply.body.contains("size bound"), "{}", reply.body);
    assert!(
        !app.store.take_calls().contains(&"apply"),
        "refused before any store write"
    );
    let read = app.send("GET", "/get/big", Some(&cookie)).await;
    assert_eq!(read.status, StatusCode::NOT_FOUND);
    // Just within the bound ("big" and 95 x's with their quotes: 100 bytes).
    let fits = app.send("POST", "/fill/big/95", Some(&cookie)).await;
    assert_eq!(fits.status, StatusCode::OK);
}

#[tokio::test]
async fn a_request_that_read_the_session_is_bounded_exactly() {
    let app = App::with(bounded);
    let cookie = app.login("ada").await;
    // Deferred: `/incr` reads its key (loading the session), then inserts.
    let mut accepted = 0;
    for n in 0..200 {
        let reply = app
            .send("POST", &format!("/incr/counter-{n:03}"), Some(&cookie))
            .await;
        match reply.status {
            StatusCode::OK => accepted += 1,
            StatusCode::PAYLOAD_TOO_LARGE => break,
            status => panic!("{status}"),
        }
    }
    assert!((50..=100).contains(&accepted), "{accepted} accepted");
    app.store.take_calls();
    let refused = app.send("POST", "/incr/one-more", Some(&cookie)).await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        app.store.take_calls(),
        ["load"],
        "refused before any store write"
    );
    // Immediate: `/read-then-add` reads, then increments at once.
    let refused = app
        .send("POST", "/read-then-add/one-more", Some(&cookie))
        .await;
    assert_eq!(refused.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(!app.store.take_calls().contains(&"increment"));
    let keys = app.send("GET", "/keys", Some(&cookie)).await;
    assert_eq!(keys.body.matches("counter-").count(), accepted);
    // Growing a list held in one value (`update` reads it) is bounded the same way.
    app.send("POST", "/clear", Some(&cookie)).await;
    let mut last = StatusCode::OK;
    for n in 0..100 {
        last = app
            .send("POST", &format!("/append/list/{n}"), Some(&cookie))
            .await
            .status;
        if last != StatusCode::OK {
            break;
        }
    }
    assert_eq!(last, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn size_bounds_that_cannot_work_are_configuration_errors() {
    let build = |value: usize, session: usize| {
        SessionLayer::builder(tower_stateless::MemoryStore::new(), Key::generate())
            .with_max_value_size(value)
            .with_max_session_size(session)
            .build()
    };
    assert_eq!(build(0, 1_000).unwrap_err(), ConfigError::SizeLimits);
    assert_eq!(build(2_000, 1_000).unwrap_err(), ConfigError::SizeLimits);
    assert!(build(1_000, 1_000).is_ok());
    let message = ConfigError::SizeLimits.to_string();
    assert!(message.contains("value's size"), "{message}");
}
