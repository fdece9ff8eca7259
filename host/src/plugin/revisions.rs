//! Revisions of a plugin: the builds it has run, kept loaded so a rollback
//! is a swap of pointers (no recompile), and the health of the one running.
//!
//! A revision's health is judged from the plugin's own failures only —
//! traps, retryable and permanent errors, invalid output — never from API
//! errors, which say more about the cluster than about the build.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use serde::Serialize;

use crate::plugin::Plugin;

/// When to return to the previous revision on its own.
#[derive(Debug, Clone, Copy)]
pub struct RollbackPolicy {
    /// Off: a failing revision stays until someone acts.
    pub enabled: bool,
    /// How many first reconciles of a new revision are judged (fewer when
    /// the plugin has fewer parents: one pass over all of them).
    pub window: usize,
    /// Fraction of those that may fail; more is a rollback.
    pub threshold: f64,
}

impl Default for RollbackPolicy {
    fn default() -> Self {
        RollbackPolicy {
            enabled: true,
            window: 10,
            threshold: 0.5,
        }
    }
}

/// Why a revision is in the history, as `operon plugins history` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state", content = "reason")]
pub enum State {
    Active,
    /// Ran before; a rollback target.
    Superseded,
    /// Was active, and was left because it failed (or by hand).
    RolledBack(String),
}

/// One build of a plugin that was made active.
pub struct Revision {
    /// 1, 2, 3... per plugin, in the order they were first activated.
    pub number: u32,
    pub plugin: Arc<Plugin>,
    pub state: State,
    /// When the file change that brought it was seen.
    pub detected_at: SystemTime,
    /// When it became active (last time, for a revision activated again).
    pub activated_at: SystemTime,
    /// The tracker of its time as the active revision (replaced on every
    /// activation).
    pub tracker: Arc<Tracker>,
}

impl Revision {
    /// The first 12 hex digits of the component's digest: the label of
    /// metrics and events (stable across hosts, unlike the number).
    pub fn label(&self) -> &str {
        self.plugin.info().short_digest()
    }
}

/// The kept revisions of one plugin, newest last.
pub struct History {
    revisions: VecDeque<Revision>,
    next: u32,
    keep: usize,
}

impl History {
    pub fn new(keep: usize) -> History {
        History {
            revisions: VecDeque::new(),
            next: 1,
            keep: keep.max(2),
        }
    }

    pub fn active(&self) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.state == State::Active)
    }

    pub fn get(&self, number: u32) -> Option<&Revision> {
        self.revisions.iter().find(|r| r.number == number)
    }

    pub fn by_digest(&self, digest: &str) -> Option<&Revision> {
        self.revisions
            .iter()
            .find(|r| r.plugin.info().digest == digest)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Revision> {
        self.revisions.iter()
    }

    /// The revision a plain rollback returns to: the newest that ran before
    /// the active one and was not itself rolled back.
    pub fn previous(&self) -> Option<&Revision> {
        let active = self.active()?.number;
        self.revisions
            .iter()
            .rev()
            .find(|r| r.number != active && r.state == State::Superseded)
    }

    /// Makes a new build active: numbered, appended, the active one
    /// superseded, the oldest dropped beyond `keep` (never the active one).
    pub fn push(&mut self, plugin: Arc<Plugin>, detected_at: SystemTime, tracker: Arc<Tracker>) {
        let number = self.next;
        self.push_numbered(number, plugin, detected_at, tracker);
    }

    /// As [`History::push`] with the number given (a revision object's,
    /// which only grows across hosts); later numbers follow it.
    pub fn push_numbered(
        &mut self,
        number: u32,
        plugin: Arc<Plugin>,
        detected_at: SystemTime,
        tracker: Arc<Tracker>,
    ) {
        self.supersede_active(None);
        self.next = self.next.max(number + 1);
        self.revisions.push_back(Revision {
            number,
            plugin,
            state: State::Active,
            detected_at,
            activated_at: SystemTime::now(),
            tracker,
        });
        while self.revisions.len() > self.keep {
            self.revisions.pop_front();
        }
    }

    /// Makes a kept revision active again; the active one becomes
    /// `RolledBack(reason)` when a reason is given, else `Superseded`.
    /// Moves it to the end, so "newest last" stays "last active last".
    pub fn reactivate(&mut self, number: u32, tracker: Arc<Tracker>, reason: Option<String>) {
        self.supersede_active(reason);
        if let Some(at) = self.revisions.iter().position(|r| r.number == number) {
            let mut r = self.revisions.remove(at).expect("position is in range");
            r.state = State::Active;
            r.activated_at = SystemTime::now();
            r.tracker = tracker;
            self.revisions.push_back(r);
        }
    }

    fn supersede_active(&mut self, reason: Option<String>) {
        for r in self
            .revisions
            .iter_mut()
            .filter(|r| r.state == State::Active)
        {
            r.state = match &reason {
                Some(why) => State::RolledBack(why.clone()),
                None => State::Superseded,
            };
        }
    }
}

/// What the tracker concluded from one more reconcile.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Nothing new.
    Pending,
    /// The probation passed.
    Healthy,
    /// Too many failures: return to the previous revision, for this reason.
    RollBack(String),
}

/// Outcomes of the active revision: its probation, when it is new, and a
/// window of its latest results (is it healthy now?).
pub struct Tracker {
    policy: RollbackPolicy,
    state: Mutex<TrackerState>,
}

struct TrackerState {
    recent: VecDeque<bool>,
    probation: Option<Probation>,
    reconciles: u64,
    failures: u64,
    first_reconcile_at: Option<SystemTime>,
}

struct Probation {
    /// Reconciles judged.
    sample: usize,
    seen: usize,
    failed: usize,
    first_failure: Option<String>,
}

/// A tracker's figures, for `operon plugins`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrackerView {
    pub reconciles: u64,
    pub failures: u64,
    /// `judging` (in probation), `passed`, or `none` (no probation).
    pub probation: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_reconcile_at: Option<f64>,
}

impl Tracker {
    /// A tracker with a probation over `sample` reconciles, or none (the
    /// first revision, a rollback target, or automatic rollback off).
    pub fn new(policy: RollbackPolicy, probation: Option<usize>) -> Tracker {
        Tracker {
            policy,
            state: Mutex::new(TrackerState {
                recent: VecDeque::new(),
                probation: probation
                    .filter(|_| policy.enabled)
                    .map(|sample| Probation {
                        sample: sample.clamp(1, policy.window.max(1)),
                        seen: 0,
                        failed: 0,
                        first_failure: None,
                    }),
                reconciles: 0,
                failures: 0,
                first_reconcile_at: None,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrackerState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records one reconcile: `failure` holds the plugin's failure, if any.
    pub fn record(&self, failure: Option<&str>) -> Verdict {
        let mut s = self.lock();
        s.reconciles += 1;
        s.first_reconcile_at.get_or_insert_with(SystemTime::now);
        if failure.is_some() {
            s.failures += 1;
        }
        s.recent.push_back(failure.is_none());
        while s.recent.len() > self.policy.window.max(1) {
            s.recent.pop_front();
        }
        let threshold = self.policy.threshold;
        let Some(p) = s.probation.as_mut() else {
            return Verdict::Pending;
        };
        p.seen += 1;
        if let Some(f) = failure {
            p.failed += 1;
            p.first_failure.get_or_insert_with(|| f.to_string());
        }
        // Over the limit already, or a full sample judged.
        let limit = threshold * p.sample as f64;
        let verdict = if p.failed as f64 > limit {
            Verdict::RollBack(format!(
                "{} of its first {} reconciles failed (threshold {:.0}%); first failure: {}",
                p.failed,
                p.seen,
                threshold * 100.0,
                p.first_failure.as_deref().unwrap_or("?")
            ))
        } else if p.seen >= p.sample {
            Verdict::Healthy
        } else {
            return Verdict::Pending;
        };
        s.probation = None;
        verdict
    }

    /// Whether the latest results are within the threshold (no results:
    /// healthy, nothing failed).
    pub fn healthy(&self) -> bool {
        let s = self.lock();
        let failed = s.recent.iter().filter(|ok| !**ok).count();
        s.recent.is_empty() || (failed as f64) <= self.policy.threshold * s.recent.len() as f64
    }

    pub fn view(&self) -> TrackerView {
        let s = self.lock();
        TrackerView {
            reconciles: s.reconciles,
            failures: s.failures,
            probation: match (&s.probation, self.policy.enabled) {
                (Some(_), _) => "judging",
                (None, true) if s.reconciles > 0 => "passed",
                _ => "none",
            },
            first_reconcile_at: s.first_reconcile_at.map(unix_seconds),
        }
    }
}

/// Seconds since the Unix epoch, with sub-millisecond precision (what the
/// swap-latency benchmark subtracts).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RollbackPolicy {
        RollbackPolicy {
            enabled: true,
            window: 4,
            threshold: 0.5,
        }
    }

    #[test]
    fn a_failing_revision_is_rolled_back_as_soon_as_the_threshold_is_passed() {
        let t = Tracker::new(policy(), Some(10));
        assert_eq!(t.record(Some("trap: unreachable")), Verdict::Pending);
        assert_eq!(t.record(None), Verdict::Pending);
        // Sample 4 (the window), threshold 50%: a third failure is over.
        assert_eq!(t.record(Some("second")), Verdict::Pending);
        match t.record(Some("third")) {
            Verdict::RollBack(why) => {
                assert!(why.contains("3 of its first 4"), "{why}");
                assert!(why.contains("first failure: trap: unreachable"), "{why}");
            }
            v => panic!("{v:?}"),
        }
        // Judged once.
        assert_eq!(t.record(Some("more")), Verdict::Pending);
        assert!(!t.healthy());
    }

    #[test]
    fn a_revision_within_the_threshold_passes() {
        let t = Tracker::new(policy(), Some(2));
        assert_eq!(t.record(Some("one")), Verdict::Pending);
        assert_eq!(t.record(None), Verdict::Healthy);
        assert_eq!(t.view().probation, "passed");
        assert!(t.healthy());
    }

    #[test]
    fn no_probation_when_disabled_or_not_asked() {
        let off = RollbackPolicy {
            enabled: false,
            ..policy()
        };
        for t in [Tracker::new(off, Some(3)), Tracker::new(policy(), None)] {
            for _ in 0..5 {
                assert_eq!(t.record(Some("x")), Verdict::Pending);
            }
            assert_eq!(t.view().failures, 5);
        }
    }
}
