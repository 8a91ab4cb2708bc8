//! The layer's one handle on its store: every call under the store timeout, in a
//! tracing span, counted, and with failures mapped to [`Error`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::dyn_store::DynStore;
use super::SessionStore;
use crate::error::{Error, StoreError};
use crate::metrics::{self, CallOutcome};

/// The store, and how long a call may take. Its per-call methods (`load`, `apply`, ...)
/// are made in `dyn_store.rs`, from the one list of store calls.
#[derive(Clone)]
pub(crate) struct StoreHandle {
    pub(super) store: Arc<dyn DynStore>,
    timeout: Duration,
}

impl StoreHandle {
    pub(crate) fn new(store: impl SessionStore, timeout: Duration) -> Self {
        Self {
            store: Arc::new(store),
            timeout,
        }
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn with_timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// Runs one store call under the timeout, in a span named after `operation` (never
    /// the session ID), and counts it.
    pub(super) async fn call<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, Error> {
        let span = tracing::debug_span!(
            "session_store",
            operation,
            latency_us = tracing::field::Empty
        );
        let started = Instant::now();
        let result = within(self.timeout, call).instrument(span.clone()).await;
        let latency = started.elapsed();
        span.record("latency_us", latency.as_micros());
        let outcome = match &result {
            Ok(_) => CallOutcome::Ok,
            Err(error) if error.kind() == crate::ErrorKind::Timeout => CallOutcome::Timeout,
            Err(_) => CallOutcome::Error,
        };
        metrics::store_call(operation, outcome, latency);
        result
    }
}

/// Runs one store call under `limit` (token mode's revocation calls too).
pub(crate) async fn within<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, Error> {
    let mut call = std::pin::pin!(call);
    // A store that answers on the first poll (one in memory) needs no timer; one that
    // does I/O has only just sent its request when the timer starts.
    let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
    let result = match first {
        Poll::Ready(result) => result,
        Poll::Pending => match tokio::time::timeout(limit, call).await {
            Ok(result) => result,
            Err(_) => return Err(Error::timeout(limit)),
        },
    };
    result.map_err(Error::from)
}

impl fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreHandle")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}
