//! Counters and histograms through the `metrics` facade (feature `metrics`): the
//! application installs a recorder (a Prometheus exporter, say) and these series
//! appear. Without the feature every function here compiles to nothing.
//!
//! | series | labels |
//! |---|---|
//! | `tower_stateless_store_calls_total` | `operation`, `outcome` (`ok`, `error`, `timeout`) |
//! | `tower_stateless_store_call_duration_seconds` (histogram) | `operation` |
//! | `tower_stateless_failure_responses_total` | `cause` (`store`, `timeout`, `random`, `ended`) |
//! | `tower_stateless_rejected_tokens_total` | `reason` (`malformed`, `forged`, `unknown`, `revoked`) |

use std::time::Duration;

use crate::error::ErrorKind;
use crate::keys::Rejected;

/// How a store call ended, as counted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum CallOutcome {
    Ok = 0,
    Error = 1,
    Timeout = 2,
}

/// One store call: its outcome and latency.
pub(crate) fn store_call(operation: &'static str, outcome: CallOutcome, latency: Duration) {
    #[cfg(feature = "metrics")]
    registered::store_call(operation, outcome, latency);
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, outcome, latency);
}

/// The store-call series' handles, registered once per operation and recorder.
///
/// What `metrics::counter!` does on every call (building the labelled key, hashing it and
/// looking it up in the recorder's registry) happens here once per series; every call
/// after that only counts. The recorder in effect can change (one installed after the
/// first request, a thread-local one): the handles are kept with the address of the
/// recorder that gave them, and registered again when another one answers.
#[cfg(feature = "metrics")]
mod registered {
    use std::sync::{PoisonError, RwLock};
    use std::time::Duration;

    use metrics::{Counter, Histogram, Key, Label, Level, Metadata, Recorder};

    use super::CallOutcome;

    const CALLS: &str = "tower_stateless_store_calls_total";
    const DURATION: &str = "tower_stateless_store_call_duration_seconds";

    /// One operation's series: a counter per outcome, and its latency.
    struct Series {
        operation: &'static str,
        /// Indexed by `CallOutcome as usize`.
        outcomes: [Counter; 3],
        latency: Histogram,
    }

    struct Registered {
        /// The address of the recorder the handles came from.
        recorder: usize,
        series: Vec<Series>,
    }

    static REGISTERED: RwLock<Registered> = RwLock::new(Registered {
        recorder: 0,
        series: Vec::new(),
    });

    pub(super) fn store_call(operation: &'static str, outcome: CallOutcome, latency: Duration) {
        metrics::with_recorder(|recorder| {
            let address = (recorder as *const dyn Recorder).cast::<()>().addr();
            {
                let registered = REGISTERED.read().unwrap_or_else(PoisonError::into_inner);
                if registered.recorder == address {
                    if let Some(series) = registered.find(operation) {
                        series.record(outcome, latency);
                        return;
                    }
                }
            }
            let series = Series::register(recorder, operation);
            series.record(outcome, latency);
            let mut registered = REGISTERED.write().unwrap_or_else(PoisonError::into_inner);
            if registered.recorder != address {
                registered.recorder = address;
                registered.series.clear();
            }
            if registered.find(operation).is_none() {
                registered.series.push(series);
            }
        });
    }

    impl Registered {
        fn find(&self, operation: &str) -> Option<&Series> {
            self.series
                .iter()
                .find(|series| series.operation == operation)
        }
    }

    impl Series {
        fn register(recorder: &dyn Recorder, operation: &'static str) -> Self {
            // What the macros pass: this module as target, at INFO.
            let metadata = Metadata::new(module_path!(), Level::INFO, Some(module_path!()));
            let counter = |outcome: &'static str| {
                let labels = vec![
                    Label::new("operation", operation),
                    Label::new("outcome", outcome),
                ];
                recorder.register_counter(&Key::from_parts(CALLS, labels), &metadata)
            };
            let latency = Key::from_parts(DURATION, vec![Label::new("operation", operation)]);
            Self {
                operation,
                outcomes: [counter("ok"), counter("error"), counter("timeout")],
                latency: recorder.register_histogram(&latency, &metadata),
            }
        }

        fn record(&self, outcome: CallOutcome, latency: Duration) {
            self.outcomes[outcome as usize].increment(1);
            self.latency.record(latency.as_secs_f64());
        }
    }
}

/// A response replaced by the failure response, by cause.
pub(crate) fn failure_response(kind: ErrorKind) {
    #[cfg(feature = "metrics")]
    {
        let cause = match kind {
            ErrorKind::Store => "store",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Random => "random",
            ErrorKind::Ended => "ended",
            ErrorKind::Serialization => "serialization",
            ErrorKind::NotAnInteger => "not_an_integer",
            ErrorKind::Overflow => "overflow",
            ErrorKind::Contended => "contended",
            ErrorKind::TooLarge => "too_large",
        };
        metrics::counter!("tower_stateless_failure_responses_total", "cause" => cause).increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = kind;
}

/// A token the layer did not accept, by reason.
pub(crate) fn rejected_token(reason: Rejected) {
    #[cfg(feature = "metrics")]
    {
        metrics::counter!("tower_stateless_rejected_tokens_total", "reason" => reason.label())
            .increment(1);
    }
    #[cfg(not(feature = "metrics"))]
    let _ = reason;
}
