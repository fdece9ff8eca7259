//! One reconcile of a `PostgresBackup`: a one-shot Job, its outcome in
//! status, the artifact's cleanup before deletion, and the restore source
//! handed to clusters that bootstrap from it.
//!
//! The status is the plugin's memory: once `Completed` or `Failed` the
//! backup never runs again (its Job is kept as observed, never recreated),
//! whatever happens to the spec or the cluster.

use std::time::Duration;

use operon_sdk::conditions::{Condition, set_condition};
use operon_sdk::job::{JobState, keep_template};
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

fn cond(req: &Request, now: i64, type_: &str, ok: bool, reason: &str, message: &str) -> Condition {
    Condition::new(type_, ok, reason, message)
        .with_observed_generation(req.generation())
        .at(now)
}

/// The whole reconcile at `now` (seconds since the epoch), in stages: the
/// spec decoded and checked (or the cleanup before deletion), the Job by
/// the backup's phase, the ttl, and the restore source for clusters.
pub fn reconcile_at(ctx: &Context, req: &Request, now: i64) -> Result<Response, Error> {
    let prev: BackupStatus = req.status_or_default();
    let terminal = prev.phase == COMPLETED || prev.phase == FAILED;
    let spec: BackupSpec = match req.spec() {
        Ok(spec) => spec,
        Err(_) if req.is_finalizing() => return Ok(Response::new().finalized()),
        // Admission normally refuses what does not decode; a backup not
        // yet run says why in status, one already run keeps everything.
        Err(e) if !terminal => return Ok(refused(req, prev, now, e.to_string())),
        Err(e) => return Err(e),
    };
    let b = Backup {
        name: req.name(),
        namespace: req.namespace(),
        spec: &spec,
    };
    if req.is_finalizing() {
        return Ok(finalize(req, &b, prev, now));
    }
    if !terminal && let Some(message) = refusal(req.name(), &spec) {
        return Ok(refused(req, prev, now, message));
    }
    let mut run = Run::new(ctx, req, now, &b, prev);
    run.job(terminal)?;
    run.expiry();
    run.finish()
}

/// Why a backup not yet run is refused: a name too long for its Jobs'
/// names, or its spec.
fn refusal(name: &str, spec: &BackupSpec) -> Option<String> {
    if name.len() > MAX_NAME_LEN {
        return Some(format!(
            "metadata.name {name:?} is {} characters long; at most {MAX_NAME_LEN} leave room for the Job names",
            name.len()
        ));
    }
    validate::backup("spec", spec).err()
}

/// A refused backup makes nothing and says why.
fn refused(req: &Request, prev: BackupStatus, now: i64, message: String) -> Response {
    let mut status = BackupStatus {
        conditions: req.conditions(),
        ..prev
    };
    status.phase = INVALID.into();
    set_condition(
        &mut status.conditions,
        cond(req, now, "Ready", false, "InvalidSpec", &message),
    );
    Response::new()
        .status(status)
        .event(Event::warning("InvalidSpec", message))
}

/// One reconcile of a valid backup as it goes.
struct Run<'a> {
    ctx: &'a Context,
    req: &'a Request,
    now: i64,
    b: &'a Backup<'a>,
    prev: BackupStatus,
    status: BackupStatus,
    resp: Response,
    children: Vec<Value>,
}

impl<'a> Run<'a> {
    fn new(
        ctx: &'a Context,
        req: &'a Request,
        now: i64,
        b: &'a Backup<'a>,
        prev: BackupStatus,
    ) -> Self {
        Run {
            ctx,
            req,
            now,
            b,
            status: BackupStatus {
                conditions: req.conditions(),
                ..prev.clone()
            },
            prev,
            resp: Response::new(),
            children: Vec::new(),
        }
    }

    fn ready(&mut self, ok: bool, reason: &str, message: &str) {
        set_condition(
            &mut self.status.conditions,
            cond(self.req, self.now, "Ready", ok, reason, message),
        );
    }

    fn event(&mut self, event: Event) {
        self.resp = std::mem::take(&mut self.resp).event(event);
    }

    /// The claim, and the Job by the backup's phase: kept as it is once
    /// done, started once the cluster allows it, followed while it runs.
    fn job(&mut self, terminal: bool) -> Result<(), Error> {
        let b = self.b;
        if let Some(pvc) = b.claim() {
            self.children.push(pvc);
        }
        let job = self.req.find_observed("batch/v1", "Job", &b.job_name());
        if terminal {
            // Done: the Job stays as it is for its logs, never made again.
            if let Some(job) = job {
                self.children
                    .push(keep_template(Some(job), b.backup_job("")));
            }
            Ok(())
        } else if job.is_none() && self.prev.job_name.is_none() {
            self.start()
        } else {
            self.follow(job)
        }
    }

    /// Not started yet: the Job once the cluster is Ready (with its
    /// image), else `Pending` and a look again in a while.
    fn start(&mut self) -> Result<(), Error> {
        let (b, spec) = (self.b, self.b.spec);
        match cluster_state(self.ctx, b)? {
            ClusterState::Wait(reason, message) => {
                self.status.phase = PENDING.into();
                self.ready(false, reason, &message);
                self.resp = std::mem::take(&mut self.resp).requeue_after(WAIT);
            }
            ClusterState::Ready { image, version } => {
                let job_name = b.job_name();
                self.children.push(b.backup_job(&image));
                self.status.phase = RUNNING.into();
                self.status.job_name = Some(job_name.clone());
                self.status.method = Some(spec.method);
                self.status.start_time = Some(format_rfc3339(self.now));
                self.status.postgres_version = Some(version);
                self.status.artifact = Some(Artifact {
                    claim_name: b.claim_name(),
                    path: b.artifact_path(),
                    size_bytes: None,
                });
                self.ready(false, "Running", &format!("Job {job_name} started"));
                self.event(Event::normal(
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
        Ok(())
    }

    /// Started: the Job as made (its template is immutable). One not in
    /// the cache (not seen yet, or deleted) is asked for again as it was
    /// made, which applies as a no-op if it exists. Its outcome decides
    /// the phase.
    fn follow(&mut self, job: Option<&Value>) -> Result<(), Error> {
        let b = self.b;
        match job {
            Some(job) => self
                .children
                .push(keep_template(Some(job), b.backup_job(""))),
            None => {
                if let ClusterState::Ready { image, .. } = cluster_state(self.ctx, b)? {
                    self.children.push(b.backup_job(&image));
                }
            }
        }
        if let Some(started) = job.and_then(|j| j["status"]["startTime"].as_str()) {
            self.status.start_time = Some(started.to_string());
        }
        let job_name = b.job_name();
        match JobState::of(job) {
            JobState::Succeeded => self.completed(job)?,
            JobState::Failed(why) => {
                self.status.phase = FAILED.into();
                self.status.completion_time = Some(format_rfc3339(self.now));
                let msg = format!("Job {job_name} failed: {why}");
                self.ready(false, "JobFailed", &msg);
                self.event(Event::warning("BackupFailed", msg));
            }
            JobState::Running | JobState::Absent => {
                self.status.phase = RUNNING.into();
                self.ready(false, "Running", &format!("Job {job_name} is running"));
            }
        }
        Ok(())
    }

    /// The Job succeeded: `Completed` at its completion time, the ttl's
    /// end, and the artifact's size as the Job's Pod reported it.
    fn completed(&mut self, job: Option<&Value>) -> Result<(), Error> {
        let job_name = self.b.job_name();
        let done = job
            .and_then(|j| j["status"]["completionTime"].as_str())
            .and_then(parse_rfc3339)
            .unwrap_or(self.now);
        self.status.phase = COMPLETED.into();
        self.status.completion_time = Some(format_rfc3339(done));
        self.status.expires_at = self
            .b
            .spec
            .ttl
            .as_deref()
            .and_then(parse_duration)
            .map(|ttl| format_rfc3339(done + ttl));
        let size = artifact_size(self.ctx, self.b.namespace, &job_name)?;
        if let Some(a) = self.status.artifact.as_mut() {
            a.size_bytes = size;
        }
        let where_ = self
            .status
            .artifact
            .as_ref()
            .map(|a| format!("{}:{}", a.claim_name, a.path))
            .unwrap_or_default();
        let msg = match size {
            Some(s) => format!("Job {job_name} succeeded: {s} bytes in {where_}"),
            None => format!("Job {job_name} succeeded: {where_}"),
        };
        self.ready(true, "Completed", &msg);
        self.event(Event::normal("Completed", msg));
        Ok(())
    }

    /// `Expired` for a completed backup with a ttl, and the wake-up at its
    /// end.
    fn expiry(&mut self) {
        let Some(at) = self.status.expires_at.as_deref().and_then(parse_rfc3339) else {
            return;
        };
        if self.status.phase != COMPLETED {
            return;
        }
        let expired = self.now >= at;
        let message = format!(
            "ttl {} ends at {}",
            self.b.spec.ttl.clone().unwrap_or_default(),
            format_rfc3339(at)
        );
        let reason = if expired { "TtlElapsed" } else { "WithinTtl" };
        set_condition(
            &mut self.status.conditions,
            cond(self.req, self.now, "Expired", expired, reason, &message),
        );
        if !expired {
            let wait = u64::try_from(at - self.now).unwrap_or(1).max(1);
            self.resp = std::mem::take(&mut self.resp).requeue_after(Duration::from_secs(wait));
        }
    }

    /// The response, with the restore source for the clusters that
    /// bootstrap from this backup.
    fn finish(self) -> Result<Response, Error> {
        let patches = restore_patches(self.ctx, self.req, &self.status)?;
        let resp = self.resp.children(self.children).status(self.status);
        Ok(patches.into_iter().fold(resp, Response::patch))
    }
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
    let job = keep_template(observed, b.cleanup_job(&artifact.path));
    let (ok, reason, message) = match JobState::of(observed) {
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
