//! `bench-peers sha256-cost SHORT|LONG N`: N SHA-256 digests of a message that takes one
//! compression call of one block (`SHORT`, 55 bytes) or two calls of nine blocks in all
//! (`LONG`, 512 bytes: eight blocks at once, then the padding block), and nothing else.
//!
//! `scripts/instructions.sh` runs both under callgrind to learn what sha2's software
//! compression costs per call and per block there: valgrind hides SHA-NI from the program,
//! so under callgrind sha2 always takes its software path, and the harness replaces that
//! cost by the SHA-NI path's.

use sha2::{Digest, Sha256};

/// Runs the digests; prints their last byte so that none is optimized away.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (len, count) = match args {
        [kind, count] => {
            let len = match kind.as_str() {
                "SHORT" => 55,
                "LONG" => 512,
                other => return Err(format!("unknown message kind {other}")),
            };
            let count: u32 = count
                .parse()
                .map_err(|_| format!("{count} is not a count"))?;
            (len, count)
        }
        _ => return Err("usage: bench-peers sha256-cost SHORT|LONG N".to_owned()),
    };
    let mut message = vec![0u8; len];
    let mut last = 0u8;
    for round in 0..count {
        message[0] = round.to_le_bytes()[0];
        last ^= Sha256::digest(&message)[31];
    }
    println!("{last}");
    Ok(())
}
