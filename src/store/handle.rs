//! The layer's one handle on its store: every call under the store timeout, in a
//! tracing span, counted, and with failures mapped to [`Error`].

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use tracing::Instrument as _;

use super::dyn_store::DynStore;
use super::{
    Applied, ChangeSet, Created, Cycled, Expiry, HashedId, Incremented, Record, SessionStore,
    SessionSummary, Swapped, Timestamp,
};
use crate::error::{Error, StoreError};
use crate::metrics::{self, CallOutcome};

#[derive(Clone)]
pub(crate) struct StoreHandle {
    store: Arc<dyn DynStore>,
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

    /// The stored record, shared with the store's cache when it keeps one.
    pub(crate) async fn load(
        &self,
        id: &HashedId,
        expiry: Expiry,
    ) -> Result<Option<Arc<Record>>, Error> {
        self.call("load", self.store.load_shared(id, expiry)).await
    }

    pub(crate) async fn create(
        &self,
        id: &HashedId,
        record: &Record,
        expiry: Expiry,
    ) -> Result<Created, Error> {
        self.call("create", self.store.create(id, record, expiry))
            .await
    }

    pub(crate) async fn apply(
        &self,
        id: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Applied, Error> {
        self.call("apply", self.store.apply(id, changes, expiry))
            .await
    }

    pub(crate) async fn touch(&self, id: &HashedId, expiry: Expiry) -> Result<Applied, Error> {
        self.call("touch", self.store.touch(id, expiry)).await
    }

    pub(crate) async fn cycle_id(
        &self,
        old: &HashedId,
        new: &HashedId,
        changes: &ChangeSet,
        expiry: Expiry,
    ) -> Result<Cycled, Error> {
        self.call("cycle_id", self.store.cycle_id(old, new, changes, expiry))
            .await
    }

    pub(crate) async fn increment(
        &self,
        id: &HashedId,
        field: &str,
        delta: i64,
        expiry: Expiry,
    ) -> Result<Incremented, Error> {
        let call = self.store.increment(id, field, delta, expiry);
        self.call("increment", call).await
    }

    pub(crate) async fn compare_and_set(
        &self,
        id: &HashedId,
        field: &str,
        expected: Option<&str>,
        new: Option<&str>,
        expiry: Expiry,
    ) -> Result<Swapped, Error> {
        let call = self.store.compare_and_set(id, field, expected, new, expiry);
        self.call("compare_and_set", call).await
    }

    pub(crate) async fn destroy(&self, id: &HashedId) -> Result<(), Error> {
        self.call("destroy", self.store.destroy(id)).await
    }

    pub(crate) async fn destroy_many(&self, ids: &[HashedId]) -> Result<(), Error> {
        self.call("destroy_many", self.store.destroy_many(ids))
            .await
    }

    pub(crate) async fn sessions_of_user(
        &self,
        user_id: &str,
        expiry: Expiry,
    ) -> Result<Vec<SessionSummary>, Error> {
        let call = self.store.sessions_of_user(user_id, expiry);
        self.call("sessions_of_user", call).await
    }

    /// The store's clock, if it keeps one.
    pub(crate) async fn time(&self) -> Result<Option<Timestamp>, Error> {
        self.call("time", self.store.time()).await
    }

    /// Runs one store call under the timeout, in a span named after `operation` (never
    /// the session ID), and counts it.
    async fn call<T>(
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
