//! The shop's HTTP API, in process, on the in-memory store.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_stateless::{Key, MemoryStore, SessionLayer, TokenSessions};

struct Client {
    app: shop::App,
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
        let layer = SessionLayer::builder(store.clone(), Key::generate())
            .with_secure(false)
            .build()
            .unwrap();
        Self {
            app: shop::app(
                shop::AppState {
                    store,
                    chunks: shop::Chunks::memory(),
                    objects: None,
                    token_mode: false,
                    uploads_seal: None,
                },
                layer,
                "test-1",
                None,
            ),
            cookie: None,
        }
    }

    /// The shop in token mode (`SESSION_MODE=token` without Redis): sessions sealed in
    /// cookies, no revocations.
    fn tokens() -> Self {
        let layer = SessionLayer::tokens_builder(TokenSessions::new(), Key::generate())
            .with_secure(false)
            .build()
            .unwrap();
        let state = shop::AppState {
            store: MemoryStore::new(),
            chunks: shop::Chunks::memory(),
            objects: None,
            token_mode: true,
            uploads_seal: None,
        };
        Self {
            app: shop::app(state, layer, "test-1", None),
            cookie: None,
        }
    }

    /// Another device on the same shop (same app and store), with no cookie yet.
    fn another_device(&self) -> Self {
        Self {
            app: self.app.clone(),
            cookie: None,
        }
    }

    async fn call(&mut self, method: &str, path: &str, body: Option<&str>) -> Reply {
        self.send(method, path, body.map(|b| b.as_bytes().to_vec()))
            .await
    }

    async fn send(&mut self, method: &str, path: &str, body: Option<Vec<u8>>) -> Reply {
        let content_type = body.is_some().then_some("application/json");
        self.send_as(method, path, content_type, body).await
    }

    async fn send_as(
        &mut self,
        method: &str,
        path: &str,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(cookie) = &self.cookie {
            request = request.header(header::COOKIE, cookie);
        }
        if let Some(content_type) = content_type {
            request = request.header(header::CONTENT_TYPE, content_type);
        }
        let request = request.body(Body::from(body.unwrap_or_default())).unwrap();
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

    /// Another client of the same shop, with no cookie.
    fn stranger(&self) -> Self {
        Self {
            app: self.app.clone(),
            cookie: None,
        }
    }

    async fn login(&mut self, user: &str) {
        let body = json!({ "user": user }).to_string();
        let reply = self.call("POST", "/login", Some(&body)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    /// Starts an upload of `size` bytes: its ID, or the failure status.
    async fn start_upload(&mut self, size: u64) -> Result<String, StatusCode> {
        let body = json!({"name": "f.bin", "size": size}).to_string();
        let reply = self.call("POST", "/uploads", Some(&body)).await;
        match reply.status {
            StatusCode::CREATED => Ok(reply.json["upload"].as_str().unwrap().to_owned()),
            status => Err(status),
        }
    }

    async fn put_chunk(&mut self, id: &str, n: u32, len: usize) -> StatusCode {
        let path = format!("/uploads/{id}/chunks/{n}");
        self.send("PUT", &path, Some(vec![7; len])).await.status
    }
}

#[tokio::test]
async fn login_cart_checkout_logout() {
    login_cart_checkout_logout_on(Client::new()).await;
}

#[tokio::test]
async fn login_cart_checkout_logout_in_token_mode() {
    let mut client = Client::tokens();
    login_cart_checkout_logout_on(client.another_device()).await;
    client.login("bob").await;
    let listing = client.call("GET", "/sessions", None).await;
    assert_eq!(listing.status, StatusCode::NOT_IMPLEMENTED);
    let others = client.call("POST", "/sessions/others/logout", None).await;
    assert_eq!(others.status, StatusCode::NOT_IMPLEMENTED);
    let uploads = client.start_upload(10).await;
    assert!(uploads.is_ok(), "uploads work: {uploads:?}");
}

async fn login_cart_checkout_logout_on(mut client: Client) {
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

#[tokio::test]
async fn chunked_upload_round_trip() {
    use sha2::{Digest, Sha256};
    let mut client = Client::new();
    client.login("uploader").await;
    let data: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    let chunks: Vec<&[u8]> = data.chunks(1024 * 1024).collect();
    let created = client
        .call(
            "POST",
            "/uploads",
            Some(&format!(r#"{{"name": "a.bin", "size": {}}}"#, data.len())),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json["upload"].as_str().unwrap().to_owned();

    // Out of order; completing early is a conflict.
    let put = client
        .send(
            "PUT",
            &format!("/uploads/{id}/chunks/2"),
            Some(chunks[2].to_vec()),
        )
        .await;
    assert_eq!(put.json, json!({"received": [2], "bytes": chunks[2].len()}));
    assert_eq!(
        client
            .call("POST", &format!("/uploads/{id}/complete"), None)
            .await
            .status,
        StatusCode::CONFLICT
    );
    client
        .send(
            "PUT",
            &format!("/uploads/{id}/chunks/0"),
            Some(chunks[0].to_vec()),
        )
        .await;
    let put = client
        .send(
            "PUT",
            &format!("/uploads/{id}/chunks/1"),
            Some(chunks[1].to_vec()),
        )
        .await;
    assert_eq!(
        put.json,
        json!({"received": [0, 1, 2], "bytes": data.len()})
    );

    let progress = client.call("GET", &format!("/uploads/{id}"), None).await;
    assert_eq!(progress.json["received"], json!([0, 1, 2]));
    assert_eq!(progress.json["size"], json!(data.len()));

    let done = client
        .call("POST", &format!("/uploads/{id}/complete"), None)
        .await;
    assert_eq!(done.status, StatusCode::OK);
    let expected: String = Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(done.json, json!({"bytes": data.len(), "sha256": expected}));
    assert_eq!(
        client
            .call("GET", &format!("/uploads/{id}"), None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a completed upload leaves the session"
    );
}

#[tokio::test]
async fn uploads_belong_to_their_session_and_chunks_are_bounded() {
    let mut owner = Client::new();
    owner.login("owner").await;
    let id = owner.start_upload(10).await.unwrap();
    let mut anonymous = owner.stranger();
    let mut stranger = owner.stranger();
    stranger.login("stranger").await;
    for (method, path) in [
        ("GET", format!("/uploads/{id}")),
        ("POST", format!("/uploads/{id}/complete")),
    ] {
        assert_eq!(
            anonymous.call(method, &path, None).await.status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            stranger.call(method, &path, None).await.status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        anonymous.put_chunk(&id, 0, 5).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(stranger.put_chunk(&id, 0, 5).await, StatusCode::NOT_FOUND);

    assert_eq!(
        owner.put_chunk(&id, 0, 1024 * 1024 + 1).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(owner.put_chunk(&id, 0, 11).await, StatusCode::BAD_REQUEST);
    assert_eq!(owner.start_upload(0).await, Err(StatusCode::BAD_REQUEST));
}

#[tokio::test]
async fn uploads_need_a_logged_in_session() {
    let mut anonymous = Client::new();
    assert_eq!(
        anonymous.start_upload(10).await,
        Err(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(anonymous.cookie, None, "no session is created for it");
}

#[tokio::test]
async fn a_user_has_a_few_uploads_in_progress_of_bounded_total_size() {
    let mut alice = Client::new();
    alice.login("alice").await;
    let first = alice.start_upload(10).await.unwrap();
    for _ in 1..shop::MAX_IN_PROGRESS {
        alice.start_upload(10).await.unwrap();
    }
    assert_eq!(
        alice.start_upload(10).await,
        Err(StatusCode::TOO_MANY_REQUESTS)
    );
    // Per user, not per session: another login of the same user has the same count.
    let mut alice_elsewhere = alice.stranger();
    alice_elsewhere.login("alice").await;
    assert_eq!(
        alice_elsewhere.start_upload(10).await,
        Err(StatusCode::TOO_MANY_REQUESTS)
    );
    let mut bob = alice.stranger();
    bob.login("bob").await;
    assert!(
        bob.start_upload(10).await.is_ok(),
        "other users are not affected"
    );

    // Completing an upload ends it: room for another.
    assert_eq!(alice.put_chunk(&first, 0, 10).await, StatusCode::OK);
    let done = alice
        .call("POST", &format!("/uploads/{first}/complete"), None)
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(alice.start_upload(10).await.is_ok());

    // The declared sizes of the uploads in progress are bounded in all.
    let mut carol = alice.stranger();
    carol.login("carol").await;
    let max = shop::MAX_SIZE;
    assert_eq!(
        carol.start_upload(max + 1).await,
        Err(StatusCode::BAD_REQUEST)
    );
    let mut reserved = 0;
    while reserved + max <= shop::MAX_RESERVED {
        carol.start_upload(max).await.unwrap();
        reserved += max;
    }
    assert_eq!(
        carol.start_upload(shop::MAX_RESERVED - reserved + 1).await,
        Err(StatusCode::TOO_MANY_REQUESTS)
    );
}

#[tokio::test]
async fn only_the_last_chunk_may_be_short() {
    const MIN: usize = shop::MIN_CHUNK;
    let mut client = Client::new();
    client.login("chunky").await;
    let id = client.start_upload(3 * MIN as u64 - 5).await.unwrap();
    assert_eq!(
        client.put_chunk(&id, 0, 10).await,
        StatusCode::OK,
        "alone, it may be the last"
    );
    assert_eq!(
        client.put_chunk(&id, 1, MIN).await,
        StatusCode::BAD_REQUEST,
        "a short chunk cannot precede another"
    );
    assert_eq!(
        client.put_chunk(&id, 0, MIN).await,
        StatusCode::OK,
        "replaced"
    );
    assert_eq!(client.put_chunk(&id, 2, MIN - 5).await, StatusCode::OK);
    assert_eq!(
        client.put_chunk(&id, 1, 10).await,
        StatusCode::BAD_REQUEST,
        "short, with a later chunk"
    );
    assert_eq!(
        client.put_chunk(&id, 3, 1).await,
        StatusCode::BAD_REQUEST,
        "no more chunks than the size allows at the minimum size"
    );
    assert_eq!(client.put_chunk(&id, 1, MIN).await, StatusCode::OK);
    let done = client
        .call("POST", &format!("/uploads/{id}/complete"), None)
        .await;
    assert_eq!(done.status, StatusCode::OK);
    assert_eq!(done.json["bytes"], json!(3 * MIN - 5));
}

#[tokio::test]
async fn json_endpoints_need_content_type_application_json() {
    let mut client = Client::new();
    client.login("json").await;
    let logged_in = client.cookie.clone();
    let bodies = [
        ("/login", json!({"user": "mallory"})),
        ("/cart/items", json!({"sku": "socks", "qty": 1})),
        ("/uploads", json!({"name": "x", "size": 1})),
    ];
    for (path, body) in &bodies {
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
        ] {
            let body = Some(body.to_string().into_bytes());
            let reply = client.send_as("POST", path, content_type, body).await;
            assert_eq!(
                reply.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} as {content_type:?}"
            );
            assert_eq!(client.cookie, logged_in, "{path}: the session is untouched");
        }
    }
    let cart = client.call("GET", "/cart", None).await;
    assert_eq!(
        cart.json,
        json!({"items": []}),
        "no form post reached the cart"
    );
    let reply = client
        .send_as(
            "POST",
            "/cart/items",
            Some("application/json; charset=utf-8"),
            Some(bodies[1].1.to_string().into_bytes()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "parameters are allowed");
}

#[tokio::test]
async fn sessions_lists_the_devices_and_logs_out_the_others() {
    let mut phone = Client::new();
    assert_eq!(
        phone.call("GET", "/sessions", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut laptop = phone.another_device();
    let mut tablet = phone.another_device();
    let mut bob = phone.another_device();
    for device in [&mut phone, &mut laptop, &mut tablet] {
        let reply = device
            .call("POST", "/login", Some(r#"{"user":"ada"}"#))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    bob.call("POST", "/login", Some(r#"{"user":"bob"}"#)).await;

    let listed = laptop.call("GET", "/sessions", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    let devices = listed.json.as_array().unwrap();
    assert_eq!(devices.len(), 3, "{devices:?}");
    let current: Vec<_> = devices.iter().filter(|d| d["current"] == true).collect();
    assert_eq!(current.len(), 1);
    let cookie = laptop.cookie.clone().unwrap();
    let id = current[0]["id"].as_str().unwrap();
    assert!(!cookie.contains(id), "the listing never shows a token");

    let ended = laptop.call("POST", "/sessions/others/logout", None).await;
    assert_eq!(ended.status, StatusCode::OK);
    assert_eq!(ended.json, json!({ "ended": 2 }));
    for device in [&mut phone, &mut tablet] {
        assert_eq!(
            device.call("GET", "/me", None).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(laptop.call("GET", "/me", None).await.status, StatusCode::OK);
    assert_eq!(bob.call("GET", "/me", None).await.status, StatusCode::OK);
    let devices = laptop.call("GET", "/sessions", None).await.json;
    assert_eq!(devices.as_array().unwrap().len(), 1);
    assert_eq!(devices[0]["current"], true);
}
