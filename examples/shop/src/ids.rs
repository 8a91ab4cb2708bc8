//! Random IDs for orders and uploads.

/// A random ID for orders and uploads: `<prefix>_<16 hex digits>`.
pub(crate) fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    format!("{prefix}_{:016x}", u64::from_be_bytes(bytes))
}
