//! Wall-clock timestamps in the form Kubernetes uses (`metav1.Time`).
//!
//! Conditions carry a `lastTransitionTime` in RFC 3339 at second precision
//! (`2024-05-01T12:00:00Z`). Pulling a date crate into every plugin for one
//! format would cost kilobytes of Wasm; the civil-calendar arithmetic below is
//! a few lines. Under `wasm32-wasip2`, [`std::time::SystemTime`] reads the WASI
//! wall clock, which the host provides.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current wall-clock time as RFC 3339 UTC at second precision.
///
/// A clock before 1970 (never seen in practice) reads as the epoch rather
/// than failing: a timestamp in a condition is informational, and a reconcile
/// must not fail over it.
pub fn now_rfc3339() -> String {
    let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(since) => i64::try_from(since.as_secs()).unwrap_or(i64::MAX),
        Err(_) => 0,
    };
    format_rfc3339(secs)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC, e.g.
/// `1970-01-01T00:00:00Z`.
///
/// ```
/// assert_eq!(operon_sdk::time::format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
/// ```
pub fn format_rfc3339(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let secs_of_day = unix_secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs_of_day / 3600,
        secs_of_day % 3600 / 60,
        secs_of_day % 60
    )
}

/// Converts days since 1970-01-01 to a proleptic Gregorian (year, month, day).
///
/// Howard Hinnant's `civil_from_days`: shift the year to start in March so the
/// leap day falls at its end, then split into 400-year eras (each exactly
/// 146 097 days), years of the era, and days of the year.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based month
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32; // [1, 31]
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32; // [1, 12]
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Seconds since the Unix epoch of a timestamp [`format_rfc3339`] writes
/// (`2024-05-01T12:00:00Z`: UTC, `Z` only); `None` for anything else. Plugins
/// read their own recorded times back with it (e.g. how long a condition
/// has held).
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[19] != b'Z' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Howard Hinnant's `days_from_civil`, the inverse of [`civil_from_days`].
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(civil_from_days(0), (1970, 1, 1));
    }

    #[test]
    fn known_dates() {
        // Leap day of a year divisible by 400.
        assert_eq!(format_rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        // The day after: month rollover out of February.
        assert_eq!(format_rfc3339(951_868_800), "2000-03-01T00:00:00Z");
        // 2100 is not a leap year: Feb 28 is followed by Mar 1.
        assert_eq!(civil_from_days(47_540), (2100, 2, 28));
        assert_eq!(civil_from_days(47_541), (2100, 3, 1));
        // End of year, time of day.
        assert_eq!(format_rfc3339(1_704_067_199), "2023-12-31T23:59:59Z");
        assert_eq!(format_rfc3339(1_714_564_800), "2024-05-01T12:00:00Z");
        // Before the epoch.
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(civil_from_days(-719_468), (0, 3, 1));
    }

    #[test]
    fn every_day_follows_the_previous() {
        // Walk 1900..2200 and check the calendar never skips or repeats a day.
        let days_in_month = |y: i64, m: u32| match m {
            2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        };
        let mut prev = civil_from_days(-25_568); // 1899-12-31
        assert_eq!(prev, (1899, 12, 31));
        for d in -25_567..109_573 {
            let cur = civil_from_days(d);
            let expected = if prev.2 < days_in_month(prev.0, prev.1) {
                (prev.0, prev.1, prev.2 + 1)
            } else if prev.1 < 12 {
                (prev.0, prev.1 + 1, 1)
            } else {
                (prev.0 + 1, 1, 1)
            };
            assert_eq!(cur, expected, "day {d}");
            prev = cur;
        }
    }

    #[test]
    fn now_is_well_formed() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 20, "{now}");
        assert!(now.ends_with('Z'));
        assert!(now.as_str() > "2020-01-01T00:00:00Z", "{now}");
    }

    #[test]
    fn parses_what_it_formats_and_nothing_else() {
        for secs in [0, 951_782_400, 1_714_564_800, 1_704_067_199, 4_102_444_800] {
            assert_eq!(parse_rfc3339(&format_rfc3339(secs)), Some(secs));
        }
        assert_eq!(parse_rfc3339("2024-05-01T12:00:00+02:00"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }
}
