//! IDs, keys, expiry and cookie attributes over a session's life.

use std::time::Duration;

use axum::http::{header, StatusCode};
use tower_stateless::store::SessionStore;
use tower_stateless::{
    ConfigError, Keys, MemoryStore, SameSite, SessionLayer, SessionLayerBuilder,
};

use crate::logs::Logs;
use crate::{key, App};

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::test]
async fn session_handle_round_trips_typed_values() {
    let app = App::new();
    let cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    app.send("POST", "/set/b/2", Some(&cookie)).await;
    app.send("POST", "/incr/n", Some(&cookie)).await;
    assert_eq!(app.send("GET", "/keys", Some(&cookie)).await.body, "a,b,n");
    app.send("POST", "/remove/a", Some(&cookie)).await;
    assert_eq!(app.send("GET", "/keys", Some(&cookie)).await.body, "b,n");
    assert_eq!(app.send("GET", "/get/n", Some(&cookie)).await.body, "1");
    app.send("POST", "/clear", Some(&cookie)).await;
    assert_eq!(app.send("GET", "/keys", Some(&cookie)).await.body, "");
    let reply = app.send("POST", "/set/c/3", Some(&cookie)).await;
    assert!(
        reply.set_cookies().is_empty(),
        "a cleared session keeps its ID"
    );
}

#[tokio::test]
async fn unknown_ids_are_never_adopted() {
    // A validly signed ID the store does not know (another deployment's, or expired).
    let elsewhere = App::new();
    let stale = elsewhere
        .send("POST", "/set/a/1", None)
        .await
        .cookie()
        .unwrap();
    let app = App::new();

    let reply = app.send("POST", "/incr/n", Some(&stale)).await;
    assert_eq!(app.store.calls(), ["load", "create"]);
    let fresh = reply.cookie().expect("a fresh, server-generated ID");
    assert_ne!(fresh, stale);

    // A blind write to it lands in another fresh session rather than adopting the ID.
    app.store.take_calls();
    let reply = app.send("POST", "/set/a/1", Some(&stale)).await;
    assert_eq!(app.store.calls(), ["apply", "create"]);
    assert_eq!(reply.status, StatusCode::OK);
    let second = reply.cookie().expect("a new, server-generated ID");
    assert!(second != stale && second != fresh);
    assert_eq!(app.store.memory.len(), 2, "never the stale ID");
    assert_eq!(
        app.send("GET", "/get/a", Some(&second)).await.body,
        "\"1\"",
        "the write was kept"
    );
}

#[tokio::test]
async fn cycling_the_id_kills_the_old_one() {
    let app = App::new();
    let before = app
        .send("POST", "/set/cart/socks", None)
        .await
        .cookie()
        .unwrap();
    let after = app
        .send("POST", "/login/alice", Some(&before))
        .await
        .cookie()
        .unwrap();
    assert_ne!(before, after);
    assert_eq!(
        app.send("GET", "/get/user", Some(&after)).await.body,
        "\"alice\""
    );
    assert_eq!(
        app.send("GET", "/get/cart", Some(&after)).await.body,
        "\"socks\"",
        "data moves along"
    );
    let old = app.send("GET", "/get/cart", Some(&before)).await;
    assert_eq!(old.status, StatusCode::NOT_FOUND, "the old ID is dead");
    assert!(
        old.set_cookies().is_empty(),
        "a dead cookie is left alone: removing it could delete the login's"
    );
}

#[tokio::test]
async fn destroy_deletes_and_removes_the_cookie() {
    let app = App::with(|layer| {
        layer
            .with_cookie_path("/app")
            .with_cookie_domain("example.com")
    });
    let cookie = app.login("alice").await;
    let reply = app.send("POST", "/logout", Some(&cookie)).await;
    let removal = reply.set_cookies().pop().unwrap();
    // A path or domain rules out `__Host-`: the default name falls back to `__Secure-`.
    assert!(removal.starts_with("__Secure-id=;"), "{removal}");
    for attribute in [
        "Max-Age=0",
        "Path=/app",
        "Domain=example.com",
        "Secure",
        "HttpOnly",
    ] {
        assert!(removal.contains(attribute), "{removal} lacks {attribute}");
    }
    assert!(app.store.memory.is_empty());
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn user_binding_enables_logout_everywhere() {
    let app = App::new();
    let phone = app.login("alice").await;
    let laptop = app.login("alice").await;
    let bob = app.login("bob").await;
    let lifetime = tower_stateless::store::Expiry::new(
        tower_stateless::store::Timestamp::from_system_time(app.clock.now()),
        24 * HOUR,
        7 * 24 * HOUR,
    );
    assert_eq!(
        app.store
            .sessions_of_user("alice", lifetime)
            .await
            .unwrap()
            .len(),
        2
    );
    assert_eq!(
        app.store.destroy_sessions_of_user("alice").await.unwrap(),
        2
    );
    for cookie in [&phone, &laptop] {
        assert_eq!(
            app.send("GET", "/get/user", Some(cookie)).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        app.send("GET", "/get/user", Some(&bob)).await.body,
        "\"bob\""
    );
}

#[tokio::test]
async fn key_rotation_in_two_phases() {
    let store = crate::instrumented::Instrumented::default();
    let old_fleet = App::sharing(store.clone(), Keys::new(key(1)), |l| l);
    let cookie = old_fleet.login("alice").await;

    // Phase 1: the new key is deployed as upcoming; old tokens still sign and verify.
    let phase1 = App::sharing(
        store.clone(),
        Keys::new(key(1)).with_upcoming(key(2)),
        |l| l,
    );
    let reply = phase1.send("GET", "/get/user", Some(&cookie)).await;
    assert_eq!(reply.body, "\"alice\"");
    assert!(reply.set_cookies().is_empty());

    // Phase 2: the new key signs; old tokens verify once and are re-issued.
    let phase2 = App::sharing(
        store.clone(),
        Keys::new(key(2)).with_retiring(key(1)),
        |l| l,
    );
    let reply = phase2.send("GET", "/get/user", Some(&cookie)).await;
    assert_eq!(reply.body, "\"alice\"");
    let reissued = reply.cookie().expect("re-issued under the new key");
    assert_ne!(reissued, cookie);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
    // Requests that do not use the session do not even verify the token: no re-issue.
    store.take_calls();
    assert!(phase2
        .send("GET", "/untouched", Some(&cookie))
        .await
        .cookie()
        .is_none());
    assert!(store.calls().is_empty());

    // Once the old key is retired, only re-issued tokens work.
    let retired = App::sharing(store.clone(), Keys::new(key(2)), |l| l);
    assert_eq!(
        retired.send("GET", "/get/user", Some(&reissued)).await.body,
        "\"alice\""
    );
    assert_eq!(
        retired.send("GET", "/get/user", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn key_rollout_does_not_flap_across_a_mixed_fleet() {
    // Two instances on one store, mid-rollout: phase 1 has the new key (2) as upcoming,
    // phase 2 already signs with it and has the old key (1) as retiring.
    let store = crate::instrumented::Instrumented::default();
    let phase1 = App::sharing(
        store.clone(),
        Keys::new(key(1)).with_upcoming(key(2)),
        |l| l,
    );
    let phase2 = App::sharing(
        store.clone(),
        Keys::new(key(2)).with_retiring(key(1)),
        |l| l,
    );

    // A token signed by the new key is accepted by phase 1 and never re-issued there:
    // not on a read, a write, nor a refresh.
    let new = phase2.login("alice").await;
    let read = phase1.send("GET", "/get/user", Some(&new)).await;
    assert_eq!(read.body, "\"alice\"");
    assert!(read.set_cookies().is_empty(), "{:?}", read.set_cookies());
    let write = phase1.send("POST", "/set/a/1", Some(&new)).await;
    assert_eq!(write.status, StatusCode::OK);
    assert!(write.set_cookies().is_empty(), "{:?}", write.set_cookies());
    assert_eq!(phase2.send("GET", "/get/a", Some(&new)).await.body, "\"1\"");
    phase1.clock.advance(4 * HOUR); // past the refresh interval: a touch
    store.take_calls();
    let refresh = phase1.send("GET", "/get/a", Some(&new)).await;
    assert_eq!(store.take_calls(), ["load", "touch"]);
    assert!(refresh.set_cookies().is_empty());

    // Had phase 1 treated the new key as retiring, it would have re-signed the token
    // under the old key, and phase 2 back under the new one: the flapping avoided above.
    let flapping = App::sharing(
        store.clone(),
        Keys::new(key(1)).with_retiring(key(2)),
        |l| l,
    );
    let back = flapping.send("GET", "/get/user", Some(&new)).await;
    let old_again = back.cookie().expect("re-issued under the old key");
    assert!(phase2
        .send("GET", "/get/user", Some(&old_again))
        .await
        .cookie()
        .is_some());

    // A token from phase 1 (old key) is re-issued once by phase 2, then stays put.
    let old = phase1.login("bob").await;
    let reissued = phase2
        .send("GET", "/get/user", Some(&old))
        .await
        .cookie()
        .expect("re-issued under the new key");
    for _ in 0..3 {
        for instance in [&phase1, &phase2] {
            let reply = instance.send("GET", "/get/user", Some(&reissued)).await;
            assert_eq!(reply.body, "\"bob\"");
            assert!(reply.set_cookies().is_empty());
        }
    }
}

#[tokio::test]
async fn idle_timeout_is_enforced_on_the_server() {
    let app = App::with(|layer| layer.with_idle_timeout(HOUR).with_refresh_after(HOUR / 4));
    let cookie = app.login("alice").await;
    app.clock.advance(HOUR / 2);
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.body,
        "\"alice\""
    );
    app.clock.advance(HOUR / 2 + Duration::from_secs(60));
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.body,
        "\"alice\"",
        "the read refreshed it"
    );
    app.clock.advance(HOUR);
    let reply = app.send("GET", "/get/user", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "idle for an hour");
    assert!(
        reply.set_cookies().is_empty(),
        "only destroy() removes a cookie"
    );

    // A write that never saw it live lands in a new session, never on the old ID.
    app.store.take_calls();
    let reply = app.send("POST", "/set/cart/socks", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(app.store.calls(), ["apply", "create"]);
    let fresh = reply.cookie().expect("a new session");
    assert_ne!(fresh, cookie);
    assert_eq!(
        app.send("GET", "/get/cart", Some(&fresh)).await.body,
        "\"socks\""
    );
    assert_eq!(
        app.send("GET", "/get/user", Some(&fresh)).await.status,
        StatusCode::NOT_FOUND,
        "the new session is not the old one revived"
    );
}

#[tokio::test]
async fn absolute_lifetime_is_enforced_however_active() {
    let app = App::with(|layer| {
        layer
            .with_idle_timeout(HOUR)
            .with_absolute_lifetime(3 * HOUR)
    });
    let cookie = app.login("alice").await;
    for _ in 0..5 {
        app.clock.advance(HOUR / 2);
        assert_eq!(
            app.send("POST", "/set/seen/yes", Some(&cookie))
                .await
                .status,
            StatusCode::OK
        );
    }
    app.clock.advance(HOUR / 2);
    assert_eq!(
        app.send("GET", "/get/user", Some(&cookie)).await.status,
        StatusCode::NOT_FOUND
    );
    let reply = app.send("POST", "/set/seen/again", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::OK, "the write lands...");
    let fresh = reply.cookie().expect("...in a new session");
    assert_ne!(fresh, cookie);
    assert_eq!(
        app.send("GET", "/get/user", Some(&fresh)).await.status,
        StatusCode::NOT_FOUND,
        "no write revives the old one"
    );
}

#[tokio::test]
async fn sliding_refresh_is_throttled() {
    let app = App::with(|layer| {
        layer
            .with_idle_timeout(HOUR)
            .with_refresh_after(Duration::from_secs(600))
    });
    let cookie = app.login("alice").await;
    app.store.take_calls();
    for _ in 0..5 {
        app.clock.advance(Duration::from_secs(60));
        app.send("GET", "/get/user", Some(&cookie)).await;
    }
    assert_eq!(
        app.store.take_calls(),
        ["load"; 5],
        "no write within the refresh interval"
    );
    app.clock.advance(Duration::from_secs(600));
    app.send("GET", "/get/user", Some(&cookie)).await;
    assert_eq!(app.store.take_calls(), ["load", "touch"]);
    app.send("GET", "/get/user", Some(&cookie)).await;
    assert_eq!(app.store.take_calls(), ["load"]);
}

#[tokio::test]
async fn cookie_defaults_are_secure() {
    let app = App::new();
    let reply = app.send("POST", "/set/a/1", None).await;
    let set = reply.set_cookies();
    assert_eq!(set.len(), 1);
    assert!(set[0].starts_with("__Host-id="), "{}", set[0]);
    let attributes: Vec<&str> = set[0].split("; ").skip(1).collect();
    assert_eq!(attributes, ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"]);
    assert_eq!(reply.headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn cookie_attributes_are_configurable() {
    let app = App::with(|layer| {
        layer
            .with_cookie_name("sid")
            .with_cookie_path("/shop")
            .with_cookie_domain("example.com")
            .with_secure(false)
            .with_http_only(false)
            .with_same_site(SameSite::Strict)
            .with_persistent_cookie(true)
            .with_idle_timeout(Duration::from_secs(3600))
            .with_absolute_lifetime(Duration::from_secs(7200))
    });
    let reply = app.send("POST", "/set/a/1", None).await;
    let set = &reply.set_cookies()[0];
    assert!(set.starts_with("sid="), "{set}");
    for attribute in [
        "SameSite=Strict",
        "Path=/shop",
        "Domain=example.com",
        "Max-Age=7200",
    ] {
        assert!(set.contains(attribute), "{set} lacks {attribute}");
    }
    assert!(
        !set.contains("Secure") && !set.contains("HttpOnly"),
        "{set}"
    );
    let cookie = reply.cookie().unwrap();
    assert_eq!(app.send("GET", "/get/a", Some(&cookie)).await.body, "\"1\"");
}

#[tokio::test]
async fn cookie_name_defaults_follow_secure() {
    // Without Secure a prefixed name would be dropped by browsers: plain `id`.
    let plain = App::with(|layer| layer.with_secure(false));
    let reply = plain.send("POST", "/set/a/1", None).await;
    let cookie = reply.cookie().unwrap();
    assert!(cookie.starts_with("id="), "{cookie}");
    assert_eq!(
        plain.send("GET", "/get/a", Some(&cookie)).await.body,
        "\"1\""
    );
    // A token is bound to the name it was issued under.
    let renamed = cookie.replacen("id=", "__Host-id=", 1);
    let secure = App::sharing(plain.store.clone(), Keys::new(key(1)), |l| l);
    assert_eq!(
        secure.send("GET", "/get/a", Some(&renamed)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn host_prefix_rules_are_checked_when_built() {
    let build = |configure: fn(SessionLayerBuilder) -> SessionLayerBuilder| {
        configure(SessionLayer::builder(MemoryStore::new(), Keys::new(key(1))))
            .build()
            .err()
    };
    assert_eq!(
        build(|l| l.with_cookie_name("__host-id").with_secure(false)),
        Some(ConfigError::CookiePrefix)
    );
    assert_eq!(
        build(|l| l.with_cookie_name("__Host-id").with_cookie_domain("x.com")),
        Some(ConfigError::CookiePrefix)
    );
    assert_eq!(
        build(|l| l.with_cookie_name("__SECURE-id").with_secure(false)),
        Some(ConfigError::CookiePrefix)
    );
    let app = App::with(|layer| layer.with_cookie_name("__HOST-sid"));
    let reply = app.send("POST", "/set/a/1", None).await;
    let set = &reply.set_cookies()[0];
    assert!(
        set.starts_with("__HOST-sid=") && set.ends_with("; Secure; Path=/"),
        "{set}"
    );
    assert_eq!(
        app.send("GET", "/get/a", Some(&reply.cookie().unwrap()))
            .await
            .body,
        "\"1\""
    );
}

#[tokio::test]
async fn handler_cache_control_is_kept() {
    let app = App::new();
    let reply = app.send("POST", "/cached/a", None).await;
    assert!(reply.cookie().is_some());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "private, max-age=5");
}

#[tokio::test]
async fn shared_cacheable_responses_carrying_a_token_become_private_no_store() {
    let app = App::new();
    for path in ["/public/a", "/shared/a"] {
        let (reply, logs) = Logs::capture(app.send("POST", path, None)).await;
        let cookie = reply.cookie().expect("a fresh token");
        let cache_control: Vec<_> = reply
            .headers
            .get_all(header::CACHE_CONTROL)
            .iter()
            .collect();
        assert_eq!(cache_control, ["private, no-store"], "{path}");
        let warnings = logs.lines_with("WARN");
        assert_eq!(warnings.len(), 1, "{}", logs.text());
        assert!(warnings[0].contains("private, no-store"), "{}", warnings[0]);
        let token = cookie.split_once('=').unwrap().1;
        assert!(!logs.text().contains(token));
    }
    // A removal cookie too.
    let cookie = app.login("alice").await;
    let other = app.login("bob").await;
    let reply = app.send("POST", "/logout-public", Some(&other)).await;
    assert!(reply.removes_cookie());
    assert_eq!(reply.headers[header::CACHE_CONTROL], "private, no-store");
    let reply = app.send("POST", "/public/a", Some(&cookie)).await;
    assert!(reply.set_cookies().is_empty(), "a kept token is not resent");
    assert_eq!(
        reply.headers[header::CACHE_CONTROL],
        "public, max-age=3600",
        "a response that hands out no token keeps the handler's caching"
    );
    // A read with an old key's token re-issues it: the response is private again.
    let rotated = App::sharing(
        app.store.clone(),
        Keys::new(key(2)).with_retiring(key(1)),
        |l| l,
    );
    let reply = rotated
        .send("GET", "/public-read/user", Some(&cookie))
        .await;
    assert!(reply.cookie().is_some(), "re-issued");
    assert_eq!(reply.headers[header::CACHE_CONTROL], "private, no-store");
}
