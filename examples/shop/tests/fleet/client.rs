//! A cookie-keeping HTTP client for one user, speaking to nginx over fresh connections.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, COOKIE, SET_COOKIE};
use hyper::Request;
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// One answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub instance: Option<String>,
    pub json: Value,
    /// The last `Set-Cookie` value, whole (attributes too).
    pub set_cookie: Option<String>,
}

/// Why a request failed before reaching the shop.
#[derive(Debug)]
pub struct Failed(pub String);

/// A user: one cookie, shared by all of its concurrent requests, as in a browser.
#[derive(Clone)]
pub struct Client {
    port: u16,
    cookie: Arc<Mutex<Option<String>>>,
}

/// What a retrying request went through.
#[derive(Debug, Default, Clone, Copy)]
pub struct Attempts {
    /// Retries after a failure at the proxy (connection error, 502, 504).
    pub proxy_retries: u32,
    /// Retries after a 503 from the shop (store unavailable).
    pub unavailable_retries: u32,
}

const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
const MAX_ATTEMPTS: u32 = 200;

impl Client {
    pub fn new(port: u16) -> Self {
        Self {
            port,
            cookie: Arc::default(),
        }
    }

    pub fn cookie(&self) -> Option<String> {
        self.cookie.lock().unwrap().clone()
    }

    /// A client of `port` holding `cookie`, as a copy of another's cookie would be.
    pub fn with_cookie(port: u16, cookie: Option<String>) -> Self {
        Self {
            port,
            cookie: Arc::new(Mutex::new(cookie)),
        }
    }

    /// One attempt.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Failed> {
        tokio::time::timeout(REQUEST_TIMEOUT, self.request_inner(method, path, body))
            .await
            .map_err(|_| Failed(format!("{method} {path}: timed out")))?
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Reply, Failed> {
        let fail = |what: &str, error: &dyn std::fmt::Display| {
            Failed(format!("{method} {path}: {what}: {error}"))
        };
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .map_err(|e| fail("connect", &e))?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| fail("handshake", &e))?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "shop");
        if let Some(cookie) = self.cookie() {
            request = request.header(COOKIE, cookie);
        }
        if body.is_some() {
            request = request.header(CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .unwrap();
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| fail("send", &e))?;
        let (parts, body) = response.into_parts();
        let mut set_cookie = None;
        for set in parts.headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let pair = set.split(';').next().unwrap().to_owned();
            *self.cookie.lock().unwrap() = (!pair.ends_with('=')).then_some(pair);
            set_cookie = Some(set.to_owned());
        }
        let bytes = body
            .collect()
            .await
            .map_err(|e| fail("body", &e))?
            .to_bytes();
        Ok(Reply {
            status: parts.status.as_u16(),
            instance: parts
                .headers
                .get("x-instance")
                .map(|v| v.to_str().unwrap().to_owned()),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            set_cookie,
        })
    }

    /// Retries what failed at the proxy (and 503s, if `through_outages`), up to a bound.
    pub async fn request_retrying(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        through_outages: bool,
    ) -> (Result<Reply, Failed>, Attempts) {
        let mut attempts = Attempts::default();
        for _ in 0..MAX_ATTEMPTS {
            match self.request(method, path, body.clone()).await {
                Err(_) => attempts.proxy_retries += 1,
                Ok(reply) if reply.status == 502 || reply.status == 504 => {
                    attempts.proxy_retries += 1
                }
                Ok(reply) if reply.status == 503 && through_outages => {
                    attempts.unavailable_retries += 1
                }
                done => return (done, attempts),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        (
            Err(Failed(format!(
                "{method} {path}: gave up after {MAX_ATTEMPTS} attempts"
            ))),
            attempts,
        )
    }
}
