//! One reconcile: from the parent, the observed children and the previous
//! status to the desired children, the new status and events.
//!
//! The decisions, in order:
//! 1. which spec to render: the parent's, or, while `paused` or when the
//!    parent's spec is invalid, the last applied one (recorded on the
//!    ConfigMap) so that nothing changes;
//! 2. which instances exist and which is primary (scale-down never removes
//!    the primary; after `failover.delaySeconds` of an unavailable primary
//!    the first ready replica is promoted);
//! 3. what each instance runs: a change of image, resources, exporter or
//!    configuration restarts one instance at a time, replicas first, the
//!    primary last, each only once the previous one is Ready again; a major
//!    version change runs the steps of [`UpgradeStep`] instead;
//! 4. the Jobs: the SQL Job once the primary is ready, data loads once the
//!    SQL Job succeeded.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use operon_sdk::conditions::{Condition, set_condition};
use operon_sdk::time::format_rfc3339;
use operon_sdk::{Error, Event, Request, Response};
use serde_json::Value;

use crate::children::{
    ANNOTATION_INPUTS, ANNOTATION_SPEC, Cluster, InstanceInputs, InstancePlan, LABEL_CLUSTER,
    LABEL_INSTANCE, LABEL_ROLE, unbase64,
};
use crate::clock::parse_rfc3339;
use crate::password;
use crate::quantity::parse_quantity;
use crate::restore::{self, RestoreStatus, Step};
use crate::spec::{
    ClusterSpec, ClusterStatus, Ensure, InstanceStatus, RetentionPolicy, UpgradeStatus, UpgradeStep,
};
use crate::sql;
use crate::validate::{Invalid, validate};

/// How the spec being rendered was chosen.
#[derive(Debug, Clone, PartialEq)]
enum Mode {
    Normal,
    Paused,
    Invalid(Invalid),
}

/// What the observed StatefulSet of an instance says.
#[derive(Debug, Clone)]
struct Observed {
    ready: bool,
    /// The StatefulSet controller has caught up with the last change.
    current: bool,
    /// No Pod runs (scaled to 0 and observed so).
    stopped: bool,
    replicas: i64,
    primary: bool,
    inputs: Option<InstanceInputs>,
}

impl Observed {
    fn from(sts: &Value) -> Observed {
        let status = &sts["status"];
        let generation = sts["metadata"]["generation"].as_i64().unwrap_or(0);
        let observed_generation = status["observedGeneration"].as_i64().unwrap_or(0);
        let revisions_match = status["updateRevision"].is_null()
            || status["updateRevision"] == status["currentRevision"];
        let current = observed_generation >= generation && revisions_match;
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1);
        Observed {
            ready: status["readyReplicas"].as_i64().unwrap_or(0) >= 1,
            current,
            stopped: current && status["replicas"].as_i64().unwrap_or(0) == 0 && replicas == 0,
            replicas,
            primary: sts["spec"]["template"]["metadata"]["labels"][LABEL_ROLE] == "primary",
            inputs: sts["metadata"]["annotations"][ANNOTATION_INPUTS]
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok()),
        }
    }

    fn settled(&self) -> bool {
        self.current && self.ready && self.replicas == 1
    }
}

fn kind_of<'a>(req: &'a Request, api_version: &str, kind: &str) -> Vec<&'a Value> {
    req.observed()
        .iter()
        .filter(|o| o["apiVersion"] == api_version && o["kind"] == kind)
        .collect()
}

fn name_of(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

/// The password in an observed Secret, if there is a usable one.
fn observed_password(req: &Request, secret: &str) -> Option<String> {
    let s = req.find_observed("v1", "Secret", secret)?;
    let bytes = unbase64(s["data"]["password"].as_str()?)?;
    String::from_utf8(bytes).ok().filter(|p| !p.is_empty())
}

fn job_state(job: Option<&Value>) -> JobState {
    let Some(job) = job else {
        return JobState::Absent;
    };
    let failed = job["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Failed" && c["status"] == "True")
    });
    if job["status"]["succeeded"].as_i64().unwrap_or(0) >= 1 {
        JobState::Succeeded
    } else if failed {
        JobState::Failed
    } else {
        JobState::Running
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum JobState {
    Absent,
    Running,
    Succeeded,
    Failed,
}

/// The instances a cluster of `n` keeps: the primary, then the lowest
/// ordinals. Removing the primary would lose the writable instance, so a
/// scale-down removes replicas only, whatever their ordinals.
pub fn instance_set(n: i32, primary: Option<u32>) -> BTreeSet<u32> {
    let n = usize::try_from(n).unwrap_or(0);
    let mut set = BTreeSet::new();
    if n == 0 {
        return set;
    }
    if let Some(p) = primary {
        set.insert(p);
    }
    let mut o = 0;
    while set.len() < n {
        set.insert(o);
        o += 1;
    }
    set
}

/// The whole reconcile at a given wall-clock time (seconds since the
/// epoch), so tests can step the failover clock.
pub fn reconcile_at(req: &Request, now: i64) -> Result<Response, Error> {
    let name = req.name();
    let namespace = req.namespace();
    let parsed: ClusterSpec = req.spec()?;
    let prev: ClusterStatus = req
        .status_json()
        .and_then(|s| serde_json::from_value(s.clone()).ok())
        .unwrap_or_default();
    let applied: Option<ClusterSpec> = req
        .find_observed("v1", "ConfigMap", &format!("{name}-config"))
        .and_then(|cm| cm["metadata"]["annotations"][ANNOTATION_SPEC].as_str())
        .and_then(|s| serde_json::from_str(s).ok());

    // Paused or invalid: keep rendering the spec the children came from.
    // With no record of it, a cluster that has no children yet gets none;
    // one that has children gets an error, since answering no children
    // would prune them all.
    let keep_applied = |why: &str| -> Result<Option<ClusterSpec>, Error> {
        match &applied {
            Some(a) => Ok(Some(a.clone())),
            None if req.observed().is_empty() => Ok(None),
            None => Err(Error::permanent(format!(
                "PostgresCluster {name}: {why}, and the spec last applied is unknown (ConfigMap {name}-config is missing): nothing is changed"
            ))),
        }
    };
    let (spec, mode) = match validate(name, &parsed, prev.version) {
        Err(invalid) => match keep_applied(&invalid.message)? {
            Some(a) => (a, Mode::Invalid(invalid)),
            None => return Ok(invalid_response(req, &prev, &invalid)),
        },
        Ok(()) if parsed.paused => match keep_applied("spec.paused is set")? {
            Some(a) => (a, Mode::Paused),
            None => {
                // Paused before anything was made: make nothing.
                let mut status = prev.clone();
                status.phase = "Paused".into();
                status.conditions = req.conditions();
                set_cond(
                    &mut status.conditions,
                    req,
                    "Progressing",
                    false,
                    "Paused",
                    "spec.paused is set: nothing is made",
                );
                return Ok(Response::new().status(status));
            }
        },
        Ok(()) => (parsed, Mode::Normal),
    };

    let cl = Cluster {
        name,
        namespace,
        spec: &spec,
    };
    let mut r = Render::new(req, &cl, prev, now);
    r.run();
    let Render {
        mut resp,
        mut status,
        ..
    } = r;
    match mode {
        Mode::Normal => {}
        Mode::Paused => {
            status.phase = "Paused".into();
            set_cond(
                &mut status.conditions,
                req,
                "Progressing",
                false,
                "Paused",
                "spec.paused is set: the last applied spec is kept",
            );
        }
        Mode::Invalid(invalid) => {
            status.phase = "Invalid".into();
            set_cond(
                &mut status.conditions,
                req,
                "Ready",
                false,
                invalid.reason,
                &format!("{}; the last valid spec stays applied", invalid.message),
            );
            resp = resp.event(Event::warning(invalid.reason, invalid.message));
        }
    }
    Ok(resp.status(status))
}

/// A fresh cluster with an invalid spec: no children at all, and why.
fn invalid_response(req: &Request, prev: &ClusterStatus, invalid: &Invalid) -> Response {
    let mut status = prev.clone();
    status.phase = "Invalid".into();
    let mut conditions = req.conditions();
    set_cond(
        &mut conditions,
        req,
        "Ready",
        false,
        invalid.reason,
        &invalid.message,
    );
    set_cond(
        &mut conditions,
        req,
        "Progressing",
        false,
        invalid.reason,
        "nothing is created until the spec is fixed",
    );
    status.conditions = conditions;
    Response::new()
        .status(status)
        .event(Event::warning(invalid.reason, invalid.message.clone()))
}

fn set_cond(
    conditions: &mut Vec<Condition>,
    req: &Request,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
) {
    set_condition(
        conditions,
        Condition::new(type_, ok, reason, message).with_observed_generation(req.generation()),
    );
}

/// What [`Render::conclude`] needs to know of the instances.
struct Outcome {
    instances: usize,
    existing: usize,
    ready_count: i32,
    all_ready: bool,
    primary_name: Option<String>,
    primary_ready: bool,
    ever_ready: bool,
    stopped: bool,
    stale: bool,
    upgrading: bool,
    failed_over: bool,
}

struct Render<'a> {
    req: &'a Request,
    cl: &'a Cluster<'a>,
    prev: ClusterStatus,
    now: i64,
    resp: Response,
    status: ClusterStatus,
    progress: Vec<String>,
    degraded: Vec<String>,
    /// Generated user passwords, by user: part of the SQL Job's name.
    user_passwords: BTreeMap<String, String>,
}

impl<'a> Render<'a> {
    fn new(req: &'a Request, cl: &'a Cluster<'a>, prev: ClusterStatus, now: i64) -> Self {
        Render {
            req,
            cl,
            status: ClusterStatus {
                conditions: req.conditions(),
                ..ClusterStatus::default()
            },
            prev,
            now,
            resp: Response::new(),
            progress: Vec::new(),
            degraded: Vec::new(),
            user_passwords: BTreeMap::new(),
        }
    }

    fn spec(&self) -> &'a ClusterSpec {
        self.cl.spec
    }

    fn default_image(&self, major: i64) -> String {
        match (&self.spec().image, major == self.spec().version) {
            (Some(image), true) => image.clone(),
            _ => format!("docker.io/library/postgres:{major}"),
        }
    }

    fn desired_inputs(&self, major: i64) -> InstanceInputs {
        let e = &self.spec().monitoring.exporter;
        InstanceInputs {
            image: self.default_image(major),
            major,
            resources: self.spec().resources.clone(),
            exporter: e.enabled.then(|| {
                (
                    e.image
                        .clone()
                        .unwrap_or_else(|| crate::children::DEFAULT_EXPORTER_IMAGE.into()),
                    e.port,
                )
            }),
            config_hash: self.cl.config_hash(),
        }
    }

    fn event(&mut self, event: Event) {
        self.resp = std::mem::take(&mut self.resp).event(event);
    }

    fn requeue(&mut self, after: Duration) {
        self.resp = std::mem::take(&mut self.resp).requeue_after(after);
    }

    fn password(&mut self, secret: &str) -> String {
        observed_password(self.req, secret).unwrap_or_else(password::generate)
    }

    fn run(&mut self) {
        let spec = self.spec();
        let cl = self.cl;
        let req = self.req;
        let shutdown = spec.shutdown;

        // Credentials: generated once, then read back from the Secrets.
        let superuser = self.password(&cl.superuser_secret());
        let replication = self.password(&cl.replication_secret());
        let mut children = vec![
            cl.credentials_secret(&cl.superuser_secret(), "postgres", &superuser, "postgres"),
            cl.credentials_secret(
                &cl.replication_secret(),
                "replicator",
                &replication,
                "postgres",
            ),
        ];
        for user in spec
            .users
            .iter()
            .filter(|u| u.ensure == Ensure::Present && u.password_secret_ref.is_none())
        {
            let secret = cl.user_secret(&user.name);
            let pw = self.password(&secret);
            self.user_passwords.insert(user.name.clone(), pw.clone());
            let db = user.databases.first().map_or("postgres", String::as_str);
            children.push(cl.credentials_secret(&secret, &user.name, &pw, db));
        }
        children.push(cl.config());
        children.extend(cl.services());

        // Instances.
        let sts_by_ordinal: BTreeMap<u32, &Value> = kind_of(req, "apps/v1", "StatefulSet")
            .into_iter()
            .filter(|s| s["metadata"]["labels"][LABEL_CLUSTER] == cl.name)
            .filter_map(|s| Some((self.ordinal(name_of(s))?, s)))
            .collect();
        let observed: BTreeMap<u32, Observed> = sts_by_ordinal
            .iter()
            .map(|(o, s)| (*o, Observed::from(s)))
            .collect();
        let mut primary: Option<u32> = observed
            .iter()
            .filter(|(_, o)| o.primary)
            .map(|(k, _)| *k)
            .min_by_key(|k| {
                // Two observed primaries only in a half-applied failover:
                // the status names the one chosen.
                (Some(cl.instance_name(*k)) != self.prev.current_primary, *k)
            })
            .or_else(|| {
                self.prev
                    .current_primary
                    .as_deref()
                    .and_then(|p| self.ordinal(p))
            });
        let set = instance_set(spec.instances, primary);
        if primary.is_none_or(|p| !set.contains(&p)) {
            primary = set.first().copied();
        }

        // Bootstrap from a backup: no instance before the restore is done.
        if self.restore_holds(&mut children, primary, observed.is_empty()) {
            self.resp = std::mem::take(&mut self.resp).children(children);
            return;
        }

        let mut upgrade = self.prev.upgrade.clone();
        let running = self.prev.version;
        if upgrade.is_none()
            && let Some(v) = running
            && spec.version > v
            && !observed.is_empty()
        {
            upgrade = Some(UpgradeStatus {
                from: v,
                to: spec.version,
                step: UpgradeStep::ShuttingDown,
                message: format!(
                    "stopping every instance before pg_upgrade {v} -> {}",
                    spec.version
                ),
            });
            self.event(Event::normal(
                "UpgradeStarted",
                format!("major upgrade from PostgreSQL {v} to {}", spec.version),
            ));
        }

        // Failover: a primary that is settled but not ready, for longer
        // than the delay, is replaced by the first ready replica.
        self.status.primary_unavailable_since = None;
        let mut failed_over = false;
        if let Some(p) = primary
            && spec.failover.enabled
            && !shutdown
            && upgrade.is_none()
            && let Some(c) = self.failover(p, &set, &observed)
        {
            primary = Some(c);
            failed_over = true;
        }

        let primary_ready = primary
            .and_then(|p| observed.get(&p))
            .is_some_and(|o| o.ready && o.primary);
        let ever_ready = running.is_some();

        // Major upgrade steps advance on what is observed.
        if let Some(u) = upgrade.as_mut() {
            self.advance_upgrade(u, &set, &observed);
        }

        let major = match &upgrade {
            Some(u) if u.step != UpgradeStep::Starting => u.from,
            Some(u) => u.to,
            None => spec.version,
        };
        let desired = self.desired_inputs(major);

        // Rolling: among instances whose recorded inputs differ from the
        // desired, one at a time may take the new ones, and only when every
        // instance already on them is settled. Replicas go first.
        let stale: Vec<u32> = set
            .iter()
            .copied()
            .filter(|o| {
                observed
                    .get(o)
                    .is_some_and(|s| s.inputs.as_ref().is_some_and(|i| *i != desired))
            })
            .collect();
        let waiting: Vec<u32> = set
            .iter()
            .copied()
            .filter(|o| !stale.contains(o))
            .filter(|o| observed.get(o).is_some_and(|s| !s.settled()))
            .collect();
        let mut next: Option<u32> = None;
        if upgrade.is_none() && !shutdown && !stale.is_empty() {
            if waiting.is_empty() {
                next = stale
                    .iter()
                    .copied()
                    .find(|o| Some(*o) != primary)
                    .or_else(|| stale.first().copied());
                if let Some(n) = next {
                    let done = set.len() - stale.len() + 1;
                    self.event(Event::normal(
                        "RollingUpdate",
                        format!(
                            "restarting {} ({}) with {} ({done}/{})",
                            cl.instance_name(n),
                            if Some(n) == primary {
                                "primary"
                            } else {
                                "replica"
                            },
                            desired.image,
                            set.len()
                        ),
                    ));
                }
            }
            self.progress.push(format!(
                "rolling update: {} of {} instances to go{}",
                stale.len(),
                set.len(),
                if waiting.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", waiting for {} to be ready",
                        waiting
                            .iter()
                            .map(|o| cl.instance_name(*o))
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                }
            ));
        }

        // Per instance: replicas, inputs, volumes.
        let pvcs = kind_of(req, "v1", "PersistentVolumeClaim");
        let pvc_size = |pvc: &str| -> Option<String> {
            pvcs.iter()
                .find(|p| name_of(p) == pvc)
                .and_then(|p| p["spec"]["resources"]["requests"]["storage"].as_str())
                .map(str::to_string)
        };
        let mut emitted = BTreeSet::new();
        let mut statuses = Vec::new();
        let mut ready_count = 0;
        let mut all_ready = !set.is_empty();
        let mut primary_image = None;
        let in_upgrade_stop = upgrade
            .as_ref()
            .is_some_and(|u| u.step != UpgradeStep::Starting);
        for &o in &set {
            let exists = observed.contains_key(&o);
            let is_primary = Some(o) == primary;
            if !exists && !is_primary && !primary_ready && !ever_ready {
                // Replicas clone the primary: they wait for it at creation.
                all_ready = false;
                continue;
            }
            if !exists && in_upgrade_stop {
                continue;
            }
            emitted.insert(o);
            let recorded = observed.get(&o).and_then(|s| s.inputs.clone());
            // Stopped for pg_upgrade, or stale and not yet its turn: as it
            // is. Otherwise (new, rolled, or restarting anyway because of a
            // shutdown or the upgrade's start): the desired inputs.
            let inputs = match recorded {
                Some(r) if in_upgrade_stop => r,
                Some(r)
                    if stale.contains(&o) && Some(o) != next && !shutdown && upgrade.is_none() =>
                {
                    r
                }
                _ => desired.clone(),
            };
            if is_primary {
                primary_image = Some(inputs.image.clone());
            }
            let replicas = if shutdown || in_upgrade_stop {
                0
            } else if upgrade.is_some() && !is_primary && !primary_ready {
                // Starting after pg_upgrade: replicas re-clone from the
                // upgraded primary, so they wait for it.
                0
            } else {
                1
            };
            let name = cl.instance_name(o);
            let data_pvc = format!("{name}-data");
            let wal_pvc = format!("{name}-wal");
            let data_size = self.grow_only(&data_pvc, &spec.storage.size, pvc_size(&data_pvc));
            let wal_observed = pvc_size(&wal_pvc);
            let wal = wal_observed.is_some()
                || (spec.storage.wal_size.is_some() && pvc_size(&data_pvc).is_none());
            let wal_size = if wal {
                let want = spec
                    .storage
                    .wal_size
                    .clone()
                    .or_else(|| wal_observed.clone())
                    .unwrap_or_default();
                Some(self.grow_only(&wal_pvc, &want, wal_observed))
            } else {
                None
            };
            children.push(cl.pvc(&data_pvc, &name, &data_size));
            if let Some(size) = &wal_size {
                children.push(cl.pvc(&wal_pvc, &name, size));
            }
            let plan = InstancePlan {
                name: name.clone(),
                primary: is_primary,
                replicas,
                inputs: &inputs,
                wal,
            };
            children.push(cl.statefulset(&plan));
            let obs = observed.get(&o);
            let ready = obs.is_some_and(|s| s.ready);
            let settled_here = obs.is_some_and(|s| {
                s.settled() && s.primary == is_primary && s.inputs.as_ref() == Some(&desired)
            });
            if ready {
                ready_count += 1;
            }
            if !settled_here {
                all_ready = false;
            }
            statuses.push(InstanceStatus {
                name: name.clone(),
                role: if is_primary { "primary" } else { "replica" }.into(),
                ready,
                image: obs
                    .and_then(|s| s.inputs.as_ref())
                    .map_or_else(|| inputs.image.clone(), |i| i.image.clone()),
                storage: Some(data_size),
            });
        }
        // PVCs of instances no longer in the cluster: kept under Retain.
        if spec.storage.retention_policy == RetentionPolicy::Retain {
            for pvc in &pvcs {
                let instance = pvc["metadata"]["labels"][LABEL_INSTANCE]
                    .as_str()
                    .unwrap_or_default();
                let kept = self
                    .ordinal(instance)
                    .is_some_and(|o| !emitted.contains(&o));
                if pvc["metadata"]["labels"][LABEL_CLUSTER] == cl.name
                    && kept
                    && let Some(size) = pvc["spec"]["resources"]["requests"]["storage"].as_str()
                {
                    children.push(cl.pvc(name_of(pvc), instance, size));
                }
            }
        }
        if set.len() > 1 && !shutdown {
            children.push(cl.pdb());
        }
        let existing = observed.keys().filter(|o| set.contains(o)).count();
        let previous = observed.len();
        if previous > 0 && previous != set.len() && !shutdown {
            self.event(Event::normal(
                "Scaled",
                format!(
                    "scaling from {previous} to {} instances (primary {} kept)",
                    set.len(),
                    primary.map(|p| cl.instance_name(p)).unwrap_or_default()
                ),
            ));
        }

        // Upgrade progress and completion.
        if let Some(u) = upgrade.as_mut() {
            if u.step == UpgradeStep::Upgrading
                && let Some(p) = primary
            {
                let image = spec.upgrade_image.clone().unwrap_or_else(|| {
                    format!("docker.io/tianon/postgres-upgrade:{}-to-{}", u.from, u.to)
                });
                let wal = pvc_size(&format!("{}-wal", cl.instance_name(p))).is_some();
                children.push(cl.upgrade_job(&image, &cl.instance_name(p), u.from, u.to, wal));
            }
            if u.step == UpgradeStep::Starting && all_ready && emitted.len() == set.len() {
                self.event(Event::normal(
                    "Upgraded",
                    format!("upgraded from PostgreSQL {} to {}", u.from, u.to),
                ));
                self.status.version = Some(u.to);
                upgrade = None;
            }
        }
        let upgrading = upgrade.is_some();
        if let Some(u) = &upgrade {
            self.progress
                .push(format!("major upgrade {:?}: {}", u.step, u.message));
        }
        self.status.upgrade = upgrade;
        if !upgrading && self.status.version.is_none() {
            self.status.version = if primary_ready {
                Some(spec.version)
            } else {
                running
            };
        }
        if upgrading {
            self.status.version = running;
        }

        // Jobs: users and databases once the primary is ready; data loads
        // once the users' Job succeeded.
        let primary_image = primary_image.unwrap_or_else(|| desired.image.clone());
        let can_run = primary_ready && !shutdown && !upgrading;
        self.jobs(&mut children, &primary_image, can_run);

        if spec.pooler.enabled {
            let replicas = if shutdown || set.is_empty() {
                0
            } else {
                spec.pooler.replicas
            };
            children.extend(cl.pooler(&superuser, replicas));
        }
        self.resp = std::mem::take(&mut self.resp).children(children);

        self.status.image = Some(primary_image);
        self.status.instance_statuses = statuses;
        self.conclude(Outcome {
            instances: set.len(),
            existing,
            ready_count,
            all_ready,
            primary_name: primary.map(|p| cl.instance_name(p)),
            primary_ready,
            ever_ready,
            stopped: set
                .iter()
                .all(|o| observed.get(o).is_none_or(|s| s.stopped)),
            stale: !stale.is_empty(),
            upgrading,
            failed_over,
        });
    }

    /// Phase and conditions from what the reconcile found.
    fn conclude(&mut self, o: Outcome) {
        let Outcome {
            instances: n,
            existing,
            ready_count,
            all_ready,
            primary_name,
            primary_ready,
            ever_ready,
            stopped,
            stale: stale_left,
            upgrading,
            failed_over,
        } = o;
        let req = self.req;
        let shutdown = self.spec().shutdown;
        self.status.current_primary = primary_name.clone();
        self.status.instances = i32::try_from(existing).unwrap_or(i32::MAX);
        self.status.ready_instances = ready_count;
        self.status.selector = self.cl.instance_selector();

        let ready = all_ready && primary_ready && !upgrading && !shutdown && !failed_over;
        let phase = if shutdown {
            if stopped { "Stopped" } else { "Stopping" }
        } else if upgrading {
            "Upgrading"
        } else if failed_over {
            "FailingOver"
        } else if ready {
            "Running"
        } else if !ever_ready && !primary_ready {
            "Creating"
        } else if stale_left {
            "Updating"
        } else if primary_ready {
            "Scaling"
        } else {
            "Degraded"
        };
        self.status.phase = phase.into();
        if ever_ready && !primary_ready && !shutdown && !upgrading && self.degraded.is_empty() {
            self.degraded.push(format!(
                "primary {} is not ready",
                primary_name.clone().unwrap_or_default()
            ));
        }
        let (ok, reason, message) = if n == 0 {
            (true, "NoInstances", "spec.instances is 0".to_string())
        } else if shutdown {
            (
                false,
                "ShutDown",
                format!("spec.shutdown is set: {n} instances stopped, volumes kept"),
            )
        } else if ready {
            (
                true,
                "AllInstancesReady",
                format!(
                    "{ready_count}/{n} instances ready, primary {}",
                    primary_name.clone().unwrap_or_default()
                ),
            )
        } else {
            (
                false,
                if primary_ready {
                    "InstancesNotReady"
                } else {
                    "PrimaryNotReady"
                },
                format!("{ready_count}/{n} instances ready"),
            )
        };
        set_cond(
            &mut self.status.conditions,
            req,
            "Ready",
            ok,
            reason,
            &message,
        );
        if phase == "Creating" {
            self.progress.push(format!("creating {n} instances"));
        } else if phase == "Scaling" {
            self.progress
                .push(format!("{ready_count}/{n} instances ready"));
        }
        let progressing = !self.progress.is_empty() || failed_over;
        let pmsg = if failed_over {
            format!("failing over to {}", primary_name.unwrap_or_default())
        } else {
            self.progress.join("; ")
        };
        set_cond(
            &mut self.status.conditions,
            req,
            "Progressing",
            progressing,
            if progressing { "Reconciling" } else { "Stable" },
            &pmsg,
        );
        let degraded = !self.degraded.is_empty();
        set_cond(
            &mut self.status.conditions,
            req,
            "Degraded",
            degraded,
            if degraded { "Unhealthy" } else { "Healthy" },
            &self.degraded.join("; "),
        );
    }

    /// The SQL Job (once the primary is ready) and the data loads (once
    /// the SQL Job succeeded, each once), with `UsersReconciled`.
    fn jobs(&mut self, children: &mut Vec<Value>, primary_image: &str, can_run: bool) {
        let (cl, req, spec) = (self.cl, self.req, self.spec());
        let mut sql_done = true;
        if let Some(script) = sql::users_script(spec) {
            let (hash, mut job) = cl.sql_job(primary_image, &script, &self.user_passwords);
            let job_name = format!("{}-sql-{hash}", cl.name);
            keep_job_template(req, &mut job);
            let state = job_state(req.find_observed("batch/v1", "Job", &job_name));
            if can_run || state != JobState::Absent {
                children.push(job);
            }
            sql_done = state == JobState::Succeeded;
            let (ok, reason, message) = match state {
                JobState::Succeeded => (true, "SqlApplied", format!("Job {job_name} succeeded")),
                JobState::Failed => {
                    self.degraded.push(format!("SQL Job {job_name} failed"));
                    (
                        false,
                        "SqlFailed",
                        format!("Job {job_name} failed: see its logs"),
                    )
                }
                JobState::Running => (false, "SqlRunning", format!("Job {job_name} is running")),
                JobState::Absent => (
                    false,
                    "WaitingForPrimary",
                    "the SQL Job starts once the primary is ready".to_string(),
                ),
            };
            if state == JobState::Succeeded {
                self.status.users_reconciled_hash = Some(hash);
            } else {
                self.status.users_reconciled_hash = self.prev.users_reconciled_hash.clone();
            }
            set_cond(
                &mut self.status.conditions,
                req,
                "UsersReconciled",
                ok,
                reason,
                &message,
            );
        } else {
            set_cond(
                &mut self.status.conditions,
                req,
                "UsersReconciled",
                true,
                "NothingToDo",
                "spec has no users or databases",
            );
        }
        for load in &spec.data_loads {
            let (hash, mut job) = cl.load_job(primary_image, load);
            let job_name = format!("{}-load-{hash}", cl.name);
            keep_job_template(req, &mut job);
            let state = job_state(req.find_observed("batch/v1", "Job", &job_name));
            let completed =
                state == JobState::Succeeded || self.prev.completed_data_loads.contains(&hash);
            if state != JobState::Absent || (!completed && can_run && sql_done) {
                children.push(job);
            }
            if state == JobState::Failed {
                self.degraded
                    .push(format!("data load {} (Job {job_name}) failed", load.name));
            }
            if completed {
                self.status.completed_data_loads.push(hash);
            }
        }
    }

    /// `bootstrap.fromBackup` of a cluster not yet started: waits for the
    /// backup, runs the restore Job on the primary's volumes, and answers
    /// whether the instances must wait (the status and conditions are
    /// then set here). A cluster restored, or already running, goes on.
    fn restore_holds(
        &mut self,
        children: &mut Vec<Value>,
        primary: Option<u32>,
        no_instances: bool,
    ) -> bool {
        let (cl, req, spec) = (self.cl, self.req, self.spec());
        let Some(from) = &spec.bootstrap.from_backup else {
            return false;
        };
        let backup = from.backup_name.as_str();
        if let Some(done) = self.prev.restore.clone().filter(|r| r.phase == "Restored") {
            self.status.restore = Some(done);
            return false;
        }
        if !no_instances || self.prev.version.is_some() {
            return false; // bootstrap settings apply at creation only
        }
        let p = cl.instance_name(primary.unwrap_or(0));
        let source = restore::source(req.parent_json(), backup);
        let record = |phase: &str, method: Option<String>, message: String| RestoreStatus {
            backup: backup.to_string(),
            phase: phase.to_string(),
            method,
            message,
        };
        let (restore, ready_reason, blocked) = match restore::step(
            backup,
            source.as_ref(),
            spec.version,
        ) {
            Step::Wait(reason, message) => {
                self.requeue(Duration::from_secs(30));
                (record("Waiting", None, message), reason, false)
            }
            Step::Blocked(reason, message) => (record("Blocked", None, message), reason, true),
            Step::Restore {
                claim,
                path,
                method,
            } => {
                // The primary's volumes, made here so the Job can fill them.
                let mut volumes = vec![cl.pvc(&format!("{p}-data"), &p, &spec.storage.size)];
                let wal = spec.storage.wal_size.is_some();
                if let Some(size) = &spec.storage.wal_size {
                    volumes.push(cl.pvc(&format!("{p}-wal"), &p, size));
                }
                let image = self.default_image(spec.version);
                let mut job = cl.restore_job(&image, &p, &claim, &path, wal);
                keep_job_template(req, &mut job);
                let job_name = cl.restore_job_name();
                let state = job_state(req.find_observed("batch/v1", "Job", &job_name));
                match state {
                    JobState::Succeeded => {
                        self.event(Event::normal(
                            "Restored",
                            format!("restored {method} PostgresBackup {backup} from {claim}:{path} (Job {job_name})"),
                        ));
                        self.status.restore = Some(record(
                            "Restored",
                            Some(method),
                            format!("restored from {claim}:{path}"),
                        ));
                        return false;
                    }
                    JobState::Failed => {
                        children.extend(volumes);
                        children.push(job);
                        (
                            record(
                                "Blocked",
                                Some(method),
                                format!(
                                    "the restore Job {job_name} failed: see its logs; delete it to retry"
                                ),
                            ),
                            "RestoreFailed",
                            true,
                        )
                    }
                    JobState::Absent | JobState::Running => {
                        children.extend(volumes);
                        children.push(job);
                        (
                            record(
                                "Restoring",
                                Some(method.clone()),
                                format!(
                                    "Job {job_name} restores the {method} PostgresBackup {backup} from {claim}:{path}"
                                ),
                            ),
                            "Restoring",
                            false,
                        )
                    }
                }
            }
        };
        let message = restore.message.clone();
        self.status.restore = Some(restore);
        self.status.phase = "Restoring".into();
        self.status.current_primary = Some(p);
        self.status.selector = cl.instance_selector();
        self.status.version = None;
        set_cond(
            &mut self.status.conditions,
            req,
            "Ready",
            false,
            ready_reason,
            &message,
        );
        set_cond(
            &mut self.status.conditions,
            req,
            "Progressing",
            !blocked,
            if blocked { "Blocked" } else { ready_reason },
            &message,
        );
        set_cond(
            &mut self.status.conditions,
            req,
            "Degraded",
            blocked,
            if blocked { ready_reason } else { "Healthy" },
            if blocked { &message } else { "" },
        );
        if blocked
            && self
                .prev
                .restore
                .as_ref()
                .is_none_or(|r| r.message != message)
        {
            self.event(Event::warning(ready_reason, message));
        }
        true
    }

    /// Moves a major upgrade to its next step once the current one is
    /// observed complete: all instances stopped, then the Job succeeded.
    fn advance_upgrade(
        &mut self,
        u: &mut UpgradeStatus,
        set: &BTreeSet<u32>,
        observed: &BTreeMap<u32, Observed>,
    ) {
        let (cl, req) = (self.cl, self.req);
        match u.step {
            UpgradeStep::ShuttingDown => {
                if set
                    .iter()
                    .all(|o| observed.get(o).is_none_or(|s| s.stopped))
                {
                    u.step = UpgradeStep::Upgrading;
                    u.message = format!("running pg_upgrade {} -> {}", u.from, u.to);
                }
            }
            UpgradeStep::Upgrading => {
                let job = req.find_observed(
                    "batch/v1",
                    "Job",
                    &format!("{}-upgrade-{}-to-{}", cl.name, u.from, u.to),
                );
                match job_state(job) {
                    JobState::Succeeded => {
                        u.step = UpgradeStep::Starting;
                        u.message = format!("starting the instances on PostgreSQL {}", u.to);
                    }
                    JobState::Failed => {
                        u.message = format!(
                            "the pg_upgrade Job {}-upgrade-{}-to-{} failed: see its logs; delete it to retry",
                            cl.name, u.from, u.to
                        );
                        self.degraded.push(u.message.clone());
                    }
                    _ => {}
                }
            }
            UpgradeStep::Starting => {}
        }
    }

    /// The failover decision for primary `p`: the instance to promote,
    /// if `p` has been settled but not ready for the delay and a replica is
    /// ready. Records the wait in status, Degraded and the requeue.
    fn failover(
        &mut self,
        p: u32,
        set: &BTreeSet<u32>,
        observed: &BTreeMap<u32, Observed>,
    ) -> Option<u32> {
        let spec = self.spec();
        let cl = self.cl;
        let o = observed.get(&p)?;
        if !o.current || o.replicas != 1 || o.ready {
            return None;
        }
        let since = self
            .prev
            .primary_unavailable_since
            .as_deref()
            .and_then(parse_rfc3339)
            .unwrap_or(self.now);
        let elapsed = self.now - since;
        let candidate = set
            .iter()
            .copied()
            .find(|c| *c != p && observed.get(c).is_some_and(|o| o.ready && !o.primary));
        if elapsed >= spec.failover.delay_seconds {
            match candidate {
                Some(c) => {
                    self.event(Event::warning(
                        "FailedOver",
                        format!(
                            "primary {} unavailable for {elapsed}s: promoting {}",
                            cl.instance_name(p),
                            cl.instance_name(c)
                        ),
                    ));
                    return Some(c);
                }
                None => {
                    self.status.primary_unavailable_since = Some(format_rfc3339(since));
                    self.degraded.push(format!(
                        "primary {} is unavailable and no replica is ready to take over",
                        cl.instance_name(p)
                    ));
                    self.requeue(Duration::from_secs(30));
                }
            }
        } else {
            self.status.primary_unavailable_since = Some(format_rfc3339(since));
            self.degraded.push(format!(
                "primary {} unavailable for {elapsed}s; failover after {}s",
                cl.instance_name(p),
                spec.failover.delay_seconds
            ));
            let wait = u64::try_from(spec.failover.delay_seconds - elapsed).unwrap_or(1);
            self.requeue(Duration::from_secs(wait.max(1)));
        }
        None
    }

    /// `<name>-<ordinal>` → ordinal.
    fn ordinal(&self, instance: &str) -> Option<u32> {
        instance
            .strip_prefix(self.cl.name)?
            .strip_prefix('-')?
            .parse()
            .ok()
    }

    /// The size to ask of a PVC: the spec's, unless the PVC is already
    /// larger (volumes cannot shrink), which is reported.
    fn grow_only(&mut self, pvc: &str, want: &str, observed: Option<String>) -> String {
        match observed {
            Some(have)
                if parse_quantity(&have).unwrap_or(0.0) > parse_quantity(want).unwrap_or(0.0) =>
            {
                self.degraded.push(format!(
                    "PVC {pvc} is {have}; spec asks {want}, but volumes cannot shrink"
                ));
                have
            }
            _ => want.to_string(),
        }
    }
}

/// Jobs are named by what they apply, not by the image or the labels it
/// runs with (a minor upgrade or a new label must not re-run a data load),
/// and a Job's Pod template is immutable: an existing Job keeps its own.
fn keep_job_template(req: &Request, job: &mut Value) {
    let observed = req
        .find_observed("batch/v1", "Job", name_of(job))
        .map(|j| j["spec"]["template"].clone())
        .filter(Value::is_object);
    if let Some(mut template) = observed {
        // The Job controller's own labels name the Job's uid: applying
        // them to a Job recreated under the same name (a stale cache
        // during deletion) would be refused, and they are not ours.
        if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
            for l in JOB_CONTROLLER_LABELS {
                labels.remove(l);
            }
        }
        job["spec"]["template"] = template;
    }
}

const JOB_CONTROLLER_LABELS: [&str; 4] = [
    "controller-uid",
    "job-name",
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
];
