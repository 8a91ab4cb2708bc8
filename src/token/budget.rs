//! Token mode's cookie budget: what the carrier sends for a sealed session, checked when
//! the layer is built and before each seal.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use super::{format, Contents, Tokens};
use crate::config::Config;
use crate::cookie::{CookieConfig, MAX_COOKIE_LEN};
use crate::error::{ConfigError, Error, ErrorKind};
use crate::record::{Metadata, Record};
use crate::time::Timestamp;

impl Tokens {
    /// The token for `contents`, or [`ErrorKind::TooLarge`] if what the layer would send
    /// for it is over the budget: the layer never sends a cookie browsers would drop.
    pub(crate) fn seal(&self, config: &Config, contents: &Contents) -> Result<String, Error> {
        self.check_budget(config, &contents.record)?;
        self.sealer
            .seal(config.carrier.name(), contents)
            .ok_or_else(|| Error::of_kind(ErrorKind::TooLarge))
    }

    /// The budget in force: the setting, never above what browsers keep.
    fn budget(&self) -> usize {
        (self.settings.max_cookie_len)
            .unwrap_or(MAX_COOKIE_LEN)
            .min(MAX_COOKIE_LEN)
    }

    /// Whether `record`, sealed, fits the budget with `config`'s carrier.
    pub(crate) fn check_budget(&self, config: &Config, record: &Record) -> Result<(), Error> {
        match format::encoded_len(record) {
            Some(len) if self.set_len(config, len) <= self.budget() => Ok(()),
            _ => Err(Error::of_kind(ErrorKind::TooLarge)),
        }
    }

    /// What the carrier sends for a token sealing `plaintext_len` bytes, the budget's
    /// measure: the whole `Set-Cookie` value (name, `=`, token and every attribute), or
    /// the header's name + 1 + the token.
    fn set_len(&self, config: &Config, plaintext_len: usize) -> usize {
        let token_len = self.sealer.sealed_len(plaintext_len);
        let carrier = &config.carrier;
        match &carrier.header {
            None => set_cookie_len(&carrier.cookie, token_len, config.expiry.absolute_lifetime),
            Some(name) => name.as_str().len() + 1 + token_len,
        }
    }

    /// The budget's check at build: at most what browsers keep, at least an empty
    /// session with the carrier's attributes.
    pub(crate) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        let budget = self.settings.max_cookie_len.unwrap_or(MAX_COOKIE_LEN);
        let empty = Record::new(HashMap::new(), Metadata::new(Timestamp::default()));
        let min = format::encoded_len(&empty).map_or(usize::MAX, |len| self.set_len(config, len));
        if budget > MAX_COOKIE_LEN || budget < min {
            return Err(ConfigError::TokenBudget {
                budget,
                min,
                max: MAX_COOKIE_LEN,
            });
        }
        Ok(())
    }
}

/// The length of the `Set-Cookie` value `cookie` sends for a token of `token_len` bytes:
/// name, `=`, the token and every attribute. Counted without allocating (the token is
/// base64url, written as it is).
fn set_cookie_len(cookie: &CookieConfig, token_len: usize, lifetime: Duration) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut count = Count(token_len);
    let _ = write!(count, "{}", cookie.with_lifetime("", lifetime));
    count.0
}
