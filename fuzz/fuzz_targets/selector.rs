//! A label selector a plugin passes to `cluster.list`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = operon::fuzzing::check_selector(&String::from_utf8_lossy(data));
});
