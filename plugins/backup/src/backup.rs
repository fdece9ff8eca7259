//! One reconcile of a `PostgresBackup`: a one-shot Job, its outcome in
//! status, the artifact's cleanup before deletion, and the restore source
//! handed to clusters that bootstrap from it.
//!
//! The status is the plugin's memory: once `Completed` or `Failed` the
//! backup never runs again (its Job is kept as observed, never recreated),
//! whatever happens to the spec or the cluster.

use std::time::Duration;

use operon_sdk::conditions::{Condition, set_condition};
use operon_sdk::time::{format_rfc3339, parse_rfc3339};
use operon_sdk::{Context, Error, Event, ObjectRef, Patch, Request, Response};
use serde_json::{Value, json};

use crate::api::{CLUSTER_API_VERSION, CLUSTER_KIND, RESTORE_ANNOTATION};
use crate::children::Backup;
use crate::duration::parse_duration;
use crate::spec::phase::{COMPLETED, FAILED, INVALID, PENDING, RUNNING};
use crate::spec::{Artifact, BackupSpec, BackupStatus, DeletionPolicy, Source};
use crate::validate::{self, MAX_NAME_LEN};

/// How often a backup waiting for its cluster looks again.
const WAIT: Duration = Duration::from_secs(10);

/// What an observed Job says.
#[derive(Debug, Clone, PartialEq)]
pub enum JobState {
    Absent,
    Running,
    Succeeded,
    /// With the reason and message of the Job's `Failed` condition.
    Failed(String),
}

pub fn job_state(job: Option<&Value>) -> JobState {
    let Some(job) = job else {
        return JobState::Absent;
    };
    let failed = job["status"]["conditions"].as_array().and_then(|cs| {
        cs.iter()
            .find(|c| c["type"] == "Failed" && c["status"] == "True")
    });
    if job["status"]["succeeded"].as_i64().unwrap_or(0) >= 1 {
        JobState::Succeeded
    } else if let Some(c) = failed {
        let reason = c["reason"].as_str().unwrap_or("Failed");
        let message = c["message"].as_str().unwrap_or_default();
        JobState::Failed(if message.is_empty() {
            reason.to_string()
        } else {
            format!("{reason}: {message}")
        })
    } else {
        JobState::Running
    }
}

fn cond(req: &Request, now: i64, type_: &str, ok: bool, reason: &str, message: &str) -> Condition {
    let mut c =
        Condition::new(type_, ok, reason, message).with_observed_generation(req.generation());
    c.last_transition_time = format_rfc3339(now);
    c
}

/// The whole reconcile at `now` (seconds since the epoch).
pub fn reconcile_at(ctx: &Context, req: &Request, now: i64) -> Result<Response, Error> {
    let name = req.name();
    let namespace = req.namespace();
    let prev: BackupStatus = req
        .status_json()
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let spec: BackupSpec = match req.spec() {
        Ok(spec) => spec,
        // Admission normally refuses what does not decode; a backup not
        // yet run says why in status, one already run keeps everything.
        Err(e) if prev.phase != COMPLETED && prev.phase != FAILED && !req.is_finalizing() => {
            let message = e.to_string();
            let mut status = BackupStatus {
                conditions: req.conditions(),
                ..prev
            };
            status.phase = INVALID.into();
            set_condition(
                &mut status.conditions,
                cond(req, now, "Ready", false, "InvalidSpec", &message),
            );
            return Ok(Response::new()
                .status(status)
                .event(Event::warning("InvalidSpec", message)));
        }
        Err(e) if req.is_finalizing() => {
            let _ = e;
            return Ok(Response::new().finalized());
        }
        Err(e) => return Err(e),
    };
    let b = Backup {
        name,
        namespace,
        spec: &spec,
    };
    if req.is_finalizing() {
        return Ok(finalize(req, &b, prev, now));
    }

    let mut status = BackupStatus {
        conditions: req.conditions(),
        ..prev.clone()
    };
    let mut resp = Response::new();
    let ready = |status: &mut BackupStatus, ok: bool, reason: &str, message: &str| {
        set_condition(
            &mut status.conditions,
            cond(req, now, "Ready", ok, reason, message),
        );
    };
    let terminal = prev.phase == COMPLETED || prev.phase == FAILED;
    let job_name = b.job_name();
    let observed_job = req.find_observed("batch/v1", "Job", &job_name);

    if !terminal {
        let invalid = if name.len() > MAX_NAME_LEN {
            Some(format!(
                "metadata.name {name:?} is {} characters long; at most {MAX_NAME_LEN} leave room for the Job names",
                name.len()
            ))
        } else {
            validate::backup("spec", &spec).err()
        };
        if let Some(message) = invalid {
            status.phase = INVALID.into();
            ready(&mut status, false, "InvalidSpec", &message);
            return Ok(resp
                .status(status)
                .event(Event::warning("InvalidSpec", message)));
        }
    }

    let mut children = Vec::new();
    if let Some(pvc) = b.claim() {
        children.push(pvc);
    }
    let state = job_state(observed_job);
    if terminal {
        // Done: the Job stays as it is for its logs, never made again.
        if let Some(job) = observed_job {
            children.push(keep_template(job, b.backup_job("")));
        }
    } else if state == JobState::Absent && prev.job_name.is_none() {
        match cluster_state(ctx, &b)? {
            ClusterState::Wait(reason, message) => {
                status.phase = PENDING.into();
                ready(&mut status, false, reason, &message);
                let patches = restore_patches(ctx, req, &status)?;
                return Ok(with_patches(
                    resp.children(children).status(status).requeue_after(WAIT),
                    patches,
                ));
            }
            ClusterState::Ready { image, version } => {
                children.push(b.backup_job(&image));
                status.phase = RUNNING.into();
                status.job_name = Some(job_name.clone());
                status.method = Some(spec.method);
                status.start_time = Some(format_rfc3339(now));
                status.postgres_version = Some(version);
                status.artifact = Some(Artifact {
                    claim_name: b.claim_name(),
                    path: b.artifact_path(),
                    size_bytes: None,
                });
                ready(
                    &mut status,
                    false,
                    "Running",
                    &format!("Job {job_name} started"),
                );
                resp = resp.event(Event::normal(
                    "Started",
                    format!(
                        "{} of PostgresCluster {} into {}:{}",
                        spec.method.as_str(),
                        spec.cluster_ref.name,
                        b.claim_name(),
                        b.artifact_path()
                    ),
                ));
            }
        }
    } else {
        // Started: the Job as made (its template is immutable). One not
        // in the cache (not seen yet, or deleted) is asked for again as it
        // was made, which applies as a no-op if it exists.
        match observed_job {
            Some(job) => children.push(keep_template(job, b.backup_job(""))),
            None => {
                if let ClusterState::Ready { image, .. } = cluster_state(ctx, &b)? {
                    children.push(b.backup_job(&image));
                }
            }
        }
        if let Some(started) = observed_job.and_then(|j| j["status"]["startTime"].as_str()) {
            status.start_time = Some(started.to_string());
        }
        match state {
            JobState::Succeeded => {
                let done = observed_job
                    .and_then(|j| j["status"]["completionTime"].as_str())
                    .and_then(parse_rfc3339)
                    .unwrap_or(now);
                status.phase = COMPLETED.into();
                status.completion_time = Some(format_rfc3339(done));
                status.expires_at = spec
                    .ttl
                    .as_deref()
                    .and_then(parse_duration)
                    .map(|ttl| format_rfc3339(done + ttl));
                let size = artifact_size(ctx, namespace, &job_name)?;
                if let Some(a) = status.artifact.as_mut() {
                    a.size_bytes = size;
                }
                let where_ = status
                    .artifact
                    .as_ref()
                    .map(|a| format!("{}:{}", a.claim_name, a.path))
                    .unwrap_or_default();
                let msg = match size {
                    Some(s) => format!("Job {job_name} succeeded: {s} bytes in {where_}"),
                    None => format!("Job {job_name} succeeded: {where_}"),
                };
                ready(&mut status, true, "Completed", &msg);
                resp = resp.event(Event::normal("Completed", msg));
            }
            JobState::Failed(why) => {
                status.phase = FAILED.into();
                status.completion_time = Some(format_rfc3339(now));
                let msg = format!("Job {job_name} failed: {why}");
                ready(&mut status, false, "JobFailed", &msg);
                resp = resp.event(Event::warning("BackupFailed", msg));
            }
            JobState::Running | JobState::Absent => {
                status.phase = RUNNING.into();
                ready(
                    &mut status,
                    false,
                    "Running",
                    &format!("Job {job_name} is running"),
                );
            }
        }
    }

    if status.phase == COMPLETED
        && let Some(at) = status.expires_at.as_deref().and_then(parse_rfc3339)
    {
        let expired = now >= at;
        set_condition(
            &mut status.conditions,
            cond(
                req,
                now,
                "Expired",
                expired,
                if expired { "TtlElapsed" } else { "WithinTtl" },
                &format!(
                    "ttl {} ends at {}",
                    spec.ttl.clone().unwrap_or_default(),
                    format_rfc3339(at)
                ),
            ),
        );
        if !expired {
            let wait = u64::try_from(at - now).unwrap_or(1).max(1);
            resp = resp.requeue_after(Duration::from_secs(wait));
        }
    }
    let patches = restore_patches(ctx, req, &status)?;
    Ok(with_patches(
        resp.children(children).status(status),
        patches,
    ))
}

fn with_patches(resp: Response, patches: Vec<Patch>) -> Response {
    patches.into_iter().fold(resp, Response::patch)
}

/// Before deletion: with `deletionPolicy: Delete` and an artifact on a
/// claim the backup does not own, the cleanup Job runs and the finalizer
/// goes once it succeeded. An owned claim goes with the backup anyway.
fn finalize(req: &Request, b: &Backup, prev: BackupStatus, now: i64) -> Response {
    let artifact = prev.artifact.clone();
    let own_claim = b.spec.target.claim_template.is_some();
    let mut status = BackupStatus {
        conditions: req.conditions(),
        ..prev
    };
    let Some(artifact) =
        artifact.filter(|_| b.spec.deletion_policy == DeletionPolicy::Delete && !own_claim)
    else {
        return Response::new().finalized();
    };
    let job_name = b.cleanup_job_name();
    let observed = req.find_observed("batch/v1", "Job", &job_name);
    let job = match observed {
        Some(j) => keep_template(j, b.cleanup_job(&artifact.path)),
        None => b.cleanup_job(&artifact.path),
    };
    let (ok, reason, message) = match job_state(observed) {
        JobState::Succeeded => {
            return Response::new().finalized().event(Event::normal(
                "ArtifactDeleted",
                format!(
                    "Job {job_name} removed {}:{}",
                    artifact.claim_name, artifact.path
                ),
            ));
        }
        JobState::Failed(why) => (
            false,
            "CleanupFailed",
            format!(
                "Job {job_name} could not remove {}:{}: {why}; delete the Job to retry, or remove the finalizer to keep the files",
                artifact.claim_name, artifact.path
            ),
        ),
        _ => (
            false,
            "Deleting",
            format!(
                "Job {job_name} removes {}:{}",
                artifact.claim_name, artifact.path
            ),
        ),
    };
    set_condition(
        &mut status.conditions,
        cond(req, now, "Ready", ok, reason, &message),
    );
    let mut resp = Response::new().child(job).status(status);
    if reason == "CleanupFailed" {
        resp = resp.event(Event::warning(reason, message));
    }
    resp
}

/// What the cluster allows: the backup Job's image (the cluster's, for
/// the tools of its major) and the major, or why the backup waits.
enum ClusterState {
    Ready { image: String, version: i64 },
    Wait(&'static str, String),
}

fn cluster_state(ctx: &Context, b: &Backup) -> Result<ClusterState, Error> {
    let name = &b.spec.cluster_ref.name;
    let Some(cluster) = ctx.get_json(CLUSTER_API_VERSION, CLUSTER_KIND, b.namespace, name)? else {
        return Ok(ClusterState::Wait(
            "ClusterNotFound",
            format!("waiting for PostgresCluster {name}: it does not exist"),
        ));
    };
    let ready = cluster["status"]["conditions"]
        .as_array()
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
    if !ready {
        return Ok(ClusterState::Wait(
            "ClusterNotReady",
            format!("waiting for PostgresCluster {name} to be Ready"),
        ));
    }
    if b.spec.source == Source::Replica {
        let replicas = cluster["status"]["readyInstances"].as_i64().unwrap_or(0) - 1;
        let service = cluster["spec"]["services"]["replicas"]["enabled"] != false;
        if replicas < 1 || !service {
            return Ok(ClusterState::Wait(
                "NoReplica",
                format!(
                    "source replica: PostgresCluster {name} has no ready replica behind {name}-ro (services.replicas.enabled and instances >= 2 needed)"
                ),
            ));
        }
    }
    let version = cluster["status"]["version"]
        .as_i64()
        .or_else(|| cluster["spec"]["version"].as_i64())
        .unwrap_or(0);
    let image = b
        .spec
        .image
        .clone()
        .or_else(|| cluster["spec"]["image"].as_str().map(str::to_string))
        .unwrap_or_else(|| format!("docker.io/library/postgres:{version}"));
    Ok(ClusterState::Ready { image, version })
}

/// The size the Job's Pod wrote to its termination message (`size=N`).
fn artifact_size(ctx: &Context, namespace: Option<&str>, job: &str) -> Result<Option<i64>, Error> {
    let pods = ctx.list_json(
        "v1",
        "Pod",
        namespace,
        Some(&format!("batch.kubernetes.io/job-name={job}")),
    )?;
    Ok(pods.iter().find_map(|p| {
        p["status"]["containerStatuses"]
            .as_array()?
            .iter()
            .find_map(|c| {
                c["state"]["terminated"]["message"]
                    .as_str()?
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("size=")?.parse().ok())
            })
    }))
}

/// An observed Job keeps its Pod template (immutable); the Job
/// controller's own labels are left out (they name the Job's uid).
fn keep_template(observed: &Value, mut desired: Value) -> Value {
    let mut template = observed["spec"]["template"].clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        for l in [
            "controller-uid",
            "job-name",
            "batch.kubernetes.io/controller-uid",
            "batch.kubernetes.io/job-name",
        ] {
            labels.remove(l);
        }
    }
    if template.is_object() {
        desired["spec"]["template"] = template;
    }
    desired
}

/// The restore source for every cluster in the namespace that names this
/// backup in `spec.bootstrap.fromBackup`: an annotation the postgres
/// plugin reads from its own parent, so it needs no grant to read
/// backups. Patched only when it differs.
fn restore_patches(
    ctx: &Context,
    req: &Request,
    status: &BackupStatus,
) -> Result<Vec<Patch>, Error> {
    let name = req.name();
    let clusters = ctx.list_json(CLUSTER_API_VERSION, CLUSTER_KIND, req.namespace(), None)?;
    let source = restore_source(name, status);
    let mut patches = Vec::new();
    for c in clusters {
        if c["spec"]["bootstrap"]["fromBackup"]["backupName"] != name {
            continue;
        }
        if c["metadata"]["annotations"][RESTORE_ANNOTATION].as_str() == Some(source.as_str()) {
            continue;
        }
        let Some(target) = ObjectRef::from_object(&c) else {
            continue;
        };
        patches.push(Patch::merge(
            target,
            json!({"metadata": {"annotations": {RESTORE_ANNOTATION: source}}}),
        ));
    }
    Ok(patches)
}

/// The annotation's value: phase, method, where the files are, the major.
pub fn restore_source(name: &str, status: &BackupStatus) -> String {
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.message.clone())
        .unwrap_or_default();
    let mut v = json!({"backup": name, "phase": status.phase, "message": message});
    if let Some(m) = status.method {
        v["method"] = json!(m.as_str());
    }
    if let Some(a) = &status.artifact {
        v["claimName"] = json!(a.claim_name);
        v["path"] = json!(a.path);
    }
    if let Some(pv) = status.postgres_version {
        v["postgresVersion"] = json!(pv);
    }
    v.to_string()
}
