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
