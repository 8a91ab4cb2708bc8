//! Not public API: token mode's entry points for this crate's own benchmarks, re-exported
//! by `__bench`.

use std::time::Duration;

use super::{Contents, TokenSessions, Tokens};
use crate::id::SessionId;
use crate::keys::Keys;
use crate::record::{Metadata, Record};
use crate::time::Timestamp;

/// Token mode: seals one fixed session holding `fields` (and bound to `user`) under
/// `keys`' signing key each call.
pub fn sealer(
    keys: &Keys,
    name: &'static str,
    fields: &[(&str, &str)],
    user: Option<&str>,
) -> impl Fn() -> String {
    let tokens = Tokens::new(TokenSessions::new(), keys, Duration::from_secs(1));
    let mut metadata = Metadata::new(Timestamp::from_millis(1_800_000_000_000));
    metadata.user_id = user.map(str::to_owned);
    let data = fields
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    let contents = Contents {
        id: SessionId::generate().expect("OS random source"),
        record: Record::new(data, metadata).into(),
        bound_at: Timestamp::from_millis(1_800_000_000_000),
    };
    move || tokens.seal_only(name, &contents).expect("fits the layout")
}

/// Token mode: whether `token` opens under `keys`.
pub fn open(keys: &Keys, name: &str) -> impl Fn(&str) -> bool {
    let tokens = Tokens::new(TokenSessions::new(), keys, Duration::from_secs(1));
    let name = name.to_owned();
    move |token| tokens.open(&name, token.as_bytes()).is_ok()
}
