//! The `Cookie` header scan: any bytes, split at `\n` into `Cookie` header values (a
//! newline cannot occur inside one), checked against a plain reference reading of the
//! rule: the value of the one pair named like the cookie, none if it occurs twice or the
//! pair is longer than the limit.
#![no_main]

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_stateless::__fuzz;

fn trim(mut bytes: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = bytes {
        if !first.is_ascii_whitespace() {
            break;
        }
        bytes = rest;
    }
    while let [rest @ .., last] = bytes {
        if !last.is_ascii_whitespace() {
            break;
        }
        bytes = rest;
    }
    bytes
}

fn reference<'h>(name: &[u8], headers: &'h HeaderMap) -> Option<&'h [u8]> {
    let matches: Vec<&[u8]> = headers
        .get_all(COOKIE)
        .iter()
        .flat_map(|header| header.as_bytes().split(|&b| b == b';'))
        .map(trim)
        .filter(|pair| {
            pair.len() > name.len() && pair.starts_with(name) && pair[name.len()] == b'='
        })
        .collect();
    match matches[..] {
        [pair] if pair.len() <= __fuzz::MAX_COOKIE_LEN => Some(&pair[name.len() + 1..]),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, data)) = data.split_first() else {
        return;
    };
    let name = if selector & 1 == 0 { "id" } else { "__Host-id" };
    let mut headers = HeaderMap::new();
    for value in data.split(|&b| b == b'\n') {
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(COOKIE, value);
        }
    }
    let found = __fuzz::find_cookie(name, &headers);
    assert_eq!(found, reference(name.as_bytes(), &headers));
    if let Some(value) = found {
        assert!(!value.contains(&b';'));
    }
});
