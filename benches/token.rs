//! Token mode's cost per request: sealing and opening a session, and whole requests
//! through the layer in token mode beside store mode on `MemoryStore` (no I/O in either,
//! and no revocation store: what is left is the layer's own work).
//!
//! `cargo bench --features token --bench token -- --warm-up-time 1 --measurement-time 3`

use std::convert::Infallible;

use axum::http::{header, Request, Response};
use criterion::{criterion_group, criterion_main, Criterion};
use tower::{service_fn, Layer, ServiceExt};
use tower_stateless::__bench::{open, sealer};
use tower_stateless::{Key, Keys, MemoryStore, Session, SessionLayer, TokenSessions};

type Body = String;

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).unwrap()
}

/// A session like the shop's: a user binding and a few cart lines.
const SHOP: [(&str, &str); 4] = [
    ("cart:socks", "2"),
    ("cart:hat", "1"),
    ("cart:scarf", "3"),
    ("address", "\"1 Main Street, Springfield\""),
];

fn bench_seal_open(c: &mut Criterion) {
    let mut group = c.benchmark_group("token_seal_open");
    let one = Keys::new(key(1));
    let big_value = format!("\"{}\"", "x".repeat(2900));
    let shapes: [(&str, Vec<(&str, &str)>); 2] = [
        ("shop session (4 fields + user)", SHOP.to_vec()),
        (
            "near the budget (one 2.9 KB value)",
            vec![("blob", big_value.as_str())],
        ),
    ];
    for (shape, fields) in shapes {
        let seal = sealer(&one, "__Host-id", &fields, Some("alice@example.com"));
        let token = seal();
        let opens = open(&one, "__Host-id");
        group.bench_function(format!("seal, {shape}, {} B", token.len()), |b| {
            b.iter(&seal)
        });
        group.bench_function(format!("open, {shape}"), |b| {
            b.iter(|| assert!(opens(&token)))
        });
    }
    // The worst case of a rotation: the token sealed by the last of three keys.
    let seal = sealer(
        &Keys::new(key(1)),
        "__Host-id",
        &SHOP,
        Some("alice@example.com"),
    );
    let token = seal();
    let three = Keys::new(key(3))
        .with_retiring(key(2))
        .with_retiring(key(1));
    let opens = open(&three, "__Host-id");
    group.bench_function("open, 3 keys (old key)", |b| {
        b.iter(|| assert!(opens(&token)))
    });
    let forged = format!("{}A", &token[..token.len() - 1]);
    group.bench_function("reject forged, 3 keys", |b| b.iter(|| opens(&forged)));
    group.finish();
}

#[derive(Clone, Copy)]
enum Use {
    Read,
    Write,
}

async fn handler(request: Request<Body>, usage: Use) -> Result<Response<Body>, Infallible> {
    if let Some(session) = request.extensions().get::<Session>() {
        match usage {
            Use::Read => {
                let _: Option<u64> = session.get("cart:socks").await.unwrap();
            }
            Use::Write => session.insert("cart:socks", &7u64).unwrap(),
        }
    }
    Ok(Response::new(Body::new()))
}

fn request(cookie: &str) -> Request<Body> {
    Request::get("/")
        .header(header::COOKIE, cookie)
        .body(Body::new())
        .unwrap()
}

async fn seed_handler(request: Request<Body>) -> Result<Response<Body>, Infallible> {
    let session = request.extensions().get::<Session>().unwrap();
    for (name, value) in SHOP {
        session
            .insert(
                name,
                &serde_json::from_str::<serde_json::Value>(value).unwrap(),
            )
            .unwrap();
    }
    session.set_user_id("alice@example.com");
    Ok(Response::new(Body::new()))
}

fn bench_requests(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layers = [
        (
            "store mode (MemoryStore)",
            SessionLayer::new(MemoryStore::new(), key(1)),
        ),
        (
            "token mode",
            SessionLayer::tokens(TokenSessions::new(), key(1)),
        ),
    ];
    let mut group = c.benchmark_group("token_per_request");
    for (mode, layer) in layers {
        let seed = layer.layer(service_fn(seed_handler));
        let response = runtime
            .block_on(seed.oneshot(Request::get("/").body(Body::new()).unwrap()))
            .unwrap();
        let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
        let cookie = set_cookie.split(';').next().unwrap().to_owned();
        for (name, usage) in [("read", Use::Read), ("write one key", Use::Write)] {
            let service = layer.layer(service_fn(move |r| handler(r, usage)));
            let cookie = cookie.clone();
            group.bench_function(format!("{mode}, {name}"), |b| {
                b.to_async(&runtime)
                    .iter(|| service.clone().oneshot(request(&cookie)))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, bench_seal_open, bench_requests);
criterion_main!(benches);
