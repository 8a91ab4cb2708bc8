//! Security events: tokens the layer would not accept, counted by reason and logged at
//! a bounded rate, so that an operator can see token guessing or replay.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::keys::Rejected;

/// Lines logged per reason and per window: enough to notice, too few to flood a log
/// when someone sends forged tokens as fast as they can.
const LINES_PER_WINDOW: u64 = 5;
const WINDOW: Duration = Duration::from_secs(1);
/// Characters of a SHA-256 (base64url) kept in a log line: enough to correlate lines,
/// far too few to replay anything.
const FINGERPRINT_LEN: usize = 8;

/// What a log line may say about the rejected value: never the token itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Clue<'a> {
    /// Nothing held (a value of the wrong size is dropped where it is found).
    None,
    /// The token-sized value that failed verification: its SHA-256 is logged, shortened.
    Token(&'a [u8]),
    /// A verified session: the start of its hashed ID, as in the store's own logs.
    Session(&'a str),
}

impl fmt::Display for Clue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("-"),
            Self::Token(token) => {
                let digest = URL_SAFE_NO_PAD.encode(Sha256::digest(token));
                write!(f, "token-sha256:{}", &digest[..FINGERPRINT_LEN])
            }
            Self::Session(hashed) => {
                let prefix: String = hashed.chars().take(FINGERPRINT_LEN).collect();
                write!(f, "session:{prefix}")
            }
        }
    }
}

/// One layer's rejected-token log: per reason, a count and a rate limit.
#[derive(Debug, Default)]
pub(crate) struct SecurityEvents {
    reasons: [Mutex<Window>; Rejected::ALL.len()],
}

#[derive(Debug, Default)]
struct Window {
    started: Option<Instant>,
    logged: u64,
    /// Rejections since the last logged line that were not logged.
    suppressed: u64,
    total: u64,
}

impl SecurityEvents {
    /// Counts a rejected token (metric `tower_stateless_rejected_tokens_total`) and logs
    /// it, unless this reason already logged its share of lines in the current second.
    pub(crate) fn rejected(&self, reason: Rejected, clue: Clue<'_>) {
        crate::metrics::rejected_token(reason);
        let now = Instant::now();
        let (total, suppressed) = {
            let mut window = self.reasons[reason as usize]
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            window.total += 1;
            if window
                .started
                .is_none_or(|started| now.duration_since(started) >= WINDOW)
            {
                window.started = Some(now);
                window.logged = 0;
            }
            if window.logged == LINES_PER_WINDOW {
                window.suppressed += 1;
                return;
            }
            window.logged += 1;
            (window.total, std::mem::take(&mut window.suppressed))
        };
        tracing::warn!(
            reason = reason.label(),
            count = total,
            suppressed,
            clue = %clue,
            "rejected a session token"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clues_are_short_and_never_the_token() {
        let token = b"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.tag";
        let text = Clue::Token(token).to_string();
        assert_eq!(text.len(), "token-sha256:".len() + FINGERPRINT_LEN);
        assert!(!text.contains("AAAA"), "{text}");
        assert_eq!(
            Clue::Session("abcdefghijklmnop").to_string(),
            "session:abcdefgh"
        );
        assert_eq!(Clue::Session("é").to_string(), "session:é");
        assert_eq!(Clue::None.to_string(), "-");
    }
}
