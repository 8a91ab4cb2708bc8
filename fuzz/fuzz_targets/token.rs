//! Token parsing and verification: any bytes as the cookie's value.
//!
//! A token is accepted only in the one form the signer writes: the ID it names, signed
//! again under the key that accepted it, gives back the same bytes (no second spelling of
//! a valid token), and it is bound to the cookie's name.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use tower_stateless::{__fuzz, Key, Keys};

const NAME: &str = "id";

fn key(byte: u8) -> Key {
    Key::from_bytes(&[byte; 32]).expect("32 bytes")
}

/// Signs with key 1, also accepts key 2: the seeds hold tokens under both.
static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys::new(key(1)).with_verify_only(key(2)));
static OLD: LazyLock<Keys> = LazyLock::new(|| Keys::new(key(2)));

fuzz_target!(|token: &[u8]| {
    let Some((id, by_signing_key)) = __fuzz::verify(&KEYS, NAME, token) else {
        return;
    };
    let signer = if by_signing_key { &*KEYS } else { &*OLD };
    let canonical = __fuzz::sign(signer, NAME, id.as_bytes()).expect("an accepted ID parses");
    assert_eq!(
        canonical.as_bytes(),
        token,
        "a token accepted in a second form"
    );
    assert!(
        __fuzz::verify(&KEYS, "other", token).is_none(),
        "a token moved to another cookie name"
    );
});
