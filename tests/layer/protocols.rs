//! The same layer around plain hyper-style services and gRPC-shaped responses.

use std::convert::Infallible;

use axum::http::{header, Request, Response, StatusCode};
use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
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

/// A streaming gRPC handler: counts in the session, answers with its head at once, then
/// a message, then trailers carrying the `grpc-status` the request asks for (as a
/// server stream that fails half-way does).
async fn streaming_counter(
    request: Request<Full<Bytes>>,
) -> Result<Response<UnsyncBoxBody<Bytes, Infallible>>, Infallible> {
    let session = request.extensions().get::<Session>().unwrap().clone();
    let n: u32 = session.get("n").await.ok().flatten().unwrap_or(0) + 1;
    session.insert("n", &n).unwrap();
    // No status asked for: a stream that ends without trailers.
    let status = request.headers().get("grpc-test-trailer-status").cloned();
    let body = Full::new(Bytes::from(n.to_string()))
        .with_trailers(async move {
            let mut trailers = header::HeaderMap::new();
            trailers.insert("grpc-status", status?);
            Some(Ok(trailers))
        })
        .boxed_unsync();
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
    Ok(response)
}

#[tokio::test]
async fn a_stream_that_fails_in_its_trailers_saves_nothing() {
    let store = Instrumented::default();
    let name = header::HeaderName::from_static("x-session");
    let service = SessionLayer::builder(store.clone(), Keys::new(key(1)))
        .with_header(name.clone())
        .build()
        .unwrap()
        .write_back_at_trailers()
        .layer(service_fn(streaming_counter));
    let call = |token: Option<&str>, trailer_status: &str| {
        let mut request = request(None, None);
        let headers = request.headers_mut();
        headers.insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
        if !trailer_status.is_empty() {
            headers.insert("grpc-test-trailer-status", trailer_status.parse().unwrap());
        }
        if let Some(token) = token {
            headers.insert(name.clone(), token.parse().unwrap());
        }
        service.clone().oneshot(request)
    };

    let first = call(None, "0").await.unwrap();
    assert!(store.take_calls().is_empty(), "nothing written at the head");
    assert!(
        !first.headers().contains_key(&name),
        "the head is out before the verdict"
    );
    let first = first.into_body().collect().await.unwrap();
    assert_eq!(
        store.take_calls(),
        ["create"],
        "an OK stream saves at its trailers"
    );
    let trailers = first.trailers().unwrap();
    assert_eq!(trailers["grpc-status"], "0");
    let token = trailers[&name].to_str().unwrap().to_owned();

    let failed = call(Some(&token), "13").await.unwrap();
    let failed = failed.into_body().collect().await.unwrap();
    assert_eq!(failed.trailers().unwrap()["grpc-status"], "13");
    assert_eq!(
        store.take_calls(),
        ["load"],
        "no write-back for a non-OK grpc-status in the trailers"
    );
    let cut_short = call(Some(&token), "").await.unwrap();
    let cut_short = cut_short.into_body().collect().await.unwrap();
    assert!(cut_short.trailers().is_none());
    assert_eq!(
        store.take_calls(),
        ["load"],
        "no trailers, no status: no write-back"
    );

    store.set_failing(true);
    let outage = call(Some(&token), "0").await.unwrap();
    let outage = outage.into_body().collect().await.unwrap();
    assert_eq!(
        outage.trailers().unwrap()["grpc-status"],
        "14",
        "a store outage fails the stream as UNAVAILABLE"
    );
    store.set_failing(false);
    store.take_calls();

    let ok = call(Some(&token), "0").await.unwrap();
    let ok = ok.into_body().collect().await.unwrap();
    assert_eq!(ok.to_bytes(), "2", "only the OK stream counted");
    assert_eq!(store.take_calls(), ["load", "apply"]);

    // Without the option the call is judged at its head, so the failed stream saved.
    let at_head =
        SessionLayer::new(store.clone(), Keys::new(key(1))).layer(service_fn(streaming_counter));
    let mut failing = request(None, None);
    failing
        .headers_mut()
        .insert(header::CONTENT_TYPE, "application/grpc".parse().unwrap());
    failing
        .headers_mut()
        .insert("grpc-test-trailer-status", "13".parse().unwrap());
    let saved_anyway = at_head.oneshot(failing).await.unwrap();
    assert_eq!(store.take_calls(), ["create"]);
    drop(saved_anyway);

    // Trailers-only answers are judged at the head, as without the option.
    let unary = SessionLayer::new(store.clone(), Keys::new(key(1)))
        .write_back_at_trailers()
        .layer(service_fn(counter));
    let failed = unary.oneshot(request(None, Some("13"))).await.unwrap();
    assert_eq!(failed.headers()["grpc-status"], "13");
    assert!(
        store.take_calls().is_empty(),
        "a failed unary call saves nothing"
    );
}
