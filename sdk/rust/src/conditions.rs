//! Status conditions in the `metav1.Condition` shape.
//!
//! `kubectl wait --for=condition=Ready`, dashboards and other controllers all
//! read conditions, so their shape and semantics follow apimachinery's
//! `meta.SetStatusCondition`: `lastTransitionTime` moves only when the status
//! flips, while reason, message and observedGeneration always take the latest
//! values. Because a reconcile is a pure function, the previous conditions
//! come from the parent's observed status ([`crate::Request::conditions`]).
//!
//! ```
//! use operon_sdk::conditions::{set_condition, Condition, ConditionStatus};
//!
//! let mut conditions = Vec::new(); // usually req.conditions()
//! set_condition(
//!     &mut conditions,
//!     Condition::new("Ready", ConditionStatus::False, "Progressing", "2/3 replicas ready")
//!         .with_observed_generation(Some(2)),
//! );
//! assert_eq!(conditions[0].status, ConditionStatus::False);
//! assert!(!conditions[0].last_transition_time.is_empty());
//! ```

use serde::{Deserialize, Serialize};

use crate::time::{format_rfc3339, now_rfc3339};

/// The status of a condition: `True`, `False` or `Unknown`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ConditionStatus {
    True,
    False,
    Unknown,
}

impl From<bool> for ConditionStatus {
    fn from(b: bool) -> Self {
        if b {
            ConditionStatus::True
        } else {
            ConditionStatus::False
        }
    }
}

/// One condition, serialized exactly as `metav1.Condition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// UpperCamelCase, e.g. `Ready`.
    #[serde(rename = "type")]
    pub type_: String,
    pub status: ConditionStatus,
    /// UpperCamelCase, machine-readable: why the status is what it is.
    #[serde(default)]
    pub reason: String,
    /// Human-readable detail; may be empty.
    #[serde(default)]
    pub message: String,
    /// RFC 3339; empty until [`set_condition`] fills it.
    #[serde(default)]
    pub last_transition_time: String,
    /// The parent's `metadata.generation` this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

impl Condition {
    /// A condition with no transition time yet: [`set_condition`] decides it.
    pub fn new(
        type_: impl Into<String>,
        status: impl Into<ConditionStatus>,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: String::new(),
            observed_generation: None,
        }
    }

    /// Records which generation of the parent this condition describes
    /// (usually [`crate::Request::generation`]).
    pub fn with_observed_generation(mut self, generation: Option<i64>) -> Self {
        self.observed_generation = generation;
        self
    }

    /// Dates the condition at `unix_secs`: the time it transitioned, if
    /// [`set_condition`] finds its status changed. Plugins pass the time
    /// their reconcile runs at, so a fixed clock gives reproducible
    /// transition times.
    pub fn at(mut self, unix_secs: i64) -> Self {
        self.last_transition_time = format_rfc3339(unix_secs);
        self
    }

    pub fn is_true(&self) -> bool {
        self.status == ConditionStatus::True
    }
}

/// Sets `condition` in `conditions`, replacing one of the same type in place.
///
/// The transition time is kept from the existing condition when the status
/// did not change; otherwise it is the condition's own (if set) or now.
/// Returns whether anything changed, like apimachinery's
/// `meta.SetStatusCondition`.
pub fn set_condition(conditions: &mut Vec<Condition>, condition: Condition) -> bool {
    set_condition_at(conditions, condition, now_rfc3339)
}

fn set_condition_at(
    conditions: &mut Vec<Condition>,
    mut condition: Condition,
    now: impl FnOnce() -> String,
) -> bool {
    match conditions.iter_mut().find(|c| c.type_ == condition.type_) {
        Some(existing) => {
            if existing.status == condition.status {
                condition.last_transition_time = existing.last_transition_time.clone();
            } else if condition.last_transition_time.is_empty() {
                condition.last_transition_time = now();
            }
            let changed = *existing != condition;
            *existing = condition;
            changed
        }
        None => {
            if condition.last_transition_time.is_empty() {
                condition.last_transition_time = now();
            }
            conditions.push(condition);
            true
        }
    }
}

/// The condition of a type, if present.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

/// Removes the condition of a type; returns whether one was there.
pub fn remove_condition(conditions: &mut Vec<Condition>, type_: &str) -> bool {
    let before = conditions.len();
    conditions.retain(|c| c.type_ != type_);
    conditions.len() != before
}

/// Reads conditions from a `status` JSON value, skipping malformed entries:
/// the status is this plugin's own earlier output (or a user's edit), and a
/// bad entry should be replaced, not fail the reconcile.
pub fn conditions_from_status(status: Option<&serde_json::Value>) -> Vec<Condition> {
    status
        .and_then(|s| s.get("conditions"))
        .and_then(serde_json::Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|c| Condition::deserialize(c).ok())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const OLD: &str = "2024-01-01T00:00:00Z";
    const NOW: &str = "2024-05-01T12:00:00Z";

    fn ready(status: bool, reason: &str) -> Condition {
        Condition::new("Ready", status, reason, "m")
    }

    fn existing(status: bool) -> Vec<Condition> {
        let mut c = ready(status, "Before");
        c.last_transition_time = OLD.into();
        vec![c]
    }

    #[test]
    fn unchanged_status_keeps_transition_time() {
        let mut cs = existing(true);
        let changed = set_condition_at(&mut cs, ready(true, "After"), || NOW.into());
        assert!(changed, "reason changed");
        assert_eq!(cs[0].last_transition_time, OLD);
        assert_eq!(cs[0].reason, "After");
    }

    #[test]
    fn identical_condition_is_no_change() {
        let mut cs = existing(true);
        assert!(!set_condition_at(&mut cs, ready(true, "Before"), || NOW.into()));
    }

    #[test]
    fn flipped_status_moves_transition_time() {
        let mut cs = existing(true);
        assert!(set_condition_at(&mut cs, ready(false, "Down"), || NOW.into()));
        assert_eq!(cs.len(), 1);
        assert_eq!(cs[0].last_transition_time, NOW);
        assert_eq!(cs[0].status, ConditionStatus::False);
    }

    #[test]
    fn new_type_is_appended_with_now() {
        let mut cs = existing(true);
        set_condition_at(
            &mut cs,
            Condition::new("Degraded", false, "Fine", ""),
            || NOW.into(),
        );
        assert_eq!(cs.len(), 2);
        assert_eq!(cs[1].last_transition_time, NOW);
    }

    #[test]
    fn a_dated_condition_transitions_at_its_date() {
        let mut cs = existing(true);
        set_condition(&mut cs, ready(false, "Down").at(1_714_564_800));
        assert_eq!(cs[0].last_transition_time, NOW);
        set_condition(&mut cs, ready(false, "StillDown").at(0));
        assert_eq!(cs[0].last_transition_time, NOW, "no flip, no new date");
    }

    #[test]
    fn real_clock_is_used() {
        let mut cs = Vec::new();
        set_condition(&mut cs, ready(true, "R"));
        assert_eq!(cs[0].last_transition_time.len(), 20);
    }

    #[test]
    fn serializes_as_metav1() {
        let c = ready(true, "AllReplicasReady").with_observed_generation(Some(3));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(
            v,
            json!({"type": "Ready", "status": "True", "reason": "AllReplicasReady",
                   "message": "m", "lastTransitionTime": "", "observedGeneration": 3})
        );
    }

    #[test]
    fn reads_status_leniently() {
        let status = json!({"conditions": [
            {"type": "Ready", "status": "True", "reason": "R", "message": "", "lastTransitionTime": OLD},
            {"type": "Broken", "status": "Maybe"},
            "junk"
        ]});
        let cs = conditions_from_status(Some(&status));
        assert_eq!(cs.len(), 1);
        assert_eq!(
            find_condition(&cs, "Ready").map(|c| c.is_true()),
            Some(true)
        );
        assert!(conditions_from_status(None).is_empty());
        let mut cs = cs;
        assert!(remove_condition(&mut cs, "Ready"));
        assert!(cs.is_empty());
    }
}
