//! The shop on a real Redis (and a real Redis Cluster), in process: no lost updates,
//! no revived logouts, round trips read off `INFO commandstats`, outages, and no raw
//! session ID anywhere in Redis; with encryption at rest, no user name or SKU either.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http_body_util::BodyExt;
use redis::AsyncCommands;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use shop::{AppState, Chunks};
use tower::ServiceExt;
use tower_stateless::store::{RedisStoreBuilder, RedisTarget, SessionStore};
use tower_stateless::{Key, Keys, RedisStore, SessionLayer};

use support::{RedisCluster, RedisServer};

/// The shop in process; every cookie it hands out is remembered for the raw-ID scan.
#[derive(Clone)]
struct Shop {
    app: shop::App,
    issued: Arc<Mutex<HashSet<String>>>,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    json: Value,
    /// A new session cookie (`__Host-id=...`), if the response set one.
    cookie: Option<String>,
}

impl Shop {
    async fn on(store: RedisStore) -> Self {
        let chunks = Chunks::redis(store.connection(), digests());
        Self::with(store, chunks, None)
    }

    /// The shop as `SESSION_ENCRYPT=1` runs it: sessions and upload chunks sealed.
    async fn encrypted(server: &RedisServer) -> Self {
        let keys = Keys::new(Key::from_bytes(&[7; 32]).unwrap());
        let builder = RedisStore::builder(server.url());
        let store = shop::serve::sealed_on_redis(builder, &keys).await.unwrap();
        let chunks = Chunks::redis(store.get_ref().connection(), digests());
        let seal = shop::UploadSeal::from_key_bytes(&[[7u8; 32]]);
        Self::with(store, chunks, seal)
    }

    fn with<S: SessionStore + Clone>(
        store: S,
        chunks: Chunks,
        uploads_seal: Option<shop::UploadSeal>,
    ) -> Self {
        let layer = SessionLayer::builder(store.clone(), Key::from_bytes(&[7; 32]).unwrap())
            .with_store_timeout(Duration::from_millis(500))
            .build()
            .unwrap();
        let app = shop::app(
            AppState {
                store,
                chunks,
                objects: None,
                token_mode: false,
                uploads_seal,
            },
            layer,
            "redis-test",
            None,
        );
        Self {
            app,
            issued: Arc::default(),
        }
    }

    async fn single(server: &RedisServer) -> Self {
        Self::on(RedisStore::connect(&server.url()).await.unwrap()).await
    }

    async fn cluster(cluster: &RedisCluster) -> Self {
        let nodes = RedisTarget::cluster(cluster.nodes());
        Self::on(RedisStore::connect(nodes).await.unwrap()).await
    }

    /// An instance with the coherent cache on, as the shop runs by default.
    async fn cached(store: RedisStoreBuilder) -> Self {
        Self::on(store.cache(10_000).connect().await.unwrap()).await
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
        let response = self
            .app
            .clone()
            .oneshot(request.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let cookie = parts
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
            .find(|pair| !pair.ends_with('='));
        if let Some(cookie) = &cookie {
            self.issued.lock().unwrap().insert(cookie.clone());
        }
        let bytes = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            cookie,
        }
    }

    /// `PUT` of raw bytes (an upload chunk); the status.
    async fn put_bytes(&self, path: &str, cookie: &str, bytes: Vec<u8>) -> StatusCode {
        let request = Request::builder()
            .method("PUT")
            .uri(path)
            .header(header::COOKIE, cookie)
            .body(Body::from(bytes))
            .unwrap();
        self.app.clone().oneshot(request).await.unwrap().status()
    }

    async fn login(&self, user: &str) -> String {
        let reply = self
            .call("POST", "/login", None, Some(json!({ "user": user })))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        let cookie = reply.cookie.unwrap();
        // The shop keeps the layer's default name for a Secure cookie.
        assert!(cookie.starts_with("__Host-id="), "{cookie}");
        cookie
    }

    /// The raw session IDs handed out so far (the part of each token before the tag).
    fn raw_ids(&self) -> Vec<String> {
        let issued = self.issued.lock().unwrap();
        issued
            .iter()
            .map(|c| {
                c.split_once('=')
                    .unwrap()
                    .1
                    .split_once('.')
                    .unwrap()
                    .0
                    .to_owned()
            })
            .collect()
    }
}

/// Every key and every value in one Redis node must be free of raw session IDs.
async fn assert_no_raw_ids(url: &str, raw_ids: &[String]) {
    assert_absent(url, raw_ids).await;
}

/// No key, hash field, member or value in one Redis node holds any of `secrets`.
async fn assert_absent(url: &str, raw_ids: &[String]) {
    assert!(!raw_ids.is_empty());
    let mut conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut scanned = 0;
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        let mut text = String::from_utf8_lossy(&key).into_owned();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "hash" => conn.hgetall::<_, Vec<Vec<u8>>>(&key).await.unwrap(),
            "zset" => conn.zrange(&key, 0, -1).await.unwrap(),
            "set" => conn.smembers(&key).await.unwrap(),
            "string" => vec![conn.get(&key).await.unwrap()],
            other => panic!("unexpected key type {other}"),
        };
        for value in values {
            text.push_str(&String::from_utf8_lossy(&value));
        }
        for raw in raw_ids {
            assert!(
                !text.contains(raw.as_str()),
                "{raw:?} found in Redis key {:?}",
                String::from_utf8_lossy(&key)
            );
        }
        scanned += 1;
    }
    assert!(scanned > 0, "nothing to scan");
}

/// 200 concurrent requests on one session, each adding a distinct SKU: all 200 land.
async fn no_lost_updates(shop: &Shop) -> usize {
    let cookie = shop.login("concurrent").await;
    let mut requests = tokio::task::JoinSet::new();
    for n in 0..200 {
        let (shop, cookie) = (shop.clone(), cookie.clone());
        requests.spawn(async move {
            let body = json!({"sku": format!("sku-{n:03}"), "qty": 1});
            shop.call("POST", "/cart/items", Some(&cookie), Some(body))
                .await
                .status
        });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.unwrap(), StatusCode::OK);
    }
    let cart = shop.call("GET", "/cart", Some(&cookie), None).await;
    cart.json["items"].as_array().unwrap().len()
}

/// 16 clients add the same SKU 200 times in all, alternating between two instances on
/// one store: every acknowledged add counts. Returns the final quantity.
async fn same_sku_adds_lose_nothing(a: &Shop, b: &Shop) -> u64 {
    let cookie = a.login("same-sku").await;
    let mut clients = tokio::task::JoinSet::new();
    for client in 0..16 {
        let (a, b, cookie) = (a.clone(), b.clone(), cookie.clone());
        clients.spawn(async move {
            let mut acknowledged = 0;
            for n in (client..200).step_by(16) {
                let instance = if n % 2 == 0 { &a } else { &b };
                let body = json!({"sku": "socks", "qty": 1});
                let reply = instance
                    .call("POST", "/cart/items", Some(&cookie), Some(body))
                    .await;
                assert_eq!(reply.status, StatusCode::OK);
                acknowledged += 1;
            }
            acknowledged
        });
    }
    let acknowledged: u64 = clients.join_all().await.into_iter().sum();
    assert_eq!(acknowledged, 200);
    let item = b
        .call("GET", "/cart/items/socks", Some(&cookie), None)
        .await;
    item.json["qty"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_session_all_land_on_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    assert_eq!(no_lost_updates(&shop).await, 200);
    let other = Shop::single(&server).await;
    let qty = same_sku_adds_lose_nothing(&shop, &other).await;
    eprintln!("same SKU through two instances on one Redis: 200 acknowledged, qty {qty}");
    assert_eq!(qty, 200, "no acknowledged add of the same SKU is lost");
    assert_no_raw_ids(&server.url(), &shop.raw_ids()).await;
}

/// `SESSION_ENCRYPT=1`: logins, cart adds from two instances, a checkout, a logout; the
/// shop works as without encryption, and a scan of every Redis key, hash field and value
/// finds no user name, no SKU, no cart key and no raw session ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_sessions_leave_nothing_readable_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (
        Shop::encrypted(&server).await,
        Shop::encrypted(&server).await,
    );
    let users = ["alice-the-shopper", "bob-the-buyer", "carol-leaves"];
    let skus = ["sku-secret-socks", "sku-hidden-hat", "sku-private-pen"];
    let mut carts = Vec::new();
    for (n, user) in users.iter().enumerate() {
        let cookie = a.login(user).await;
        for (m, sku) in skus.iter().enumerate().take(n + 1) {
            for instance in [&a, &b] {
                let body = json!({"sku": sku, "qty": m + 1});
                let reply = instance
                    .call("POST", "/cart/items", Some(&cookie), Some(body))
                    .await;
                assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.json);
            }
        }
        let me = b.call("GET", "/me", Some(&cookie), None).await;
        assert_eq!(me.json["user"], *user, "{:?}", me.json);
        carts.push(cookie);
    }
    let item = b
        .call("GET", "/cart/items/sku-hidden-hat", Some(&carts[2]), None)
        .await;
    assert_eq!(item.json["qty"], 4, "two adds of 2, from two instances");
    let order = a.call("POST", "/checkout", Some(&carts[1]), None).await;
    assert_eq!(order.status, StatusCode::OK, "{:?}", order.json);
    let cart = a.call("GET", "/cart", Some(&carts[1]), None).await;
    assert_eq!(
        cart.json["items"].as_array().unwrap().len(),
        0,
        "checked out"
    );
    let logout = a.call("POST", "/logout", Some(&carts[2]), None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);

    let mut secrets = a.raw_ids();
    secrets.extend(b.raw_ids());
    secrets.extend(users.iter().map(|user| user.to_string()));
    secrets.extend(skus.iter().map(|sku| sku.to_string()));
    secrets.extend(["cart:", "alice", "bob", "secret", "hidden"].map(String::from));
    assert_absent(&server.url(), &secrets).await;

    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let sessions: Vec<String> = conn.keys("session:*").await.unwrap();
    assert!(!sessions.is_empty());
    for key in sessions {
        assert!(key.starts_with(shop::serve::SEALED_PREFIX), "{key}");
    }
}

/// `SESSION_ENCRYPT=1`: an upload's chunks, read straight from Redis, hold none of the
/// uploaded bytes (no 32-byte run of them), and completing it (on the other instance)
/// gives the SHA-256 of exactly what was sent. A chunk changed at rest fails to open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn encrypted_uploads_leave_no_plaintext_in_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (
        Shop::encrypted(&server).await,
        Shop::encrypted(&server).await,
    );
    let cookie = a.login("uploader").await;
    // Two chunks: one of the least size, and a short last one. Text, so that any run of
    // it left in clear would show.
    let line = b"a line of a confidential upload, easy to spot in a dump;\n";
    let size = shop::MIN_CHUNK + 1000;
    let bytes: Vec<u8> = line.iter().copied().cycle().take(size).collect();
    let chunks = [&bytes[..shop::MIN_CHUNK], &bytes[shop::MIN_CHUNK..]];
    let upload = async |shop: &Shop| {
        let body = json!({"name": "secret.txt", "size": size});
        let created = shop
            .call("POST", "/uploads", Some(&cookie), Some(body))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.json);
        let id = created.json["upload"].as_str().unwrap().to_owned();
        for (n, chunk) in chunks.iter().enumerate() {
            let path = format!("/uploads/{id}/chunks/{n}");
            let status = shop.put_bytes(&path, &cookie, chunk.to_vec()).await;
            assert_eq!(status, StatusCode::OK, "chunk {n}");
        }
        id
    };
    let id = upload(&a).await;
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut stored: Vec<Vec<u8>> = Vec::new();
    for (n, chunk) in chunks.iter().enumerate() {
        let key = format!("shop:chunk:{{{id}}}:{n}");
        let at_rest: Vec<u8> = conn.get(&key).await.unwrap();
        assert_eq!(
            at_rest.len(),
            chunk.len() + shop::UploadSeal::OVERHEAD,
            "{key}"
        );
        for window in line.windows(32) {
            assert!(
                !at_rest.windows(32).any(|w| w == window),
                "{key} holds uploaded text"
            );
        }
        stored.push(at_rest);
    }
    let done = b
        .call(
            "POST",
            &format!("/uploads/{id}/complete"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.json);
    let expected: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(done.json, json!({"bytes": size, "sha256": expected}));

    // Sealed for its upload and place: chunk 0 of one upload copied over chunk 0 of
    // another does not open there.
    let other = upload(&a).await;
    let _: () = conn
        .set(format!("shop:chunk:{{{other}}}:0"), stored[0].clone())
        .await
        .unwrap();
    let moved = b
        .call(
            "POST",
            &format!("/uploads/{other}/complete"),
            Some(&cookie),
            None,
        )
        .await;
    assert_eq!(moved.status, StatusCode::CONFLICT, "{:?}", moved.json);
}

/// Checkout racing adds of the same SKU: what the order took plus what stays in the cart
/// is every acknowledged add.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkout_takes_only_what_it_ordered() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    let cookie = shop.login("checkout").await;
    let add = json!({"sku": "socks", "qty": 1});
    for round in 0..20 {
        let mut adds = tokio::task::JoinSet::new();
        for _ in 0..10 {
            let (shop, cookie, add) = (shop.clone(), cookie.clone(), add.clone());
            adds.spawn(async move {
                let reply = shop
                    .call("POST", "/cart/items", Some(&cookie), Some(add))
                    .await;
                u64::from(reply.status == StatusCode::OK)
            });
        }
        let order = shop.call("POST", "/checkout", Some(&cookie), None).await;
        let acknowledged: u64 = adds.join_all().await.into_iter().sum();
        let ordered = match order.status {
            StatusCode::OK => order.json["items"][0]["qty"].as_u64().unwrap(),
            // Checkout ran before any add landed.
            StatusCode::CONFLICT => 0,
            other => panic!("round {round}: checkout answered {other}"),
        };
        let left = shop
            .call("GET", "/cart/items/socks", Some(&cookie), None)
            .await;
        let left = left.json["qty"].as_u64().unwrap();
        assert_eq!(
            ordered + left,
            acknowledged,
            "round {round}: an add was lost"
        );
        shop.call("POST", "/checkout", Some(&cookie), None).await;
    }
}

#[tokio::test]
async fn a_cart_line_that_would_overflow_is_a_400() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    let cookie = shop.login("greedy").await;
    let add = |qty: i64| json!({"sku": "socks", "qty": qty});
    for bad in [0, 1001, -1] {
        let reply = shop
            .call("POST", "/cart/items", Some(&cookie), Some(add(bad)))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "qty {bad}");
    }
    let reply = shop
        .call("POST", "/cart/items", Some(&cookie), Some(add(1)))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    // Push the stored line to the edge of i64 behind the shop's back.
    let raw = shop.raw_ids().into_iter().next().unwrap();
    let hashed = URL_SAFE_NO_PAD.encode(Sha256::digest(raw.as_bytes()));
    server.cli(&[
        "HSET",
        &format!("session:{{{hashed}}}"),
        "cart:socks",
        &(i64::MAX - 1).to_string(),
    ]);
    let reply = shop
        .call("POST", "/cart/items", Some(&cookie), Some(add(2)))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.json["error"]
            .as_str()
            .unwrap()
            .contains("cannot hold"),
        "{}",
        reply.json
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_to_one_session_all_land_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let shop = Shop::cluster(&cluster).await;
    assert_eq!(no_lost_updates(&shop).await, 200);
    let other = Shop::cluster(&cluster).await;
    let qty = same_sku_adds_lose_nothing(&shop, &other).await;
    eprintln!("same SKU through two instances on a Cluster: 200 acknowledged, qty {qty}");
    assert_eq!(qty, 200, "no acknowledged add of the same SKU is lost");
    for node in cluster.servers() {
        let raw = shop.raw_ids();
        let keys = node.cli(&["DBSIZE"]);
        if keys != "0" {
            assert_no_raw_ids(&node.url(), &raw).await;
        }
    }
}

/// The same lost-update and logout-race checks with the coherent cache on in both
/// instances (`SESSION_CACHE`, the shop's default on Redis).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_cache_on_redis_nothing_is_lost_and_a_logout_stays() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let builder = || RedisStore::builder(server.url());
    let (shop, other) = (Shop::cached(builder()).await, Shop::cached(builder()).await);
    assert_eq!(no_lost_updates(&shop).await, 200);
    assert_eq!(same_sku_adds_lose_nothing(&shop, &other).await, 200);
    logout_is_never_undone(&shop).await;
    let sessions = server.cli(&["--scan", "--pattern", "session:{*"]);
    let logged_in = sessions.lines().count();
    assert_eq!(
        logged_in, 2,
        "only the two lost-update logins are left: {sessions}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_cache_on_a_cluster_nothing_is_lost_and_a_logout_stays() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let builder = || RedisStore::builder(RedisTarget::cluster(cluster.nodes()));
    let (shop, other) = (Shop::cached(builder()).await, Shop::cached(builder()).await);
    assert_eq!(no_lost_updates(&shop).await, 200);
    assert_eq!(same_sku_adds_lose_nothing(&shop, &other).await, 200);
    logout_is_never_undone(&shop).await;
}

/// A logout racing with 8 writers, 50 times: the session stays destroyed, and no
/// response hands out a cookie that works.
async fn logout_is_never_undone(shop: &Shop) {
    let mut outcomes = std::collections::BTreeMap::<u16, usize>::new();
    for round in 0..50 {
        let user = format!("racer-{round}");
        let cookie = shop.login(&user).await;
        let start = Arc::new(tokio::sync::Barrier::new(9));
        let mut racers = tokio::task::JoinSet::new();
        for writer in 0..8 {
            let (shop, cookie, start) = (shop.clone(), cookie.clone(), start.clone());
            racers.spawn(async move {
                start.wait().await;
                let body = json!({"sku": format!("w{writer}"), "qty": 1});
                shop.call("POST", "/cart/items", Some(&cookie), Some(body))
                    .await
            });
        }
        {
            let (shop, cookie, start) = (shop.clone(), cookie.clone(), start.clone());
            racers.spawn(async move {
                start.wait().await;
                shop.call("POST", "/logout", Some(&cookie), None).await
            });
        }
        let mut handed_out = Vec::new();
        while let Some(reply) = racers.join_next().await {
            let reply = reply.unwrap();
            assert!(
                !reply.status.is_server_error(),
                "round {round}: {}",
                reply.status
            );
            *outcomes.entry(reply.status.as_u16()).or_default() += 1;
            handed_out.extend(reply.cookie);
        }
        for cookie in handed_out.iter().chain([&cookie]) {
            let me = shop.call("GET", "/me", Some(cookie), None).await;
            assert_eq!(
                me.status,
                StatusCode::UNAUTHORIZED,
                "round {round}: a cookie still works"
            );
        }
    }
    eprintln!("logout race outcomes (status: count) over 50 rounds: {outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_racing_writers_stays_a_logout_on_redis() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    logout_is_never_undone(&shop).await;
    let sessions = server.cli(&["--scan", "--pattern", "session:{*"]);
    assert_eq!(sessions, "", "no session survived its logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_logout_racing_writers_stays_a_logout_on_a_cluster() {
    let Some(cluster) = RedisCluster::start() else {
        return;
    };
    let shop = Shop::cluster(&cluster).await;
    logout_is_never_undone(&shop).await;
    for node in cluster.servers() {
        assert_eq!(
            node.cli(&["--scan", "--pattern", "session:{*"]),
            "",
            "no session survived its logout"
        );
    }
}

/// Top-level commands the store sends (scripts' inner commands are not round trips).
fn round_trips(server: &RedisServer) -> u64 {
    let stats = server.cli(&["INFO", "commandstats"]);
    stats
        .lines()
        .filter(|line| {
            [
                "cmdstat_hgetall:",
                "cmdstat_evalsha:",
                "cmdstat_eval:",
                "cmdstat_del:",
            ]
            .iter()
            .any(|c| line.starts_with(c))
        })
        .map(|line| {
            line.split("calls=")
                .nth(1)
                .unwrap()
                .split(',')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum()
}

#[tokio::test]
async fn round_trips_per_request_read_off_commandstats() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    let cookie = shop.login("counted").await;
    // Let the first use of each script (the increment of an add, the upload reservation
    // and the apply of a new upload) load it (EVALSHA, NOSCRIPT, EVAL) unmeasured.
    let warm_up = shop
        .call(
            "POST",
            "/cart/items",
            Some(&cookie),
            Some(json!({"sku": "warm", "qty": 1})),
        )
        .await;
    assert_eq!(warm_up.status, StatusCode::OK);
    let warm_up = shop
        .call(
            "POST",
            "/uploads",
            Some(&cookie),
            Some(json!({"name": "warm", "size": 1})),
        )
        .await;
    assert_eq!(warm_up.status, StatusCode::CREATED);
    // Each measurement starts from zero.
    let measure = async |method: &str, path: &str, cookie: Option<&str>, body: Option<Value>| {
        server.cli(&["CONFIG", "RESETSTAT"]);
        let status = shop.call(method, path, cookie, body).await.status;
        (status, round_trips(&server))
    };
    assert_eq!(
        measure("GET", "/me", None, None).await,
        (StatusCode::UNAUTHORIZED, 0),
        "cookie-less"
    );
    let untouched = measure(
        "POST",
        "/cart/items",
        Some(&cookie),
        Some(json!("not an item")),
    )
    .await;
    assert_eq!(untouched, (StatusCode::BAD_REQUEST, 0), "untouched");
    assert_eq!(
        measure("GET", "/me", Some(&cookie), None).await,
        (StatusCode::OK, 1),
        "read"
    );
    let upload = measure(
        "POST",
        "/uploads",
        Some(&cookie),
        Some(json!({"name": "n", "size": 1})),
    )
    .await;
    assert_eq!(
        upload,
        (StatusCode::CREATED, 3),
        "read (logged in?), reserve, write"
    );
    let add = measure(
        "POST",
        "/cart/items",
        Some(&cookie),
        Some(json!({"sku": "socks", "qty": 1})),
    )
    .await;
    assert_eq!(add, (StatusCode::OK, 2), "read then write");
    assert_no_raw_ids(&server.url(), &shop.raw_ids()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_is_a_503_and_service_returns_without_a_restart() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    let cookie = shop.login("patient").await;
    server.stop();

    let started = Instant::now();
    let reply = shop.call("GET", "/me", Some(&cookie), None).await;
    let took = started.elapsed();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(reply.headers.contains_key(header::RETRY_AFTER));
    assert!(
        reply.cookie.is_none() && !reply.headers.contains_key(header::SET_COOKIE),
        "no logout"
    );
    assert!(
        took < Duration::from_secs(2),
        "answered within the timeout ({took:?})"
    );
    let write = shop
        .call(
            "POST",
            "/cart/items",
            Some(&cookie),
            Some(json!({"sku": "a", "qty": 1})),
        )
        .await;
    assert_eq!(write.status, StatusCode::SERVICE_UNAVAILABLE);
    let anonymous = shop.call("GET", "/me", None, None).await;
    assert_eq!(
        anonymous.status,
        StatusCode::UNAUTHORIZED,
        "cookie-less requests are still served"
    );
    assert_eq!(
        shop.call("GET", "/healthz", None, None).await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );

    // Sessions are kept in memory by nothing: with persistence off, a restarted Redis is
    // empty, so the user is logged out by the data loss, yet the process serves again.
    server.restart();
    let back = Instant::now();
    loop {
        let health = shop.call("GET", "/healthz", None, None).await.status;
        let login = shop
            .call("POST", "/login", None, Some(json!({"user": "again"})))
            .await
            .status;
        if health == StatusCode::OK && login == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(2),
            "serving again within 2 s of the restart"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "outage: 503 after {took:?}; serving again {:?} after the restart",
        back.elapsed()
    );
}

#[tokio::test]
async fn upload_limits_are_per_user_across_instances_and_name_no_user() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let (a, b) = (Shop::single(&server).await, Shop::single(&server).await);
    let start = async |shop: &Shop, cookie: &str| {
        let body = json!({"name": "f", "size": 10});
        shop.call("POST", "/uploads", Some(cookie), Some(body))
            .await
            .status
    };
    let laptop = a.login("limited-user").await;
    let phone = b.login("limited-user").await;
    for n in 0..shop::MAX_IN_PROGRESS {
        let (shop, cookie) = if n % 2 == 0 {
            (&a, &laptop)
        } else {
            (&b, &phone)
        };
        assert_eq!(start(shop, cookie).await, StatusCode::CREATED);
    }
    for (shop, cookie) in [(&a, &phone), (&b, &laptop)] {
        assert_eq!(
            start(shop, cookie).await,
            StatusCode::TOO_MANY_REQUESTS,
            "one count for the user, whichever session and instance"
        );
    }
    let other = a.login("another-user").await;
    assert_eq!(start(&b, &other).await, StatusCode::CREATED);
    let keys = server.cli(&["KEYS", "*"]);
    assert!(keys.contains("shop:uploads:"), "{keys}");
    assert!(!keys.contains("limited-user"), "{keys}");
}

/// Uploads in progress under a name an earlier version wrote (the plain SHA-256 of the
/// user name) still count against the user's limit, and the first start moves them to
/// the keyed name: no plain digest is left.
#[tokio::test]
async fn uploads_under_an_earlier_plain_name_still_count_and_move_to_the_keyed_name() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    let user = "migrating-user";
    let plain: String = Sha256::digest(user.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let earlier = format!("shop:uploads:{plain}");
    let until = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    for n in 0..shop::MAX_IN_PROGRESS {
        server.cli(&["ZADD", &earlier, &until, &format!("10:up-earlier-{n}")]);
    }
    let cookie = shop.login(user).await;
    let body = json!({"name": "f", "size": 10});
    let started = shop
        .call("POST", "/uploads", Some(&cookie), Some(body))
        .await;
    assert_eq!(
        started.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the earlier uploads count"
    );
    let keys = server.cli(&["KEYS", "shop:uploads:*"]);
    assert!(!keys.contains(&plain), "moved from the plain name: {keys}");
    let keyed = format!("shop:uploads:{}", digests().current(user));
    assert_eq!(
        server.cli(&["ZCARD", &keyed]).trim(),
        shop::MAX_IN_PROGRESS.to_string()
    );
}

/// 3,000 distinct cart lines of the longest SKU (the attack the size bound answers): the
/// cart is refused with a 413 and a message long before the session's hash in Redis
/// reaches 256 KiB, nothing is written by a refused add, and the cart still works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cart_of_thousands_of_lines_is_refused_before_the_session_grows_past_its_bound() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let shop = Shop::single(&server).await;
    let cookie = shop.login("hoarder").await;
    let mut accepted = 0;
    let mut refused = None;
    for n in 0..3_000 {
        let sku = format!("{n:0>64}");
        let body = json!({"sku": sku, "qty": 1});
        let reply = shop
            .call("POST", "/cart/items", Some(&cookie), Some(body))
            .await;
        match reply.status {
            StatusCode::OK => accepted += 1,
            StatusCode::PAYLOAD_TOO_LARGE => {
                refused = Some(reply.json);
                break;
            }
            status => panic!("line {n}: {status}"),
        }
    }
    let refused = refused.expect("the cart is refused before 3,000 lines");
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("session is full"),
        "{refused}"
    );
    // The session's hash: every field and value, as Redis holds them.
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = connection.keys("session:{*").await.unwrap();
    let mut largest = 0;
    for key in keys {
        let fields: Vec<(Vec<u8>, Vec<u8>)> = connection.hgetall(&key).await.unwrap();
        let size: usize = fields.iter().map(|(f, v)| f.len() + v.len()).sum();
        largest = largest.max(size);
    }
    assert!(largest < 256 * 1024, "a session of {largest} bytes");
    assert!(
        largest <= 64 * 1024 + 1024,
        "within the default bound: {largest} bytes"
    );
    // Nothing of the refused add was written; the cart still answers and checks out.
    let cart = shop.call("GET", "/cart", Some(&cookie), None).await;
    assert_eq!(cart.json["items"].as_array().unwrap().len(), accepted);
    let checkout = shop.call("POST", "/checkout", Some(&cookie), None).await;
    assert_eq!(checkout.status, StatusCode::OK);
    eprintln!("size bound: {accepted} cart lines accepted, the next refused; largest session {largest} bytes");
}

/// One user with 1,200 sessions: `GET /sessions` lists the 1,000 most recent
/// (`MAX_LISTED`), and "log out my other devices" ends all 1,199 others in batched calls
/// (a pipeline of deletes per 500), leaving only the current session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_is_capped_and_logging_out_the_others_ends_them_all() {
    use tower_stateless::store::{Expiry, HashedId, Metadata, Record, Timestamp, MAX_LISTED};
    let Some(server) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let shop = Shop::on(store.clone()).await;
    let user = "many-devices";
    let expiry = Expiry::new(
        Timestamp::from_system_time(std::time::SystemTime::now()),
        Duration::from_secs(86_400),
        Duration::from_secs(7 * 86_400),
    );
    let creates = (0..1_199).map(|n| {
        let store = store.clone();
        async move {
            let mut metadata = Metadata::new(expiry.now);
            metadata.user_id = Some(user.to_owned());
            let record = Record::new([("n".to_owned(), n.to_string())].into(), metadata);
            let id = HashedId::from_stored(format!("{n:0>43}"));
            let created = store.create(&id, &record, expiry).await.unwrap();
            assert_eq!(created, tower_stateless::store::Created::Saved);
        }
    });
    futures_util::future::join_all(creates).await;
    let cookie = shop.login(user).await;
    let listed = shop.call("GET", "/sessions", Some(&cookie), None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let devices = listed.json.as_array().unwrap();
    assert_eq!(devices.len(), MAX_LISTED);
    assert!(
        devices.iter().any(|device| device["current"] == true),
        "the newest binding, this login, is listed"
    );
    let started = Instant::now();
    let ended = (shop.call("POST", "/sessions/others/logout", Some(&cookie), None)).await;
    let took = started.elapsed();
    assert_eq!(ended.status, StatusCode::OK);
    assert_eq!(ended.json["ended"], 1_199);
    let left = store.sessions_of_user(user, expiry).await.unwrap();
    assert_eq!(left.len(), 1, "only the current session is left");
    let cart = shop.call("GET", "/cart", Some(&cookie), None).await;
    assert_eq!(cart.status, StatusCode::OK, "and it still works");
    eprintln!("log out 1,199 others: {took:?}");
}

/// The shop as it runs (the binary, on `REDIS_URL`): after a login and the start of an
/// upload, Redis holds the user's index and upload set under keyed names, and no key is
/// named by a plain SHA-256 of the user name.
#[test]
fn the_running_shop_names_no_key_by_a_plain_digest_of_a_user_name() {
    use std::process::{Command, Stdio};
    let Some(server) = RedisServer::start() else {
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_shop"))
        .env("REDIS_URL", server.url())
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .env(
            "SESSION_KEYS",
            URL_SAFE_NO_PAD.encode(
                (0u8..32)
                    .map(|b| b.wrapping_mul(37) ^ 0xa5)
                    .collect::<Vec<_>>(),
            ),
        )
        .env("COOKIE_SECURE", "false")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = Stop(child);
    let url = format!("http://127.0.0.1:{port}");
    support::wait_for("the shop answers", Duration::from_secs(30), || {
        Command::new("curl")
            .args(["-sf", "-o", "/dev/null", &format!("{url}/healthz")])
            .status()
            .is_ok_and(|status| status.success())
    });
    let user = "ada@example.com";
    let jar = tempfile::NamedTempFile::new().unwrap();
    let jar = jar.path().to_str().unwrap();
    let post = |path: &str, body: serde_json::Value| {
        let sent = Command::new("curl")
            .args([
                "-sf",
                "-b",
                jar,
                "-c",
                jar,
                "-H",
                "Content-Type: application/json",
            ])
            .arg("-d")
            .arg(body.to_string())
            .arg(format!("{url}{path}"))
            .output()
            .unwrap();
        assert!(sent.status.success(), "{path}: {sent:?}");
    };
    post("/login", json!({ "user": user }));
    // An upload in progress: the user's upload set.
    post("/uploads", json!({ "name": "notes.txt", "size": 10 }));
    let digest = Sha256::digest(user.as_bytes());
    let plain = [
        URL_SAFE_NO_PAD.encode(digest),
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>(),
    ];
    let keys = server.cli(&["KEYS", "*"]);
    assert!(keys.contains("session:user:{"), "{keys}");
    assert!(keys.contains("shop:uploads:"), "{keys}");
    for plain in plain {
        assert!(
            !keys.contains(&plain),
            "a plain digest of the user name in {keys}"
        );
    }
}

/// Keyed names for upload sets, as the shop derives them from its session key.
fn digests() -> shop::UserDigests {
    shop::UserDigests::from_key_bytes(&[[7u8; 32]]).unwrap()
}
