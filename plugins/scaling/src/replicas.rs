//! How many instances: the Horizontal Pod Autoscaler's rule on the Pods'
//! figures, bounded by min and max, held back by the scale-up cooldown, the
//! scale-down stabilization window and replication lag.
//!
//! The raw recommendation is `ceil(instances × average / target)`, kept at
//! the current count while the ratio is within [`TOLERANCE`] of 1 (a
//! metric wobbling around its target moves nothing). Pods without a figure
//! count as the HPA counts them: at the target when the others say
//! "fewer", at zero when they say "more", and if that flips the direction
//! nothing moves: a new instance that has not reported yet never causes a
//! scale-down, nor an old one a scale-up.

use operon_sdk::time::format_rfc3339;

use crate::figures::{Figure, Instance, LAG_BYTES, Reading};
use crate::history::History;
use crate::policy::Replicas;
use crate::status::{MetricReading, State, round2};

/// How far from 1 the ratio of average to target must be before the
/// recommendation moves (the HPA's default).
pub const TOLERANCE: f64 = 0.1;

/// Reasons of the `Limited` and `Blocked` conditions.
pub const TOO_MANY: &str = "TooManyInstances";
pub const TOO_FEW: &str = "TooFewInstances";
pub const COOLDOWN: &str = "ScaleUpCooldown";
pub const STABILIZING: &str = "ScaleDownStabilizing";
pub const LAGGING: &str = "ReplicationLag";

/// What the replicas part of a policy concluded.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The figures read; none when no instance reported one.
    pub reading: Option<MetricReading>,
    /// Why there is no reading, or what was wrong with some figures.
    pub notes: Vec<String>,
    /// The instances the policy recommends now: the metric's count within
    /// min and max, stabilized for a scale-down (the current count when
    /// there are no figures). Applied unless `blocked`.
    pub recommended: i32,
    /// Set when min or max cut the raw recommendation.
    pub limited: Option<State>,
    /// Set when a change is held back, with when to look again (none:
    /// when something changes).
    pub blocked: Option<(State, Option<i64>)>,
    pub history: History,
    /// How the figures read, for events: "average 45 connections per
    /// instance over 1 instance, target 10".
    pub explanation: String,
}

/// The raw recommendation from the figures (see the module docs); `current`
/// is the cluster's count of instances.
pub fn recommend(current: i32, reading: &Reading, target: f64) -> i32 {
    let n = reading.values.len() as f64;
    let sum: f64 = reading.values.iter().sum();
    let ratio = sum / (n * target);
    if (ratio - 1.0).abs() <= TOLERANCE {
        return current;
    }
    let missing = reading.without() as f64;
    let (ratio, pods) = if missing == 0.0 {
        (ratio, n)
    } else {
        let fill = if ratio < 1.0 { target } else { 0.0 };
        let filled = (sum + missing * fill) / ((n + missing) * target);
        if (filled - 1.0).abs() <= TOLERANCE || (ratio > 1.0) != (filled > 1.0) {
            return current;
        }
        (filled, n + missing)
    };
    let wanted = (ratio * pods).ceil();
    if wanted >= f64::from(i32::MAX) {
        i32::MAX
    } else {
        wanted as i32
    }
}

/// The whole decision for one reconcile. `last_scale` is the policy's last
/// scale time (seconds), `history` its recent recommendations.
pub fn decide(
    policy: &Replicas,
    current: i32,
    instances: &[Instance],
    last_scale: Option<i64>,
    mut history: History,
    now: i64,
) -> Decision {
    let metric = policy.metric;
    let reading = Reading::of(instances, metric.annotation());
    let mut notes = reading.malformed.clone();
    if reading.values.is_empty() {
        notes.insert(
            0,
            if instances.is_empty() {
                "no instance Pod found".to_string()
            } else {
                format!(
                    "no instance Pod has the annotation {} ({} found)",
                    metric.annotation(),
                    instances.len()
                )
            },
        );
        return without_figures(policy, current, notes, history);
    }
    let n = reading.values.len();
    let average = reading.values.iter().sum::<f64>() / n as f64;
    if !reading.absent.is_empty() {
        notes.push(format!("no figure from {}", reading.absent.join(", ")));
    }
    let explanation = format!(
        "average {} {} per instance over {n} instance{}, target {}",
        round2(average),
        metric.unit(),
        if n == 1 { "" } else { "s" },
        policy.target
    );
    let raw = recommend(current, &reading, policy.target);
    let clamped = raw.clamp(policy.min, policy.max);
    history.record(now, clamped, policy.stabilization);
    let (recommended, blocked) = hold_back(
        policy, current, clamped, last_scale, &history, instances, now,
    );
    Decision {
        reading: Some(MetricReading {
            name: metric.name().to_string(),
            average: round2(average),
            instances: n as i32,
            target: policy.target,
        }),
        notes,
        recommended,
        limited: limited(policy, raw),
        blocked,
        history,
        explanation,
    }
}

/// Without figures the bounds still hold, as for the HPA: a cluster
/// outside min..max is brought to the nearest bound.
fn without_figures(
    policy: &Replicas,
    current: i32,
    notes: Vec<String>,
    history: History,
) -> Decision {
    let bounded = current.clamp(policy.min, policy.max);
    let (limited, explanation) = if bounded == current {
        (None, String::new())
    } else {
        let (reason, bound) = if bounded > current {
            (TOO_FEW, format!("below spec.replicas.min {}", policy.min))
        } else {
            (TOO_MANY, format!("above spec.replicas.max {}", policy.max))
        };
        let are = if current == 1 {
            "instance is"
        } else {
            "instances are"
        };
        let why = format!("no figures, but {current} {are} {bound}");
        (Some(State::yes(reason, why.clone())), why)
    };
    Decision {
        reading: None,
        notes,
        recommended: bounded,
        limited,
        blocked: None,
        history,
        explanation,
    }
}

/// `Limited` when min or max cut the raw recommendation.
fn limited(policy: &Replicas, raw: i32) -> Option<State> {
    if raw > policy.max {
        Some(State::yes(
            TOO_MANY,
            format!(
                "{raw} recommended, capped at spec.replicas.max {}",
                policy.max
            ),
        ))
    } else if raw < policy.min {
        Some(State::yes(
            TOO_FEW,
            format!(
                "{raw} recommended, kept at spec.replicas.min {}",
                policy.min
            ),
        ))
    } else {
        None
    }
}

/// What is recommended now, and what holds a change back: the cooldown
/// after the last scale for a scale-up; for a scale-down, the highest
/// recommendation of the stabilization window, then replication lag.
fn hold_back(
    policy: &Replicas,
    current: i32,
    clamped: i32,
    last_scale: Option<i64>,
    history: &History,
    instances: &[Instance],
    now: i64,
) -> (i32, Option<(State, Option<i64>)>) {
    if clamped > current {
        let blocked = last_scale
            .map(|t| t + policy.scale_up_cooldown)
            .filter(|&until| until > now)
            .map(|until| {
                let message = format!(
                    "scale-up from {current} to {clamped} waits for the {}s cooldown after the last scale (until {})",
                    policy.scale_up_cooldown,
                    format_rfc3339(until)
                );
                (State::yes(COOLDOWN, message), Some(until))
            });
        return (clamped, blocked);
    }
    if clamped == current {
        return (current, None);
    }
    let stabilized = history.max().unwrap_or(clamped).min(current);
    if stabilized >= current {
        let until = history.releases_below(current, policy.stabilization);
        let message = format!(
            "scale-down from {current} to {clamped} waits: {current} or more was recommended within the last {}s{}",
            policy.stabilization,
            until
                .map(|t| format!(" (until {})", format_rfc3339(t)))
                .unwrap_or_default()
        );
        return (stabilized, Some((State::yes(STABILIZING, message), until)));
    }
    let blocked = lagging(policy, instances).map(|why| {
        let message = format!("scale-down from {current} to {stabilized} waits: {why}");
        (State::yes(LAGGING, message), None)
    });
    (stabilized, blocked)
}

/// Why scale-in must wait for replication, if it must: a replica lagging
/// beyond the bound, or one whose lag is unknown (no figure is not "no
/// lag": removing replicas while the survivors may be behind is what the
/// bound exists to prevent).
fn lagging(policy: &Replicas, instances: &[Instance]) -> Option<String> {
    let bound = policy.max_lag_bytes?;
    let mut problems = Vec::new();
    for replica in instances.iter().filter(|i| !i.primary) {
        match replica.figure(LAG_BYTES) {
            Figure::Value(lag) if lag > bound as f64 => problems.push(format!(
                "replica {} lags {lag} bytes (spec.replicas.maxReplicationLagBytes {bound})",
                replica.pod
            )),
            Figure::Value(_) => {}
            Figure::Missing => problems.push(format!(
                "the replication lag of replica {} is unknown (no {LAG_BYTES} annotation)",
                replica.pod
            )),
            Figure::Malformed(text) => problems.push(format!(
                "the replication lag of replica {} is unreadable ({LAG_BYTES}={text:?})",
                replica.pod
            )),
        }
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(values: &[f64], missing: usize) -> Reading {
        Reading {
            values: values.to_vec(),
            absent: (0..missing).map(|i| format!("p{i}")).collect(),
            malformed: Vec::new(),
        }
    }

    #[test]
    fn follows_the_hpa_rule() {
        assert_eq!(recommend(1, &reading(&[45.0], 0), 10.0), 5);
        assert_eq!(recommend(2, &reading(&[12.0, 12.0], 0), 10.0), 3);
        assert_eq!(recommend(3, &reading(&[2.0, 1.0, 0.0], 0), 10.0), 1);
        assert_eq!(recommend(3, &reading(&[0.0, 0.0, 0.0], 0), 10.0), 0);
    }

    #[test]
    fn stays_within_tolerance() {
        assert_eq!(recommend(3, &reading(&[10.5, 10.5, 10.5], 0), 10.0), 3);
        assert_eq!(recommend(3, &reading(&[9.1, 9.1, 9.1], 0), 10.0), 3);
    }

    #[test]
    fn pods_without_figures_never_cause_the_wrong_move() {
        // Two report little, one says nothing: it counts as at target.
        assert_eq!(recommend(3, &reading(&[1.0, 1.0], 1), 10.0), 2);
        // One reports a little above target, two new ones nothing yet: as
        // zeros they would mean "fewer", which flips the direction.
        assert_eq!(recommend(3, &reading(&[12.0], 2), 10.0), 3);
        // Far above target even with zeros: more.
        assert_eq!(recommend(2, &reading(&[50.0], 1), 10.0), 5);
    }
}
