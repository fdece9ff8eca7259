//! Five-field cron expressions as Kubernetes CronJobs read them, run in a
//! time zone.
//!
//! Parsing and the search for runs are the `croner` crate's (version 4,
//! with its jiff backend). Its default backend is chrono; the plugin's
//! times are jiff's already (the SDK's clock, k8s-openapi's `metav1.Time`,
//! the zones of [`crate::zone`]), so the jiff backend keeps chrono out of
//! the component. What this module adds makes croner read what a CronJob
//! (robfig/cron) accepts:
//!
//! - exactly five fields, no seconds;
//! - `a/n` means from `a` to the end of the field, every `n` (croner's
//!   `sloppy_ranges`; croner 4 refuses it by default);
//! - `@midnight` is `@daily` (croner does not know it);
//! - when either day field starts with `*` or `?` (`*/2`), a day must
//!   match both day fields, as in Vixie cron and robfig/cron: croner alone
//!   would read `0 0 */2 * MON` as "odd days or Mondays". This is written
//!   with croner's own `+` (day-of-month *and* day-of-week). When both day
//!   fields are restricted otherwise, a day matching either runs.
//! - a refused expression names the field at fault, which croner's errors
//!   do not;
//! - an expression that can never run (`0 0 30 2 *`) is refused at once,
//!   where croner would search until the year 5000.
//!
//! Croner also reads `L` (last day), `W` (nearest weekday) and `#` (nth
//! weekday) in the day fields, which CronJobs do not; they are accepted.
//!
//! Daylight saving time follows croner (the Open Cron Pattern
//! Specification): a run whose wall-clock time falls in the spring-forward
//! gap runs at the first instant after it (02:30 on the night Paris goes
//! from 02:00 to 03:00 runs at 03:00 CEST); in the autumn's repeated hour
//! a run at a fixed hour runs once, at its first pass (02:30 CEST, not
//! again at 02:30 CET), while one with a wildcard hour (`*/30 * * * *`)
//! runs in both passes, since those minutes really pass twice. A nightly
//! backup therefore neither skips the spring night nor runs twice in the
//! autumn.

use croner::errors::CronError as CronerError;
use croner::parser::{CronParser, Seconds};
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;

/// Why a schedule is refused; shown after `spec.schedule "<text>": `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    /// Not five fields.
    #[error("{0} fields; a cron schedule has 5 (minute hour day-of-month month day-of-week)")]
    Fields(usize),
    /// `@` and a name croner and CronJobs do not know.
    #[error("unknown macro {0:?}")]
    UnknownMacro(String),
    /// One field croner refuses on its own.
    #[error("{field} field {text:?}: {why} (allowed: {allowed})")]
    Field {
        field: &'static str,
        allowed: &'static str,
        text: String,
        why: String,
    },
    /// Fields croner accepts one by one but not together.
    #[error("{0}")]
    Pattern(String),
    /// No date ever matches the day and month fields.
    #[error("it never runs: no date matches its day-of-month, month and day-of-week fields")]
    NeverRuns,
}

/// The fields in order, with what each allows (for messages).
const FIELDS: [(&str, &str); 5] = [
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day-of-month", "1-31, L, W"),
    ("month", "1-12, JAN-DEC"),
    ("day-of-week", "0-7 or SUN-SAT, 7 is Sunday, #, L"),
];

/// The macros CronJobs accept; croner knows them all but `@midnight`.
const MACROS: [(&str, &str); 7] = [
    ("@yearly", "@yearly"),
    ("@annually", "@annually"),
    ("@monthly", "@monthly"),
    ("@weekly", "@weekly"),
    ("@daily", "@daily"),
    ("@midnight", "@daily"),
    ("@hourly", "@hourly"),
];

/// A parsed schedule.
#[derive(Debug, Clone)]
pub struct Cron {
    cron: croner::Cron,
}

impl Cron {
    /// Parses `text` as a CronJob would (see the module docs).
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let text = text.trim();
        let pattern = if text.starts_with('@') {
            let (_, croner_macro) = MACROS
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(text))
                .ok_or_else(|| CronError::UnknownMacro(text.to_string()))?;
            croner_macro.to_string()
        } else {
            let fields: Vec<&str> = text.split_whitespace().collect();
            if fields.len() != 5 {
                return Err(CronError::Fields(fields.len()));
            }
            Self::vixie_days(&fields)
        };
        let cron = parser().parse(&pattern).map_err(|e| refusal(text, e))?;
        let cron = Cron { cron };
        if !cron.ever_runs() {
            return Err(CronError::NeverRuns);
        }
        Ok(cron)
    }

    /// The five fields as croner reads them, with the day fields combined
    /// by Vixie cron's rule (module docs).
    fn vixie_days(fields: &[&str]) -> String {
        let unrestricted = |f: &str| f.starts_with(['*', '?']);
        let mut fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        if (unrestricted(&fields[2]) || unrestricted(&fields[4])) && !fields[4].starts_with('+') {
            fields[4] = format!("+{}", fields[4]);
        }
        fields.join(" ")
    }

    /// Whether some date matches the day and month fields: every date of
    /// a 28-year cycle of the calendar (2001-2028 has every weekday on
    /// every date, leap days included). Hours and minutes always match
    /// something.
    fn ever_runs(&self) -> bool {
        let pattern = &self.cron.pattern;
        let (Ok(mut day), Ok(end)) = (Date::new(2001, 1, 1), Date::new(2028, 12, 31)) else {
            return true;
        };
        while day <= end {
            let weekday = croner::Weekday::from_days_from_sunday(
                day.weekday().to_sunday_zero_offset() as u32,
            );
            let (y, m, d) = (i32::from(day.year()), day.month() as u32, day.day() as u32);
            if pattern.month_match(m).unwrap_or(false)
                && pattern.day_match(y, m, d, weekday).unwrap_or(false)
            {
                return true;
            }
            let Ok(next) = day.tomorrow() else {
                return true;
            };
            day = next;
        }
        false
    }

    /// The first run strictly after `after` (seconds since the epoch) on
    /// the wall clock of `zone`; `None` if there is none (croner searches
    /// up to the year 5000).
    pub fn next_after(&self, after: i64, zone: &TimeZone) -> Option<i64> {
        let start = Timestamp::from_second(after).ok()?.to_zoned(zone.clone());
        let next = self.cron.find_next_occurrence(&start, false).ok()?;
        Some(next.timestamp().as_second())
    }

    /// The latest run at or before `at`, if it is after `after` (both
    /// seconds since the epoch): the slot a reconcile at `at` owes. Found
    /// backwards from `at`, so a schedule down for a year costs one search,
    /// not one per missed run.
    pub fn latest_in(&self, after: i64, at: i64, zone: &TimeZone) -> Option<i64> {
        let end = Timestamp::from_second(at).ok()?.to_zoned(zone.clone());
        let slot = self.cron.find_previous_occurrence(&end, true).ok()?;
        let slot = slot.timestamp().as_second();
        (slot > after).then_some(slot)
    }
}

/// Croner as CronJobs read: five fields, `a/n` steps.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .sloppy_ranges(true)
        .build()
}

/// Croner's refusal of `text`, with the field at fault: the first field
/// that croner refuses with every other field `*`.
fn refusal(text: &str, whole: CronerError) -> CronError {
    let fields: Vec<&str> = text.split_whitespace().collect();
    for (i, (field, allowed)) in FIELDS.iter().enumerate() {
        let Some(part) = fields.get(i) else {
            break;
        };
        let mut probe = ["*"; 5];
        probe[i] = part;
        if let Err(e) = parser().parse(&probe.join(" ")) {
            return CronError::Field {
                field,
                allowed,
                text: part.to_string(),
                why: why(e),
            };
        }
    }
    CronError::Pattern(why(whole))
}

/// Croner's message without its variant's prefix and final stop, as a
/// clause: "number out of bounds".
fn why(e: CronerError) -> String {
    let message = match e {
        CronerError::ComponentError(m)
        | CronerError::InvalidPattern(m)
        | CronerError::IllegalCharacters(m) => m,
        other => other.to_string(),
    };
    let message = message.trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::{Offset, TimeZone};
    use operon_sdk::time::{format_rfc3339, parse_rfc3339};

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    fn next_in(expr: &str, after: &str, zone: &TimeZone) -> String {
        let cron = Cron::parse(expr).unwrap();
        format_rfc3339(cron.next_after(t(after), zone).unwrap())
    }

    fn next(expr: &str, after: &str) -> String {
        next_in(expr, after, &TimeZone::UTC)
    }

    fn paris() -> TimeZone {
        crate::zone::parse_zone("Europe/Paris").unwrap()
    }

    /// The runs of `expr` in `zone` from `after` on, `n` of them.
    fn runs(expr: &str, after: &str, zone: &TimeZone, n: usize) -> Vec<String> {
        let cron = Cron::parse(expr).unwrap();
        let mut at = t(after);
        (0..n)
            .map(|_| {
                at = cron.next_after(at, zone).unwrap();
                format_rfc3339(at)
            })
            .collect()
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
        // `a/n`: from a to the end, every n (robfig/cron's reading).
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
        assert_eq!(
            next("@midnight", "2026-01-01T00:00:00Z"),
            "2026-01-02T00:00:00Z"
        );
    }

    #[test]
    fn weekdays_and_the_day_fields_rule() {
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
        // A day field starting with `*` restricts with the other: an odd
        // day that is a Monday (Jan 5), not the 3rd (odd) nor the 12th.
        assert_eq!(
            next("0 0 */2 * MON", "2026-01-01T00:00:00Z"),
            "2026-01-05T00:00:00Z"
        );
        assert_eq!(
            next("0 0 */2 * MON", "2026-01-05T00:00:00Z"),
            "2026-01-19T00:00:00Z"
        );
        assert_eq!(
            next("0 0 15 * */2", "2026-01-01T00:00:00Z"),
            "2026-01-15T00:00:00Z",
            "the 15th, a Thursday, is an even weekday"
        );
    }

    #[test]
    fn offsets_shift_the_wall_clock() {
        // 02:00 at +02:00 is midnight UTC.
        let plus2 = TimeZone::fixed(Offset::from_seconds(7200).unwrap());
        let minus1 = TimeZone::fixed(Offset::from_seconds(-3600).unwrap());
        assert_eq!(
            next_in("0 2 * * *", "2026-01-01T00:00:00Z", &plus2),
            "2026-01-02T00:00:00Z"
        );
        assert_eq!(
            next_in("0 2 * * *", "2026-01-01T00:00:00Z", &minus1),
            "2026-01-01T03:00:00Z"
        );
    }

    /// Paris leaves CET (+01:00) for CEST (+02:00) on the last Sunday of
    /// March, 2026-03-29, at 02:00 local (01:00 UTC): 02:00-02:59 does not
    /// exist that night.
    #[test]
    fn a_nightly_run_in_the_spring_gap_runs_right_after_it() {
        assert_eq!(
            runs("30 2 * * *", "2026-03-27T12:00:00Z", &paris(), 3),
            [
                "2026-03-28T01:30:00Z", // 02:30 CET
                "2026-03-29T01:00:00Z", // 02:30 does not exist: 03:00 CEST
                "2026-03-30T00:30:00Z", // 02:30 CEST
            ]
        );
        // Wildcard hours skip the hour that does not exist.
        assert_eq!(
            runs("0 * * * *", "2026-03-29T00:00:00Z", &paris(), 2),
            ["2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"] // 03:00, 04:00 CEST
        );
    }

    /// Paris goes back from CEST to CET on the last Sunday of October,
    /// 2026-10-25, at 03:00 local (01:00 UTC): 02:00-02:59 happens twice.
    #[test]
    fn a_nightly_run_in_the_autumn_repeat_runs_once() {
        assert_eq!(
            runs("30 2 * * *", "2026-10-23T12:00:00Z", &paris(), 3),
            [
                "2026-10-24T00:30:00Z", // 02:30 CEST
                "2026-10-25T00:30:00Z", // the first 02:30 (CEST) only
                "2026-10-26T01:30:00Z", // 02:30 CET
            ]
        );
        // Wildcard hours run in both passes of the repeated hour.
        assert_eq!(
            runs("30 * * * *", "2026-10-25T00:00:00Z", &paris(), 2),
            ["2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"] // 02:30 CEST, 02:30 CET
        );
    }

    #[test]
    fn latest_slot_owed() {
        let c = Cron::parse("*/10 * * * *").unwrap();
        let utc = TimeZone::UTC;
        let slot = c.latest_in(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:35:00Z"), &utc);
        assert_eq!(
            slot.map(format_rfc3339).as_deref(),
            Some("2026-01-01T00:30:00Z")
        );
        assert_eq!(
            c.latest_in(t("2026-01-01T00:30:00Z"), t("2026-01-01T00:35:00Z"), &utc),
            None
        );
        // Inclusive of `at`, exclusive of `after`.
        assert_eq!(
            c.latest_in(t("2026-01-01T00:20:00Z"), t("2026-01-01T00:30:00Z"), &utc),
            Some(t("2026-01-01T00:30:00Z"))
        );
    }

    #[test]
    fn the_latest_slot_is_one_the_forward_search_makes() {
        // Around both changes of Paris' clock, the slot owed at any minute
        // is the last run the forward search produced before it.
        let zone = paris();
        for expr in ["30 2 * * *", "*/20 * * * *", "0 2 * * *"] {
            let cron = Cron::parse(expr).unwrap();
            for day in ["2026-03-28T20:00:00Z", "2026-10-24T20:00:00Z"] {
                let start = t(day);
                let mut forward = vec![];
                let mut at = start;
                while at < start + 12 * 3600 {
                    at = cron.next_after(at, &zone).unwrap();
                    forward.push(at);
                }
                for minute in (start..start + 11 * 3600).step_by(300) {
                    let expected = forward.iter().copied().filter(|r| *r <= minute).max();
                    assert_eq!(
                        cron.latest_in(start, minute, &zone),
                        expected,
                        "{expr} at {}",
                        format_rfc3339(minute)
                    );
                }
            }
        }
    }

    #[test]
    fn refusals_name_the_field() {
        for (expr, refusal) in [
            (
                "* * * *",
                "4 fields; a cron schedule has 5 (minute hour day-of-month month day-of-week)",
            ),
            (
                "60 * * * *",
                "minute field \"60\": number out of bounds (allowed: 0-59)",
            ),
            (
                "* 24 * * *",
                "hour field \"24\": number out of bounds (allowed: 0-23)",
            ),
            (
                "* * 0 * *",
                "day-of-month field \"0\": number out of bounds (allowed: 1-31, L, W)",
            ),
            (
                "* * * 13 *",
                "month field \"13\": number out of bounds (allowed: 1-12, JAN-DEC)",
            ),
            (
                "* * * * 8",
                "day-of-week field \"8\": number out of bounds (allowed: 0-7 or SUN-SAT, 7 is Sunday, #, L)",
            ),
            (
                "*/0 * * * *",
                "minute field \"*/0\": step cannot be zero (allowed: 0-59)",
            ),
            (
                "5-1 * * * *",
                "minute field \"5-1\": range out of bounds (allowed: 0-59)",
            ),
            ("@often", "unknown macro \"@often\""),
            (
                "0 0 30 2 *",
                "it never runs: no date matches its day-of-month, month and day-of-week fields",
            ),
        ] {
            let err = Cron::parse(expr).unwrap_err();
            assert_eq!(err.to_string(), refusal, "{expr}");
        }
        let err = Cron::parse("x * * * *").unwrap_err();
        assert!(
            matches!(
                &err,
                CronError::Field {
                    field: "minute",
                    ..
                }
            ),
            "{err:?}"
        );
    }

    #[test]
    fn rare_but_possible_days_are_not_refused() {
        // February 29 on a Monday (2044): both fields must match with `+`.
        assert_eq!(
            next("0 0 29 2 +MON", "2026-01-01T00:00:00Z"),
            "2044-02-29T00:00:00Z"
        );
        // The last Sunday of March: the night Europe's clocks go forward.
        assert_eq!(
            next_in("30 2 * 3 SUN#L", "2026-01-01T00:00:00Z", &paris()),
            "2026-03-29T01:00:00Z"
        );
    }
}
