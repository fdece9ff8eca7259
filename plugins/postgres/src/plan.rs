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
use operon_sdk::job::{JobState, keep_template};
use operon_sdk::time::{format_rfc3339, parse_rfc3339};
use operon_sdk::{Error, Event, Request, Response, name_of};
use serde_json::Value;

use crate::children::{
    ANNOTATION_INPUTS, ANNOTATION_SPEC, Cluster, InstanceInputs, InstancePlan, LABEL_CLUSTER,
    LABEL_INSTANCE, LABEL_ROLE, unbase64,
};
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

/// The observed Secrets by name (the first of a name, as
/// `find_observed` would), so that each user's password is one lookup: a
/// cluster with hundreds of users observes as many Secrets.
fn observed_secrets(req: &Request) -> BTreeMap<&str, &Value> {
    let mut by_name = BTreeMap::new();
    for secret in kind_of(req, "v1", "Secret") {
        if let Some(name) = secret["metadata"]["name"].as_str() {
            by_name.entry(name).or_insert(secret);
        }
    }
    by_name
}

/// The password in an observed Secret, if there is a usable one.
fn secret_password(secret: &Value) -> Option<String> {
    let bytes = unbase64(secret["data"]["password"].as_str()?)?;
    String::from_utf8(bytes).ok().filter(|p| !p.is_empty())
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
    let prev: ClusterStatus = req.status_or_default();
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
            None => return Ok(paused_response(req, &prev)),
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
    let Render { resp, status, .. } = r;
    Ok(with_mode(req, mode, resp, status))
}

/// The render of the last applied spec says why it is not the parent's:
/// paused, or invalid (with a Warning event).
fn with_mode(req: &Request, mode: Mode, mut resp: Response, mut status: ClusterStatus) -> Response {
    match mode {
        Mode::Normal => {}
        Mode::Paused => pause(
            &mut status,
            req,
            "spec.paused is set: the last applied spec is kept",
        ),
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
    resp.status(status)
}

/// A cluster paused before anything was made: it makes nothing.
fn paused_response(req: &Request, prev: &ClusterStatus) -> Response {
    let mut status = prev.clone();
    status.conditions = req.conditions();
    pause(&mut status, req, "spec.paused is set: nothing is made");
    Response::new().status(status)
}

/// Marks `status` paused, `Progressing=False` saying what holds meanwhile.
fn pause(status: &mut ClusterStatus, req: &Request, meanwhile: &str) {
    status.phase = "Paused".into();
    set_cond(
        &mut status.conditions,
        req,
        "Progressing",
        false,
        "Paused",
        meanwhile,
    );
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

impl Outcome {
    /// Every instance settled on the desired inputs, nothing else going on.
    fn ready(&self, shutdown: bool) -> bool {
        self.all_ready && self.primary_ready && !self.upgrading && !shutdown && !self.failed_over
    }

    /// The cluster's phase: what is going on, the most telling first.
    fn phase(&self, shutdown: bool) -> &'static str {
        if shutdown {
            if self.stopped { "Stopped" } else { "Stopping" }
        } else if self.upgrading {
            "Upgrading"
        } else if self.failed_over {
            "FailingOver"
        } else if self.ready(shutdown) {
            "Running"
        } else if !self.ever_ready && !self.primary_ready {
            "Creating"
        } else if self.stale {
            "Updating"
        } else if self.primary_ready {
            "Scaling"
        } else {
            "Degraded"
        }
    }
}

/// The instances of this reconcile: what is observed, which ordinals the
/// cluster keeps, which is primary.
struct Topology {
    observed: BTreeMap<u32, Observed>,
    set: BTreeSet<u32>,
    primary: Option<u32>,
    /// The failover step promoted `primary` in this reconcile.
    failed_over: bool,
    /// `primary` is observed ready, as primary.
    primary_ready: bool,
}

/// The rolling update's plan: the instances on stale inputs, and the one
/// that takes the new ones now (none while another is not settled).
struct Roll {
    stale: Vec<u32>,
    next: Option<u32>,
}

/// What rendering the instances found, for the status and [`Outcome`].
struct Rendered {
    /// The ordinals given a StatefulSet.
    emitted: BTreeSet<u32>,
    statuses: Vec<InstanceStatus>,
    ready_count: i32,
    all_ready: bool,
    primary_image: Option<String>,
}

/// Why a cluster bootstrapping from a backup holds its instances back.
struct Hold {
    /// The reason of `Ready=False`.
    reason: &'static str,
    /// The restore cannot go on without a change (Degraded, a Warning).
    blocked: bool,
    restore: RestoreStatus,
}

impl Hold {
    fn new(reason: &'static str, blocked: bool, restore: RestoreStatus) -> Hold {
        Hold {
            reason,
            blocked,
            restore,
        }
    }
}

/// The restore as the status records it.
fn restore_record(
    backup: &str,
    phase: &str,
    method: Option<String>,
    message: String,
) -> RestoreStatus {
    RestoreStatus {
        backup: backup.to_string(),
        phase: phase.to_string(),
        method,
        message,
    }
}

struct Render<'a> {
    req: &'a Request,
    cl: &'a Cluster<'a>,
    prev: ClusterStatus,
    now: i64,
    resp: Response,
    /// The desired children so far, in the output's order.
    children: Vec<Value>,
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
            children: Vec::new(),
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

    /// The password of `secret` among the observed `secrets`, else a new one.
    fn password(secrets: &BTreeMap<&str, &Value>, secret: &str) -> String {
        secrets
            .get(secret)
            .and_then(|s| secret_password(s))
            .unwrap_or_else(password::generate)
    }

    /// The whole render, in the order of the module's decisions. Each step
    /// appends its children to `self.children` (their order is the
    /// output's), its events to the response, and what it found to the
    /// status or to the values it returns for the steps after it.
    fn run(&mut self) {
        let superuser = self.credentials();
        let mut topo = self.topology();
        if self.restore_holds(topo.primary, topo.observed.is_empty()) {
            self.finish_children();
            return;
        }
        let mut upgrade = self.upgrade_to_start(&topo);
        self.fail_over_if_due(&mut topo, upgrade.is_some());
        if let Some(u) = upgrade.as_mut() {
            self.advance_upgrade(u, &topo.set, &topo.observed);
        }
        let major = match &upgrade {
            Some(u) if u.step != UpgradeStep::Starting => u.from,
            Some(u) => u.to,
            None => self.spec().version,
        };
        let desired = self.desired_inputs(major);
        let roll = self.roll(&topo, &desired, upgrade.is_some());
        let rendered = self.instances(&topo, &roll, &desired, upgrade.as_ref());
        self.retained_volumes(&rendered.emitted);
        self.disruption_budget_and_scaling(&topo);
        let upgrading = self.upgrade_progress(upgrade, &topo, &rendered);

        // Jobs: users and databases once the primary is ready; data loads
        // once the users' Job succeeded.
        let primary_image = rendered
            .primary_image
            .clone()
            .unwrap_or_else(|| desired.image.clone());
        let can_run = topo.primary_ready && !self.spec().shutdown && !upgrading;
        self.jobs(&primary_image, can_run);
        self.pooler(&superuser, topo.set.is_empty());
        self.finish_children();

        self.status.image = Some(primary_image);
        self.status.instance_statuses = rendered.statuses;
        self.conclude(Outcome {
            instances: topo.set.len(),
            existing: topo
                .observed
                .keys()
                .filter(|o| topo.set.contains(o))
                .count(),
            ready_count: rendered.ready_count,
            all_ready: rendered.all_ready,
            primary_name: topo.primary.map(|p| self.cl.instance_name(p)),
            primary_ready: topo.primary_ready,
            ever_ready: self.prev.version.is_some(),
            stopped: topo
                .set
                .iter()
                .all(|o| topo.observed.get(o).is_none_or(|s| s.stopped)),
            stale: !roll.stale.is_empty(),
            upgrading,
            failed_over: topo.failed_over,
        });
    }

    /// Hands the children gathered so far to the response.
    fn finish_children(&mut self) {
        // Moved, not through `Response::children`: its `Serialize` bound
        // would copy each `Value` whole.
        self.resp.children.append(&mut self.children);
    }

    /// Credentials, configuration and Services. Passwords are generated
    /// once, then read back from the Secrets; the superuser's is returned
    /// for the pooler.
    fn credentials(&mut self) -> String {
        let (cl, spec) = (self.cl, self.spec());
        let secrets = observed_secrets(self.req);
        let superuser = Self::password(&secrets, &cl.superuser_secret());
        let replication = Self::password(&secrets, &cl.replication_secret());
        self.children.extend([
            cl.credentials_secret(&cl.superuser_secret(), "postgres", &superuser, "postgres"),
            cl.credentials_secret(
                &cl.replication_secret(),
                "replicator",
                &replication,
                "postgres",
            ),
        ]);
        for user in spec
            .users
            .iter()
            .filter(|u| u.ensure == Ensure::Present && u.password_secret_ref.is_none())
        {
            let secret = cl.user_secret(&user.name);
            let pw = Self::password(&secrets, &secret);
            self.user_passwords.insert(user.name.clone(), pw.clone());
            let db = user.databases.first().map_or("postgres", String::as_str);
            self.children
                .push(cl.credentials_secret(&secret, &user.name, &pw, db));
        }
        self.children.push(cl.config());
        self.children.extend(cl.services());
        superuser
    }

    /// Instances: the observed StatefulSets by ordinal, the ordinals the
    /// cluster keeps, and its primary (the observed one, else the one the
    /// status names, else the first kept).
    fn topology(&self) -> Topology {
        let cl = self.cl;
        let observed: BTreeMap<u32, Observed> = kind_of(self.req, "apps/v1", "StatefulSet")
            .into_iter()
            .filter(|s| s["metadata"]["labels"][LABEL_CLUSTER] == cl.name)
            .filter_map(|s| Some((self.ordinal(name_of(s))?, Observed::from(s))))
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
        let set = instance_set(self.spec().instances, primary);
        if primary.is_none_or(|p| !set.contains(&p)) {
            primary = set.first().copied();
        }
        Topology {
            observed,
            set,
            primary,
            failed_over: false,
            primary_ready: false,
        }
    }

    /// The major upgrade under way (from the status), or the one a higher
    /// `spec.version` of a running cluster starts now.
    fn upgrade_to_start(&mut self, topo: &Topology) -> Option<UpgradeStatus> {
        if let Some(u) = &self.prev.upgrade {
            return Some(u.clone());
        }
        let (from, to) = (self.prev.version?, self.spec().version);
        if to <= from || topo.observed.is_empty() {
            return None;
        }
        self.event(Event::normal(
            "UpgradeStarted",
            format!("major upgrade from PostgreSQL {from} to {to}"),
        ));
        Some(UpgradeStatus {
            from,
            to,
            step: UpgradeStep::ShuttingDown,
            message: format!("stopping every instance before pg_upgrade {from} -> {to}"),
        })
    }

    /// Failover: a primary that is settled but not ready, for longer than
    /// the delay, is replaced by the first ready replica (never during a
    /// shutdown or an upgrade). Then whether the primary is ready.
    fn fail_over_if_due(&mut self, topo: &mut Topology, upgrading: bool) {
        self.status.primary_unavailable_since = None;
        let spec = self.spec();
        if let Some(p) = topo.primary
            && spec.failover.enabled
            && !spec.shutdown
            && !upgrading
            && let Some(c) = self.failover(p, &topo.set, &topo.observed)
        {
            topo.primary = Some(c);
            topo.failed_over = true;
        }
        topo.primary_ready = topo
            .primary
            .and_then(|p| topo.observed.get(&p))
            .is_some_and(|o| o.ready && o.primary);
    }

    /// Rolling: among instances whose recorded inputs differ from the
    /// desired, one at a time may take the new ones, and only when every
    /// instance already on them is settled. Replicas go first.
    fn roll(&mut self, topo: &Topology, desired: &InstanceInputs, upgrading: bool) -> Roll {
        let (cl, set, observed) = (self.cl, &topo.set, &topo.observed);
        let stale: Vec<u32> = set
            .iter()
            .copied()
            .filter(|o| {
                observed
                    .get(o)
                    .is_some_and(|s| s.inputs.as_ref().is_some_and(|i| i != desired))
            })
            .collect();
        if upgrading || self.spec().shutdown || stale.is_empty() {
            return Roll { stale, next: None };
        }
        let waiting: Vec<String> = set
            .iter()
            .copied()
            .filter(|o| !stale.contains(o))
            .filter(|o| observed.get(o).is_some_and(|s| !s.settled()))
            .map(|o| cl.instance_name(o))
            .collect();
        let mut next = None;
        if waiting.is_empty() {
            next = stale
                .iter()
                .copied()
                .find(|o| Some(*o) != topo.primary)
                .or_else(|| stale.first().copied());
            if let Some(n) = next {
                let role = if Some(n) == topo.primary {
                    "primary"
                } else {
                    "replica"
                };
                let done = set.len() - stale.len() + 1;
                self.event(Event::normal(
                    "RollingUpdate",
                    format!(
                        "restarting {} ({role}) with {} ({done}/{})",
                        cl.instance_name(n),
                        desired.image,
                        set.len()
                    ),
                ));
            }
        }
        let waiting = if waiting.is_empty() {
            String::new()
        } else {
            format!(", waiting for {} to be ready", waiting.join(", "))
        };
        self.progress.push(format!(
            "rolling update: {} of {} instances to go{waiting}",
            stale.len(),
            set.len(),
        ));
        Roll { stale, next }
    }

    /// Per instance: its volumes and StatefulSet with the inputs and the
    /// number of Pods it runs now. A replica is made only once the primary
    /// has been ready (it clones the primary), and none is made while the
    /// instances are stopped for pg_upgrade.
    fn instances(
        &mut self,
        topo: &Topology,
        roll: &Roll,
        desired: &InstanceInputs,
        upgrade: Option<&UpgradeStatus>,
    ) -> Rendered {
        let mut out = Rendered {
            emitted: BTreeSet::new(),
            statuses: Vec::new(),
            ready_count: 0,
            all_ready: !topo.set.is_empty(),
            primary_image: None,
        };
        let in_upgrade_stop = upgrade.is_some_and(|u| u.step != UpgradeStep::Starting);
        let ever_ready = self.prev.version.is_some();
        for &o in &topo.set {
            let obs = topo.observed.get(&o);
            let is_primary = Some(o) == topo.primary;
            if obs.is_none() && !is_primary && !topo.primary_ready && !ever_ready {
                out.all_ready = false;
                continue;
            }
            if obs.is_none() && in_upgrade_stop {
                continue;
            }
            out.emitted.insert(o);
            let inputs = self.inputs_of(o, topo, roll, desired, upgrade);
            if is_primary {
                out.primary_image = Some(inputs.image.clone());
            }
            let replicas = if self.spec().shutdown || in_upgrade_stop {
                0
            } else if upgrade.is_some() && !is_primary && !topo.primary_ready {
                // Starting after pg_upgrade: replicas re-clone from the
                // upgraded primary, so they wait for it.
                0
            } else {
                1
            };
            let name = self.cl.instance_name(o);
            let storage = self.instance(&name, is_primary, replicas, &inputs);
            let ready = obs.is_some_and(|s| s.ready);
            let settled = obs.is_some_and(|s| {
                s.settled() && s.primary == is_primary && s.inputs.as_ref() == Some(desired)
            });
            out.ready_count += i32::from(ready);
            out.all_ready &= settled;
            out.statuses.push(InstanceStatus {
                name,
                role: if is_primary { "primary" } else { "replica" }.into(),
                ready,
                image: obs
                    .and_then(|s| s.inputs.as_ref())
                    .map_or_else(|| inputs.image.clone(), |i| i.image.clone()),
                storage: Some(storage),
            });
        }
        out
    }

    /// The inputs instance `o` runs with: as recorded while it is stopped
    /// for pg_upgrade, or stale and not yet its turn; otherwise (new,
    /// rolled, or restarting anyway because of a shutdown or the upgrade's
    /// start) the desired ones.
    fn inputs_of(
        &self,
        o: u32,
        topo: &Topology,
        roll: &Roll,
        desired: &InstanceInputs,
        upgrade: Option<&UpgradeStatus>,
    ) -> InstanceInputs {
        let in_upgrade_stop = upgrade.is_some_and(|u| u.step != UpgradeStep::Starting);
        let waits_its_turn = roll.stale.contains(&o)
            && Some(o) != roll.next
            && !self.spec().shutdown
            && upgrade.is_none();
        match topo.observed.get(&o).and_then(|s| s.inputs.clone()) {
            Some(recorded) if in_upgrade_stop || waits_its_turn => recorded,
            _ => desired.clone(),
        }
    }

    /// One instance's children: its data volume, its WAL volume (kept if
    /// it exists; made with `storage.walSize` only for a new instance,
    /// since moving the WAL of existing data is not a resize) and its
    /// StatefulSet. Returns the size asked of the data volume.
    fn instance(
        &mut self,
        name: &str,
        primary: bool,
        replicas: i32,
        inputs: &InstanceInputs,
    ) -> String {
        let (cl, storage) = (self.cl, &self.spec().storage);
        let data_pvc = format!("{name}-data");
        let wal_pvc = format!("{name}-wal");
        let data_observed = self.pvc_size(&data_pvc);
        let wal_observed = self.pvc_size(&wal_pvc);
        let wal = wal_observed.is_some() || (storage.wal_size.is_some() && data_observed.is_none());
        let data_size = self.grow_only(&data_pvc, &storage.size, data_observed);
        self.children.push(cl.pvc(&data_pvc, name, &data_size));
        if wal {
            let want = storage
                .wal_size
                .clone()
                .or_else(|| wal_observed.clone())
                .unwrap_or_default();
            let wal_size = self.grow_only(&wal_pvc, &want, wal_observed);
            self.children.push(cl.pvc(&wal_pvc, name, &wal_size));
        }
        self.children.push(cl.statefulset(&InstancePlan {
            name: name.to_string(),
            primary,
            replicas,
            inputs,
            wal,
        }));
        data_size
    }

    /// The requested size of an observed PVC.
    fn pvc_size(&self, pvc: &str) -> Option<String> {
        self.req
            .find_observed("v1", "PersistentVolumeClaim", pvc)
            .and_then(|p| p["spec"]["resources"]["requests"]["storage"].as_str())
            .map(str::to_string)
    }

    /// PVCs of instances no longer in the cluster: kept under Retain.
    fn retained_volumes(&mut self, emitted: &BTreeSet<u32>) {
        if self.spec().storage.retention_policy != RetentionPolicy::Retain {
            return;
        }
        let cl = self.cl;
        for pvc in kind_of(self.req, "v1", "PersistentVolumeClaim") {
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
                self.children.push(cl.pvc(name_of(pvc), instance, size));
            }
        }
    }

    /// The PodDisruptionBudget of a cluster with replicas, and the event
    /// of a change in the number of instances.
    fn disruption_budget_and_scaling(&mut self, topo: &Topology) {
        let (cl, shutdown) = (self.cl, self.spec().shutdown);
        if topo.set.len() > 1 && !shutdown {
            self.children.push(cl.pdb());
        }
        let previous = topo.observed.len();
        if previous > 0 && previous != topo.set.len() && !shutdown {
            self.event(Event::normal(
                "Scaled",
                format!(
                    "scaling from {previous} to {} instances (primary {} kept)",
                    topo.set.len(),
                    topo.primary
                        .map(|p| cl.instance_name(p))
                        .unwrap_or_default()
                ),
            ));
        }
    }

    /// Upgrade progress and completion: the pg_upgrade Job while its step
    /// runs, `Upgraded` once every instance is back on the new major; and
    /// the version the status reports. Returns whether the upgrade goes
    /// on.
    fn upgrade_progress(
        &mut self,
        mut upgrade: Option<UpgradeStatus>,
        topo: &Topology,
        rendered: &Rendered,
    ) -> bool {
        let (cl, spec) = (self.cl, self.spec());
        if let Some(u) = upgrade.as_mut() {
            if u.step == UpgradeStep::Upgrading
                && let Some(p) = topo.primary
            {
                let image = spec.upgrade_image.clone().unwrap_or_else(|| {
                    format!("docker.io/tianon/postgres-upgrade:{}-to-{}", u.from, u.to)
                });
                let primary = cl.instance_name(p);
                let wal = self.pvc_size(&format!("{primary}-wal")).is_some();
                self.children
                    .push(cl.upgrade_job(&image, &primary, u.from, u.to, wal));
            }
            if u.step == UpgradeStep::Starting
                && rendered.all_ready
                && rendered.emitted.len() == topo.set.len()
            {
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
        let running = self.prev.version;
        if upgrading {
            self.status.version = running;
        } else if self.status.version.is_none() {
            self.status.version = if topo.primary_ready {
                Some(spec.version)
            } else {
                running
            };
        }
        upgrading
    }

    /// The PgBouncer pooler, when enabled: no Pods while shut down or
    /// without instances.
    fn pooler(&mut self, superuser: &str, no_instances: bool) {
        let spec = self.spec();
        if !spec.pooler.enabled {
            return;
        }
        let replicas = if spec.shutdown || no_instances {
            0
        } else {
            spec.pooler.replicas
        };
        self.children.extend(self.cl.pooler(superuser, replicas));
    }

    /// Phase and conditions from what the reconcile found.
    fn conclude(&mut self, o: Outcome) {
        let shutdown = self.spec().shutdown;
        let primary = o.primary_name.clone().unwrap_or_default();
        self.status.current_primary = o.primary_name.clone();
        self.status.instances = i32::try_from(o.existing).unwrap_or(i32::MAX);
        self.status.ready_instances = o.ready_count;
        self.status.selector = self.cl.instance_selector();

        let ready = o.ready(shutdown);
        let phase = o.phase(shutdown);
        self.status.phase = phase.into();
        if o.ever_ready && !o.primary_ready && !shutdown && !o.upgrading && self.degraded.is_empty()
        {
            self.degraded
                .push(format!("primary {primary} is not ready"));
        }
        let (n, ready_count) = (o.instances, o.ready_count);
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
                format!("{ready_count}/{n} instances ready, primary {primary}"),
            )
        } else if o.primary_ready {
            (
                false,
                "InstancesNotReady",
                format!("{ready_count}/{n} instances ready"),
            )
        } else {
            (
                false,
                "PrimaryNotReady",
                format!("{ready_count}/{n} instances ready"),
            )
        };
        let req = self.req;
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
        self.progress_and_health(o.failed_over, &primary);
    }

    /// `Progressing` (what the reconcile is moving towards) and
    /// `Degraded` (what is wrong), from what the steps noted.
    fn progress_and_health(&mut self, failed_over: bool, primary: &str) {
        let req = self.req;
        let progressing = !self.progress.is_empty() || failed_over;
        let pmsg = if failed_over {
            format!("failing over to {primary}")
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
    fn jobs(&mut self, primary_image: &str, can_run: bool) {
        let sql_done = self.sql_job(primary_image, can_run);
        self.data_loads(primary_image, can_run && sql_done);
    }

    /// `job` as it was made, if it exists (its Pod template is immutable),
    /// and what the observed one says.
    fn observed_job(&self, job: Value) -> (Value, JobState) {
        let observed = self.req.find_observed("batch/v1", "Job", name_of(&job));
        (keep_template(observed, job), JobState::of(observed))
    }

    /// The users' and databases' SQL Job and `UsersReconciled`; returns
    /// whether what it applies is done (there is nothing to apply, or the
    /// Job succeeded).
    fn sql_job(&mut self, primary_image: &str, can_run: bool) -> bool {
        let (cl, req, spec) = (self.cl, self.req, self.spec());
        let Some(script) = sql::users_script(spec) else {
            set_cond(
                &mut self.status.conditions,
                req,
                "UsersReconciled",
                true,
                "NothingToDo",
                "spec has no users or databases",
            );
            return true;
        };
        let (hash, job) = cl.sql_job(primary_image, &script, &self.user_passwords);
        let job_name = name_of(&job).to_string();
        let (job, state) = self.observed_job(job);
        if can_run || state != JobState::Absent {
            self.children.push(job);
        }
        let (ok, reason, message) = match &state {
            JobState::Succeeded => (true, "SqlApplied", format!("Job {job_name} succeeded")),
            JobState::Failed(_) => {
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
        let done = state == JobState::Succeeded;
        self.status.users_reconciled_hash = if done {
            Some(hash)
        } else {
            self.prev.users_reconciled_hash.clone()
        };
        set_cond(
            &mut self.status.conditions,
            req,
            "UsersReconciled",
            ok,
            reason,
            &message,
        );
        done
    }

    /// The data loads: each Job once, recorded in the status when it
    /// succeeded, so a pruned Job is never run again.
    fn data_loads(&mut self, primary_image: &str, can_start: bool) {
        let (cl, spec) = (self.cl, self.spec());
        for load in &spec.data_loads {
            let (hash, job) = cl.load_job(primary_image, load);
            let job_name = name_of(&job).to_string();
            let (job, state) = self.observed_job(job);
            let completed =
                state == JobState::Succeeded || self.prev.completed_data_loads.contains(&hash);
            if state != JobState::Absent || (!completed && can_start) {
                self.children.push(job);
            }
            if matches!(state, JobState::Failed(_)) {
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
    fn restore_holds(&mut self, primary: Option<u32>, no_instances: bool) -> bool {
        let spec = self.spec();
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
        let p = self.cl.instance_name(primary.unwrap_or(0));
        let source = restore::source(self.req.parent_json(), backup);
        let hold = match restore::step(backup, source.as_ref(), spec.version) {
            Step::Wait(reason, message) => {
                self.requeue(Duration::from_secs(30));
                Hold::new(
                    reason,
                    false,
                    restore_record(backup, "Waiting", None, message),
                )
            }
            Step::Blocked(reason, message) => Hold::new(
                reason,
                true,
                restore_record(backup, "Blocked", None, message),
            ),
            Step::Restore {
                claim,
                path,
                method,
            } => match self.restore_job(backup, &p, &claim, &path, method) {
                Some(hold) => hold,
                None => return false,
            },
        };
        self.hold_for_restore(hold, p);
        true
    }

    /// The restore Job on the primary's volumes (made here so the Job can
    /// fill them) while it runs or after it failed; `None` once it
    /// succeeded, and the instances start.
    fn restore_job(
        &mut self,
        backup: &str,
        p: &str,
        claim: &str,
        path: &str,
        method: String,
    ) -> Option<Hold> {
        let (cl, req, spec) = (self.cl, self.req, self.spec());
        let job_name = cl.restore_job_name();
        let observed = req.find_observed("batch/v1", "Job", &job_name);
        let hold = match JobState::of(observed) {
            JobState::Succeeded => {
                self.event(Event::normal(
                    "Restored",
                    format!("restored {method} PostgresBackup {backup} from {claim}:{path} (Job {job_name})"),
                ));
                self.status.restore = Some(restore_record(
                    backup,
                    "Restored",
                    Some(method),
                    format!("restored from {claim}:{path}"),
                ));
                return None;
            }
            JobState::Failed(_) => Hold::new(
                "RestoreFailed",
                true,
                restore_record(
                    backup,
                    "Blocked",
                    Some(method),
                    format!("the restore Job {job_name} failed: see its logs; delete it to retry"),
                ),
            ),
            JobState::Absent | JobState::Running => {
                let message = format!(
                    "Job {job_name} restores the {method} PostgresBackup {backup} from {claim}:{path}"
                );
                Hold::new(
                    "Restoring",
                    false,
                    restore_record(backup, "Restoring", Some(method), message),
                )
            }
        };
        self.children
            .push(cl.pvc(&format!("{p}-data"), p, &spec.storage.size));
        let wal = spec.storage.wal_size.is_some();
        if let Some(size) = &spec.storage.wal_size {
            self.children.push(cl.pvc(&format!("{p}-wal"), p, size));
        }
        let image = self.default_image(spec.version);
        let job = cl.restore_job(&image, p, claim, path, wal);
        self.children.push(keep_template(observed, job));
        Some(hold)
    }

    /// The status and conditions of a cluster held for its restore; a
    /// Warning event when it is blocked for a new reason.
    fn hold_for_restore(&mut self, hold: Hold, primary: String) {
        let (req, blocked, reason) = (self.req, hold.blocked, hold.reason);
        let message = hold.restore.message.clone();
        self.status.restore = Some(hold.restore);
        self.status.phase = "Restoring".into();
        self.status.current_primary = Some(primary);
        self.status.selector = self.cl.instance_selector();
        self.status.version = None;
        let conditions = &mut self.status.conditions;
        set_cond(conditions, req, "Ready", false, reason, &message);
        let progressing = if blocked { "Blocked" } else { reason };
        set_cond(
            conditions,
            req,
            "Progressing",
            !blocked,
            progressing,
            &message,
        );
        let (degraded, why) = if blocked {
            (reason, message.as_str())
        } else {
            ("Healthy", "")
        };
        set_cond(conditions, req, "Degraded", blocked, degraded, why);
        let new_reason = self
            .prev
            .restore
            .as_ref()
            .is_none_or(|r| r.message != message);
        if blocked && new_reason {
            self.event(Event::warning(reason, message));
        }
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
                match JobState::of(job) {
                    JobState::Succeeded => {
                        u.step = UpgradeStep::Starting;
                        u.message = format!("starting the instances on PostgreSQL {}", u.to);
                    }
                    JobState::Failed(_) => {
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
