//! The `x-instance` response header: which instance answered, for the fleet tests and for
//! people reading logs.

use std::future::Future;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use axum::http::{HeaderName, HeaderValue, Request, Response};
use tower_layer::Layer;
use tower_service::Service;

const X_INSTANCE: HeaderName = HeaderName::from_static("x-instance");

/// Adds `x-instance: <instance>` to every response of the service it wraps.
///
/// A typed layer rather than `axum::middleware::map_response`, whose future is boxed: this
/// one runs on every request, and its future is the inner future plus the header value.
#[derive(Clone)]
pub(crate) struct InstanceHeader {
    instance: HeaderValue,
}

impl InstanceHeader {
    pub(crate) fn new(instance: HeaderValue) -> Self {
        Self { instance }
    }
}

impl<S> Layer<S> for InstanceHeader {
    type Service = WithInstance<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WithInstance {
            inner,
            instance: self.instance.clone(),
        }
    }
}

/// A service whose responses carry `x-instance`.
#[derive(Clone)]
pub struct WithInstance<S> {
    inner: S,
    instance: HeaderValue,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WithInstance<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Future: Unpin,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = InstanceFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        InstanceFuture {
            future: self.inner.call(request),
            instance: Some(self.instance.clone()),
        }
    }
}

/// The inner service's future; adds the header to its response.
pub struct InstanceFuture<F> {
    future: F,
    instance: Option<HeaderValue>,
}

impl<F, B, E> Future for InstanceFuture<F>
where
    F: Future<Output = Result<Response<B>, E>> + Unpin,
{
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let mut response = ready!(Pin::new(&mut this.future).poll(cx))?;
        if let Some(instance) = this.instance.take() {
            response.headers_mut().insert(X_INSTANCE, instance);
        }
        Poll::Ready(Ok(response))
    }
}
