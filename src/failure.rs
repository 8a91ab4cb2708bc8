//! The response a request gets when its session could not be loaded or saved.

use std::time::Duration;

use http::header::{CACHE_CONTROL, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};

use crate::error::Error;
pub use crate::protocol::Protocol;
use crate::protocol::{http_status, GrpcStatus};

/// Builds the response that replaces the handler's when the session failed.
///
/// Called when the store failed or timed out ([`Error::is_unavailable`]) or when the
/// session ended during the request ([`ErrorKind::Ended`](crate::ErrorKind::Ended)).
/// Closures `Fn(&Error, Protocol) -> Response<B>` implement it.
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
/// | the session would pass its size bound, or outgrow its cookie in token mode ([`ErrorKind::TooLarge`](crate::ErrorKind::TooLarge)) | 413 | `ABORTED` (10) |
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

impl<B: Default> OnFailure<B> for DefaultOnFailure {
    fn on_failure(&self, error: &Error, protocol: Protocol) -> Response<B> {
        let mut response = Response::new(B::default());
        response
            .headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match protocol {
            Protocol::Grpc => {
                GrpcStatus::of(error.kind()).write_trailers_only(response.headers_mut());
            }
            Protocol::Http => {
                let status = http_status(error.kind());
                *response.status_mut() = status;
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    let seconds =
                        self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
                    response
                        .headers_mut()
                        .insert(RETRY_AFTER, HeaderValue::from(seconds.max(1)));
                }
            }
        }
        response
    }
}
