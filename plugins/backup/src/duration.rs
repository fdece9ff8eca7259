//! Durations as people write them in specs: `7d`, `12h`, `1h30m`, `2w`.
//!
//! Go's `time.ParseDuration` has no days or weeks, which are what backup
//! retention is counted in; this accepts both, as sums of whole units.

/// Seconds in `text`, a sequence of `<integer><unit>` with units `s`, `m`,
/// `h`, `d`, `w`; `None` if it is anything else or zero.
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut any = false;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return None,
        };
        let n: i64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        any = true;
    }
    (any && digits.is_empty() && total > 0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_sums() {
        assert_eq!(parse_duration("90s"), Some(90));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("7d"), Some(604_800));
        assert_eq!(parse_duration("2w1d"), Some(15 * 86_400));
    }

    #[test]
    fn refuses_the_rest() {
        for bad in [
            "",
            "7",
            "d",
            "1y",
            "-1d",
            "0s",
            "1.5h",
            "1h 30m",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }
}
