//! Schedule time zones: UTC and fixed offsets.
//!
//! A named zone (`Europe/Berlin`) needs the tz database and its daylight
//! saving rules; the sandbox has no filesystem to read it from and
//! embedding it would cost hundreds of kilobytes per component, so named
//! zones are refused with a message saying what to write instead.

/// Seconds east of UTC for `text`: `UTC`, `Etc/UTC`, `Z`, `GMT`, or a
/// fixed offset `+02:00`, `-0530`, `+2`, optionally after `UTC`/`GMT`
/// (`UTC+02:00`).
pub fn parse_zone(text: &str) -> Result<i64, String> {
    let t = text.trim();
    if ["UTC", "Etc/UTC", "Z", "GMT", "Etc/GMT", ""].contains(&t) {
        return Ok(0);
    }
    let offset = t
        .strip_prefix("UTC")
        .or_else(|| t.strip_prefix("GMT"))
        .unwrap_or(t);
    let refuse = || {
        format!(
            "time zone {text:?} is not supported: use UTC or a fixed offset such as +02:00 \
             (named zones with daylight saving rules are not)"
        )
    };
    let (sign, rest) = match offset.as_bytes().first() {
        Some(b'+') => (1, &offset[1..]),
        Some(b'-') => (-1, &offset[1..]),
        _ => return Err(refuse()),
    };
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h, m),
        None if rest.len() == 4 => rest.split_at(2),
        None => (rest, "0"),
    };
    let all_digits =
        |s: &str| !s.is_empty() && s.len() <= 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(h) || !all_digits(m) {
        return Err(refuse());
    }
    let (h, m): (i64, i64) = (
        h.parse().map_err(|_| refuse())?,
        m.parse().map_err(|_| refuse())?,
    );
    if h > 14 || m > 59 {
        return Err(format!(
            "time zone {text:?}: offsets range from -14:00 to +14:00"
        ));
    }
    Ok(sign * (h * 3600 + m * 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_and_offsets() {
        assert_eq!(parse_zone("UTC"), Ok(0));
        assert_eq!(parse_zone("Etc/UTC"), Ok(0));
        assert_eq!(parse_zone("+02:00"), Ok(7200));
        assert_eq!(parse_zone("UTC-05:30"), Ok(-19_800));
        assert_eq!(parse_zone("-0530"), Ok(-19_800));
        assert_eq!(parse_zone("GMT+1"), Ok(3600));
    }

    #[test]
    fn named_zones_and_nonsense_are_refused() {
        let e = parse_zone("Europe/Berlin").unwrap_err();
        assert!(e.contains("fixed offset"), "{e}");
        for bad in ["+", "+2:5x", "+15:00", "UTC+", "+123:00", "02:00"] {
            assert!(parse_zone(bad).is_err(), "{bad}");
        }
    }
}
