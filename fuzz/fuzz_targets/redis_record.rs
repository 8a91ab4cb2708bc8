//! The Redis record decoder: any hash, as `HGETALL` returns it. The input is the hash's
//! names and values in turn, separated by NUL bytes (so the seeds stay readable). The
//! decoder never panics; whatever it accepts, written back as a new session's hash and
//! read again, is the same record (with a fresh write generation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_stateless::__fuzz;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0);
    let mut fields = Vec::new();
    while let (Some(name), Some(value)) = (parts.next(), parts.next()) {
        fields.push((name.to_vec(), value.to_vec()));
    }
    let Ok(Some((record, _generation))) = __fuzz::decode_record(fields) else {
        return;
    };
    let again = __fuzz::decode_record(__fuzz::record_fields(&record));
    assert_eq!(again.expect("its own encoding decodes"), Some((record, 0)));
});
