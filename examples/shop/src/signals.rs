//! The signals that ask this process to stop.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT (Ctrl-C) and SIGTERM, and SIGHUP if asked for. They are caught from the
/// moment this is made: one that arrives before [`StopSignals::recv`] is kept for it,
/// instead of ending the process on the spot.
#[derive(Debug)]
pub(crate) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Option<Signal>,
}

impl StopSignals {
    /// Starts catching the signals; must be called inside a tokio runtime.
    pub(crate) fn catch(hangup: bool) -> Self {
        let catch = |kind| signal(kind).expect("a signal handler");
        Self {
            interrupt: catch(SignalKind::interrupt()),
            terminate: catch(SignalKind::terminate()),
            hangup: hangup.then(|| catch(SignalKind::hangup())),
        }
    }

    /// Resolves when one of the signals has arrived.
    pub(crate) async fn recv(&mut self) {
        let hangup = async {
            match &mut self.hangup {
                Some(hangup) => hangup.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
            _ = hangup => {}
        }
    }
}
