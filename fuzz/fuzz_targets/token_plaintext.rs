//! Token mode's plaintext layout: any bytes as what a sealed cookie holds once opened.
//!
//! Only plaintexts sealed under one of the layer's keys reach this parser, so a crash
//! here needs a key; still, whatever it accepts must encode again to the length the size
//! budget predicts and decode to the same session, and nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_stateless::__fuzz;

fuzz_target!(|bytes: &[u8]| {
    assert_ne!(
        __fuzz::token_plaintext_round_trips(bytes),
        Some(false),
        "a plaintext that does not survive its own round trip"
    );
});
