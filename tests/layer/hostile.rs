//! Hostile cookies make an anonymous request: no 5xx, no panic, no store call.

use axum::body::Body;
use axum::http::{header, HeaderValue, Request, StatusCode};

use crate::{key, tamper, App};
use tower_stateless::Keys;

async fn assert_anonymous(app: &App, cookie_header: HeaderValue, what: &str) {
    let mut request = Request::get("/get/a").body(Body::empty()).unwrap();
    request.headers_mut().append(header::COOKIE, cookie_header);
    let reply = app.request(request).await;
    assert_eq!(
        reply.status,
        StatusCode::NOT_FOUND,
        "{what}: served as anonymous"
    );
    assert_eq!(
        app.store.calls(),
        Vec::<&str>::new(),
        "{what}: no store call"
    );
}

#[tokio::test]
async fn malformed_and_forged_cookies_are_anonymous_without_store_calls() {
    let app = App::new();
    let genuine = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let token = genuine.strip_prefix("__Host-id=").unwrap().to_owned();
    app.store.take_calls();

    let (id, tag) = token.split_once('.').unwrap();
    let mut flipped_tag = tag.to_owned().into_bytes();
    flipped_tag[0] = if flipped_tag[0] == b'A' { b'B' } else { b'A' };
    let flipped_tag = String::from_utf8(flipped_tag).unwrap();
    let other_key_token = {
        let other = App::with_keys(Keys::new(key(9)), |l| l);
        other.send("POST", "/set/a/1", None).await.cookie().unwrap()
    };

    let cases: Vec<(String, &str)> = vec![
        (format!("__Host-id={id}.{flipped_tag}"), "forged tag"),
        (format!("__Host-id={id}"), "missing tag"),
        (
            format!("__Host-id={}", &token[..token.len() - 1]),
            "truncated",
        ),
        (format!("__Host-id={token}x"), "extended"),
        (format!("__Host-id={}", "A".repeat(5000)), "oversized"),
        (
            format!("__Host-id={token}{}", "A".repeat(5000)),
            "oversized with a valid prefix",
        ),
        ("__Host-id=".to_owned(), "empty"),
        ("__Host-id=..".to_owned(), "dots"),
        ("__Host-id=%00%ff".to_owned(), "garbage"),
        (format!("sid={token}"), "renamed cookie"),
        (
            format!("__Host-id={token}; __Host-id={token}"),
            "duplicated cookie",
        ),
        (format!("id={token}"), "the name without its prefix"),
        (format!("__host-id={token}"), "the prefix in another case"),
        (other_key_token, "signed by an unknown key"),
        (format!("__Host-id=\"{token}\""), "quoted"),
        (
            format!("__Host-id={}.{tag}", id.to_lowercase()),
            "case-changed ID",
        ),
    ];
    for (cookie, what) in cases {
        assert_anonymous(&app, HeaderValue::from_str(&cookie).unwrap(), what).await;
    }
    let non_utf8 = [b"__Host-id=".as_slice(), &[0xff, 0xfe, 0x80], b".abc"].concat();
    assert_anonymous(
        &app,
        HeaderValue::from_bytes(&non_utf8).unwrap(),
        "non-UTF-8",
    )
    .await;

    // Duplicated across two Cookie headers, too.
    let mut request = Request::get("/get/a").body(Body::empty()).unwrap();
    request
        .headers_mut()
        .append(header::COOKIE, HeaderValue::from_str(&genuine).unwrap());
    request
        .headers_mut()
        .append(header::COOKIE, HeaderValue::from_str(&genuine).unwrap());
    assert_eq!(app.request(request).await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.store.calls(), Vec::<&str>::new());

    // The genuine cookie still works, beside unrelated junk.
    let reply = app
        .send("GET", "/get/a", Some(&format!("x=%01; {genuine}; y")))
        .await;
    assert_eq!(reply.body, "\"1\"");
}

#[tokio::test]
async fn writes_with_a_forged_cookie_start_a_fresh_session() {
    let app = App::new();
    let genuine = app.send("POST", "/set/a/1", None).await.cookie().unwrap();
    let forged = tamper(&genuine);
    app.store.take_calls();
    let reply = app.send("POST", "/set/b/2", Some(&forged)).await;
    assert_eq!(
        app.store.calls(),
        ["create"],
        "never an apply to the forged ID"
    );
    let fresh = reply.cookie().unwrap();
    assert_ne!(fresh, genuine);
    assert_eq!(
        app.send("GET", "/keys", Some(&genuine)).await.body,
        "a",
        "the real session is untouched"
    );
}
