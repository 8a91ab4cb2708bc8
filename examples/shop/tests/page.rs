//! The page at `/` and the cart changes it makes, in process, on the in-memory store.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_stateless::{Key, MemoryStore, SessionLayer};

fn shop() -> shop::App {
    let store = MemoryStore::new();
    let layer = SessionLayer::builder(store.clone(), Key::generate())
        .with_secure(false)
        .build()
        .unwrap();
    let state = shop::AppState {
        store,
        chunks: shop::Chunks::memory(),
        objects: None,
        token_mode: false,
        uploads_seal: None,
    };
    shop::app(state, layer, "page-test", None)
}

/// One request with `cookie`; the status, the headers and the body, and the cookie to
/// send next.
async fn call(
    app: &shop::App,
    cookie: &mut Option<String>,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie.as_deref() {
        request = request.header(header::COOKIE, cookie);
    }
    if body.is_some() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    for set in response.headers().get_all(header::SET_COOKIE) {
        let pair = set.to_str().unwrap().split(';').next().unwrap();
        *cookie = (!pair.ends_with('=')).then(|| pair.to_owned());
    }
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.unwrap().to_bytes().to_vec();
    (parts.status, parts.headers, bytes)
}

#[tokio::test]
async fn the_page_is_html_with_a_labelled_login_form_and_its_own_script_and_style() {
    let app = shop();
    let mut cookie = None;
    let (status, headers, body) = call(&app, &mut cookie, "GET", "/", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "text/html; charset=utf-8");
    assert_eq!(headers["x-instance"], "page-test");
    let policy = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(policy.starts_with("default-src 'self'"), "{policy}");
    let html = String::from_utf8(body).unwrap();
    assert!(html.starts_with("<!doctype html>"));
    for part in [
        r#"<form id="login-form">"#,
        r#"<label for="user">User name</label>"#,
        r#"<input id="user""#,
        r#"<button type="submit">Log in</button>"#,
        r#"<label for="file">File</label>"#,
        r#"<progress id="progress""#,
    ] {
        assert!(html.contains(part), "the page has {part}");
    }
    assert!(
        !html.contains("<script>"),
        "no inline script: the policy forbids it"
    );
    assert_eq!(cookie, None, "the page starts no session");
    for (path, kind) in [
        ("/assets/shop.js", "text/javascript; charset=utf-8"),
        ("/assets/shop.css", "text/css; charset=utf-8"),
    ] {
        let (status, headers, body) = call(&app, &mut cookie, "GET", path, None).await;
        assert_eq!(
            (status, &headers[header::CONTENT_TYPE]),
            (StatusCode::OK, &kind.parse().unwrap())
        );
        assert!(!body.is_empty());
    }
}

#[tokio::test]
async fn cart_lines_are_changed_and_removed() {
    let app = shop();
    let mut cookie = None;
    let put = |qty: u64| Some(json!({ "qty": qty }));
    let (status, _, _) = call(&app, &mut cookie, "PUT", "/cart/items/mug", put(2)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "logged out: no cart");
    call(
        &app,
        &mut cookie,
        "POST",
        "/login",
        Some(json!({ "user": "alice" })),
    )
    .await;
    for (sku, qty) in [("mug", 1), ("socks", 2)] {
        let add = Some(json!({ "sku": sku, "qty": qty }));
        let (status, _, _) = call(&app, &mut cookie, "POST", "/cart/items", add).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, body) = call(&app, &mut cookie, "PUT", "/cart/items/mug", put(5)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"sku": "mug", "qty": 5})
    );
    let (status, _, _) = call(&app, &mut cookie, "PUT", "/cart/items/mug", put(1001)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _, _) = call(&app, &mut cookie, "DELETE", "/cart/items/socks", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, _, body) = call(&app, &mut cookie, "GET", "/cart", None).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "items": [{ "sku": "mug", "qty": 5 }] })
    );
    // Setting 0 removes the line, like DELETE.
    call(&app, &mut cookie, "PUT", "/cart/items/mug", put(0)).await;
    let (_, _, body) = call(&app, &mut cookie, "GET", "/cart", None).await;
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({ "items": [] })
    );
}
