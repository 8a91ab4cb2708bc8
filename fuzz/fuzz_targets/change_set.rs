//! Change-set encoding round trips: any change set, laid out as the `apply` script's
//! `ARGV`, is read back by a mirror of the script's decoding (`apply_and_refresh` in
//! `change_set.lua`) as exactly the same change set.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_stateless::__fuzz;
use tower_stateless::store::{ChangeSet, Expiry, Timestamp};

#[derive(Arbitrary, Debug)]
struct Input {
    clear: bool,
    set: Vec<(String, String)>,
    removed: Vec<String>,
    increments: Vec<(String, i64)>,
    user: Option<Option<String>>,
    now: u64,
    idle: u64,
    absolute: u64,
}

fuzz_target!(|input: Input| {
    let mut changes = ChangeSet::default();
    changes.clear = input.clear;
    for (name, value) in input.set {
        changes = changes.with_set(name, value);
    }
    for name in input.removed {
        changes = changes.with_removed(name);
    }
    // The session never sets and increments one field in the same change set.
    for (name, delta) in input.increments {
        if !changes.fields.contains_key(&name) {
            changes = changes.with_increment(name, delta);
        }
    }
    if let Some(user) = input.user {
        changes = changes.with_user(user);
    }
    let expiry = Expiry::new(
        Timestamp::from_millis(input.now),
        Duration::from_millis(input.idle),
        Duration::from_millis(input.absolute),
    );
    let argv = __fuzz::apply_argv(&changes, expiry);
    assert_eq!(__fuzz::script_reads_apply(&argv), Ok(changes));
});
