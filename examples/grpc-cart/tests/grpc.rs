//! The cart over real gRPC: tonic clients against servers on 127.0.0.1.

#[path = "../../../tests/layer/instrumented.rs"]
mod instrumented;
#[path = "../../../tests/support/mod.rs"]
mod redis_support;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use grpc_cart::pb::{AddItemRequest, GetCartRequest, LoginRequest, LogoutRequest};
use grpc_cart::{TokenJar, INSTANCE_HEADER, MAX_CART_UNITS};
use http::HeaderValue;
use tonic::Code;
use tower_stateless::{Key, Keys, MemoryStore, RedisStore, SessionLayer};

use instrumented::Instrumented;
use redis_support::RedisServer;
use support::{Client, TestServer};

/// Store calls that write.
fn writes_so_far(store: &Instrumented) -> usize {
    let writing = ["create", "apply", "touch", "cycle_id", "destroy"];
    store
        .calls()
        .iter()
        .filter(|call| writing.contains(call))
        .count()
}

/// A cart as `sku → qty`.
type Cart = BTreeMap<String, u32>;

fn keys() -> Keys {
    Keys::new(Key::generate())
}

fn login(user: &str) -> LoginRequest {
    LoginRequest { user: user.into() }
}

fn add(sku: &str, qty: i32) -> AddItemRequest {
    AddItemRequest {
        sku: sku.into(),
        qty,
    }
}

/// The cart as a map, checking that the server listed it sorted by SKU.
async fn cart(client: &mut Client) -> Result<(String, Cart), tonic::Status> {
    let reply = client.get_cart(GetCartRequest {}).await?.into_inner();
    let skus: Vec<&str> = reply.items.iter().map(|item| item.sku.as_str()).collect();
    assert!(skus.is_sorted(), "items not sorted by SKU: {skus:?}");
    let cart = reply
        .items
        .into_iter()
        .map(|item| (item.sku, item.qty))
        .collect();
    Ok((reply.user, cart))
}

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    result.expect_err("expected an error status").code()
}

#[tokio::test]
async fn login_add_get_logout() {
    let server =
        TestServer::start(grpc_cart::session_layer(MemoryStore::new(), keys()), "solo").await;
    let jar = TokenJar::new();
    let mut client = server.client(&jar).await;

    // Anonymous: no cart, and no session made for asking.
    assert_eq!(code(cart(&mut client).await), Code::Unauthenticated);
    assert_eq!(
        code(client.add_item(add("socks", 1)).await),
        Code::Unauthenticated
    );
    assert_eq!(jar.token(), None);
    assert_eq!(code(client.login(login("")).await), Code::InvalidArgument);
    assert_eq!(jar.token(), None);

    let reply = client.login(login(" alice ")).await.unwrap();
    assert_eq!(reply.metadata().get(INSTANCE_HEADER).unwrap(), "solo");
    assert_eq!(reply.into_inner().user, "alice");
    let first_token = jar.token().expect("login hands out a token");

    let added = client.add_item(add("socks", 2)).await.unwrap().into_inner();
    assert_eq!((added.total, added.cart_units), (2, 2));
    client.add_item(add("hat", 1)).await.unwrap();
    let added = client.add_item(add("socks", 3)).await.unwrap().into_inner();
    assert_eq!((added.total, added.cart_units), (5, 6));
    for bad in [
        add("socks", 0),
        add("socks", -1),
        add("", 1),
        add("x", i32::MAX),
    ] {
        assert_eq!(code(client.add_item(bad).await), Code::InvalidArgument);
    }
    assert_eq!(
        jar.token().as_deref(),
        Some(first_token.as_str()),
        "adding items keeps the session ID"
    );
    let (user, items) = cart(&mut client).await.unwrap();
    assert_eq!(user, "alice");
    assert_eq!(items, Cart::from([("hat".into(), 1), ("socks".into(), 5)]));

    // Logging in again cycles the ID, keeps the cart, and kills the old token.
    client.login(login("alice")).await.unwrap();
    let second_token = jar.token().unwrap();
    assert_ne!(second_token, first_token);
    assert_eq!(cart(&mut client).await.unwrap().1.len(), 2);
    jar.set_token(Some(HeaderValue::from_str(&first_token).unwrap()));
    assert_eq!(code(cart(&mut client).await), Code::Unauthenticated);
    jar.set_token(Some(HeaderValue::from_str(&second_token).unwrap()));

    // Logout: the server sends an empty token, the jar forgets it, the old one is dead.
    client.logout(LogoutRequest {}).await.unwrap();
    assert_eq!(jar.token(), None);
    assert_eq!(code(cart(&mut client).await), Code::Unauthenticated);
    jar.set_token(Some(HeaderValue::from_str(&second_token).unwrap()));
    assert_eq!(code(cart(&mut client).await), Code::Unauthenticated);
}

/// One session, two instances in turn: every acknowledged AddItem is in the cart,
/// whichever instance is asked.
async fn alternate(servers: [&TestServer; 2]) {
    let jar = TokenJar::new();
    let mut clients = [servers[0].client(&jar).await, servers[1].client(&jar).await];
    clients[0].login(login("bob")).await.unwrap();
    let mut expected = Cart::new();
    for round in 0..20 {
        let (i, j) = (round % 2, (round + 1) % 2);
        let sku = format!("sku-{}", round % 7);
        let qty = i32::try_from(round % 3 + 1).unwrap();
        let reply = clients[i].add_item(add(&sku, qty)).await.unwrap();
        assert_eq!(
            reply.metadata().get(INSTANCE_HEADER).unwrap(),
            servers[i].instance.as_str()
        );
        let total = expected.entry(sku).or_insert(0);
        *total += qty.unsigned_abs();
        assert_eq!(reply.into_inner().total, *total);
        for k in [j, i] {
            assert_eq!(
                cart(&mut clients[k]).await.unwrap().1,
                expected,
                "round {round}"
            );
        }
    }

    // Concurrently, through both instances at once: per-key changes lose nothing.
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..16 {
        let mut client = clients[n % 2].clone();
        tasks.spawn(async move {
            let sku = format!("par-{n:02}");
            client.add_item(add(&sku, 1)).await.map(|_| sku)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let sku = done.unwrap().expect("concurrent AddItem failed");
        expected.insert(sku, 1);
    }
    assert_eq!(expected.len(), 7 + 16);
    for client in &mut clients {
        assert_eq!(cart(client).await.unwrap().1, expected);
    }

    // Logout on one instance ends the session on both.
    let token = jar.token().unwrap();
    clients[1].logout(LogoutRequest {}).await.unwrap();
    assert_eq!(jar.token(), None);
    jar.set_token(Some(HeaderValue::from_str(&token).unwrap()));
    assert_eq!(code(cart(&mut clients[0]).await), Code::Unauthenticated);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_a_memory_store() {
    let (store, keys) = (MemoryStore::new(), keys());
    let a = TestServer::start(grpc_cart::session_layer(store.clone(), keys.clone()), "a").await;
    let b = TestServer::start(grpc_cart::session_layer(store, keys), "b").await;
    alternate([&a, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_redis() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let keys = keys();
    let mut servers = Vec::new();
    for instance in ["a", "b"] {
        // Each instance has its own connection, as separate processes would.
        let store = RedisStore::connect(&redis.url()).await.unwrap();
        servers
            .push(TestServer::start(grpc_cart::session_layer(store, keys.clone()), instance).await);
    }
    alternate([&servers[0], &servers[1]]).await;
}

/// With the store down every call that needs it is `UNAVAILABLE`, the client keeps its
/// token, and once the store is back the session is intact: never a silent logout.
#[tokio::test]
async fn store_outage_is_unavailable() {
    let store = Instrumented::default();
    let server = TestServer::start(grpc_cart::session_layer(store.clone(), keys()), "a").await;
    let jar = TokenJar::new();
    let mut client = server.client(&jar).await;
    client.login(login("carol")).await.unwrap();
    client.add_item(add("socks", 2)).await.unwrap();
    let token = jar.token().unwrap();

    store.set_failing(true);
    assert_eq!(code(cart(&mut client).await), Code::Unavailable);
    assert_eq!(
        code(client.add_item(add("socks", 1)).await),
        Code::Unavailable
    );
    assert_eq!(
        code(client.logout(LogoutRequest {}).await),
        Code::Unavailable
    );
    assert_eq!(jar.token().as_deref(), Some(token.as_str()), "token kept");
    // A login writes without reading: its write-back fails, and no token is handed out.
    let other_jar = TokenJar::new();
    let mut other = server.client(&other_jar).await;
    assert_eq!(code(other.login(login("dave")).await), Code::Unavailable);
    assert_eq!(other_jar.token(), None);

    store.set_failing(false);
    assert_eq!(
        cart(&mut client).await.unwrap(),
        ("carol".into(), Cart::from([("socks".into(), 2)]))
    );
}

#[tokio::test]
async fn redis_outage_is_unavailable() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let store = RedisStore::connect(&redis.url()).await.unwrap();
    let layer: SessionLayer = grpc_cart::session_layer_builder(store, keys())
        .with_store_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let server = TestServer::start(layer, "a").await;
    let jar = TokenJar::new();
    let mut client = server.client(&jar).await;
    client.login(login("erin")).await.unwrap();
    client.add_item(add("socks", 2)).await.unwrap();
    let token = jar.token().unwrap();

    redis.stop();
    assert_eq!(code(cart(&mut client).await), Code::Unavailable);
    assert_eq!(
        code(client.add_item(add("socks", 1)).await),
        Code::Unavailable
    );
    assert_eq!(jar.token().as_deref(), Some(token.as_str()), "token kept");
}

/// AddItem writes the new quantity before checking the cart limit; over it, the handler
/// returns FAILED_PRECONDITION and the layer must save nothing at all.
#[tokio::test]
async fn failed_rpc_saves_nothing() {
    let store = Instrumented::default();
    let server = TestServer::start(grpc_cart::session_layer(store.clone(), keys()), "a").await;
    let jar = TokenJar::new();
    let mut client = server.client(&jar).await;
    client.login(login("frank")).await.unwrap();
    let near_full = i32::try_from(MAX_CART_UNITS).unwrap() - 10;
    client.add_item(add("a", near_full)).await.unwrap();
    let token = jar.token().unwrap();
    let writes = writes_so_far(&store);

    for over in [add("b", 11), add("a", 11), add("b", near_full)] {
        assert_eq!(code(client.add_item(over).await), Code::FailedPrecondition);
    }
    assert_eq!(
        writes_so_far(&store),
        writes,
        "a failed RPC wrote to the store"
    );
    assert_eq!(jar.token().as_deref(), Some(token.as_str()));
    let expected = Cart::from([("a".into(), MAX_CART_UNITS - 10)]);
    assert_eq!(cart(&mut client).await.unwrap().1, expected);

    // Exactly up to the limit is fine.
    let added = client.add_item(add("b", 10)).await.unwrap().into_inner();
    assert_eq!((added.total, added.cart_units), (10, MAX_CART_UNITS));
    assert_eq!(writes_so_far(&store), writes + 1);
}
