//! `GET /metrics`: after a few requests, the session layer's series are there, in
//! Prometheus text format.

#[path = "../../../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use metrics_exporter_prometheus::PrometheusBuilder;
use shop::{AppState, Chunks};
use tower::ServiceExt;
use tower_stateless::{Key, RedisStore, SessionLayer};

use support::RedisServer;

async fn send(
    app: &shop::App,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> (StatusCode, Option<String>, String) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(cookie) = cookie {
        request = request.header(header::COOKIE, cookie);
    }
    if !body.is_empty() {
        request = request.header(header::CONTENT_TYPE, "application/json");
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let cookie = response
        .headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_owned())
        .find(|pair| !pair.ends_with('='));
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, cookie, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test]
async fn metrics_lists_the_session_series() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let recorder = PrometheusBuilder::new().install_recorder().unwrap();
    let store = RedisStore::connect(&server.url()).await.unwrap();
    let chunks = Chunks::redis(store.connection(), digests());
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
            uploads_seal: None,
        },
        layer,
        "metrics-test",
        Some(recorder),
    );

    let (status, cookie, _) = send(&app, "POST", "/login", None, r#"{"user": "alice"}"#).await;
    assert_eq!(status, StatusCode::OK);
    let cookie = cookie.unwrap();
    let add = r#"{"sku": "socks", "qty": 2}"#;
    assert_eq!(
        send(&app, "POST", "/cart/items", Some(&cookie), add)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(&app, "GET", "/me", Some(&cookie), "").await.0,
        StatusCode::OK
    );
    // The same ID under another tag.
    let (id, tag) = cookie.split_once('.').unwrap();
    let flipped = if tag.starts_with('A') { "B" } else { "A" };
    let forged = format!("{id}.{flipped}{}", &tag[1..]);
    send(&app, "GET", "/me", Some(&forged), "").await;
    send(&app, "GET", "/me", Some("__Host-id=short"), "").await;
    server.stop();
    let (status, _, _) = send(&app, "GET", "/me", Some(&cookie), "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let (status, _, text) = send(&app, "GET", "/metrics", None, "").await;
    assert_eq!(status, StatusCode::OK);
    println!("{text}");
    for series in [
        r#"tower_stateless_store_calls_total{operation="create",outcome="ok"}"#,
        r#"tower_stateless_store_calls_total{operation="increment",outcome="ok"}"#,
        r#"tower_stateless_store_calls_total{operation="load",outcome="ok"}"#,
        r#"tower_stateless_store_calls_total{operation="load",outcome="error"}"#,
        r#"tower_stateless_store_call_duration_seconds{operation="load",quantile="0.5"}"#,
        r#"tower_stateless_failure_responses_total{cause="store"}"#,
        r#"tower_stateless_rejected_tokens_total{reason="malformed"}"#,
        r#"tower_stateless_rejected_tokens_total{reason="forged"}"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

/// Keyed names for upload sets, as the shop derives them from its session key.
fn digests() -> shop::UserDigests {
    shop::UserDigests::from_key_bytes(&[[7u8; 32]]).unwrap()
}
