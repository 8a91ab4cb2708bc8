//! The same layer around plain hyper-style services and gRPC-shaped responses.

use std::convert::Infallible;

use axum::http::{header, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tower::{service_fn, Layer, ServiceExt};
use tower_stateless::{Keys, Session, SessionLayer};

use crate::instrumented::Instrumented;
use crate::key;

/// A handler with no framework: `Full<Bytes>` in, `Full<Bytes>` out.
async fn counter(request: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let session = request
        .extensions()
        .get::<Session>()
        .expect("layer present")
        .clone();
    // On a store failure the layer replaces whatever this answers.
    let n: u32 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
    session.insert("n", &n).unwrap();
    let status = request
        .headers()
        .get("grpc-test-status")
        .map(|v| v.to_str().unwrap().to_owned());
    let mut response = Response::new(Full::new(Bytes::from(n.to_string())));
    if let Some(status) = status {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
        response
            .headers_mut()
            .insert("grpc-status", status.parse().unwrap());
    }
    Ok(response)
}

fn request(cookie: Option<&str>, grpc_status: Option<&str>) -> Request<Full<Bytes>> {
    let mut builder = Request::post("/");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    if let Some(status) = grpc_status {
        builder = builder
            .header(header::CONTENT_TYPE, "application/grpc")
            .header("grpc-test-status", status);
    }
    builder.body(Full::new(Bytes::new())).unwrap()
}

fn cookie_of<B>(response: &Response<B>) -> String {
    let set = response.headers()[header::SET_COOKIE].to_str().unwrap();
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test]
async fn wraps_a_plain_service_with_any_body() {
    let store = Instrumented::default();
    let service = SessionLayer::new(store.clone(), Keys::new(key(1))).layer(service_fn(counter));
    let first = service.clone().oneshot(request(None, None)).await.unwrap();
    let cookie = cookie_of(&first);
    let second = service.oneshot(request(Some(&cookie), None)).await.unwrap();
    assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "2");
}

#[tokio::test]
async fn failed_rpcs_save_nothing_and_outages_are_unavailable() {
    let store = Instrumented::default();
    let service = SessionLayer::new(store.clone(), Keys::new(key(1))).layer(service_fn(counter));
    let first = service
        .clone()
        .oneshot(request(None, Some("0")))
        .await
        .unwrap();
    let cookie = cookie_of(&first);
    store.take_calls();

    let failed = service
        .clone()
        .oneshot(request(Some(&cookie), Some("13")))
        .await
        .unwrap();
    assert_eq!(failed.headers()["grpc-status"], "13");
    assert_eq!(
        store.take_calls(),
        ["load"],
        "no write-back for a non-OK grpc-status"
    );

    store.set_failing(true);
    let unavailable = service
        .clone()
        .oneshot(request(Some(&cookie), Some("0")))
        .await
        .unwrap();
    assert_eq!(
        unavailable.status(),
        StatusCode::OK,
        "gRPC errors travel in grpc-status"
    );
    assert_eq!(unavailable.headers()["grpc-status"], "14", "UNAVAILABLE");
    assert_eq!(
        unavailable.headers()[header::CONTENT_TYPE],
        "application/grpc"
    );
    store.set_failing(false);

    let ok = service
        .oneshot(request(Some(&cookie), Some("0")))
        .await
        .unwrap();
    assert_eq!(
        ok.into_body().collect().await.unwrap().to_bytes(),
        "2",
        "only the OK call counted"
    );
}

#[tokio::test]
async fn the_extractor_names_the_missing_layer() {
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(|_session: Session| async { "unreachable" }),
    );
    let response = app
        .oneshot(Request::get("/").body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(
        String::from_utf8_lossy(&body).contains("SessionLayer"),
        "{body:?}"
    );
}

#[tokio::test]
async fn tokens_can_travel_in_a_header() {
    let store = Instrumented::default();
    let name = header::HeaderName::from_static("x-session");
    let layer = SessionLayer::builder(store.clone(), Keys::new(key(1)))
        .with_header(name.clone())
        .build()
        .unwrap();
    let service = layer.layer(service_fn(counter));
    let with_token = |token: Option<&str>| {
        let mut request = request(None, Some("0"));
        if let Some(token) = token {
            request
                .headers_mut()
                .insert(name.clone(), token.parse().unwrap());
        }
        request
    };

    let first = service.clone().oneshot(with_token(None)).await.unwrap();
    assert!(
        !first.headers().contains_key(header::SET_COOKIE),
        "no cookie in header mode"
    );
    let token = first.headers()["x-session"].to_str().unwrap().to_owned();
    let second = service
        .clone()
        .oneshot(with_token(Some(&token)))
        .await
        .unwrap();
    assert!(
        !second.headers().contains_key("x-session"),
        "an unchanged token is not resent"
    );
    assert_eq!(second.into_body().collect().await.unwrap().to_bytes(), "2");

    // A cookie token is not accepted as a header token: the tag binds the carrier's name.
    let cookie_layer = SessionLayer::new(store.clone(), Keys::new(key(1)));
    let cookie_token = cookie_of(
        &cookie_layer
            .layer(service_fn(counter))
            .oneshot(request(None, None))
            .await
            .unwrap(),
    );
    let moved = cookie_token.split_once('=').unwrap().1;
    store.take_calls();
    let replayed = service.oneshot(with_token(Some(moved))).await.unwrap();
    assert_eq!(
        store.calls(),
        ["create"],
        "treated as anonymous: a fresh session"
    );
    assert_eq!(
        replayed.into_body().collect().await.unwrap().to_bytes(),
        "1"
    );
}
