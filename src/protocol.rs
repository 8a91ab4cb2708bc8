//! What the layer knows of the protocols it carries: telling gRPC from plain HTTP, and
//! how each says that a call succeeded or failed.

use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::error::ErrorKind;

/// The protocol of a request, so a failure can be answered in kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Protocol {
    /// Plain HTTP: failures are status codes.
    Http,
    /// gRPC (`content-type: application/grpc…`): failures are `grpc-status` codes.
    Grpc,
}

/// gRPC status codes the layer answers with.
#[derive(Debug, Clone, Copy)]
pub(crate) enum GrpcStatus {
    /// 10: the session ended during the call.
    Aborted,
    /// 14: the session store is unavailable; clients may retry.
    Unavailable,
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

    /// Whether the handler's answer counts as a success worth saving: not 5xx, and for
    /// gRPC no failing `grpc-status` in a trailers-only response.
    pub(crate) fn succeeded<B>(self, response: &Response<B>) -> bool {
        if response.status().is_server_error() {
            return false;
        }
        match (self, response.headers().get("grpc-status")) {
            (Self::Grpc, Some(status)) => status == "0",
            _ => true,
        }
    }
}

/// The HTTP status of a failed session call: the one table, for the default failure
/// response and for handlers that answer with an [`Error`](crate::Error).
pub(crate) fn http_status(kind: ErrorKind) -> StatusCode {
    match kind {
        kind if kind.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        // What the request asked to keep is too large, not a conflict.
        ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorKind::Ended | ErrorKind::NotAnInteger | ErrorKind::Overflow | ErrorKind::Contended => {
            StatusCode::CONFLICT
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl GrpcStatus {
    /// The gRPC status of a failed session call: the one table.
    pub(crate) fn of(kind: ErrorKind) -> Self {
        if kind.is_unavailable() {
            Self::Unavailable
        } else {
            Self::Aborted
        }
    }

    /// Makes `headers` a trailers-only gRPC response with this status: HTTP 200 with
    /// the status in the headers.
    pub(crate) fn write_trailers_only(self, headers: &mut HeaderMap) {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        self.write_status(headers);
    }

    /// Puts this status in `headers` (a trailers-only head, or trailers).
    pub(crate) fn write_status(self, headers: &mut HeaderMap) {
        let (code, message) = match self {
            Self::Aborted => ("10", "session ended during the request"),
            Self::Unavailable => ("14", "session store unavailable"),
        };
        headers.insert("grpc-status", HeaderValue::from_static(code));
        headers.insert("grpc-message", HeaderValue::from_static(message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn response(status: StatusCode, grpc_status: Option<&'static str>) -> Response<()> {
        let mut response = Response::new(());
        *response.status_mut() = status;
        if let Some(code) = grpc_status {
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static(code));
        }
        response
    }

    #[test]
    fn success_is_judged_per_protocol() {
        assert!(Protocol::Http.succeeded(&response(StatusCode::OK, None)));
        assert!(Protocol::Http.succeeded(&response(StatusCode::NOT_FOUND, None)));
        assert!(!Protocol::Http.succeeded(&response(StatusCode::BAD_GATEWAY, None)));
        assert!(Protocol::Http.succeeded(&response(StatusCode::OK, Some("13"))));
        assert!(Protocol::Grpc.succeeded(&response(StatusCode::OK, Some("0"))));
        assert!(Protocol::Grpc.succeeded(&response(StatusCode::OK, None)));
        assert!(!Protocol::Grpc.succeeded(&response(StatusCode::OK, Some("13"))));
    }

    #[test]
    fn detects_grpc_by_content_type() {
        let mut headers = HeaderMap::new();
        assert_eq!(Protocol::of(&headers), Protocol::Http);
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/grpc+proto"),
        );
        assert_eq!(Protocol::of(&headers), Protocol::Grpc);
    }
}
