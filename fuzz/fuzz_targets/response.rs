//! A plugin's answer: JSON texts the guest wrote, decoded and then checked
//! against a registration, as the host does with every reconcile. Input:
//! NUL-separated texts — the status first, then children, then patch
//! bodies after an empty text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use operon::fuzzing::check_response;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\0');
    let status = parts.next().filter(|s| !s.is_empty()).map(str::to_string);
    let mut children = Vec::new();
    let mut patches = Vec::new();
    let mut in_patches = false;
    for part in parts {
        match (in_patches, part.is_empty()) {
            (false, true) => in_patches = true,
            (false, false) => children.push(part.to_string()),
            (true, _) => patches.push(part.to_string()),
        }
    }
    let _ = check_response(children, status, patches);
});
