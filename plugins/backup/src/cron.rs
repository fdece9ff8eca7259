//! Five-field cron expressions, as Kubernetes CronJobs read them.
//!
//! `minute hour day-of-month month day-of-week`, each a list of `*`,
//! values, ranges `a-b` and steps `*/n`, `a-b/n`, `a/n`; month and weekday
//! names (`JAN`, `MON`); weekday 7 is Sunday; the macros `@yearly`,
//! `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
//! As in Vixie cron, when both day fields are restricted a day matching
//! either runs. Written here rather than taken from a crate: it is a page
//! of code, and a crate would bring chrono into every component.

use operon_sdk::time::{civil_from_days, days_from_civil};

/// A parsed schedule: the allowed values of each field as bit sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// The day-of-month field was `*` (or `*/n`): only weekdays restrict.
    days_star: bool,
    weekdays_star: bool,
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Searching further than this for a next run means there is none.
const HORIZON_DAYS: i64 = 5 * 366;

impl Cron {
    /// Parses `text`; the error names the field and what is wrong.
    pub fn parse(text: &str) -> Result<Cron, String> {
        let expanded = match text.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            t if t.starts_with('@') => return Err(format!("unknown macro {t:?}")),
            t => t,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(format!(
                "{} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week)",
                fields.len()
            ));
        }
        let minutes = field("minute", fields[0], 0, 59, &[])?;
        let hours = field("hour", fields[1], 0, 23, &[])?;
        let days = field("day-of-month", fields[2], 1, 31, &[])?;
        let months = field("month", fields[3], 1, 12, &MONTHS)?;
        let mut weekdays = field("day-of-week", fields[4], 0, 7, &WEEKDAYS)?;
        if weekdays & (1 << 7) != 0 {
            weekdays = (weekdays | 1) & 0x7f; // 7 is Sunday
        }
        let cron = Cron {
            minutes,
            hours: hours as u32,
            days: days as u32,
            months: months as u16,
            weekdays: weekdays as u8,
            days_star: fields[2].starts_with('*'),
            weekdays_star: fields[4].starts_with('*'),
        };
        if cron.weekdays_star && !cron.days_can_happen() {
            return Err(format!(
                "{text:?} never runs: no month in it has that day of the month"
            ));
        }
        Ok(cron)
    }

    /// Whether some allowed month has some allowed day of the month
    /// (`0 0 30 2 *` has none).
    fn days_can_happen(&self) -> bool {
        (1..=12).any(|m| {
            let len = match m {
                2 => 29,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            self.months & (1 << m) != 0 && (1..=len).any(|d| self.days & (1 << d) != 0)
        })
    }

    fn day_matches(&self, day: u32, weekday: u32) -> bool {
        let dom = self.days & (1 << day) != 0;
        let dow = self.weekdays & (1 << weekday) != 0;
        if self.days_star || self.weekdays_star {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The first run strictly after `after` (seconds since the epoch), in
    /// a zone `offset` seconds east of UTC; `None` if there is none within
    /// five years.
    pub fn next_after(&self, after: i64, offset: i64) -> Option<i64> {
        let mut t = (after + offset).div_euclid(60) * 60 + 60; // local, whole minutes
        let limit = t + HORIZON_DAYS * 86_400;
        while t <= limit {
            let days = t.div_euclid(86_400);
            let secs = t.rem_euclid(86_400);
            let (year, month, day) = civil_from_days(days);
            if self.months & (1 << month) == 0 {
                let (y, m) = if month == 12 {
                    (year + 1, 1)
                } else {
                    (year, month + 1)
                };
                t = days_from_civil(y, i64::from(m), 1) * 86_400;
                continue;
            }
            let weekday = (days + 4).rem_euclid(7) as u32; // 1970-01-01 was a Thursday
            if !self.day_matches(day, weekday) {
                t = (days + 1) * 86_400;
                continue;
            }
            let hour = (secs / 3600) as u32;
            if self.hours & (1 << hour) == 0 {
                t = days * 86_400 + (i64::from(hour) + 1) * 3600;
                continue;
            }
            let minute = (secs % 3600 / 60) as u32;
            if self.minutes & (1 << minute) == 0 {
                t += 60;
                continue;
            }
            return Some(t - offset);
        }
        None
    }

    /// The latest run at or before `at`, if one is after `after` (both
    /// seconds since the epoch): the slot a reconcile at `at` owes.
    pub fn latest_in(&self, after: i64, at: i64, offset: i64) -> Option<i64> {
        let mut slot = None;
        let mut t = after;
        while let Some(next) = self.next_after(t, offset) {
            if next > at {
                break;
            }
            slot = Some(next);
            t = next;
        }
        slot
    }
}

/// One field's allowed values as a bit set (bit n = value n).
fn field(name: &str, text: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let mut bits = 0u64;
    for part in text.split(',') {
        let bad = |why: &str| format!("{name} field {text:?}: {why}");
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s
                    .parse()
                    .map_err(|_| bad(&format!("step {s:?} is not a number")))?;
                if step == 0 {
                    return Err(bad("a step of 0"));
                }
                (r, step)
            }
            None => (part, 1),
        };
        let value = |v: &str| -> Result<u32, String> {
            let upper = v.to_ascii_uppercase();
            if let Some(i) = names.iter().position(|n| *n == upper) {
                return Ok(i as u32 + min);
            }
            let n: u32 = v
                .parse()
                .map_err(|_| bad(&format!("{v:?} is not a number")))?;
            if n < min || n > max {
                return Err(bad(&format!("{n} is out of range {min}-{max}")));
            }
            Ok(n)
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            let (a, b) = (value(a)?, value(b)?);
            if a > b {
                return Err(bad(&format!("range {a}-{b} runs backwards")));
            }
            (a, b)
        } else {
            let a = value(range)?;
            // `a/n` means from a to the end, every n.
            (a, if step > 1 { max } else { a })
        };
        let mut v = lo;
        while v <= hi {
            bits |= 1 << v;
            v += step;
        }
    }
    Ok(bits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use operon_sdk::time::{format_rfc3339, parse_rfc3339};

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        format_rfc3339(Cron::parse(expr).unwrap().next_after(t(after), 0).unwrap())
    }

    #[test]
    fn every_minute_and_hourly() {
        assert_eq!(
            next("* * * * *", "2026-01-01T00:00:00Z"),
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(
            next("* * * * *", "2026-01-01T00:00:59Z"),
            "2026-01-01T00:01:00Z"
        );
        assert_eq!(
            next("@hourly", "2026-01-01T00:00:00Z"),
            "2026-01-01T01:00:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2026-01-01T00:14:00Z"),
            "2026-01-01T00:15:00Z"
        );
        assert_eq!(
            next("5/20 * * * *", "2026-01-01T00:26:00Z"),
            "2026-01-01T00:45:00Z"
        );
    }

    #[test]
    fn days_months_and_year_ends() {
        assert_eq!(
            next("30 2 * * *", "2026-12-31T03:00:00Z"),
            "2027-01-01T02:30:00Z"
        );
        assert_eq!(
            next("0 0 1 * *", "2026-01-15T00:00:00Z"),
            "2026-02-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00Z"),
            "2028-02-29T00:00:00Z"
        );
        assert_eq!(
            next("0 0 31 * *", "2026-04-01T00:00:00Z"),
            "2026-05-31T00:00:00Z"
        );
        assert_eq!(
            next("0 12 * JUN-AUG *", "2026-01-01T00:00:00Z"),
            "2026-06-01T12:00:00Z"
        );
    }

    #[test]
    fn weekdays_and_the_or_rule() {
        // 2026-01-01 is a Thursday.
        assert_eq!(
            next("0 0 * * MON", "2026-01-01T00:00:00Z"),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 1-5", "2026-01-02T00:00:00Z"),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            next("@weekly", "2026-01-01T00:00:00Z"),
            "2026-01-04T00:00:00Z"
        );
        // Both day fields restricted: the 15th or a Monday, whichever first.
        assert_eq!(
            next("0 0 15 * 1", "2026-01-06T00:00:00Z"),
            "2026-01-12T00:00:00Z"
        );
        assert_eq!(
            next("0 0 15 * 1", "2026-01-12T00:00:00Z"),
            "2026-01-15T00:00:00Z"
        );
    }

    #[test]
    fn offsets_shift_the_wall_clock() {
        // 02:00 at +02:00 is midnight UTC.
        let c = Cron::parse("0 2 * * *").unwrap();
        let n = c.next_after(t("2026-01-01T00:00:00Z"), 7200).unwrap();
        assert_eq!(format_rfc3339(n), "2026-01-02T00:00:00Z");
        let n = c.next_after(t("2026-01-01T00:00:00Z"), -3600).unwrap();
        assert_eq!(format_rfc3339(n), "2026-01-01T03:00:00Z");
    }

    #[test]
    fn latest_slot_owed() {
        let c = Cron::parse("*/10 * * * *").unwrap();
        let slot = c.latest_in(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:35:00Z"), 0);
        assert_eq!(
            slot.map(format_rfc3339).as_deref(),
            Some("2026-01-01T00:30:00Z")
        );
        assert_eq!(
            c.latest_in(t("2026-01-01T00:30:00Z"), t("2026-01-01T00:35:00Z"), 0),
            None
        );
    }

    #[test]
    fn refusals_name_the_field() {
        for (expr, needle) in [
            ("* * * *", "4 fields"),
            ("60 * * * *", "minute field \"60\": 60 is out of range 0-59"),
            ("* 24 * * *", "hour field"),
            ("* * 0 * *", "day-of-month field"),
            ("* * * 13 *", "month field"),
            ("* * * * 8", "day-of-week field"),
            ("*/0 * * * *", "a step of 0"),
            ("5-1 * * * *", "runs backwards"),
            ("x * * * *", "\"x\" is not a number"),
            ("@often", "unknown macro"),
            ("0 0 30 2 *", "never runs"),
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert!(err.contains(needle), "{expr}: {err}");
        }
    }
}
