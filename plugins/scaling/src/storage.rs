//! When to grow the data volumes: the fullest instance's volume at or above
//! the trigger grows the cluster's `spec.storage.size` by one step, up to
//! the maximum, at most once per cooldown (the figure on the Pods lags the
//! resize, and the cooldown keeps one full disk from growing it twice).
//! Storage never shrinks, so there is nothing to stabilize.

use operon_sdk::time::format_rfc3339;

use crate::figures::{DISK_USED_PERCENT, Instance, Reading};
use crate::policy::Storage;
use crate::quantity::format_bytes;
use crate::status::{State, round2};

/// Reasons of the `Limited` and `Blocked` conditions.
pub const AT_MAXIMUM: &str = "StorageAtMaximum";
pub const COOLDOWN: &str = "StorageCooldown";

/// What the storage part of a policy concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The fullest volume's figure; none when no instance reported one.
    pub used_percent: Option<f64>,
    pub notes: Vec<String>,
    /// The size to grow to, when growth is recommended (even if held back).
    pub grow_to: Option<String>,
    /// Whether growing now is allowed (no cooldown pending).
    pub act: bool,
    pub limited: Option<State>,
    pub blocked: Option<(State, Option<i64>)>,
    /// "disk 91% used on hippo-0-0, trigger 80%", for events.
    pub explanation: String,
}

/// `current` is the cluster's size in bytes, `current_text` as written;
/// `last_grow` the policy's last growth time (seconds).
pub fn decide(
    policy: &Storage,
    current: u128,
    current_text: &str,
    instances: &[Instance],
    last_grow: Option<i64>,
    now: i64,
) -> Decision {
    let reading = Reading::of(instances, DISK_USED_PERCENT);
    let mut notes = reading.malformed.clone();
    let mut d = Decision {
        used_percent: None,
        notes: Vec::new(),
        grow_to: None,
        act: false,
        limited: None,
        blocked: None,
        explanation: String::new(),
    };
    let Some(used) = reading.max() else {
        notes.insert(
            0,
            format!("no instance Pod has the annotation {DISK_USED_PERCENT}"),
        );
        d.notes = notes;
        return d;
    };
    d.notes = notes;
    d.used_percent = Some(round2(used));
    let fullest = instances
        .iter()
        .find(|i| matches!(i.figure(DISK_USED_PERCENT), crate::figures::Figure::Value(v) if v == used))
        .map(|i| i.pod.as_str())
        .unwrap_or_default();
    d.explanation = format!(
        "disk {}% used on {fullest}, trigger {}%",
        round2(used),
        policy.trigger_percent
    );
    if used < policy.trigger_percent {
        return d;
    }
    if current >= policy.max {
        d.limited = Some(State::yes(
            AT_MAXIMUM,
            format!(
                "{}, but the storage ({current_text}) is at spec.storage.maxSize {}",
                d.explanation, policy.max_text
            ),
        ));
        return d;
    }
    grow(&mut d, policy, current, current_text, last_grow, now);
    d
}

/// A step of growth, capped at the maximum: made now, or held back by the
/// cooldown after the last growth.
fn grow(
    d: &mut Decision,
    policy: &Storage,
    current: u128,
    current_text: &str,
    last_grow: Option<i64>,
    now: i64,
) {
    let next = current.saturating_add(policy.step);
    let grow_to = if next >= policy.max {
        policy.max_text.clone()
    } else {
        format_bytes(next)
    };
    match last_grow.map(|t| t + policy.cooldown) {
        Some(until) if until > now => {
            d.blocked = Some((
                State::yes(
                    COOLDOWN,
                    format!(
                        "growing storage from {current_text} to {grow_to} waits for the {}s cooldown after the last growth (until {})",
                        policy.cooldown,
                        format_rfc3339(until)
                    ),
                ),
                Some(until),
            ));
        }
        _ => d.act = true,
    }
    if next > policy.max {
        d.limited = Some(State::yes(
            AT_MAXIMUM,
            format!(
                "growth to {} capped at spec.storage.maxSize {}",
                format_bytes(next),
                policy.max_text
            ),
        ));
    }
    d.grow_to = Some(grow_to);
}
