//! "Now" for cooldowns and stabilization windows: the WASI wall clock the
//! host gives the sandbox (fixed by `operon reconcile --now`, so golden
//! runs are reproducible). Times recorded in the status are read back with
//! the SDK's `parse_rfc3339`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
