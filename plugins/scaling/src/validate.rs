//! What makes a policy unusable, each named by its field.
//!
//! The CRD's schema refuses wrong types and unknown enum values at
//! admission; what needs several fields (min against max), a parse
//! (quantities) or the target cluster (its current size) is checked here.
//! A refused policy changes nothing and says why in its `Active`
//! condition. Every problem is reported at once, so one edit can fix them
//! all.

use crate::policy::{
    DEFAULT_MIN, DEFAULT_SCALE_UP_COOLDOWN, DEFAULT_STABILIZATION, DEFAULT_STORAGE_COOLDOWN,
    DEFAULT_SYNC_PERIOD, DEFAULT_TRIGGER_PERCENT, Metric, Mode, Policy, PolicySpec, Replicas,
    ReplicasSpec, Storage, StorageSpec,
};
use crate::quantity::parse_bytes;
use crate::{CLUSTER_KIND, GROUP};

/// The checked policy, or every problem joined by `; `.
pub fn policy(spec: &PolicySpec) -> Result<Policy, String> {
    let mut problems = Vec::new();
    let target = target(spec, &mut problems);
    let mode = match spec.mode.as_deref() {
        None => Some(Mode::Recommend),
        Some(m) => Mode::parse(m).or_else(|| {
            problems.push(format!("spec.mode {m:?} is not one of {}", Mode::NAMES));
            None
        }),
    };
    let replicas = spec
        .replicas
        .as_ref()
        .and_then(|r| replicas(r, &mut problems));
    let storage = spec
        .storage
        .as_ref()
        .and_then(|s| storage(s, &mut problems));
    let sync_period = spec.sync_period_seconds.unwrap_or(DEFAULT_SYNC_PERIOD);
    if sync_period < 1 {
        problems.push(format!("spec.syncPeriodSeconds {sync_period} is below 1"));
    }
    if spec.replicas.is_none() && spec.storage.is_none() {
        problems
            .push("the policy has neither spec.replicas nor spec.storage: nothing to scale".into());
    }
    match (target, mode) {
        (Some(target), Some(mode)) if problems.is_empty() => Ok(Policy {
            target,
            mode,
            replicas,
            storage,
            sync_period,
        }),
        _ => Err(problems.join("; ")),
    }
}

fn target(spec: &PolicySpec, problems: &mut Vec<String>) -> Option<String> {
    let Some(r) = &spec.target_ref else {
        problems.push("spec.targetRef is required: the PostgresCluster to scale".into());
        return None;
    };
    if let Some(kind) = r.kind.as_deref().filter(|k| *k != CLUSTER_KIND) {
        problems.push(format!(
            "spec.targetRef.kind {kind} is not supported: a policy scales a {CLUSTER_KIND}"
        ));
    }
    if let Some(av) = r.api_version.as_deref()
        && av.split_once('/').map(|(g, _)| g) != Some(GROUP)
    {
        problems.push(format!(
            "spec.targetRef.apiVersion {av} is not supported: a {CLUSTER_KIND} is {GROUP}/*"
        ));
    }
    match r.name.as_deref() {
        Some(name) if !name.is_empty() => Some(name.to_string()),
        _ => {
            problems.push("spec.targetRef.name is required: the PostgresCluster to scale".into());
            None
        }
    }
}

fn non_negative(field: &str, value: Option<i64>, default: i64, problems: &mut Vec<String>) -> i64 {
    match value {
        Some(v) if v < 0 => {
            problems.push(format!("{field} {v} is negative"));
            default
        }
        Some(v) => v,
        None => default,
    }
}

/// `min` and `max`: at least the primary, max not below min, within an
/// i32 (a problem for each that is not).
fn bounds(r: &ReplicasSpec, problems: &mut Vec<String>) -> (i64, i64) {
    let min = r.min.unwrap_or(DEFAULT_MIN);
    if min < 1 {
        problems.push(format!(
            "spec.replicas.min {min} is below 1: a cluster always keeps its primary"
        ));
    }
    let max = match r.max {
        None => {
            problems.push("spec.replicas.max is required: the most instances to scale to".into());
            min
        }
        Some(max) if max < min => {
            problems.push(format!(
                "spec.replicas.min {min} is above spec.replicas.max {max}"
            ));
            max
        }
        Some(max) => max,
    };
    let limit = i64::from(i32::MAX);
    if max > limit {
        problems.push(format!("spec.replicas.max {max} is above {limit}"));
    }
    (min, max)
}

/// The metric, one the plugin reads, and a positive target for it.
fn metric_and_target(
    r: &ReplicasSpec,
    problems: &mut Vec<String>,
) -> (Option<Metric>, Option<f64>) {
    let metric = match r.metric.as_deref() {
        None => {
            problems.push(format!(
                "spec.replicas.metric is required (one of {})",
                Metric::NAMES
            ));
            None
        }
        Some(m) => Metric::parse(m).or_else(|| {
            problems.push(format!(
                "spec.replicas.metric {m:?} is not one of {}",
                Metric::NAMES
            ));
            None
        }),
    };
    let target = match r.target {
        None => {
            problems
                .push("spec.replicas.target is required: the average per instance to keep".into());
            None
        }
        Some(t) if !(t > 0.0 && t.is_finite()) => {
            problems.push(format!("spec.replicas.target {t} must be above 0"));
            None
        }
        Some(t) => Some(t),
    };
    (metric, target)
}

fn replicas(r: &ReplicasSpec, problems: &mut Vec<String>) -> Option<Replicas> {
    let before = problems.len();
    let (min, max) = bounds(r, problems);
    let (metric, target) = metric_and_target(r, problems);
    let scale_up_cooldown = non_negative(
        "spec.replicas.scaleUpCooldownSeconds",
        r.scale_up_cooldown_seconds,
        DEFAULT_SCALE_UP_COOLDOWN,
        problems,
    );
    let stabilization = non_negative(
        "spec.replicas.scaleDownStabilizationSeconds",
        r.scale_down_stabilization_seconds,
        DEFAULT_STABILIZATION,
        problems,
    );
    let max_lag_bytes = r.max_replication_lag_bytes.and_then(|b| {
        u64::try_from(b).ok().or_else(|| {
            problems.push(format!(
                "spec.replicas.maxReplicationLagBytes {b} is negative"
            ));
            None
        })
    });
    if problems.len() > before {
        return None;
    }
    Some(Replicas {
        min: i32::try_from(min).ok()?,
        max: i32::try_from(max).ok()?,
        metric: metric?,
        target: target?,
        scale_up_cooldown,
        stabilization,
        max_lag_bytes,
    })
}

fn size(field: &str, value: Option<&str>, problems: &mut Vec<String>) -> Option<(u128, String)> {
    match value {
        None => {
            problems.push(format!("{field} is required"));
            None
        }
        Some(text) => match parse_bytes(text) {
            Some(0) => {
                problems.push(format!("{field} {text} must be above 0"));
                None
            }
            Some(bytes) => Some((bytes, text.to_string())),
            None => {
                problems.push(format!(
                    "{field} {text:?} is not a storage quantity (e.g. 5Gi)"
                ));
                None
            }
        },
    }
}

fn storage(s: &StorageSpec, problems: &mut Vec<String>) -> Option<Storage> {
    let before = problems.len();
    let trigger_percent = s.trigger_percent.unwrap_or(DEFAULT_TRIGGER_PERCENT);
    if !(trigger_percent > 0.0 && trigger_percent <= 100.0) {
        problems.push(format!(
            "spec.storage.triggerPercent {trigger_percent} is not above 0 and at most 100"
        ));
    }
    let step = size("spec.storage.step", s.step.as_deref(), problems);
    let max = size("spec.storage.maxSize", s.max_size.as_deref(), problems);
    let cooldown = non_negative(
        "spec.storage.cooldownSeconds",
        s.cooldown_seconds,
        DEFAULT_STORAGE_COOLDOWN,
        problems,
    );
    if problems.len() > before {
        return None;
    }
    let ((step, _), (max, max_text)) = (step?, max?);
    Some(Storage {
        trigger_percent,
        step,
        max,
        max_text,
        cooldown,
    })
}

/// What the target makes wrong with a valid policy: a storage maximum below
/// the cluster's current size (growth could only shrink, which the Postgres
/// plugin refuses anyway), or a cluster size that is not a quantity.
/// Returns the cluster's current size in bytes when storage is managed.
pub fn against_target(
    policy: &Policy,
    cluster_desc: &str,
    cluster_size: Option<&str>,
) -> Result<Option<u128>, String> {
    let Some(storage) = &policy.storage else {
        return Ok(None);
    };
    let Some(text) = cluster_size else {
        return Err(format!("{cluster_desc} has no spec.storage.size to grow"));
    };
    let Some(current) = parse_bytes(text) else {
        return Err(format!(
            "{cluster_desc} spec.storage.size {text:?} is not a storage quantity"
        ));
    };
    if storage.max < current {
        return Err(format!(
            "spec.storage.maxSize {} is below the current size {text} of {cluster_desc}",
            storage.max_text
        ));
    }
    Ok(Some(current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::TargetRef;

    fn spec(replicas: Option<ReplicasSpec>, storage: Option<StorageSpec>) -> PolicySpec {
        PolicySpec {
            target_ref: Some(TargetRef {
                name: Some("hippo".into()),
                ..Default::default()
            }),
            mode: Some("Enforce".into()),
            replicas,
            storage,
            sync_period_seconds: None,
        }
    }

    fn good_replicas() -> ReplicasSpec {
        ReplicasSpec {
            min: Some(1),
            max: Some(3),
            metric: Some("connections".into()),
            target: Some(10.0),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let p = policy(&spec(Some(good_replicas()), None)).unwrap();
        let r = p.replicas.unwrap();
        assert_eq!(r.scale_up_cooldown, DEFAULT_SCALE_UP_COOLDOWN);
        assert_eq!(r.stabilization, DEFAULT_STABILIZATION);
        assert_eq!(r.max_lag_bytes, None);
        let mut s = spec(None, None);
        s.mode = None;
        s.storage = Some(StorageSpec {
            step: Some("1Gi".into()),
            max_size: Some("10Gi".into()),
            ..Default::default()
        });
        let p = policy(&s).unwrap();
        assert_eq!(p.mode, Mode::Recommend, "advising is the safe default");
        let st = p.storage.unwrap();
        assert_eq!(st.trigger_percent, DEFAULT_TRIGGER_PERCENT);
        assert_eq!((st.step, st.max), (1 << 30, 10 << 30));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut r = good_replicas();
        r.min = Some(0);
        r.metric = Some("qps".into());
        r.target = Some(0.0);
        let err = policy(&spec(Some(r), None)).unwrap_err();
        assert_eq!(
            err,
            "spec.replicas.min 0 is below 1: a cluster always keeps its primary; \
             spec.replicas.metric \"qps\" is not one of connections, cpu; \
             spec.replicas.target 0 must be above 0"
        );
    }

    #[test]
    fn storage_maximum_below_the_cluster_is_refused() {
        let s = spec(
            None,
            Some(StorageSpec {
                step: Some("1Gi".into()),
                max_size: Some("2Gi".into()),
                ..Default::default()
            }),
        );
        let p = policy(&s).unwrap();
        assert_eq!(
            against_target(&p, "PostgresCluster demo/hippo", Some("5Gi")).unwrap_err(),
            "spec.storage.maxSize 2Gi is below the current size 5Gi of PostgresCluster demo/hippo"
        );
        assert_eq!(
            against_target(&p, "PostgresCluster demo/hippo", Some("1Gi")),
            Ok(Some(1 << 30))
        );
    }
}
