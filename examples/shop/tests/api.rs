//! The shop's HTTP API, in process, on the in-memory store.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_stateless::{Key, MemoryStore, SessionLayer};

struct Client {
    app: Router,
    cookie: Option<String>,
}

struct Reply {
    status: StatusCode,
    instance: String,
    json: Value,
}

impl Client {
    fn new() -> Self {
        let store = MemoryStore::new();
        let layer = SessionLayer::new(store.clone(), Key::generate()).with_secure(false);
        Self {
            app: shop::router(store, layer, "test-1"),
            cookie: None,
        }
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Body::from(body.unwrap_or_default().to_owned()))
            .unwrap();
        let response = self.app.clone().oneshot(request).await.unwrap();
        for set in response.headers().get_all(header::SET_COOKIE) {
            let pair = set.to_str().unwrap().split(';').next().unwrap();
            self.cookie = (!pair.ends_with('=')).then(|| pair.to_owned());
        }
        let status = response.status();
        let instance = response.headers()["x-instance"]
            .to_str()
            .unwrap()
            .to_owned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        Reply {
            status,
            instance,
            json,
        }
    }
}

#[tokio::test]
async fn login_cart_checkout_logout() {
    let mut client = Client::new();
    assert_eq!(
        client.call("GET", "/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );

    let login = client
        .call("POST", "/login", Some(r#"{"user": "alice"}"#))
        .await;
    assert_eq!(
        (login.status, login.json.clone()),
        (StatusCode::OK, json!({"user": "alice"}))
    );
    assert_eq!(login.instance, "test-1");
    assert_eq!(
        client.call("GET", "/me", None).await.json,
        json!({"user": "alice"})
    );

    let add = client
        .call("POST", "/cart/items", Some(r#"{"sku": "socks", "qty": 2}"#))
        .await;
    assert_eq!(
        (add.status, add.json),
        (StatusCode::OK, json!({"sku": "socks", "qty": 2}))
    );
    let add = client
        .call("POST", "/cart/items", Some(r#"{"sku": "socks", "qty": 3}"#))
        .await;
    assert_eq!(
        add.json,
        json!({"sku": "socks", "qty": 5}),
        "qty is the new total"
    );
    client
        .call("POST", "/cart/items", Some(r#"{"sku": "hat", "qty": 1}"#))
        .await;

    let cart = client.call("GET", "/cart", None).await;
    assert_eq!(
        cart.json,
        json!({"items": [{"sku": "hat", "qty": 1}, {"sku": "socks", "qty": 5}]})
    );
    assert_eq!(
        client.call("GET", "/cart/items/socks", None).await.json,
        json!({"sku": "socks", "qty": 5})
    );
    assert_eq!(
        client.call("GET", "/cart/items/none", None).await.json,
        json!({"sku": "none", "qty": 0})
    );

    let order = client.call("POST", "/checkout", None).await;
    assert_eq!(order.status, StatusCode::OK);
    assert!(order.json["order"].as_str().unwrap().starts_with("ord_"));
    assert_eq!(
        order.json["items"],
        json!([{"sku": "hat", "qty": 1}, {"sku": "socks", "qty": 5}])
    );
    assert_eq!(
        client.call("GET", "/cart", None).await.json,
        json!({"items": []}),
        "checkout empties the cart"
    );
    assert_eq!(
        client.call("POST", "/checkout", None).await.status,
        StatusCode::CONFLICT
    );

    let logout = client.call("POST", "/logout", None).await;
    assert_eq!(logout.status, StatusCode::NO_CONTENT);
    assert_eq!(client.cookie, None, "logout removes the cookie");
    assert_eq!(
        client.call("GET", "/me", None).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn bad_input_is_a_400_and_anonymous_carts_are_401() {
    let mut client = Client::new();
    let anonymous = client
        .call("POST", "/cart/items", Some(r#"{"sku": "socks", "qty": 1}"#))
        .await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        client.call("GET", "/cart", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client.call("POST", "/checkout", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .call("POST", "/login", Some("{not json"))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        client
            .call("POST", "/login", Some(r#"{"user": ""}"#))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );

    client
        .call("POST", "/login", Some(r#"{"user": "bob"}"#))
        .await;
    for bad in [
        "{not json",
        r#"{"sku": "socks", "qty": 0}"#,
        r#"{"sku": "socks", "qty": -1}"#,
        r#"{"sku": "socks"}"#,
        r#"{"sku": "", "qty": 1}"#,
    ] {
        let reply = client.call("POST", "/cart/items", Some(bad)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.json["error"].is_string());
    }
    assert_eq!(
        client.call("GET", "/cart", None).await.json,
        json!({"items": []})
    );
}

#[tokio::test]
async fn login_cycles_the_session_id() {
    let mut client = Client::new();
    client
        .call("POST", "/login", Some(r#"{"user": "alice"}"#))
        .await;
    let first = client.cookie.clone().unwrap();
    client
        .call("POST", "/login", Some(r#"{"user": "alice"}"#))
        .await;
    let second = client.cookie.clone().unwrap();
    assert_ne!(first, second);
    client.cookie = Some(first);
    assert_eq!(
        client.call("GET", "/me", None).await.status,
        StatusCode::UNAUTHORIZED,
        "the old ID is dead"
    );
}

#[tokio::test]
async fn healthz_and_instance_header() {
    let mut client = Client::new();
    let health = client.call("GET", "/healthz", None).await;
    assert_eq!(
        (health.status, health.instance.as_str()),
        (StatusCode::OK, "test-1")
    );
    assert_eq!(
        client.call("GET", "/nope", None).await.instance,
        "test-1",
        "even on 404"
    );
}
