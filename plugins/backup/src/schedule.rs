//! One reconcile of a `BackupSchedule`: the `PostgresBackup` its latest
//! slot owes, retention over the backups it made, and when to wake next.
//!
//! The schedule makes `PostgresBackup` objects, not a CronJob: the backups
//! are what retention counts, what reports each run's outcome and artifact,
//! and what a restore names; a CronJob would make Jobs that then need
//! mapping back to backups. Each backup is named by its slot
//! (`<schedule>-<yyyymmddhhmm>`, UTC), so a reconcile that runs twice, or
//! after its status write was lost, makes the same object again rather
//! than a second backup. The backups are owned children: pruning one by
//! retention is leaving it out of the desired set, and its own finalizer
//! then removes its artifact if its `deletionPolicy` says so.

use std::collections::BTreeMap;
use std::time::Duration;

use operon_sdk::conditions::{Condition, set_condition};
use operon_sdk::time::{civil_from_days, format_rfc3339, parse_rfc3339};
use operon_sdk::{Error, Event, Gvk, Reconciler, Registration, Request, Response};
use serde_json::{Value, json};

use crate::api::{BACKUP_KIND, GROUP, VERSION};
use crate::duration::parse_duration;
use crate::retention::{self, Candidate, State};
use crate::spec::phase::{COMPLETED, FAILED, INVALID};
use crate::spec::{BackupSpec, ConcurrencyPolicy, ScheduleSpec, ScheduleStatus};
use crate::validate;

pub const SCHEDULE_KIND: &str = "BackupSchedule";
/// The BackupSchedule CRD; the schedule component ships it.
pub const SCHEDULE_CRD: &str = include_str!("../crd/backupschedule.json");
pub const LABEL_SCHEDULE: &str = "postgres.operon.dev/schedule";
/// On each backup made: the slot it was made for.
pub const ANNOTATION_SLOT: &str = "postgres.operon.dev/scheduled-at";
/// `<schedule>-<12 digits>-cleanup` must fit the 63 characters of a Job name.
pub const MAX_NAME_LEN: usize = validate::MAX_NAME_LEN - 13;

/// The schedule reconciler, exported by the `operon-backup-schedule`
/// component (one component reconciles one kind).
pub struct ScheduleReconciler;

impl Reconciler for ScheduleReconciler {
    fn describe() -> Registration {
        Registration::new(
            "backup-schedule",
            env!("CARGO_PKG_VERSION"),
            Gvk::new(GROUP, VERSION, SCHEDULE_KIND),
        )
        .owns_kind(Gvk::new(GROUP, VERSION, BACKUP_KIND))
        .crd(SCHEDULE_CRD)
    }

    fn reconcile(_ctx: &operon_sdk::Context, req: Request) -> Result<Response, Error> {
        reconcile_at(&req, crate::clock::now_secs())
    }
}

fn cond(req: &Request, now: i64, ok: bool, reason: &str, message: &str) -> Condition {
    let mut c =
        Condition::new("Ready", ok, reason, message).with_observed_generation(req.generation());
    c.last_transition_time = format_rfc3339(now);
    c
}

/// `2026-01-01T00:05:00Z` → `202601010005`: the slot in a backup's name.
fn slot_suffix(slot: i64) -> String {
    let (y, m, d) = civil_from_days(slot.div_euclid(86_400));
    let s = slot.rem_euclid(86_400);
    format!("{y:04}{m:02}{d:02}{:02}{:02}", s / 3600, s % 3600 / 60)
}

/// The spec of the backups: the template with the schedule's clusterRef.
fn template(spec: &ScheduleSpec) -> Result<(Value, BackupSpec), String> {
    let mut tpl = spec.backup_template.clone();
    if !tpl.is_object() {
        return Err("spec.backupTemplate must be an object (a PostgresBackup spec)".into());
    }
    if tpl.get("clusterRef").is_none() {
        tpl["clusterRef"] = json!({"name": spec.cluster_ref.name});
    }
    let parsed: BackupSpec =
        serde_json::from_value(tpl.clone()).map_err(|e| format!("spec.backupTemplate: {e}"))?;
    Ok((tpl, parsed))
}

/// The spec's refusals, or the template, the cron and the zone offset.
fn check(name: &str, spec: &ScheduleSpec) -> Result<(Value, crate::cron::Cron, i64), String> {
    if spec.cluster_ref.name.is_empty() {
        return Err(
            "spec.clusterRef.name is missing: name the PostgresCluster to back up".to_string(),
        );
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "metadata.name {name:?} is {} characters long; at most {MAX_NAME_LEN} leave room for the backups' names",
            name.len()
        ));
    }
    let (tpl, parsed) = template(spec)?;
    let (cron, offset) = validate::schedule(spec, &parsed)?;
    Ok((tpl, cron, offset))
}

/// The whole reconcile at `now` (seconds since the epoch).
pub fn reconcile_at(req: &Request, now: i64) -> Result<Response, Error> {
    let name = req.name();
    let namespace = req.namespace();
    let parsed: Result<ScheduleSpec, Error> = req.spec();
    let prev: ScheduleStatus = req
        .status_json()
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let mut status = ScheduleStatus {
        conditions: req.conditions(),
        ..prev.clone()
    };
    let observed: Vec<&Value> = req
        .observed()
        .iter()
        .filter(|o| o["kind"] == BACKUP_KIND)
        .collect();

    let checked = parsed
        .map_err(|e| e.to_string())
        .and_then(|spec| check(name, &spec).map(|(tpl, cron, offset)| (spec, tpl, cron, offset)));
    let (spec, tpl, cron, offset) = match checked {
        Ok(ok) => ok,
        Err(message) => {
            // Nothing new, nothing pruned: the backups made so far stay.
            set_condition(
                &mut status.conditions,
                cond(req, now, false, "InvalidSpec", &message),
            );
            status.next_schedule_time = None;
            return Ok(Response::new()
                .children(observed.iter().map(|o| keep_backup(o)))
                .status(status)
                .event(Event::warning("InvalidSpec", message)));
        }
    };
    let mut resp = Response::new();
    let mut children: BTreeMap<String, Value> = observed
        .iter()
        .map(|o| (name_of(o).to_string(), keep_backup(o)))
        .collect();
    let mut candidates: Vec<Candidate> = observed.iter().map(|o| candidate(o, now)).collect();

    let base = status
        .last_schedule_time
        .as_deref()
        .or_else(|| req.parent_json()["metadata"]["creationTimestamp"].as_str())
        .and_then(parse_rfc3339)
        .unwrap_or(now);
    let (ok, reason, mut message) = if spec.suspend {
        (
            true,
            "Suspended",
            "spec.suspend is set: no new backups".to_string(),
        )
    } else {
        (true, "Scheduled", String::new())
    };
    if !spec.suspend
        && let Some(slot) = cron.latest_in(base, now, offset)
    {
        let backup = format!("{name}-{}", slot_suffix(slot));
        let active: Vec<&str> = candidates
            .iter()
            .filter(|c| c.state == State::Active)
            .map(|c| c.name.as_str())
            .collect();
        status.last_schedule_time = Some(format_rfc3339(slot));
        if now - slot > spec.starting_deadline_seconds {
            resp = resp.event(Event::warning(
                "MissedSchedule",
                format!(
                    "the slot {} passed more than startingDeadlineSeconds ({}) ago: skipped",
                    format_rfc3339(slot),
                    spec.starting_deadline_seconds
                ),
            ));
        } else if spec.concurrency_policy == ConcurrencyPolicy::Forbid
            && !active.is_empty()
            && !children.contains_key(&backup)
        {
            resp = resp.event(Event::normal(
                "Skipped",
                format!(
                    "the slot {} is skipped: {} still running (concurrencyPolicy Forbid)",
                    format_rfc3339(slot),
                    active.join(", ")
                ),
            ));
        } else if !children.contains_key(&backup) {
            children.insert(
                backup.clone(),
                new_backup(req, &backup, slot, &tpl, namespace),
            );
            candidates.push(Candidate {
                name: backup.clone(),
                state: State::Active,
                time: now,
                expired: false,
            });
            status.last_backup = Some(backup.clone());
            resp = resp.event(Event::normal(
                "BackupCreated",
                format!(
                    "PostgresBackup {backup} for the slot {}",
                    format_rfc3339(slot)
                ),
            ));
        }
    }

    // Retention.
    let max_age = spec.retention.max_age.as_deref().and_then(parse_duration);
    let keep = retention::keep(&candidates, &spec.retention, max_age, now, offset);
    let pruned: Vec<String> = children
        .keys()
        .filter(|n| !keep.contains(*n))
        .cloned()
        .collect();
    for n in &pruned {
        children.remove(n);
    }
    if !pruned.is_empty() {
        resp = resp.event(Event::normal(
            "Pruned",
            format!("retention removes {}", pruned.join(", ")),
        ));
    }

    let kept: Vec<&Candidate> = candidates
        .iter()
        .filter(|c| keep.contains(&c.name))
        .collect();
    status.active = kept
        .iter()
        .filter(|c| c.state == State::Active)
        .map(|c| c.name.clone())
        .collect();
    status.active.sort();
    status.backups = i64::try_from(kept.len()).unwrap_or(i64::MAX);
    if let Some(t) = candidates
        .iter()
        .filter(|c| c.state == State::Completed)
        .map(|c| c.time)
        .max()
        .filter(|t| prev.last_successful_time.as_deref().and_then(parse_rfc3339) < Some(*t))
    {
        status.last_successful_time = Some(format_rfc3339(t));
    }
    if status.last_backup.is_none() {
        status.last_backup = candidates
            .iter()
            .max_by_key(|c| (c.time, c.name.clone()))
            .map(|c| c.name.clone());
    }
    status.next_schedule_time = None;
    if !spec.suspend {
        match cron.next_after(now, offset) {
            Some(next) => {
                status.next_schedule_time = Some(format_rfc3339(next));
                message = format!("next backup at {}", format_rfc3339(next));
                let wait = u64::try_from(next - now).unwrap_or(1).max(1);
                resp = resp.requeue_after(Duration::from_secs(wait));
            }
            None => message = "the schedule has no run in the next five years".into(),
        }
    }
    set_condition(&mut status.conditions, cond(req, now, ok, reason, &message));
    Ok(resp.children(children.into_values()).status(status))
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// What retention needs of an observed backup.
fn candidate(o: &Value, now: i64) -> Candidate {
    let st = &o["status"];
    let time_of = |field: &str| st[field].as_str().and_then(parse_rfc3339);
    let made = o["metadata"]["annotations"][ANNOTATION_SLOT]
        .as_str()
        .or_else(|| o["metadata"]["creationTimestamp"].as_str())
        .and_then(parse_rfc3339)
        .unwrap_or(now);
    let phase = st["phase"].as_str().unwrap_or_default();
    let (state, time) = match phase {
        COMPLETED => (State::Completed, time_of("completionTime").unwrap_or(made)),
        FAILED | INVALID => (State::Failed, time_of("completionTime").unwrap_or(made)),
        _ => (State::Active, made),
    };
    Candidate {
        name: name_of(o).to_string(),
        state,
        time,
        expired: state == State::Completed && time_of("expiresAt").is_some_and(|t| t <= now),
    }
}

/// An observed backup as it is: a later template change does not touch
/// the backups already made.
fn keep_backup(o: &Value) -> Value {
    let meta = &o["metadata"];
    let mut m = json!({"name": meta["name"]});
    for field in ["namespace", "labels", "annotations"] {
        if !meta[field].is_null() {
            m[field] = meta[field].clone();
        }
    }
    json!({"apiVersion": o["apiVersion"], "kind": o["kind"], "metadata": m, "spec": o["spec"]})
}

fn new_backup(req: &Request, name: &str, slot: i64, tpl: &Value, namespace: Option<&str>) -> Value {
    let cluster = tpl["clusterRef"]["name"].clone();
    let mut m = json!({
        "name": name,
        "labels": {LABEL_SCHEDULE: req.name(), "postgres.operon.dev/cluster": cluster},
        "annotations": {ANNOTATION_SLOT: format_rfc3339(slot)},
    });
    if let Some(ns) = namespace {
        m["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": BACKUP_KIND,
        "metadata": m,
        "spec": tpl,
    })
}
