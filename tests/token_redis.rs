//! Token mode with revocations in Redis, across two instances (two layers, each with its
//! own connection), on a single server and on a cluster: a logout on one instance kills
//! the cookie on the other, log-out-everywhere kills tokens issued anywhere, and an
//! unreachable Redis fails closed (or open, if chosen).

#![allow(missing_docs, missing_debug_implementations, unreachable_pub)]

mod support;

use std::time::Duration;

use axum::body::Body;
use axum::extract::Path;
use axum::http::{header, Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::BodyExt;
use sha2::{Digest, Sha256};
use support::{RedisCluster, RedisServer};
use tower::ServiceExt;
use tower_stateless::store::{RedisStoreBuilder, RedisTarget};
use tower_stateless::{Key, RedisStore, Session, SessionLayer, TokenSessions};

fn key() -> Key {
    Key::from_bytes(&[7; 32]).unwrap()
}

/// One instance: token mode, revocations in `store`.
fn instance(store: RedisStore, fail_open: bool) -> Router {
    let tokens = TokenSessions::new()
        .with_revocations(store)
        .with_fail_open(fail_open);
    let handle = tokens.clone();
    Router::new()
        .route(
            "/login/{user}",
            post(|session: Session, Path(user): Path<String>| async move {
                session.cycle_id();
                session.insert("user", &user)?;
                session.set_user_id(user);
                Ok::<_, tower_stateless::Error>("welcome")
            }),
        )
        .route(
            "/me",
            get(|session: Session| async move {
                match session.get::<String>("user").await {
                    Ok(Some(user)) => user.into_response(),
                    Ok(None) => StatusCode::UNAUTHORIZED.into_response(),
                    Err(error) => error.into_response(),
                }
            }),
        )
        .route(
            "/logout",
            post(|session: Session| async move { session.destroy() }),
        )
        .route(
            "/logout-everywhere",
            post(move |session: Session| {
                let tokens = handle.clone();
                async move {
                    let user = session.user_id().await?.unwrap_or_default();
                    tokens
                        .destroy_sessions_of_user(&user, session.expiry())
                        .await
                        .map(|()| "bye")
                }
            }),
        )
        .layer(SessionLayer::tokens(tokens, key()))
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

impl Reply {
    fn cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap())
            .filter(|c| !c.contains("Max-Age=0"))
            .map(|c| c.split(';').next().unwrap().to_owned())
            .next_back()
    }
}

async fn send(app: &Router, method: &str, path: &str, cookie: Option<&str>) -> Reply {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

async fn login(app: &Router, user: &str) -> String {
    let reply = send(app, "POST", &format!("/login/{user}"), None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.cookie().unwrap()
}

/// Instances A and B (fail closed), each with its own connection to `server`.
async fn two_instances_on(server: &RedisServer) -> (Router, Router) {
    let connect = || async { RedisStore::connect(&server.url()).await.unwrap() };
    (
        instance(connect().await, false),
        instance(connect().await, false),
    )
}

/// Instances A and B (fail closed), each with its own connection to `cluster`.
async fn two_instances_on_a_cluster(cluster: &RedisCluster) -> (Router, Router) {
    let connect =
        || async { (RedisStore::connect(RedisTarget::cluster(cluster.nodes())).await).unwrap() };
    (
        instance(connect().await, false),
        instance(connect().await, false),
    )
}

/// Rounds of: log in on A, read on B, log out on A, replay the cookie on B. Returns
/// how many replays B accepted.
async fn logout_rounds(a: &Router, b: &Router, rounds: usize) -> usize {
    logout_rounds_caught_up(a, b, None, rounds).await
}

/// [`logout_rounds`], reading twice on B before the logout (the second read of a cached
/// store is a hit) and, with `b_store`, letting B catch up with Redis's invalidations
/// before the replay.
async fn logout_rounds_caught_up(
    a: &Router,
    b: &Router,
    b_store: Option<&RedisStore>,
    rounds: usize,
) -> usize {
    let mut accepted = 0;
    for round in 0..rounds {
        let cookie = login(a, &format!("user-{round}")).await;
        for _ in 0..2 {
            let before = send(b, "GET", "/me", Some(&cookie)).await;
            assert_eq!(before.status, StatusCode::OK, "round {round}: live on B");
        }
        let logout = send(a, "POST", "/logout", Some(&cookie)).await;
        assert_eq!(logout.status, StatusCode::OK, "round {round}: logout");
        if let Some(store) = b_store {
            store.catch_up().await;
        }
        if send(b, "GET", "/me", Some(&cookie)).await.status != StatusCode::UNAUTHORIZED {
            accepted += 1;
        }
    }
    accepted
}

#[tokio::test]
async fn a_logout_on_one_instance_kills_the_cookie_on_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_instances_on(&server).await;
    assert_eq!(logout_rounds(&a, &b, 1000).await, 0, "replays accepted");
}

#[tokio::test]
async fn a_logout_on_one_instance_kills_the_cookie_on_the_other_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let (a, b) = two_instances_on_a_cluster(&cluster).await;
    assert_eq!(logout_rounds(&a, &b, 1000).await, 0, "replays accepted");
}

async fn everywhere(a: &Router, b: &Router) {
    let mut alice = Vec::new();
    for app in [a, b, a, b] {
        alice.push(login(app, "alice").await);
    }
    let bob = login(b, "bob").await;
    let reply = send(b, "POST", "/logout-everywhere", Some(&alice[0])).await;
    assert_eq!(reply.body, "bye");
    for cookie in &alice {
        for app in [a, b] {
            let reply = send(app, "GET", "/me", Some(cookie)).await;
            assert_eq!(
                reply.status,
                StatusCode::UNAUTHORIZED,
                "alice's tokens are dead"
            );
        }
    }
    assert_eq!(send(a, "GET", "/me", Some(&bob)).await.body, "bob");
    // Bindings made after the logout are not affected.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let again = login(a, "alice").await;
    assert_eq!(send(b, "GET", "/me", Some(&again)).await.body, "alice");
}

/// Revocation checks through the coherent cache (`RedisStoreBuilder::cache`): B's hot reads
/// cost no round trip, and A's logout reaches B's cache as an invalidation.
async fn cached_logout_rounds(a_store: RedisStoreBuilder, b_store: RedisStoreBuilder) {
    let a = instance(a_store.cache(10_000).connect().await.unwrap(), false);
    let b_store = b_store.cache(10_000).connect().await.unwrap();
    let b = instance(b_store.clone(), false);
    let accepted = logout_rounds_caught_up(&a, &b, Some(&b_store), 1000).await;
    let stats = b_store.cache_stats().unwrap();
    eprintln!("cached, B caught up: {accepted} of 1000 replays accepted; B's cache: {stats:?}");
    assert_eq!(accepted, 0, "replays accepted");
    assert!(
        stats.hits >= 1000,
        "B's second read of each round was a hit: {stats:?}"
    );
    // Without catching up, in one process (no network hop between A's answer and B's
    // read): the window, measured, not asserted.
    let accepted = logout_rounds_caught_up(&a, &b, None, 1000).await;
    eprintln!("cached, B reading at once: {accepted} of 1000 replays accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_a_logout_on_one_instance_kills_the_cookie_on_the_other() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let url = server.url();
    cached_logout_rounds(RedisStore::builder(&url), RedisStore::builder(&url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_cache_a_logout_on_one_instance_kills_the_cookie_on_the_other_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let builder = || RedisStore::builder(RedisTarget::cluster(cluster.nodes()));
    cached_logout_rounds(builder(), builder()).await;
}

#[tokio::test]
async fn log_out_everywhere_revokes_tokens_issued_on_every_instance() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = two_instances_on(&server).await;
    everywhere(&a, &b).await;
}

#[tokio::test]
async fn log_out_everywhere_revokes_tokens_issued_on_every_instance_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let (a, b) = two_instances_on_a_cluster(&cluster).await;
    everywhere(&a, &b).await;
}

#[tokio::test]
async fn revocations_live_under_the_prefix_until_the_deadlines() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::builder(server.url())
        .prefix("app:")
        .connect()
        .await
        .unwrap();
    let app = instance(store, false);
    let first = login(&app, "carol").await;
    let again = send(&app, "POST", "/login/carol", Some(&first)).await;
    let cookie = again.cookie().unwrap();
    send(&app, "POST", "/logout-everywhere", Some(&cookie)).await;
    send(&app, "POST", "/logout", Some(&cookie)).await;
    let keys = server.cli(&["--scan"]);
    let mut keys: Vec<&str> = keys.lines().collect();
    keys.sort_unstable();
    let user = URL_SAFE_NO_PAD.encode(Sha256::digest(b"carol"));
    assert_eq!(keys.len(), 3, "{keys:?}");
    assert!(
        keys.contains(&format!("app:nbf:{{{user}}}").as_str()),
        "{keys:?}"
    );
    let revoked: Vec<&&str> = keys
        .iter()
        .filter(|k| k.starts_with("app:revoked:{"))
        .collect();
    // The second login revoked the ID it cycled away from, the logout the new one.
    assert_eq!(revoked.len(), 2, "{keys:?}");
    let week = 7 * 24 * 3600 * 1000;
    for key in keys {
        let ttl: i64 = server.cli(&["PTTL", key]).trim().parse().unwrap();
        assert!(ttl > week - 60_000 && ttl <= week, "{key}: {ttl} ms");
    }
}

#[tokio::test]
async fn an_unreachable_redis_fails_closed_unless_told_to_fail_open() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let closed = instance(RedisStore::connect(&server.url()).await.unwrap(), false);
    let open = instance(RedisStore::connect(&server.url()).await.unwrap(), true);
    let cookie = login(&closed, "dave").await;
    server.stop();
    let refused = send(&closed, "GET", "/me", Some(&cookie)).await;
    assert_eq!(refused.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.headers.contains_key(header::RETRY_AFTER));
    assert_eq!(refused.cookie(), None, "cookie kept");
    let served = send(&open, "GET", "/me", Some(&cookie)).await;
    assert_eq!(
        (served.status, served.body.as_str()),
        (StatusCode::OK, "dave")
    );
    let logout = send(&closed, "POST", "/logout", Some(&cookie)).await;
    assert_eq!(
        logout.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "logout not recorded"
    );
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = send(&closed, "GET", "/me", Some(&cookie)).await;
        if reply.status == StatusCode::OK {
            assert_eq!(reply.body, "dave");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{}", reply.status);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_least_privilege_user_with_the_token_acl_commands_suffices() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut acl: Vec<String> = ["ACL", "SETUSER", "app", "on", ">pw", "resetkeys", "~t:*"]
        .map(String::from)
        .to_vec();
    for commands in [RedisStore::ACL_COMMANDS, RedisStore::TOKEN_ACL_COMMANDS] {
        acl.extend(commands.split_whitespace().map(String::from));
    }
    server.cli(&acl.iter().map(String::as_str).collect::<Vec<_>>());
    let url = format!("redis://app:pw@{}", server.addr());
    let connect = || async {
        RedisStore::builder(&url)
            .prefix("t:")
            .connect()
            .await
            .unwrap()
    };
    let (a, b) = (
        instance(connect().await, false),
        instance(connect().await, false),
    );
    assert_eq!(logout_rounds(&a, &b, 20).await, 0, "replays accepted");
    let cookie = login(&a, "erin").await;
    let reply = send(&b, "POST", "/logout-everywhere", Some(&cookie)).await;
    assert_eq!(reply.body, "bye");
    let replay = send(&a, "GET", "/me", Some(&cookie)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
}

/// What SECURITY.md warns of: revocations live in Redis, so a Redis that restarts
/// without persistence forgets them, and a logged-out cookie opens again.
#[tokio::test]
async fn a_redis_restart_without_persistence_forgets_revocations() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let app = instance(RedisStore::connect(&server.url()).await.unwrap(), false);
    let cookie = login(&app, "frank").await;
    send(&app, "POST", "/logout", Some(&cookie)).await;
    let replay = send(&app, "GET", "/me", Some(&cookie)).await;
    assert_eq!(replay.status, StatusCode::UNAUTHORIZED);
    server.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let reply = send(&app, "GET", "/me", Some(&cookie)).await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(
                (reply.status, reply.body.as_str()),
                (StatusCode::OK, "frank")
            );
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Redis came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Instances' clocks differ: a log-out-everywhere stamped earlier than the one already
/// recorded must not move the boundary back.
#[tokio::test]
async fn the_not_before_time_only_rises() {
    use tower_stateless::store::Revocations as _;
    use tower_stateless::store::{HashedId, Timestamp};

    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let store = RedisStore::connect(RedisTarget::cluster(cluster.nodes()))
        .await
        .unwrap();
    let day = Duration::from_secs(86_400);
    let (later, earlier) = (Timestamp::from_millis(2_000), Timestamp::from_millis(1_000));
    store.revoke_user("gina", later, day).await.unwrap();
    store.revoke_user("gina", earlier, day).await.unwrap();
    let id = HashedId::from_stored("x".repeat(43));
    let state = store
        .revocation_state(&id, Some("gina"), earlier)
        .await
        .unwrap();
    assert_eq!(state.user_not_before, Some(later));
    assert!(!state.session_revoked);
    let raised = Timestamp::from_millis(3_000);
    store.revoke_user("gina", raised, day).await.unwrap();
    let state = store.revocation_state(&id, Some("gina"), raised).await;
    assert_eq!(state.unwrap().user_not_before, Some(raised));
}
