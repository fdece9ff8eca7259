//! Which of a schedule's backups to keep.
//!
//! The rules of restic's and borg's `forget`: a completed backup stays if
//! any `keep*` rule selects it (the newest `keepLast`; the newest of each
//! of the last `keepDaily` days and `keepWeekly` weeks that have one) and
//! it is younger than `maxAge` and its own ttl. With no `keep*` rule every
//! completed backup is selected. Backups still pending or running are
//! never pruned (their Job would be killed mid-copy), and a failed backup
//! stays only while it is newer than the newest completed one, so the
//! latest failure remains visible until a success replaces it.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::spec::Retention;

/// What retention needs to know of one backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub name: String,
    pub state: State,
    /// Completion time for completed backups, else when it was made
    /// (seconds since the epoch).
    pub time: i64,
    /// Past its ttl (`status.expiresAt`).
    pub expired: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Active,
    Completed,
    Failed,
}

/// The calendar periods `keepDaily` and `keepWeekly` count, in the
/// schedule's zone.
#[derive(Debug, Clone, Copy)]
enum Period {
    Day,
    /// ISO weeks, Monday first.
    Week,
}

impl Period {
    /// The period `t` falls in: its local date, or its ISO week.
    fn of(self, t: i64, zone: &TimeZone) -> (i16, i8, i8) {
        let date = Timestamp::from_second(t)
            .unwrap_or(Timestamp::UNIX_EPOCH)
            .to_zoned(zone.clone())
            .date();
        match self {
            Period::Day => (date.year(), date.month(), date.day()),
            Period::Week => {
                let week = date.iso_week_date();
                (week.year(), week.week(), 0)
            }
        }
    }
}

/// The newest backup of each of the last `n` periods that have one
/// (`alive` is newest first).
fn newest_per_period(
    alive: &[&Candidate],
    n: usize,
    period: Period,
    zone: &TimeZone,
) -> Vec<String> {
    let mut seen = BTreeSet::new();
    let mut newest = Vec::new();
    for b in alive {
        if seen.len() == n {
            break;
        }
        if seen.insert(period.of(b.time, zone)) {
            newest.push(b.name.clone());
        }
    }
    newest
}

/// The names to keep, given the retention, now, the schedule's zone (days
/// and weeks are the zone's, daylight saving and all) and `max_age` in
/// seconds.
pub fn keep(
    backups: &[Candidate],
    retention: &Retention,
    max_age: Option<i64>,
    now: i64,
    zone: &TimeZone,
) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    let mut completed: Vec<&Candidate> = backups
        .iter()
        .filter(|b| b.state == State::Completed)
        .collect();
    completed.sort_by(|a, b| (b.time, &b.name).cmp(&(a.time, &a.name))); // newest first
    let newest_completed = completed.first().map(|b| b.time);
    for b in backups {
        match b.state {
            State::Active => {
                kept.insert(b.name.clone());
            }
            State::Failed if newest_completed.is_none_or(|t| b.time > t) => {
                kept.insert(b.name.clone());
            }
            _ => {}
        }
    }
    let alive: Vec<&Candidate> = completed
        .into_iter()
        .filter(|b| !b.expired && max_age.is_none_or(|age| now - b.time <= age))
        .collect();
    let rules = [
        retention.keep_last,
        retention.keep_daily,
        retention.keep_weekly,
    ];
    if rules.iter().all(Option::is_none) {
        kept.extend(alive.iter().map(|b| b.name.clone()));
        return kept;
    }
    let count = |n: Option<i64>| usize::try_from(n.unwrap_or(0)).unwrap_or(0);
    kept.extend(
        alive
            .iter()
            .take(count(retention.keep_last))
            .map(|b| b.name.clone()),
    );
    for (n, period) in [
        (count(retention.keep_daily), Period::Day),
        (count(retention.keep_weekly), Period::Week),
    ] {
        kept.extend(newest_per_period(&alive, n, period, zone));
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::Offset;

    fn east(seconds: i32) -> TimeZone {
        TimeZone::fixed(Offset::from_seconds(seconds).unwrap())
    }

    const DAY: i64 = 86_400;
    // 2026-01-05, a Monday, 00:00 UTC.
    const MONDAY: i64 = 1_767_571_200;

    fn done(name: &str, time: i64) -> Candidate {
        Candidate {
            name: name.into(),
            state: State::Completed,
            time,
            expired: false,
        }
    }

    fn names(set: BTreeSet<String>) -> Vec<String> {
        set.into_iter().collect()
    }

    fn retention(last: Option<i64>, daily: Option<i64>, weekly: Option<i64>) -> Retention {
        Retention {
            keep_last: last,
            keep_daily: daily,
            keep_weekly: weekly,
            max_age: None,
        }
    }

    #[test]
    fn keep_last_takes_the_newest() {
        let b = [done("a", 1), done("b", 2), done("c", 3)];
        let kept = keep(
            &b,
            &retention(Some(2), None, None),
            None,
            10,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["b", "c"]);
    }

    #[test]
    fn no_rule_keeps_everything_younger_than_max_age() {
        let b = [done("old", MONDAY - 10 * DAY), done("new", MONDAY - DAY)];
        let kept = keep(
            &b,
            &Retention::default(),
            Some(7 * DAY),
            MONDAY,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["new"]);
        let kept = keep(&b, &Retention::default(), None, MONDAY, &TimeZone::UTC);
        assert_eq!(names(kept), ["new", "old"]);
    }

    #[test]
    fn daily_and_weekly_keep_the_newest_of_each() {
        // Two a day for 15 days back from Monday 12:00.
        let mut b = Vec::new();
        for d in 0..15 {
            for h in [1, 12] {
                b.push(done(
                    &format!("d{d:02}h{h:02}"),
                    MONDAY - d * DAY + h * 3600,
                ));
            }
        }
        let kept = keep(
            &b,
            &retention(None, Some(3), None),
            None,
            MONDAY + DAY,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["d00h12", "d01h12", "d02h12"]);
        // Weeks start on Monday: d00 is this week, d01..d07 the last, d08..d14 the one before.
        let kept = keep(
            &b,
            &retention(None, None, Some(3)),
            None,
            MONDAY + DAY,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["d00h12", "d01h12", "d08h12"]);
        // The rules add up.
        let kept = keep(
            &b,
            &retention(Some(1), Some(2), None),
            None,
            MONDAY + DAY,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["d00h12", "d01h12"]);
        // In a zone 2 h east, 23:00 UTC Sunday is already Monday.
        let late = [done("sun", MONDAY - 3600), done("sat", MONDAY - DAY - 3600)];
        let utc = keep(
            &late,
            &retention(None, None, Some(1)),
            None,
            MONDAY,
            &TimeZone::UTC,
        );
        assert_eq!(names(utc), ["sun"]);
        let east = keep(
            &late,
            &retention(None, None, Some(2)),
            None,
            MONDAY,
            &east(7200),
        );
        assert_eq!(names(east), ["sat", "sun"]);
    }

    #[test]
    fn days_are_the_named_zones_on_either_side_of_a_change() {
        let paris = crate::zone::parse_zone("Europe/Paris").unwrap();
        let at = |s: &str| s.parse::<Timestamp>().unwrap().as_second();
        // 22:30 and 23:30 UTC on Saturday 2026-03-28 are 23:30 Saturday
        // and 00:30 Sunday in Paris (CET); 22:30 UTC on the Sunday is
        // 00:30 Monday (CEST since that night).
        let b = [
            done("sat", at("2026-03-28T22:30:00Z")),
            done("sun", at("2026-03-28T23:30:00Z")),
            done("mon", at("2026-03-29T22:30:00Z")),
        ];
        let daily = retention(None, Some(3), None);
        let now = at("2026-03-30T12:00:00Z");
        assert_eq!(
            names(keep(&b, &daily, None, now, &paris)),
            ["mon", "sat", "sun"]
        );
        assert_eq!(
            names(keep(&b, &daily, None, now, &TimeZone::UTC)),
            ["mon", "sun"],
            "in UTC the first two share the 28th"
        );
        // Sunday closes its ISO week in Paris; in UTC all three are in it.
        let weekly = retention(None, None, Some(2));
        assert_eq!(names(keep(&b, &weekly, None, now, &paris)), ["mon", "sun"]);
        assert_eq!(names(keep(&b, &weekly, None, now, &TimeZone::UTC)), ["mon"]);
    }

    #[test]
    fn active_always_stay_failed_only_while_newest() {
        let b = [
            done("ok", 10),
            Candidate {
                name: "run".into(),
                state: State::Active,
                time: 1,
                expired: false,
            },
            Candidate {
                name: "failed-old".into(),
                state: State::Failed,
                time: 5,
                expired: false,
            },
            Candidate {
                name: "failed-new".into(),
                state: State::Failed,
                time: 20,
                expired: false,
            },
        ];
        let kept = keep(
            &b,
            &retention(Some(1), None, None),
            None,
            30,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["failed-new", "ok", "run"]);
    }

    #[test]
    fn expired_backups_go_whatever_the_rules() {
        let mut b = done("expired", 5);
        b.expired = true;
        let kept = keep(
            &[b, done("fresh", 6)],
            &retention(Some(5), None, None),
            None,
            10,
            &TimeZone::UTC,
        );
        assert_eq!(names(kept), ["fresh"]);
    }
}
