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

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use jiff::Timestamp;
use jiff::tz::TimeZone;
use operon_sdk::conditions::{Condition, set_condition};
use operon_sdk::time::{format_rfc3339, parse_rfc3339};
use operon_sdk::{Error, Event, Gvk, Reconciler, Registration, Request, Response, name_of};
use serde_json::{Value, json};

use crate::api::{BACKUP_KIND, GROUP, VERSION};
use crate::cron::Cron;
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
        reconcile_at(&req, operon_sdk::time::now_secs())
    }
}

fn cond(req: &Request, now: i64, ok: bool, reason: &str, message: &str) -> Condition {
    Condition::new("Ready", ok, reason, message)
        .with_observed_generation(req.generation())
        .at(now)
}

/// `2026-01-01T00:05:00Z` → `202601010005`: the slot in a backup's name,
/// in UTC whatever the schedule's zone, so names sort by time.
fn slot_suffix(slot: i64) -> String {
    Timestamp::from_second(slot)
        .unwrap_or(Timestamp::UNIX_EPOCH)
        .strftime("%Y%m%d%H%M")
        .to_string()
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

/// A schedule's spec as checked, ready for use.
struct Plan {
    spec: ScheduleSpec,
    /// The PostgresBackup spec of every backup made.
    template: Value,
    cron: Cron,
    zone: TimeZone,
}

/// The spec's refusals, or the plan.
fn check(name: &str, spec: ScheduleSpec) -> Result<Plan, String> {
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
    let (template, parsed) = template(&spec)?;
    let (cron, zone) = validate::schedule(&spec, &parsed)?;
    Ok(Plan {
        spec,
        template,
        cron,
        zone,
    })
}

/// The whole reconcile at `now` (seconds since the epoch), in stages: the
/// spec checked, the backup the latest slot owes, retention, the status's
/// summary, and the wake-up for the next slot.
pub fn reconcile_at(req: &Request, now: i64) -> Result<Response, Error> {
    let mut run = Run::new(req, now);
    let checked = req
        .spec::<ScheduleSpec>()
        .map_err(|e| e.to_string())
        .and_then(|spec| check(req.name(), spec));
    let plan = match checked {
        Ok(plan) => plan,
        Err(message) => return Ok(run.refused(message)),
    };
    if !plan.spec.suspend {
        run.latest_slot(&plan);
    }
    let keep = run.retention(&plan);
    run.summarize(&keep);
    Ok(run.next_slot(&plan))
}

/// One reconcile of a schedule as it goes: what it observed, and what it
/// makes and reports so far.
struct Run<'a> {
    req: &'a Request,
    now: i64,
    prev: ScheduleStatus,
    status: ScheduleStatus,
    resp: Response,
    /// The observed backups, in the order observed.
    observed: Vec<&'a Value>,
    /// The backups to ask for, by name: the observed ones as they are,
    /// and the new one of the slot.
    children: BTreeMap<String, Value>,
    /// What retention needs of every backup, observed or new.
    candidates: Vec<Candidate>,
}

impl<'a> Run<'a> {
    fn new(req: &'a Request, now: i64) -> Self {
        let prev: ScheduleStatus = req.status_or_default();
        let observed: Vec<&Value> = req
            .observed()
            .iter()
            .filter(|o| o["kind"] == BACKUP_KIND)
            .collect();
        Run {
            req,
            now,
            status: ScheduleStatus {
                conditions: req.conditions(),
                ..prev.clone()
            },
            prev,
            resp: Response::new(),
            children: observed
                .iter()
                .map(|o| (name_of(o).to_string(), keep_backup(o)))
                .collect(),
            candidates: observed.iter().map(|o| candidate(o, now)).collect(),
            observed,
        }
    }

    /// A refused spec: nothing new, nothing pruned, the backups made so
    /// far stay as they are.
    fn refused(mut self, message: String) -> Response {
        set_condition(
            &mut self.status.conditions,
            cond(self.req, self.now, false, "InvalidSpec", &message),
        );
        self.status.next_schedule_time = None;
        Response::new()
            .children(self.observed.iter().map(|o| keep_backup(o)))
            .status(self.status)
            .event(Event::warning("InvalidSpec", message))
    }

    /// The backup the latest slot since the last one owes: made unless
    /// the slot passed longer than `startingDeadlineSeconds` ago, or
    /// `Forbid` and a backup still runs. Made already, it is asked for
    /// again as it is.
    fn latest_slot(&mut self, plan: &Plan) {
        let (req, now, spec) = (self.req, self.now, &plan.spec);
        let base = self
            .status
            .last_schedule_time
            .as_deref()
            .or_else(|| req.parent_json()["metadata"]["creationTimestamp"].as_str())
            .and_then(parse_rfc3339)
            .unwrap_or(now);
        let Some(slot) = plan.cron.latest_in(base, now, &plan.zone) else {
            return;
        };
        let backup = format!("{}-{}", req.name(), slot_suffix(slot));
        let at = format_rfc3339(slot);
        self.status.last_schedule_time = Some(at.clone());
        if now - slot > spec.starting_deadline_seconds {
            return self.event(Event::warning(
                "MissedSchedule",
                format!(
                    "the slot {at} passed more than startingDeadlineSeconds ({}) ago: skipped",
                    spec.starting_deadline_seconds
                ),
            ));
        }
        if self.children.contains_key(&backup) {
            return;
        }
        let active: Vec<&str> = self
            .candidates
            .iter()
            .filter(|c| c.state == State::Active)
            .map(|c| c.name.as_str())
            .collect();
        if spec.concurrency_policy == ConcurrencyPolicy::Forbid && !active.is_empty() {
            let message = format!(
                "the slot {at} is skipped: {} still running (concurrencyPolicy Forbid)",
                active.join(", ")
            );
            return self.event(Event::normal("Skipped", message));
        }
        let made = new_backup(req, &backup, slot, &plan.template);
        self.children.insert(backup.clone(), made);
        self.candidates.push(Candidate {
            name: backup.clone(),
            state: State::Active,
            time: now,
            expired: false,
        });
        self.status.last_backup = Some(backup.clone());
        self.event(Event::normal(
            "BackupCreated",
            format!("PostgresBackup {backup} for the slot {at}"),
        ));
    }

    fn event(&mut self, event: Event) {
        self.resp = std::mem::take(&mut self.resp).event(event);
    }

    /// Retention: the backups it does not keep are left out of the
    /// children (the host deletes them). Returns the names kept.
    fn retention(&mut self, plan: &Plan) -> BTreeSet<String> {
        let retention = &plan.spec.retention;
        let max_age = retention.max_age.as_deref().and_then(parse_duration);
        let keep = retention::keep(&self.candidates, retention, max_age, self.now, &plan.zone);
        let pruned: Vec<String> = self
            .children
            .keys()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for n in &pruned {
            self.children.remove(n);
        }
        if !pruned.is_empty() {
            self.event(Event::normal(
                "Pruned",
                format!("retention removes {}", pruned.join(", ")),
            ));
        }
        keep
    }

    /// The status's account of the backups kept: the active ones, how
    /// many, the newest success and the newest backup.
    fn summarize(&mut self, keep: &BTreeSet<String>) {
        let kept: Vec<&Candidate> = self
            .candidates
            .iter()
            .filter(|c| keep.contains(&c.name))
            .collect();
        self.status.active = kept
            .iter()
            .filter(|c| c.state == State::Active)
            .map(|c| c.name.clone())
            .collect();
        self.status.active.sort();
        self.status.backups = i64::try_from(kept.len()).unwrap_or(i64::MAX);
        let last_success = self
            .prev
            .last_successful_time
            .as_deref()
            .and_then(parse_rfc3339);
        if let Some(t) = self
            .candidates
            .iter()
            .filter(|c| c.state == State::Completed)
            .map(|c| c.time)
            .max()
            .filter(|t| last_success < Some(*t))
        {
            self.status.last_successful_time = Some(format_rfc3339(t));
        }
        if self.status.last_backup.is_none() {
            self.status.last_backup = self
                .candidates
                .iter()
                .max_by_key(|c| (c.time, c.name.clone()))
                .map(|c| c.name.clone());
        }
    }

    /// The next slot in the status and as the wake-up, and `Ready`.
    fn next_slot(mut self, plan: &Plan) -> Response {
        let (reason, mut message) = if plan.spec.suspend {
            (
                "Suspended",
                "spec.suspend is set: no new backups".to_string(),
            )
        } else {
            ("Scheduled", String::new())
        };
        self.status.next_schedule_time = None;
        if !plan.spec.suspend {
            match plan.cron.next_after(self.now, &plan.zone) {
                Some(next) => {
                    self.status.next_schedule_time = Some(format_rfc3339(next));
                    message = format!("next backup at {}", format_rfc3339(next));
                    let wait = u64::try_from(next - self.now).unwrap_or(1).max(1);
                    self.resp = self.resp.requeue_after(Duration::from_secs(wait));
                }
                None => message = "the schedule has no next run".into(),
            }
        }
        set_condition(
            &mut self.status.conditions,
            cond(self.req, self.now, true, reason, &message),
        );
        self.resp
            .children(self.children.into_values())
            .status(self.status)
    }
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

/// The backup of one slot: the template, labelled with the schedule and
/// the cluster, annotated with the slot.
fn new_backup(req: &Request, name: &str, slot: i64, tpl: &Value) -> Value {
    let cluster = tpl["clusterRef"]["name"].clone();
    let mut m = json!({
        "name": name,
        "labels": {LABEL_SCHEDULE: req.name(), "postgres.operon.dev/cluster": cluster},
        "annotations": {ANNOTATION_SLOT: format_rfc3339(slot)},
    });
    if let Some(ns) = req.namespace() {
        m["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": format!("{GROUP}/{VERSION}"), "kind": BACKUP_KIND,
        "metadata": m,
        "spec": tpl,
    })
}
