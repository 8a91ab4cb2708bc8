//! Token mode's constructors of [`SessionLayer`]: the layer's defaults, with sessions
//! sealed in their tokens.

use super::{TokenSessions, Tokens};
use crate::backend::Backend;
use crate::config::Config;
use crate::keys::Keys;
use crate::layer::{config_with, SessionLayer, SessionLayerBuilder, DEFAULT_STORE_TIMEOUT};

#[cfg_attr(docsrs, doc(cfg(feature = "token")))]
impl SessionLayer {
    /// Token mode: each session lives in its own cookie, sealed with AES-256-GCM-SIV
    /// under a key derived from `keys`, so no store is needed; `tokens` says whether
    /// revocations are recorded. The [`Session`](crate::Session) API is the same; the
    /// differences (size budget, revocation, concurrency) are in
    /// [`TokenSessions`](crate::TokenSessions) and the README. Defaults as
    /// [`new`](Self::new).
    pub fn tokens(tokens: TokenSessions, keys: impl Into<Keys>) -> Self {
        Self::with_config(token_config(tokens, keys.into()))
    }

    /// A builder for token mode, starting from the defaults of
    /// [`tokens`](Self::tokens).
    pub fn tokens_builder(tokens: TokenSessions, keys: impl Into<Keys>) -> SessionLayerBuilder {
        SessionLayerBuilder::with_config(token_config(tokens, keys.into()))
    }
}

fn token_config(tokens: TokenSessions, keys: Keys) -> Config {
    let tokens = Tokens::new(tokens, &keys, DEFAULT_STORE_TIMEOUT);
    let mut config = config_with(Backend::Tokens(tokens), keys);
    // The carrier then takes a sealed session of any length, not a signed ID.
    config.carrier.sealed = true;
    config
}
