//! The shop with sessions in a real PostgreSQL (`DATABASE_URL`), through two instances
//! in process on one database: no lost adds, no revived logouts, no stale reads, and a
//! restart of PostgreSQL is a 503 then service again, without restarting the shop.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use shop::{AppState, Chunks};
use tower::ServiceExt;
use tower_stateless::{Key, PostgresStore, SessionLayer};

use support::PostgresServer;

/// One shop instance in process, with its own store (its own connection pool).
#[derive(Clone)]
struct Shop {
    app: shop::App,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
    /// A new session cookie, if the response set one.
    cookie: Option<String>,
}

impl Shop {
    async fn on(server: &PostgresServer) -> Self {
        let store = PostgresStore::builder(server.url())
            .max_connections(16)
            .connect()
            .await
            .unwrap();
        // A generous store timeout: two cores shared with other builds; an outage still
        // fails fast (the pool gives up on a refused connection at once).
        let layer = SessionLayer::builder(store.clone(), Key::from_bytes(&[7; 32]).unwrap())
            .with_store_timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let state = AppState {
            store,
            chunks: Chunks::memory(),
            objects: None,
            token_mode: false,
            uploads_seal: None,
        };
        Self {
            app: shop::app(state, layer, "postgres-test", None),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let response = (self.app.clone())
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let cookie = (parts.headers.get_all(header::SET_COOKIE).iter())
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|pair| !pair.ends_with('='));
        let bytes = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            cookie,
        }
    }

    async fn login(&self, user: &str) -> String {
        let reply = (self.call("POST", "/login", None, Some(json!({ "user": user })))).await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.cookie.unwrap()
    }

    async fn add(&self, cookie: &str, sku: &str) -> StatusCode {
        let body = json!({"sku": sku, "qty": 1});
        (self
            .call("POST", "/cart/items", Some(cookie), Some(body))
            .await)
            .status
    }
}

/// Two instances on one fresh PostgreSQL.
async fn two_instances() -> Option<(PostgresServer, Shop, Shop)> {
    let server = PostgresServer::start()?;
    let a = Shop::on(&server).await;
    let b = Shop::on(&server).await;
    Some((server, a, b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_through_two_instances_lose_nothing() {
    let Some((_server, a, b)) = two_instances().await else {
        return;
    };
    // 200 concurrent adds of distinct SKUs to one session, alternating instances.
    let cookie = a.login("distinct").await;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..200 {
        let (shop, cookie) = (if n % 2 == 0 { &a } else { &b }.clone(), cookie.clone());
        requests.spawn(async move { shop.add(&cookie, &format!("sku-{n:03}")).await });
    }
    for status in requests.join_all().await {
        assert_eq!(status, StatusCode::OK);
    }
    let cart = b.call("GET", "/cart", Some(&cookie), None).await;
    let distinct = cart.json["items"].as_array().unwrap().len();

    // 200 adds of one SKU by 16 concurrent clients, alternating instances.
    let cookie = a.login("same-sku").await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..16 {
        let (a, b, cookie) = (a.clone(), b.clone(), cookie.clone());
        clients.spawn(async move {
            let mut acknowledged = 0u64;
            for n in (client..200).step_by(16) {
                let shop = if n % 2 == 0 { &a } else { &b };
                assert_eq!(shop.add(&cookie, "socks").await, StatusCode::OK);
                acknowledged += 1;
            }
            acknowledged
        });
    }
    let acknowledged: u64 = clients.join_all().await.into_iter().sum();
    let item = (a.call("GET", "/cart/items/socks", Some(&cookie), None)).await;
    let qty = item.json["qty"].as_u64().unwrap();
    eprintln!(
        "postgres, two instances: {distinct} of 200 distinct-SKU adds kept; \
         {qty} of {acknowledged} same-SKU adds counted"
    );
    assert_eq!(distinct, 200, "no distinct-key add is lost");
    assert_eq!((acknowledged, qty), (200, 200), "no same-key add is lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_racing_writers_on_both_instances_stays_a_logout() {
    let Some((server, a, b)) = two_instances().await else {
        return;
    };
    let mut outcomes = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..50 {
        let cookie = a.login(&format!("racer-{round}")).await;
        let start = Arc::new(tokio::sync::Barrier::new(9));
        let mut racers = tokio::task::JoinSet::new();
        for writer in 0..8 {
            let shop = if writer % 2 == 0 { &a } else { &b }.clone();
            let (cookie, start) = (cookie.clone(), start.clone());
            racers.spawn(async move {
                start.wait().await;
                let body = json!({"sku": format!("w{writer}"), "qty": 1});
                shop.call("POST", "/cart/items", Some(&cookie), Some(body))
                    .await
            });
        }
        {
            let (shop, cookie, start) = (a.clone(), cookie.clone(), start.clone());
            racers.spawn(async move {
                start.wait().await;
                shop.call("POST", "/logout", Some(&cookie), None).await
            });
        }
        let mut handed_out = Vec::new();
        for reply in racers.join_all().await {
            assert!(
                !reply.status.is_server_error(),
                "round {round}: {}",
                reply.status
            );
            *outcomes.entry(reply.status.as_u16()).or_default() += 1;
            handed_out.extend(reply.cookie);
        }
        for cookie in handed_out.iter().chain([&cookie]) {
            for shop in [&a, &b] {
                let me = shop.call("GET", "/me", Some(cookie), None).await;
                assert_eq!(
                    me.status,
                    StatusCode::UNAUTHORIZED,
                    "round {round}: a cookie still works"
                );
            }
        }
    }
    eprintln!("postgres logout race outcomes (status: count) over 50 rounds: {outcomes:?}");
    assert_eq!(
        server.psql("SELECT count(*) FROM tower_stateless_sessions WHERE user_id LIKE 'racer-%'"),
        "0",
        "no session survived its logout"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_on_one_instance_is_read_on_the_other_at_once() {
    let Some((_server, a, b)) = two_instances().await else {
        return;
    };
    let cookie = a.login("reader").await;
    let mut stale = 0;
    for n in 0..100 {
        let (writer, reader) = if n % 2 == 0 { (&a, &b) } else { (&b, &a) };
        assert_eq!(writer.add(&cookie, "socks").await, StatusCode::OK);
        let item = (reader.call("GET", "/cart/items/socks", Some(&cookie), None)).await;
        if item.json["qty"].as_u64() != Some(n + 1) {
            stale += 1;
        }
    }
    // A logout on one instance ends the session on the other at once.
    let logout = a.call("POST", "/logout", Some(&cookie), None).await;
    assert!(logout.status.is_success(), "{}", logout.status);
    let me = b.call("GET", "/me", Some(&cookie), None).await;
    eprintln!("postgres: {stale} stale reads of 100 across instances");
    assert_eq!(stale, 0, "every read sees the other instance's write");
    assert_eq!(
        me.status,
        StatusCode::UNAUTHORIZED,
        "the logout is seen at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_is_a_503_and_service_returns_without_a_restart() {
    let Some((mut server, a, b)) = two_instances().await else {
        return;
    };
    let cookie = a.login("patient").await;
    assert_eq!(a.add(&cookie, "socks").await, StatusCode::OK);
    server.stop();

    for shop in [&a, &b] {
        let reply = shop.call("GET", "/me", Some(&cookie), None).await;
        assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reply.headers.contains_key(header::RETRY_AFTER));
        assert!(!reply.headers.contains_key(header::SET_COOKIE), "no logout");
        assert_eq!(
            shop.add(&cookie, "hat").await,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            (shop.call("GET", "/healthz", None, None).await).status,
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    // PostgreSQL keeps its data: once it is back the same processes serve the same
    // session, still logged in, with its cart.
    server.restart();
    let back = Instant::now();
    for shop in [&a, &b] {
        loop {
            let me = shop.call("GET", "/me", Some(&cookie), None).await;
            if me.status == StatusCode::OK {
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "serving again within 10 s of the restart (last: {})",
                me.status
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    eprintln!(
        "postgres restart: both instances serve the session again {:?} after it",
        back.elapsed()
    );
    assert_eq!(b.add(&cookie, "socks").await, StatusCode::OK);
    let item = (a.call("GET", "/cart/items/socks", Some(&cookie), None)).await;
    assert_eq!(item.json["qty"].as_u64(), Some(2), "the cart survived");
}
