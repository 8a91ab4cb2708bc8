//! Not public API: thin wrappers over crate internals for the fuzz targets in `fuzz/`
//! (feature `__fuzz`). Nothing here changes what the crate does.

use http::HeaderMap;

use crate::cookie::CookieConfig;
use crate::id::SessionId;
use crate::keys::{Keys, Verified};

/// The longest cookie value the scan accepts.
pub const MAX_COOKIE_LEN: usize = crate::cookie::MAX_COOKIE_LEN;

/// The token for the encoded session ID `id` under `keys`' signing key, if `id` has an
/// ID's shape.
pub fn sign(keys: &Keys, name: &str, id: &[u8]) -> Option<String> {
    Some(keys.sign(name, &SessionId::parse(id)?))
}

/// What verification of `token` finds: the encoded ID and whether the signing key (not
/// a verify-only one) made its tag; `None` if rejected.
pub fn verify(keys: &Keys, name: &str, token: &[u8]) -> Option<(String, bool)> {
    let (id, by) = keys.verify(name, token).ok()?;
    Some((id.as_str().to_owned(), by == Verified::Signing))
}

/// The value of the cookie `name` found across `headers`' `Cookie` headers.
pub fn find_cookie<'h>(name: &str, headers: &'h HeaderMap) -> Option<&'h [u8]> {
    let config = CookieConfig {
        name: Some(name.to_owned()),
        ..CookieConfig::default()
    };
    config.find(headers)
}

pub use crate::store::redis::codec_fuzz::{
    apply_argv, decode_record, record_fields, script_reads_apply,
};

/// Token mode's plaintext layout (what a sealed cookie holds once opened): `None` if
/// `bytes` is not one; else whether what it holds encodes again to a plaintext of the
/// length the size budget predicts, which decodes to the same session.
pub fn token_plaintext_round_trips(bytes: &[u8]) -> Option<bool> {
    use crate::token::{decode, encode, encoded_len};
    let contents = decode(bytes)?;
    let Some(encoded) = encode(&contents) else {
        return Some(false);
    };
    let Some(again) = decode(&encoded) else {
        return Some(false);
    };
    Some(
        encoded_len(&contents.record) == Some(encoded.len())
            && again.record == contents.record
            && again.id.as_str() == contents.id.as_str()
            && again.bound_at == contents.bound_at,
    )
}
