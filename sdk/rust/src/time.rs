//! The clock of a reconciler, and timestamps in the form Kubernetes uses
//! (`metav1.Time`).
//!
//! Every plugin reads "now" through [`now`] (or [`now_secs`], or
//! [`now_rfc3339`], which build on it), so there is one clock to reason
//! about: under `wasm32-wasip2` it is the WASI wall clock the host
//! provides, which `operon reconcile --now` fixes for reproducible golden
//! output. Reconcile logic takes the time as an argument (`reconcile_at(..,
//! now)`) so native tests can step it; only the component's entry point
//! calls the clock.
//!
//! Timestamps are [`jiff`]'s: k8s-openapi already reads and writes
//! `metav1.Time` with it, so every plugin has it compiled in, and the
//! strings written here parse the same way the API types parse them.
//! Plugins keep times as whole seconds since the epoch (`i64`), which is
//! what they compare and add; [`format_rfc3339`] and [`parse_rfc3339`] are
//! the two ends of that.
//!
//! The cost, measured: jiff's parser adds about 160 KB to a component
//! (operon_scaling.wasm 402 → 561 KB; printing alone is 4 KB), whatever
//! entry point is used (`Timestamp::from_str` or `fmt::temporal::Pieces`).
//! That buys one parser, shared with k8s-openapi and maintained upstream,
//! instead of a calendar of our own.

use std::time::SystemTime;

pub use jiff::Timestamp;

/// The current wall-clock time, at the clock's precision.
///
/// A clock before 1970 (never seen in practice) reads as the epoch, as
/// does one past jiff's range (year 9999): a timestamp in a status is
/// informational, and a reconcile must not fail over it.
pub fn now() -> Timestamp {
    Timestamp::try_from(SystemTime::now())
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .max(Timestamp::UNIX_EPOCH)
}

/// Seconds since the Unix epoch now: what plugins pass to their
/// `reconcile_at`.
pub fn now_secs() -> i64 {
    now().as_second()
}

/// The current wall-clock time as RFC 3339 UTC at second precision.
pub fn now_rfc3339() -> String {
    format_rfc3339(now_secs())
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC at second
/// precision (`2024-05-01T12:00:00Z`), the form the API server writes.
/// Seconds beyond jiff's range (years -9999 to 9999) are clamped to it.
///
/// ```
/// assert_eq!(operon_sdk::time::format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
/// ```
pub fn format_rfc3339(unix_secs: i64) -> String {
    let clamped = unix_secs.clamp(Timestamp::MIN.as_second(), Timestamp::MAX.as_second());
    // In range by the clamp; the fallback is never taken.
    Timestamp::from_second(clamped)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .to_string()
}

/// Seconds since the Unix epoch of an RFC 3339 timestamp, as k8s-openapi
/// reads `metav1.Time` (any offset, optional fractional seconds, which are
/// dropped); `None` if it is not one. Plugins read their own recorded
/// times back with it (e.g. how long a condition has held), and the times
/// other controllers write (a Job's `completionTime`).
///
/// ```
/// use operon_sdk::time::parse_rfc3339;
/// assert_eq!(parse_rfc3339("2000-02-29T02:00:00+02:00"), Some(951_782_400));
/// assert_eq!(parse_rfc3339("yesterday"), None);
/// ```
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    text.parse::<Timestamp>().ok().map(|t| t.as_second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        // Leap day of a year divisible by 400, and the day after it.
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(format_rfc3339(951_868_800), "2000-03-01T00:00:00Z");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(
            format_rfc3339(4_107_542_400 - 86_400),
            "2100-02-28T00:00:00Z"
        );
        assert_eq!(format_rfc3339(4_107_542_400), "2100-03-01T00:00:00Z");
        // End of year, time of day, before the epoch.
        assert_eq!(format_rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn out_of_range_seconds_are_clamped() {
        // jiff's range leaves room for any offset at the ends of its years.
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-30T22:00:00Z");
        assert_eq!(
            format_rfc3339(i64::MIN),
            format_rfc3339(Timestamp::MIN.as_second())
        );
        assert!(format_rfc3339(i64::MIN).starts_with("-009999-01-0"));
    }

    #[test]
    fn now_is_well_formed_and_recent() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
        assert!(now.as_str() > "2020-01-01T00:00:00Z", "{now}");
        assert!((now_secs() - parse_rfc3339(&now).unwrap()).abs() <= 1);
    }

    #[test]
    fn parses_what_it_formats() {
        for secs in [
            0,
            951_782_400,
            1_714_564_800,
            1_704_067_199,
            4_102_444_800,
            -1,
        ] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
        }
    }

    #[test]
    fn parses_offsets_and_fractions_as_kubernetes_writes_them() {
        assert_eq!(
            parse_rfc3339("2024-05-01T14:00:00+02:00"),
            Some(1_714_564_800)
        );
        assert_eq!(
            parse_rfc3339("2024-05-01T12:00:00.999999Z"),
            Some(1_714_564_800)
        );
        for bad in [
            "garbage",
            "2024-05-01",
            "2024-05-01T12:00:00",
            "2024-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }
}
