//! Recent recommendations, for the scale-down stabilization window.
//!
//! A flapping metric must not flap the cluster: like the Horizontal Pod
//! Autoscaler, a scale-down goes only as low as the highest recommendation
//! of the last window. The plugin is stateless between calls, so the
//! history lives in the policy's status as a list of changes: each entry is
//! a recommendation and the time it began, and it holds until the next
//! entry. Reconciles come on events, not on a timer, so an entry records
//! when a value started rather than when it was sampled; an entry counts
//! for the window as long as it was in effect at any moment of it.

use operon_sdk::time::{format_rfc3339, parse_rfc3339};
use serde::{Deserialize, Serialize};

/// At most this many entries are kept; beyond, the two oldest merge into
/// one holding the larger value from the earlier time. That can only keep
/// more instances for longer, never fewer, so a metric flapping faster than
/// the list is long still cannot flap the cluster.
pub const MAX_ENTRIES: usize = 16;

/// One recommendation and when it began.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// RFC 3339.
    pub time: String,
    pub instances: i32,
}

/// The history, oldest first, with parsed times.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct History {
    entries: Vec<(i64, i32)>,
}

impl History {
    /// From the status; entries with unreadable times (a hand edit) are
    /// dropped, and the order is restored.
    pub fn from_samples(samples: &[Sample]) -> History {
        let mut entries: Vec<(i64, i32)> = samples
            .iter()
            .filter_map(|s| Some((parse_rfc3339(&s.time)?, s.instances)))
            .collect();
        entries.sort_by_key(|(t, _)| *t);
        History { entries }
    }

    pub fn to_samples(&self) -> Vec<Sample> {
        self.entries
            .iter()
            .map(|&(t, n)| Sample {
                time: format_rfc3339(t),
                instances: n,
            })
            .collect()
    }

    /// Records the recommendation now (only when it changed), then forgets
    /// entries that ended before the window began.
    pub fn record(&mut self, now: i64, instances: i32, window: i64) {
        if self.entries.last().map(|&(_, n)| n) != Some(instances) {
            self.entries.push((now, instances));
        }
        let start = now - window;
        // Entry i ended when entry i+1 began.
        while self.entries.len() > 1 && self.entries[1].0 <= start {
            self.entries.remove(0);
        }
        while self.entries.len() > MAX_ENTRIES {
            let (t, a) = self.entries[0];
            let b = self.entries[1].1;
            self.entries.splice(0..2, [(t, a.max(b))]);
        }
    }

    /// The highest recommendation in effect within the window (after
    /// [`History::record`], every entry is).
    pub fn max(&self) -> Option<i32> {
        self.entries.iter().map(|&(_, n)| n).max()
    }

    /// When the window stops holding any recommendation of `at_least`
    /// instances or more: the end of the last such entry plus the window.
    /// None when no entry is that high, or the newest one is (it has not
    /// ended).
    pub fn releases_below(&self, at_least: i32, window: i64) -> Option<i64> {
        let last_high = self.entries.iter().rposition(|&(_, n)| n >= at_least)?;
        let ended = self.entries.get(last_high + 1)?.0;
        Some(ended + window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_what_was_in_effect_during_the_window() {
        let mut h = History::default();
        h.record(0, 3, 30);
        h.record(10, 3, 30);
        assert_eq!(h.entries, [(0, 3)], "an unchanged value adds nothing");
        h.record(20, 1, 30);
        assert_eq!(h.max(), Some(3));
        assert_eq!(h.releases_below(3, 30), Some(50), "3 ended at 20");
        h.record(49, 1, 30);
        assert_eq!(h.max(), Some(3), "3 was in effect at 19, inside [19, 49]");
        h.record(50, 1, 30);
        assert_eq!(h.entries, [(20, 1)]);
        assert_eq!(h.max(), Some(1));
        assert_eq!(h.releases_below(3, 30), None);
    }

    #[test]
    fn a_long_flap_merges_upwards() {
        let mut h = History::default();
        for t in 0..40 {
            h.record(t, if t % 2 == 0 { 4 } else { 1 }, 1000);
        }
        assert_eq!(h.entries.len(), MAX_ENTRIES);
        assert_eq!(h.max(), Some(4));
        assert_eq!(h.entries[0], (0, 4), "the oldest keeps the larger value");
    }

    #[test]
    fn round_trips_through_the_status() {
        let samples = vec![
            Sample {
                time: "2026-01-01T00:01:00Z".into(),
                instances: 1,
            },
            Sample {
                time: "2026-01-01T00:00:00Z".into(),
                instances: 3,
            },
            Sample {
                time: "yesterday".into(),
                instances: 9,
            },
        ];
        let h = History::from_samples(&samples);
        assert_eq!(h.max(), Some(3));
        let back = h.to_samples();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].instances, 3, "sorted by time");
    }
}
