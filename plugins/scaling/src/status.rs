//! `status` of a PostgresScalingPolicy: what it recommends, what it read,
//! when it last acted, and its conditions. Besides reporting, the status
//! is the plugin's memory: the last scale and growth times (cooldowns) and
//! the recent recommendations (the stabilization window).

use operon_sdk::conditions::{Condition, ConditionStatus, set_condition};
use serde::{Deserialize, Serialize};

use crate::history::Sample;

/// Condition types.
pub const ACTIVE: &str = "Active";
pub const LIMITED: &str = "Limited";
pub const BLOCKED: &str = "Blocked";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatus {
    /// The target's `spec.instances` when last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_instances: Option<i32>,
    /// The target's `spec.storage.size` when last reconciled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_storage_size: Option<String>,
    /// What the policy sets (Enforce) or would set (Recommend) now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recommendation: Option<Recommendation>,
    /// The figures the recommendation was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricReading>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_used_percent: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scale_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_storage_grow_time: Option<String>,
    /// The target's `metadata.generation` the last change was made from;
    /// while the host's cache still shows it, that change is in flight and
    /// is not made again (see [`crate::plan`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_generation: Option<i64>,
    /// Recommendations of the scale-down stabilization window, oldest
    /// first (see [`crate::history`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recent_recommendations: Vec<Sample>,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instances: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_size: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetricReading {
    pub name: String,
    /// Average per reporting instance, rounded to hundredths.
    pub average: f64,
    /// Instance Pods that reported the figure.
    pub instances: i32,
    pub target: f64,
}

/// Rounds a figure for the status: hundredths are plenty, and fewer digits
/// keep the status from changing on noise no decision depends on.
pub fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// One condition's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct State {
    pub status: bool,
    pub reason: String,
    pub message: String,
}

impl State {
    pub fn yes(reason: &str, message: impl Into<String>) -> State {
        State {
            status: true,
            reason: reason.into(),
            message: message.into(),
        }
    }

    pub fn no(reason: &str, message: impl Into<String>) -> State {
        State {
            status: false,
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Sets a condition at `now` (the time the reconcile runs at, so a fixed
/// `--now` gives reproducible transition times).
pub fn set(
    conditions: &mut Vec<Condition>,
    type_: &str,
    state: State,
    now: i64,
    generation: Option<i64>,
) {
    let c = Condition::new(
        type_,
        ConditionStatus::from(state.status),
        state.reason,
        state.message,
    )
    .with_observed_generation(generation)
    .at(now);
    set_condition(conditions, c);
}
