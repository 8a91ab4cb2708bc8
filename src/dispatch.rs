//! `Backend`'s operations that take the layer's `Config` or a request's session (its
//! check at build, open, load, size, immediate writes, write-back), one method with one
//! `match` each: in the store, or on the request's sealed token (token mode).

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::backend::Backend;
use crate::config::Config;
use crate::error::{ConfigError, Error};
use crate::events::Clue;
use crate::expiry::Expiry;
use crate::keys::Rejected;
use crate::plan::{Outcome, Write};
use crate::record::Record;
use crate::session::{Session, State};
use crate::snapshot::Incoming;

impl Backend {
    /// The rules of this backend's settings, checked with the rest of `config` at build.
    // Without token mode, only its arm uses every argument.
    #[cfg_attr(not(feature = "token"), allow(unused_variables))]
    pub(crate) fn validate(&self, config: &Config) -> Result<(), ConfigError> {
        match self {
            Self::Store(_) => Ok(()),
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => {
                if config.max_sessions_per_user.is_some() {
                    return Err(ConfigError::NeedsStore("a limit on sessions per user"));
                }
                if config.size_limits != crate::size::SizeLimits::default() {
                    return Err(ConfigError::NeedsStore("a session size bound in bytes"));
                }
                tokens.validate(config)
            }
        }
    }

    /// Token mode: the session sealed in `token`, if one of the layer's keys sealed it for
    /// this carrier's name. No store call: a forged token costs one AEAD check per key.
    /// Store mode never finds a sealed token; were it to, it would count as malformed.
    // Without token mode, only its arm uses every argument.
    #[cfg_attr(not(feature = "token"), allow(unused_variables))]
    pub(crate) fn open(&self, config: &Config, token: &[u8]) -> Option<Incoming> {
        match self {
            Self::Store(_) => {
                config.events.rejected(Rejected::Malformed, Clue::None);
                None
            }
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => match tokens.open(config.carrier.name(), token) {
                Ok((contents, verified)) => {
                    let mut incoming = Incoming::new(contents.id.clone(), verified);
                    incoming.contents = Some(contents);
                    Some(incoming)
                }
                Err(reason) => {
                    config.events.rejected(reason, Clue::Token(token));
                    None
                }
            },
        }
    }

    /// The stored session of `incoming`: the store's record, or in token mode the one
    /// the token carried, if it is still live.
    pub(crate) async fn load(
        &self,
        incoming: &Incoming,
        expiry: Expiry,
    ) -> Result<Option<Arc<Record>>, Error> {
        match self {
            Self::Store(store) => store.load(incoming.hashed(), expiry).await,
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => {
                let Some(contents) = &incoming.contents else {
                    return Ok(None);
                };
                let live = tokens.is_live(contents, expiry).await?;
                Ok(live.then(|| contents.record.clone()))
            }
        }
    }

    /// Whether the session, with the request's pending changes, stays within its bound:
    /// the size bound in store mode, the cookie's budget in token mode.
    pub(crate) fn fits(&self, session: &Session, state: &State) -> Result<(), Error> {
        match self {
            Self::Store(_) => session.fits_size_bound(state),
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => session.fits_in_token(tokens, state),
        }
    }

    /// [`Session::increment`] once the request's pending changes could not absorb it: one
    /// atomic store call, or in token mode a new pending value.
    pub(crate) async fn increment(
        &self,
        session: &Session,
        key: &str,
        delta: i64,
    ) -> Result<i64, Error> {
        match self {
            Self::Store(store) => session.increment_stored(store, key, delta).await,
            #[cfg(feature = "token")]
            Self::Tokens(_) => session.increment_sealed(key, delta).await,
        }
    }

    /// [`Session::update`] once the request's pending changes could not absorb it:
    /// compare-and-set rounds in the store, or in token mode a new pending value.
    pub(crate) async fn update<T, F>(
        &self,
        session: &Session,
        key: &str,
        change: F,
    ) -> Result<Option<T>, Error>
    where
        T: Serialize + DeserializeOwned,
        F: FnMut(Option<T>) -> Option<T>,
    {
        match self {
            Self::Store(store) => session.update_stored(store, key, change).await,
            #[cfg(feature = "token")]
            Self::Tokens(_) => session.update_sealed(key, change).await,
        }
    }

    /// Runs the operation [`plan`](crate::plan::plan) chose at the request's `expiry`: in
    /// the store, or by sealing a new token.
    pub(crate) async fn write_back(
        &self,
        config: &Config,
        write: Write,
        expiry: Expiry,
    ) -> Outcome {
        match self {
            Self::Store(store) => crate::writeback::in_store(config, store, write, expiry).await,
            #[cfg(feature = "token")]
            Self::Tokens(tokens) => {
                crate::token::writeback::run(config, tokens, write, expiry).await
            }
        }
    }
}
