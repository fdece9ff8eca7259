//! The host operator's grants file (YAML or JSON).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = operon::plugin::GrantsFile::parse(&String::from_utf8_lossy(data));
});
