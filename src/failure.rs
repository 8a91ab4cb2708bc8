//! The response a request gets when its session could not be loaded or saved.

use std::time::Duration;

use http::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::error::Error;

/// The protocol of a request, so a failure can be answered in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Plain HTTP: failures are status codes.
    Http,
    /// gRPC (`content-type: application/grpc…`): failures are `grpc-status` codes.
    Grpc,
}

impl Protocol {
    pub(crate) fn of(headers: &HeaderMap) -> Self {
        let grpc = headers
            .get(CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
        if grpc {
            Self::Grpc
        } else {
            Self::Http
        }
    }
}

/// Builds the response that replaces the handler's when the session failed.
///
/// Called when the store failed or timed out ([`Error::is_unavailable`]) or when the
/// session ended during the request ([`Error::Ended`]). Closures
/// `Fn(&Error, Protocol) -> Response<B>` implement it.
pub trait OnFailure<B> {
    /// The response for `error`.
    fn on_failure(&self, error: &Error, protocol: Protocol) -> Response<B>;
}

impl<B, F> OnFailure<B> for F
where
    F: Fn(&Error, Protocol) -> Response<B>,
{
    fn on_failure(&self, error: &Error, protocol: Protocol) -> Response<B> {
        self(error, protocol)
    }
}

/// The default failure responses.
///
/// | failure | HTTP | gRPC |
/// |---|---|---|
/// | store failed or timed out | 503, `Retry-After` | `UNAVAILABLE` (14) |
/// | session ended meanwhile | 409 | `ABORTED` (10) |
#[derive(Debug, Clone, Copy)]
pub struct DefaultOnFailure {
    retry_after: Duration,
}

impl Default for DefaultOnFailure {
    fn default() -> Self {
        Self {
            retry_after: Duration::from_secs(1),
        }
    }
}

impl DefaultOnFailure {
    /// The `Retry-After` of 503 responses (rounded up to whole seconds; default 1 s).
    #[must_use]
    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = retry_after;
        self
    }
}

const GRPC_UNAVAILABLE: &str = "14";
const GRPC_ABORTED: &str = "10";

impl<B: Default> OnFailure<B> for DefaultOnFailure {
    fn on_failure(&self, error: &Error, protocol: Protocol) -> Response<B> {
        let mut response = Response::new(B::default());
        let headers = response.headers_mut();
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        let unavailable = error.is_unavailable();
        match protocol {
            Protocol::Grpc => {
                // A trailers-only gRPC response: HTTP 200 with the status in the headers.
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
                let (status, message) = if unavailable {
                    (GRPC_UNAVAILABLE, "session store unavailable")
                } else {
                    (GRPC_ABORTED, "session ended during the request")
                };
                headers.insert("grpc-status", HeaderValue::from_static(status));
                headers.insert("grpc-message", HeaderValue::from_static(message));
            }
            Protocol::Http if unavailable => {
                *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                let seconds =
                    self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
                response
                    .headers_mut()
                    .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
            }
            Protocol::Http => *response.status_mut() = StatusCode::CONFLICT,
        }
        response
    }
}
