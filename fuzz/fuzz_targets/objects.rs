//! YAML or JSON objects given to the CLI (`operon reconcile`, fixtures).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = operon::cli::parse_objects(&String::from_utf8_lossy(data));
});
