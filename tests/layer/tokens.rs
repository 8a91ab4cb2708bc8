//! Token mode: the session sealed in the cookie, no store; expiry from the sealed
//! timestamps, rotation, the size budget, revocations in memory.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tower_stateless::store::{
    HashedId, MemoryRevocations, RevocationState, Revocations, StoreError, Timestamp,
};
use tower_stateless::{ConfigError, Keys, SessionLayer, SessionLayerBuilder, TokenSessions};

use crate::{key, App};

const MINUTE: Duration = Duration::from_secs(60);

/// Real in-memory revocations behind a recorder: counts calls, can be made to fail.
#[derive(Clone, Default)]
struct Watched {
    inner: MemoryRevocations,
    calls: Arc<AtomicUsize>,
    failing: Arc<AtomicBool>,
    stalling: Arc<AtomicBool>,
}

impl Watched {
    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn set_stalling(&self, stalling: bool) {
        self.stalling.store(stalling, Ordering::SeqCst);
    }

    async fn enter(&self) -> Result<(), StoreError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.stalling.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_secs(3600)).await;
        }
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::backend("revocations unreachable"));
        }
        Ok(())
    }
}

impl Revocations for Watched {
    async fn revoke_session(
        &self,
        id: &HashedId,
        until: Timestamp,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        self.enter().await?;
        self.inner.revoke_session(id, until, now).await
    }

    async fn revoke_user(
        &self,
        user_id: &str,
        not_before: Timestamp,
        keep_for: Duration,
    ) -> Result<(), StoreError> {
        self.enter().await?;
        self.inner.revoke_user(user_id, not_before, keep_for).await
    }

    async fn revocation_state(
        &self,
        id: &HashedId,
        user_id: Option<&str>,
        now: Timestamp,
    ) -> Result<RevocationState, StoreError> {
        self.enter().await?;
        self.inner.revocation_state(id, user_id, now).await
    }
}

fn plain(configure: impl FnOnce(SessionLayerBuilder) -> SessionLayerBuilder) -> App {
    App::tokens(TokenSessions::new(), Keys::new(key(1)), configure)
}

fn revocable(watched: &Watched) -> App {
    let tokens = TokenSessions::new().with_revocations(watched.clone());
    App::tokens(tokens, Keys::new(key(1)), |layer| layer)
}

fn token_of(cookie: &str) -> &str {
    cookie.strip_prefix("__Host-id=").unwrap()
}

/// Sends a request with `cookie`, and keeps the cookie the response sets, if any.
async fn step(app: &App, cookie: &mut String, method: &str, path: &str) -> (StatusCode, String) {
    let reply = app.send(method, path, Some(cookie)).await;
    if let Some(next) = reply.cookie() {
        *cookie = next;
    }
    (reply.status, reply.body)
}

#[tokio::test]
async fn the_session_api_works_on_sealed_cookies() {
    let app = plain(|layer| layer);
    let mut cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    assert_eq!(step(&app, &mut cookie, "GET", "/get/a").await.1, "\"1\"");
    assert_eq!(step(&app, &mut cookie, "POST", "/add/n/5").await.1, "5");
    assert_eq!(step(&app, &mut cookie, "POST", "/add/n/2").await.1, "7");
    assert_eq!(
        step(&app, &mut cookie, "POST", "/add-later/n/3").await.0,
        StatusCode::OK
    );
    assert_eq!(step(&app, &mut cookie, "GET", "/get/n").await.1, "10");
    assert_eq!(step(&app, &mut cookie, "POST", "/append/l/x").await.1, "1");
    assert_eq!(step(&app, &mut cookie, "POST", "/append/l/y").await.1, "2");
    assert_eq!(step(&app, &mut cookie, "GET", "/keys").await.1, "a,l,n");
    step(&app, &mut cookie, "POST", "/remove/a").await;
    assert_eq!(step(&app, &mut cookie, "GET", "/keys").await.1, "l,n");
    step(&app, &mut cookie, "POST", "/clear").await;
    assert_eq!(step(&app, &mut cookie, "GET", "/keys").await.1, "");
    let before_login = cookie.clone();
    assert_eq!(
        step(&app, &mut cookie, "POST", "/login/alice").await.1,
        "welcome"
    );
    assert_ne!(cookie, before_login, "cycle_id seals a new token");
    assert_eq!(
        step(&app, &mut cookie, "GET", "/get/user").await.1,
        "\"alice\""
    );
    assert_ne!(step(&app, &mut cookie, "GET", "/hashed-id").await.1, "none");
    let reply = app.send("POST", "/logout", Some(&cookie)).await;
    assert!(reply.removes_cookie());
    assert_eq!(app.store.calls(), Vec::<&str>::new(), "no store at all");
}

#[tokio::test]
async fn a_failed_request_saves_nothing_and_a_read_seals_nothing() {
    let app = plain(|layer| layer);
    let cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let failed = app.send("POST", "/fail/b", Some(&cookie)).await;
    assert_eq!(failed.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(failed.cookie(), None);
    let read = app.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert_eq!(read.cookie(), None, "fresh: nothing to re-seal");
    assert_eq!(
        app.send("GET", "/untouched", None).await.cookie(),
        None,
        "an untouched session makes no cookie"
    );
}

/// Sends `value` as the session cookie header; the request must be anonymous.
async fn assert_anonymous(app: &App, watched: &Watched, value: &str, what: &str) {
    let mut request = Request::get("/get/a").body(Body::empty()).unwrap();
    let Ok(header) = HeaderValue::from_str(value) else {
        return;
    };
    request.headers_mut().append(header::COOKIE, header);
    let reply = app.request(request).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{what}");
    assert_eq!(watched.calls(), 0, "{what}: no revocation call");
    assert_eq!(
        app.store.calls(),
        Vec::<&str>::new(),
        "{what}: no store call"
    );
}

#[tokio::test]
async fn tampered_tokens_are_anonymous_without_any_call() {
    let watched = Watched::default();
    let app = revocable(&watched);
    let genuine = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let token = token_of(&genuine).to_owned();
    let bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();

    let mut cases = 0;
    for bit in 0..bytes.len() * 8 {
        let mut flipped = bytes.clone();
        flipped[bit / 8] ^= 1 << (bit % 8);
        let cookie = format!("__Host-id={}", URL_SAFE_NO_PAD.encode(&flipped));
        assert_anonymous(&app, &watched, &cookie, &format!("bit {bit} flipped")).await;
        cases += 1;
    }
    for len in 0..token.len() {
        let cookie = format!("__Host-id={}", &token[..len]);
        assert_anonymous(&app, &watched, &cookie, &format!("truncated to {len}")).await;
        cases += 1;
    }
    let renamed = App::tokens(
        TokenSessions::new(),
        Keys::new(key(1)),
        |layer: SessionLayerBuilder| layer.with_cookie_name("__Host-other"),
    );
    let other_name = renamed
        .send("POST", "/set/a/1", None)
        .await
        .cookie()
        .unwrap();
    let other_token = other_name.strip_prefix("__Host-other=").unwrap();
    let stranger = App::tokens(TokenSessions::new(), Keys::new(key(9)), |layer| layer);
    let unknown_key = stranger
        .send("POST", "/set/a/1", None)
        .await
        .cookie()
        .unwrap();
    let signed = App::new()
        .send("POST", "/set/a/1", None)
        .await
        .cookie()
        .unwrap();
    for (cookie, what) in [
        (
            format!("__Host-id={other_token}"),
            "sealed for another cookie name",
        ),
        (unknown_key, "sealed by an unknown key"),
        (signed, "a store-mode signed token"),
        (format!("__Host-id={token}A"), "extended"),
        (format!("__Host-id={token}="), "padded"),
        (format!("__Host-id={}", "A".repeat(5000)), "oversized"),
        (
            format!("__Host-id={token}; __Host-id={token}"),
            "duplicated",
        ),
        ("__Host-id=%%%".to_owned(), "not base64url"),
    ] {
        assert_anonymous(&app, &watched, &cookie, what).await;
        cases += 1;
    }
    assert_eq!(cases, bytes.len() * 8 + token.len() + 8, "every case ran");
    let reply = app.send("GET", "/get/a", Some(&genuine)).await;
    assert_eq!(reply.body, "\"1\"", "the genuine token still opens");
}

#[tokio::test]
async fn expiry_is_read_from_the_sealed_timestamps() {
    let app = plain(|layer| {
        layer
            .with_idle_timeout(30 * MINUTE)
            .with_absolute_lifetime(120 * MINUTE)
            .with_refresh_after(5 * MINUTE)
    });
    let first = app.send("POST", "/set/a/1", None).await.cookie().unwrap();

    // Within refresh_after a read re-seals nothing; past it, it re-seals once.
    app.clock.advance(4 * MINUTE);
    let quiet = app.send("GET", "/get/a", Some(&first)).await;
    assert_eq!((quiet.status, quiet.cookie()), (StatusCode::OK, None));
    app.clock.advance(25 * MINUTE);
    let refreshed = app.send("GET", "/get/a", Some(&first)).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let mut current = refreshed.cookie().expect("re-sealed past refresh_after");

    // The old cookie, replayed, dies at its own idle deadline whatever the browser does.
    app.clock.advance(2 * MINUTE);
    let replayed = app.send("GET", "/get/a", Some(&first)).await;
    assert_eq!(replayed.status, StatusCode::NOT_FOUND, "idle deadline");
    assert_eq!(
        app.send("GET", "/get/a", Some(&current)).await.status,
        StatusCode::OK
    );

    // Kept active, the session still ends at its absolute deadline.
    let mut elapsed = 31 * MINUTE;
    while elapsed + 20 * MINUTE < 120 * MINUTE {
        app.clock.advance(20 * MINUTE);
        elapsed += 20 * MINUTE;
        let reply = app.send("GET", "/get/a", Some(&current)).await;
        assert_eq!(reply.status, StatusCode::OK, "alive at {elapsed:?}");
        current = reply.cookie().expect("re-sealed every 20 minutes");
    }
    app.clock.advance(120 * MINUTE - elapsed);
    let dead = app.send("GET", "/get/a", Some(&current)).await;
    assert_eq!(dead.status, StatusCode::NOT_FOUND, "absolute deadline");
    assert_eq!(dead.cookie(), None, "a dead cookie is left alone");
    let written = app.send("POST", "/set/b/2", Some(&current)).await;
    let fresh = written
        .cookie()
        .expect("writes to a dead token start a session");
    assert_eq!(app.send("GET", "/keys", Some(&fresh)).await.body, "b");
}

#[tokio::test]
async fn rotation_opens_old_tokens_and_reseals_them() {
    let old = App::tokens(TokenSessions::new(), Keys::new(key(1)), |l| l);
    let cookie = old.send("POST", "/set/a/1", None).await.cookie().unwrap();

    let upcoming = App::tokens(
        TokenSessions::new(),
        Keys::new(key(1)).with_upcoming(key(2)),
        |l| l,
    );
    let rotated = App::tokens(
        TokenSessions::new(),
        Keys::new(key(2)).with_retiring(key(1)),
        |l| l,
    );
    let reply = rotated.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(reply.body, "\"1\"");
    let resealed = reply.cookie().expect("a retiring key's token is re-sealed");
    assert_eq!(
        rotated
            .send("GET", "/get/a", Some(&resealed))
            .await
            .cookie(),
        None,
        "re-sealed once"
    );
    // An instance one step behind opens the new token with its upcoming key, as it is.
    let behind = upcoming.send("GET", "/get/a", Some(&resealed)).await;
    assert_eq!((behind.body.as_str(), behind.cookie()), ("\"1\"", None));
    // Once the old key is dropped, its tokens no longer open; the new ones do.
    let dropped = App::tokens(TokenSessions::new(), Keys::new(key(2)), |l| l);
    let stale = dropped.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(stale.status, StatusCode::NOT_FOUND);
    let kept = dropped.send("GET", "/get/a", Some(&resealed)).await;
    assert_eq!(kept.body, "\"1\"");
}

/// Upgrading a fleet from 0.1: instances sealing 0.1's format (`with_v1_sealing`) and
/// instances sealing the new one read each other's tokens; a token of the format an
/// instance does not seal is re-sealed once, in its format.
#[tokio::test]
async fn v1_and_v2_sealing_instances_read_each_others_tokens() {
    let v1 = App::tokens(
        TokenSessions::new().with_v1_sealing(true),
        Keys::new(key(1)),
        |l| l,
    );
    let v2 = App::tokens(TokenSessions::new(), Keys::new(key(1)), |l| l);
    let by_v1 = v1.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let by_v2 = v2.send("POST", "/set/a/2", None).await.cookie().unwrap();
    assert_eq!(
        token_of(&by_v1).len(),
        token_of(&by_v2).len() + 16,
        "a v1 token carries a 24-byte nonce, a v2 token a 12-byte one"
    );
    for (app, own, other) in [(&v1, &by_v1, &by_v2), (&v2, &by_v2, &by_v1)] {
        let reply = app.send("GET", "/get/a", Some(own)).await;
        assert_eq!(reply.cookie(), None, "its own format is kept");
        let reply = app.send("GET", "/get/a", Some(other)).await;
        assert_eq!(reply.status, StatusCode::OK);
        let resealed = reply.cookie().expect("the other format is re-sealed");
        // Both sessions hold one one-character value: the same length in one format.
        assert_eq!(token_of(&resealed).len(), token_of(own).len());
        let again = app.send("GET", "/get/a", Some(&resealed)).await;
        assert_eq!(
            (again.cookie(), again.body),
            (None, reply.body),
            "re-sealed once"
        );
    }
}

/// The whole `Set-Cookie` value, attributes and all, is within the default budget.
fn assert_within_budget(reply: &crate::Reply) {
    for cookie in reply.set_cookies() {
        assert!(cookie.len() <= 4096, "{} bytes", cookie.len());
    }
}

/// Fills a session with one-character values until the layer refuses one; the last
/// accepted `Set-Cookie` value.
async fn fill_to_the_budget(app: &App) -> String {
    let reply = app.send("POST", "/fill-many/1", None).await;
    assert_eq!(reply.status, StatusCode::OK);
    let count: usize = reply.body.parse().unwrap();
    assert!(count > 100, "{count} values");
    let set_cookies = reply.set_cookies();
    assert_eq!(set_cookies.len(), 1, "{set_cookies:?}");
    set_cookies.into_iter().next().unwrap()
}

#[tokio::test]
async fn the_budget_counts_the_whole_set_cookie_value() {
    // Default cookie: `__Host-id=...; HttpOnly; SameSite=Lax; Secure; Path=/`.
    let full = fill_to_the_budget(&plain(|layer| layer)).await;
    assert!(
        full.ends_with("; HttpOnly; SameSite=Lax; Secure; Path=/"),
        "{full}"
    );
    // One more value (about 14 bytes of token) would not have fitted.
    assert!(
        (4096 - 20..=4096).contains(&full.len()),
        "{} bytes",
        full.len()
    );

    // Every attribute counts: a domain, a path and a persistent cookie's Max-Age, under a
    // smaller budget.
    let app = App::tokens(
        TokenSessions::new().with_max_cookie_len(3000),
        Keys::new(key(1)),
        |layer| {
            layer
                .with_cookie_domain("shop.example")
                .with_cookie_path("/cart")
                .with_persistent_cookie(true)
        },
    );
    let full = fill_to_the_budget(&app).await;
    assert!(full.starts_with("__Secure-id="), "{full}");
    for attribute in ["; Domain=shop.example", "; Path=/cart", "; Max-Age=604800"] {
        assert!(full.contains(attribute), "{attribute} in {full}");
    }
    assert!(
        (3000 - 20..=3000).contains(&full.len()),
        "{} bytes",
        full.len()
    );
}

/// `SessionLayer::tokens` cannot fail: a budget past what browsers keep counts as
/// 4096 there, and one too small for any session makes writes fail, never a panic.
#[tokio::test]
async fn a_token_layer_keeps_an_unchecked_budget_within_what_browsers_keep() {
    let unchecked = |len: usize| {
        let layer = SessionLayer::tokens(
            TokenSessions::new().with_max_cookie_len(len),
            Keys::new(key(1)),
        );
        App {
            store: crate::Instrumented::default(),
            clock: crate::ManualClock::default(),
            router: crate::routes().layer(layer),
        }
    };
    let full = fill_to_the_budget(&unchecked(usize::MAX)).await;
    assert!(
        (4096 - 20..=4096).contains(&full.len()),
        "{} bytes",
        full.len()
    );
    let reply = unchecked(10).send("POST", "/fill/a/1", None).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.body.contains("would not fit in its cookie"),
        "{}",
        reply.body
    );
    assert_eq!(reply.set_cookies(), Vec::<String>::new());
}

#[test]
fn a_budget_browsers_would_not_keep_or_too_small_for_an_empty_session_fails_at_build() {
    let build = |len: usize, persistent: bool| {
        SessionLayer::tokens_builder(
            TokenSessions::new().with_max_cookie_len(len),
            Keys::new(key(1)),
        )
        .with_persistent_cookie(persistent)
        .build()
    };
    let error = build(4097, false).unwrap_err();
    assert_eq!(
        (error, error.to_string()),
        (
            ConfigError::TokenBudget {
                budget: 4097,
                min: 157,
                max: 4096
            },
            "the token-mode cookie budget of 4097 bytes (the whole Set-Cookie value) must be \
             at least 157 (an empty session with this cookie's name and attributes) and at \
             most 4096 (what browsers keep)"
                .to_owned()
        )
    );
    assert!(build(4096, false).is_ok());
    assert!(build(157, false).is_ok());
    assert_eq!(
        build(156, false).unwrap_err(),
        ConfigError::TokenBudget {
            budget: 156,
            min: 157,
            max: 4096
        }
    );
    // A persistent cookie's `Max-Age=604800` takes 16 bytes more.
    assert_eq!(
        build(157, true).unwrap_err(),
        ConfigError::TokenBudget {
            budget: 157,
            min: 173,
            max: 4096
        }
    );
    assert!(build(0, false).is_err());
    assert!(build(usize::MAX, false).is_err());
}

#[tokio::test]
async fn an_insert_past_the_budget_fails_where_it_happens() {
    let app = plain(|layer| layer);
    let first = app.send("POST", "/fill/a/1000", None).await;
    let cookie = first.cookie().unwrap();
    let second = app.send("POST", "/fill/b/1000", Some(&cookie)).await;
    assert_within_budget(&second);
    let cookie = second.cookie().unwrap();
    let third = app.send("POST", "/fill/c/1000", Some(&cookie)).await;
    assert_eq!(third.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(third.body.contains("its cookie"), "{}", third.body);
    assert_eq!(third.cookie(), None);
    assert_eq!(app.send("GET", "/keys", Some(&cookie)).await.body, "a,b");

    // A user binding is counted too: write-back refuses to seal past the budget.
    let user = "u".repeat(3000);
    let bound = app
        .send("POST", &format!("/bind/{user}"), Some(&cookie))
        .await;
    assert_eq!(bound.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        bound.set_cookies(),
        Vec::<String>::new(),
        "no oversized cookie"
    );
}

#[tokio::test]
async fn capacity_in_values_of_typical_sizes() {
    // Each value under its own short key ("k0", "k1", ...), a JSON string of `len`
    // characters, default cookie name `__Host-id`, no user.
    let app = plain(|layer| layer);
    // The smallest session, one short value: 128 bytes of name and value, where a
    // store-mode cookie is always 86 (`__Host-id=` and a 76-character token).
    let small = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    assert_eq!(small.len(), 128);
    let signed = crate::App::new().send("POST", "/set/a/1", None).await;
    assert_eq!(signed.cookie().unwrap().len(), 86);
    let mut capacity = Vec::new();
    for len in [8, 32, 100, 500, 1000] {
        let reply = app.send("POST", &format!("/fill-many/{len}"), None).await;
        assert_within_budget(&reply);
        let pair_len = reply.cookie().unwrap().len();
        capacity.push((len, reply.body.parse::<usize>().unwrap(), pair_len));
    }
    assert_eq!(
        capacity
            .iter()
            .map(|(len, n, _)| (*len, *n))
            .collect::<Vec<_>>(),
        [(8, 170), (32, 72), (100, 27), (500, 5), (1000, 2)],
        "{capacity:?}"
    );
}

#[tokio::test]
async fn logout_and_new_ids_revoke_tokens() {
    let watched = Watched::default();
    let app = revocable(&watched);
    let anonymous = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    assert_eq!(watched.calls(), 0, "a new session needs no call");
    let login = app.send("POST", "/login/alice", Some(&anonymous)).await;
    let alice = login.cookie().unwrap();
    assert_eq!(
        watched.calls(),
        2,
        "cycle_id unread: one check, one revocation"
    );
    let replay = app.send("GET", "/get/a", Some(&anonymous)).await;
    assert_eq!(
        replay.status,
        StatusCode::NOT_FOUND,
        "cycle_id revoked the old ID"
    );

    let calls = watched.calls();
    let hot = app.send("GET", "/get/user", Some(&alice)).await;
    assert_eq!(hot.body, "\"alice\"");
    assert_eq!(
        watched.calls() - calls,
        1,
        "one revocation check per request"
    );

    let logout = app.send("POST", "/logout", Some(&alice)).await;
    assert!(logout.removes_cookie());
    let replay = app.send("GET", "/get/user", Some(&alice)).await;
    assert_eq!(
        replay.status,
        StatusCode::NOT_FOUND,
        "logout revoked the token"
    );
    let written = app.send("POST", "/set/b/2", Some(&alice)).await;
    let fresh = written
        .cookie()
        .expect("a write with a revoked token starts anew");
    assert_eq!(app.send("GET", "/keys", Some(&fresh)).await.body, "b");
}

#[tokio::test]
async fn log_out_everywhere_revokes_every_token_of_the_user() {
    let watched = Watched::default();
    let (one, two) = (revocable(&watched), revocable(&watched));
    let laptop = one.login("alice").await;
    let phone = two.login("alice").await;
    let bob = two.login("bob").await;
    let reply = one.send("POST", "/logout-everywhere", Some(&laptop)).await;
    assert_eq!(reply.body, "everywhere");
    for (app, cookie) in [
        (&one, &laptop),
        (&two, &laptop),
        (&one, &phone),
        (&two, &phone),
    ] {
        let reply = app.send("GET", "/get/user", Some(cookie)).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        one.send("GET", "/get/user", Some(&bob)).await.body,
        "\"bob\""
    );
    // A login after the logout is not affected.
    for app in [&one, &two] {
        app.clock.advance(Duration::from_millis(1));
    }
    let again = two.login("alice").await;
    assert_eq!(
        one.send("GET", "/get/user", Some(&again)).await.body,
        "\"alice\""
    );
}

#[tokio::test]
async fn concurrent_writes_race_and_an_old_cookie_brings_back_old_state() {
    let app = plain(|layer| layer);
    let first = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    // Two requests sent with the same cookie, as concurrent ones are: each response
    // seals its own copy, and whichever the browser stores last is the session.
    let with_b = app
        .send("POST", "/set/b/2", Some(&first))
        .await
        .cookie()
        .unwrap();
    let with_c = app
        .send("POST", "/set/c/3", Some(&first))
        .await
        .cookie()
        .unwrap();
    assert_eq!(app.send("GET", "/keys", Some(&with_b)).await.body, "a,b");
    assert_eq!(app.send("GET", "/keys", Some(&with_c)).await.body, "a,c");
    // A cookie from before a change still opens, with the state it sealed.
    let removed = app
        .send("POST", "/remove/a", Some(&with_c))
        .await
        .cookie()
        .unwrap();
    assert_eq!(app.send("GET", "/keys", Some(&removed)).await.body, "c");
    assert_eq!(app.send("GET", "/keys", Some(&with_c)).await.body, "a,c");
}

/// As in store mode: a request that loaded the session before a login cycled its ID
/// answers 409 with no cookie, instead of re-sealing the revoked ID in a cookie that would
/// replace the login's.
#[tokio::test]
async fn a_request_that_began_before_the_login_gets_409_and_no_cookie() {
    let watched = Watched::default();
    crate::atomic::a_login_races_a_request_that_began_before_it(revocable(&watched)).await;
}

/// What `with_fail_open(true)` does, exactly: while the revocation store does not answer,
/// no revocation is enforced, those recorded before the outage included.
#[tokio::test]
async fn failing_open_ignores_every_revocation_while_the_store_is_down() {
    let watched = Watched::default();
    let tokens = TokenSessions::new()
        .with_revocations(watched.clone())
        .with_fail_open(true);
    let app = App::tokens(tokens, Keys::new(key(1)), |layer| layer);
    let cookie = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let logout = app.send("POST", "/logout", Some(&cookie)).await;
    assert_eq!(logout.status, StatusCode::OK);
    let refused = app.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_FOUND,
        "revoked while the store answers"
    );
    watched.set_failing(true);
    let accepted = app.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(
        (accepted.status, accepted.body.as_str()),
        (StatusCode::OK, "\"1\""),
        "a logout made before the outage does not hold during it"
    );
    watched.set_failing(false);
    let refused = app.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(
        refused.status,
        StatusCode::NOT_FOUND,
        "and holds again after it"
    );
}

#[tokio::test]
async fn an_unknown_revocation_state_fails_closed_by_default_or_open() {
    let watched = Watched::default();
    let closed = revocable(&watched);
    let cookie = closed
        .send("POST", "/set/a/1", None)
        .await
        .cookie()
        .unwrap();
    watched.set_failing(true);
    let reply = closed.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(reply.headers[header::RETRY_AFTER], "1");
    assert_eq!(reply.set_cookies(), Vec::<String>::new(), "cookie kept");
    let logout = closed.send("POST", "/logout", Some(&cookie)).await;
    assert_eq!(
        logout.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "logout unrecorded"
    );
    assert!(!logout.removes_cookie());

    let tokens = TokenSessions::new()
        .with_revocations(watched.clone())
        .with_fail_open(true);
    let open = App::tokens(tokens, Keys::new(key(1)), |layer| layer);
    let reply = open.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (StatusCode::OK, "\"1\"")
    );
    watched.set_failing(false);
    assert_eq!(
        closed.send("GET", "/get/a", Some(&cookie)).await.body,
        "\"1\""
    );
    // A revocation store that does not answer: the layer's store timeout ends the wait.
    let tokens = TokenSessions::new().with_revocations(watched.clone());
    let timed = App::tokens(tokens, Keys::new(key(1)), |layer| {
        layer.with_store_timeout(Duration::from_millis(50))
    });
    watched.set_stalling(true);
    let started = std::time::Instant::now();
    let reply = timed.send("GET", "/get/a", Some(&cookie)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn token_mode_refuses_a_session_limit_and_debug_shows_no_secret() {
    let built = tower_stateless::SessionLayer::tokens_builder(TokenSessions::new(), key(1))
        .with_max_sessions_per_user(3)
        .build();
    assert!(matches!(
        built,
        Err(tower_stateless::ConfigError::NeedsStore(_))
    ));
    let text = format!(
        "{:?}",
        tower_stateless::SessionLayer::tokens(TokenSessions::new(), key(1))
    );
    assert!(text.contains("Tokens"), "{text}");
    assert!(!text.contains("[1, 1"), "{text}");
}

#[tokio::test]
async fn sealed_sessions_travel_in_a_header_bound_to_its_name() {
    let name = header::HeaderName::from_static("x-session");
    let app = plain(|layer| layer.with_header(name.clone()));
    let send = |method: &str, path: &str, token: Option<&str>| {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(name.clone(), token);
        }
        app.request(request.body(Body::empty()).unwrap())
    };
    let first = send("POST", "/set/a/1", None).await;
    assert!(first.set_cookies().is_empty(), "no cookie in header mode");
    let token = first.headers["x-session"].to_str().unwrap().to_owned();
    let read = send("GET", "/get/a", Some(&token)).await;
    assert_eq!(read.body, "\"1\"");
    assert!(
        !read.headers.contains_key("x-session"),
        "not resent when unchanged"
    );
    // A token sealed for the cookie does not open as the header's, nor the reverse.
    let cookie = plain(|layer| layer).send("POST", "/set/a/1", None).await;
    let cookie_token = token_of(&cookie.cookie().unwrap()).to_owned();
    assert_eq!(
        send("GET", "/get/a", Some(&cookie_token)).await.status,
        StatusCode::NOT_FOUND
    );
    let logout = send("POST", "/logout", Some(&token)).await;
    assert_eq!(logout.headers["x-session"], "", "an empty header ends it");
}
