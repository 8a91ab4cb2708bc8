//! The client side: keep the token the server hands out and send it back.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use http::{HeaderMap, HeaderValue};
use tonic::transport::{Channel, Endpoint};
use tower_service::Service;

use crate::pb::cart_client::CartClient;
use crate::SESSION_HEADER;

/// Where a client keeps its session token. Clones share the token, so one session can
/// be used over several channels (to several instances) at once.
#[derive(Clone, Default)]
pub struct TokenJar {
    token: Arc<Mutex<Option<HeaderValue>>>,
}

impl TokenJar {
    /// An empty jar: the first calls are anonymous.
    pub fn new() -> Self {
        Self::default()
    }

    /// The token held, if any.
    pub fn token(&self) -> Option<String> {
        self.lock()
            .as_ref()
            .and_then(|token| token.to_str().ok())
            .map(str::to_owned)
    }

    /// Replaces the token held (`None` forgets it).
    pub fn set_token(&self, token: Option<HeaderValue>) {
        *self.lock() = token;
    }

    /// Takes in the token of a response: a new one replaces the old, an empty one ends
    /// the session, none at all leaves the jar as it is.
    fn update(&self, headers: &HeaderMap) {
        if let Some(value) = headers.get(SESSION_HEADER) {
            self.set_token((!value.is_empty()).then(|| value.clone()));
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<HeaderValue>> {
        // Only ever replaced whole: a poisoned value is still a valid one.
        self.token
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for TokenJar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let held = self.lock().is_some();
        f.debug_struct("TokenJar")
            .field("token", &held.then_some("<redacted>"))
            .finish()
    }
}

/// A channel (any HTTP service, usually a tonic [`Channel`]) that sends the jar's token
/// in [`SESSION_HEADER`] and keeps the token each response brings.
#[derive(Debug, Clone)]
pub struct SessionChannel<S = Channel> {
    inner: S,
    jar: TokenJar,
}

impl<S> SessionChannel<S> {
    /// Wraps `inner`; the token lives in `jar`.
    pub fn new(inner: S, jar: TokenJar) -> Self {
        Self { inner, jar }
    }

    /// The jar holding the token.
    pub fn jar(&self) -> &TokenJar {
        &self.jar
    }
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for SessionChannel<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    S::Error: 'static,
    ResBody: 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        if let Some(token) = self.jar.lock().clone() {
            request.headers_mut().insert(SESSION_HEADER, token);
        }
        let response = self.inner.call(request);
        let jar = self.jar.clone();
        Box::pin(async move {
            let response = response.await?;
            jar.update(response.headers());
            Ok(response)
        })
    }
}

/// Connects to the cart service at `url` (`http://127.0.0.1:50051`), keeping the
/// session token in `jar`.
pub async fn connect(
    url: &str,
    jar: TokenJar,
) -> Result<CartClient<SessionChannel>, tonic::transport::Error> {
    let channel = Endpoint::from_shared(url.to_owned())?.connect().await?;
    Ok(CartClient::new(SessionChannel::new(channel, jar)))
}
