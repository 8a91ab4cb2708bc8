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
    Ok,
    Error,
    Timeout,
}

/// One store call: its outcome and latency.
pub(crate) fn store_call(operation: &'static str, outcome: CallOutcome, latency: Duration) {
    #[cfg(feature = "metrics")]
    {
        let outcome = match outcome {
            CallOutcome::Ok => "ok",
            CallOutcome::Error => "error",
            CallOutcome::Timeout => "timeout",
        };
        metrics::counter!(
            "tower_stateless_store_calls_total",
            "operation" => operation,
            "outcome" => outcome
        )
        .increment(1);
        metrics::histogram!(
            "tower_stateless_store_call_duration_seconds",
            "operation" => operation
        )
        .record(latency.as_secs_f64());
    }
    #[cfg(not(feature = "metrics"))]
    let _ = (operation, outcome, latency);
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
