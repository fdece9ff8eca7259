//! The clock for the failover delay: the status records when the primary
//! became unavailable, and a later reconcile compares that with now (the
//! WASI wall clock; fixed by `operon reconcile --now`), read back with the
//! SDK's [`parse_rfc3339`].

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the epoch now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub use operon_sdk::time::parse_rfc3339;
