//! Per-request cost of the layer on MemoryStore (no I/O), beside the bare handler.
//!
//! `cargo bench --bench layer`

use std::convert::Infallible;

use axum::http::{header, Request, Response};
use criterion::{criterion_group, criterion_main, Criterion};
use tower::{service_fn, Layer, ServiceExt};
use tower_stateless::{Key, Keys, MemoryStore, Session, SessionLayer};

type Body = String;

/// What the handler does with the session: the same work in every variant, so the
/// difference from `bare` is the layer's cost.
#[derive(Clone, Copy)]
enum Use {
    Nothing,
    Read,
    Write,
    Login,
}

async fn handler(request: Request<Body>, usage: Use) -> Result<Response<Body>, Infallible> {
    if let Some(session) = request.extensions().get::<Session>() {
        match usage {
            Use::Nothing => {}
            Use::Read => {
                let _: Option<u64> = session.get("n").await.unwrap();
            }
            Use::Write => session.insert("n", &7u64).unwrap(),
            Use::Login => {
                session.cycle_id();
                session.insert("user", "alice").unwrap();
            }
        }
    }
    Ok(Response::new(Body::new()))
}

fn request(cookie: Option<&str>) -> Request<Body> {
    let mut builder = Request::get("/");
    if let Some(cookie) = cookie {
        builder = builder.header(header::COOKIE, cookie);
    }
    builder.body(Body::new()).unwrap()
}

fn bench_layer(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let layer = SessionLayer::new(MemoryStore::new(), Key::generate());

    // A session to read and write.
    let seed = layer.layer(service_fn(|r| handler(r, Use::Write)));
    let response = runtime.block_on(seed.oneshot(request(None))).unwrap();
    let set_cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let mut group = c.benchmark_group("per_request");
    let bare = service_fn(|r| handler(r, Use::Read));
    group.bench_function("bare handler", |b| {
        b.to_async(&runtime)
            .iter(|| bare.oneshot(request(Some(&cookie))))
    });
    let cases = [
        ("layer, cookie-less", Use::Nothing, None),
        ("layer, untouched", Use::Nothing, Some(cookie.as_str())),
        ("layer, read", Use::Read, Some(cookie.as_str())),
        ("layer, write", Use::Write, Some(cookie.as_str())),
        ("layer, login (cycle)", Use::Login, None),
    ];
    for (name, usage, cookie) in cases {
        let service = layer.layer(service_fn(move |r| handler(r, usage)));
        group.bench_function(name, |b| {
            b.to_async(&runtime)
                .iter(|| service.clone().oneshot(request(cookie)))
        });
    }
    group.finish();
}

/// Signing one token, and verifying it with 1 and with 3 keys configured (the token
/// signed by the last verify-only key: the worst case).
fn bench_signing(c: &mut Criterion) {
    use tower_stateless::__bench::{signer, verify};
    let key = |byte: u8| Key::from_bytes(&[byte; 32]).unwrap();
    let mut group = c.benchmark_group("token");
    let sign = signer(Keys::new(key(1)), "id");
    group.bench_function("sign", |b| b.iter(&sign));

    let one = Keys::new(key(1));
    let token = sign();
    group.bench_function("verify, 1 key", |b| {
        b.iter(|| assert!(verify(&one, "id", &token)))
    });
    let three = Keys::new(key(3))
        .with_verify_only(key(2))
        .with_verify_only(key(1));
    group.bench_function("verify, 3 keys (old key)", |b| {
        b.iter(|| assert!(verify(&three, "id", &token)))
    });
    let forged = format!("{}A", &token[..token.len() - 1]);
    group.bench_function("reject forged, 3 keys", |b| {
        b.iter(|| verify(&three, "id", &forged))
    });
    group.finish();
}

criterion_group!(benches, bench_layer, bench_signing);
criterion_main!(benches);
