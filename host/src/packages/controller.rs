//! The package controller: from plugin objects to running revisions, with
//! kube-runtime's `Controller` (the host's own kinds are known at compile
//! time, so the ecosystem's controller fits).
//!
//! One pass over a plugin object ([`reconcile`]), in order:
//!
//! 1. **Resolve** its source (a tag to a digest, with its pull secrets):
//!    `Resolved` on the plugin. A failure leaves what runs running and is
//!    retried with backoff.
//! 2. **A revision per digest**: a new digest gets a revision object
//!    (`<plugin>-<digest>`, numbered one past the highest, `Inactive`,
//!    owned by the plugin).
//! 3. **Prepare** the revisions that matter — the newest and the one
//!    desired `Active` — off the hot path: `Fetched`, `Verified`,
//!    `Compiled` on each, naming the step that refused a bad artifact.
//! 4. **Choose**: with `Automatic`, a newest revision that prepared well
//!    and was never active becomes the desired one; with `Manual`, the one
//!    someone set `Active`. Exactly one revision is desired `Active`.
//! 5. **Follow the supervisor**: when it rolled a revision back on its
//!    own, the objects say so (the failed one `Inactive` with the reason,
//!    the one serving `Active`); otherwise the desired revision, prepared,
//!    is offered and swapped in (drain, probation, as for the directory).
//! 6. **Report**: `Active`, `Healthy` (probation) and the counts on
//!    revisions; `Ready`, `Healthy`, the active revision and digest on the
//!    plugin; events on both.
//! 7. **Prune** inactive revisions past `revisionHistoryLimit`.
//! 8. **Shadow**: a `candidate` source dry-runs beside the active revision.
//!
//! A deleted plugin object unloads its plugin (its children stay, as when
//! a component file is removed).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::conditions::{self, kind};
use super::def::Def;
use super::kinds::PluginKind;
use super::prepare::{Preparer, Refused, Steps};
use super::types::{
    DesiredState, PluginStatus, ReconcilerPluginPolicy, RevisionSpec, RevisionStatus,
};
use crate::runtime::{ObjectHandle, Probe};
use crate::runtime::{SlotSpec, Watching};

/// Label of revisions naming their plugin object.
pub const PLUGIN_LABEL: &str = "operon.dev/plugin-object";

/// What every pass shares.
pub struct Context {
    pub client: kube::Client,
    pub preparer: Preparer,
    pub objects: ObjectHandle,
    /// Where a ClusterReconcilerPlugin's pull secrets are when their
    /// reference names no namespace.
    pub host_namespace: Option<String>,
    /// How often a source is resolved again (a tag may move).
    pub poll: Duration,
    /// Only the plugin objects with these labels (several hosts in one
    /// cluster, each with its own set, as ingress classes do).
    pub selector: Option<String>,
    pub recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        preparer: Preparer,
        objects: ObjectHandle,
        host_namespace: Option<String>,
        poll: Duration,
        selector: Option<String>,
    ) -> Context {
        let reporter = Reporter {
            controller: "operon.dev/packages".into(),
            instance: std::env::var("HOSTNAME").ok(),
        };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            preparer,
            objects,
            host_namespace,
            poll,
            selector,
            failures: Mutex::default(),
        }
    }

    /// The delay before retrying a plugin whose pass hit trouble: doubling
    /// from a second to the poll interval; reset by a clean pass.
    fn backoff(&self, key: &str, trouble: bool) -> Option<Duration> {
        let mut f = self.failures.lock().unwrap_or_else(PoisonError::into_inner);
        if !trouble {
            f.remove(key);
            return None;
        }
        let n = f.entry(key.to_string()).or_default();
        *n = (*n + 1).min(10);
        Some(Duration::from_secs(1 << (*n - 1)).min(self.poll))
    }
}

/// A pass that could not finish (an API call failed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PassError(String);

impl From<kube::Error> for PassError {
    fn from(e: kube::Error) -> PassError {
        PassError(format!("{:#}", crate::api::concise(e)))
    }
}

/// One revision during a pass.
struct Rev<P: PluginKind> {
    name: String,
    spec: RevisionSpec,
    status: RevisionStatus,
    /// The spec to write back (its desired state changed).
    spec_changed: bool,
    steps: Option<Steps>,
    object: P::Revision,
}

impl<P: PluginKind> Rev<P> {
    fn of(object: P::Revision) -> Rev<P> {
        Rev {
            name: object.name_any(),
            spec: P::revision_spec(&object).clone(),
            status: P::revision_status(&object).cloned().unwrap_or_default(),
            spec_changed: false,
            steps: None,
            object,
        }
    }

    /// The component digest of a prepared revision (what the supervisor
    /// knows it by).
    fn component(&self) -> Option<&str> {
        self.steps
            .as_ref()?
            .plugin()
            .map(|p| p.info().digest.as_str())
    }

    fn ever_active(&self) -> bool {
        conditions::has(&self.status.conditions, kind::ACTIVE)
    }

    fn set_desired(&mut self, state: DesiredState) {
        if self.spec.desired_state != state {
            self.spec.desired_state = state;
            self.spec_changed = true;
        }
    }
}

/// The state of one pass over one plugin object.
struct Pass<P: PluginKind> {
    object: Arc<P>,
    def: Def,
    revisions: Vec<Rev<P>>,
    status: PluginStatus,
    /// Something failed that a retry may fix.
    trouble: bool,
    /// The active revision is on probation: look again soon.
    judging: bool,
}

/// Why no revision serves, for the plugin's `Ready=False`: the newest
/// revision's first failed step, so `kubectl get` names the cause.
fn waiting_for<P: PluginKind>(revisions: &[Rev<P>], has_desired: bool) -> String {
    let Some(newest) = revisions.last() else {
        return "no revision yet (see Resolved)".into();
    };
    let failed = [kind::FETCHED, kind::VERIFIED, kind::COMPILED]
        .into_iter()
        .find_map(|ty| {
            newest
                .status
                .conditions
                .iter()
                .find(|c| c.type_ == ty && c.status == "False")
        });
    match failed {
        Some(c) => format!(
            "revision {} {}=False: {}: {}",
            newest.spec.revision, c.type_, c.reason, c.message
        ),
        None if !has_desired && conditions::is_true(&newest.status.conditions, kind::COMPILED) => {
            format!(
                "revision {} waits to be made Active (revisionActivationPolicy: Manual)",
                newest.spec.revision
            )
        }
        None => format!(
            "revision {} is being prepared (fetched, verified, compiled)",
            newest.spec.revision
        ),
    }
}

/// Steps 1–8 of the module docs for one plugin object.
pub async fn reconcile<P: PluginKind>(
    object: Arc<P>,
    ctx: Arc<Context>,
) -> Result<Action, PassError> {
    let policies = if P::TENANT {
        Api::<ReconcilerPluginPolicy>::all(ctx.client.clone())
            .list(&ListParams::default())
            .await?
            .items
    } else {
        Vec::new()
    };
    let def = object.def(ctx.host_namespace.as_deref(), &policies);
    let mut pass = Pass::<P>::load(object, def, &ctx).await?;
    pass.resolve(&ctx).await?;
    pass.prepare(&ctx).await;
    pass.choose();
    let probe = ctx.objects.probe(&pass.def.key).await;
    pass.follow(&ctx, probe).await;
    let probe = ctx.objects.probe(&pass.def.key).await;
    pass.report(probe.as_ref());
    pass.write(&ctx).await?;
    pass.prune(&ctx).await?;
    pass.shadow(&ctx).await;
    let after = ctx
        .backoff(&pass.def.key, pass.trouble)
        .unwrap_or(if pass.judging {
            Duration::from_secs(2)
        } else {
            ctx.poll
        });
    Ok(Action::requeue(after))
}

impl<P: PluginKind> Pass<P> {
    async fn load(object: Arc<P>, def: Def, ctx: &Context) -> Result<Pass<P>, PassError> {
        let api = P::revisions(ctx.client.clone(), def.namespace());
        let labels = format!("{PLUGIN_LABEL}={}", def.name);
        let uid = object.meta().uid.clone().unwrap_or_default();
        let mut revisions: Vec<Rev<P>> = api
            .list(&ListParams::default().labels(&labels))
            .await?
            .items
            .into_iter()
            .filter(|r| r.owner_references().iter().any(|o| o.uid == uid))
            .map(Rev::of)
            .collect();
        revisions.sort_by_key(|r| r.spec.revision);
        Ok(Pass {
            status: object.plugin_status().cloned().unwrap_or_default(),
            object,
            def,
            revisions,
            trouble: false,
            judging: false,
        })
    }

    async fn event(&self, ctx: &Context, type_: EventType, reason: &str, note: String) {
        let reference = self.object.object_ref(&());
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(crate::bounded::message(&note).into_owned()),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&event, &reference).await {
            tracing::debug!(plugin = %self.def.key, error = %e, "could not record an event");
        }
    }

    /// Steps 1 and 2.
    async fn resolve(&mut self, ctx: &Context) -> Result<(), PassError> {
        let (reference, digest) = match ctx.preparer.resolve(&self.def, &self.def.source).await {
            Ok(found) => found,
            Err(Refused { reason, message }) => {
                let c = &mut self.status.conditions;
                conditions::set(c, kind::RESOLVED, Some(false), reason, &message);
                self.trouble = true;
                self.event(ctx, EventType::Warning, reason, message).await;
                return Ok(());
            }
        };
        let c = &mut self.status.conditions;
        let note = format!("{} is {digest}", self.def.source.image);
        conditions::set(c, kind::RESOLVED, Some(true), "Resolved", &note);
        self.status.resolved_digest = Some(digest.clone());
        if self.revisions.iter().any(|r| r.spec.digest == digest) {
            return Ok(());
        }
        let number = self.revisions.last().map_or(1, |r| r.spec.revision + 1);
        let spec = RevisionSpec {
            image: reference.whole(),
            digest: digest.clone(),
            revision: number,
            desired_state: DesiredState::Inactive,
        };
        let hex = digest.strip_prefix("sha256:").unwrap_or(&digest);
        let name = format!("{}-{}", self.def.name, hex.get(..12).unwrap_or(hex));
        let mut revision = P::new_revision(&name, spec);
        let meta = revision.meta_mut();
        meta.namespace = self.def.namespace().map(str::to_string);
        meta.labels = Some([(PLUGIN_LABEL.to_string(), self.def.name.clone())].into());
        meta.owner_references = self.object.controller_owner_ref(&()).map(|o| vec![o]);
        let api = P::revisions(ctx.client.clone(), self.def.namespace());
        let created = api.create(&PostParams::default(), &revision).await?;
        self.revisions.push(Rev::of(created));
        let note = format!("revision {number} for {digest}");
        self.event(ctx, EventType::Normal, "RevisionCreated", note)
            .await;
        Ok(())
    }

    /// Step 3: the newest revision and the desired one.
    async fn prepare(&mut self, ctx: &Context) {
        let resolved = self.status.resolved_digest.clone();
        for rev in &mut self.revisions {
            let matters = rev.spec.desired_state == DesiredState::Active
                || Some(&rev.spec.digest) == resolved.as_ref();
            if !matters {
                continue;
            }
            let Ok(reference) = crate::oci::registry::reference(&rev.spec.image) else {
                continue;
            };
            let steps = ctx
                .preparer
                .prepare(&self.def, &reference, &rev.spec.digest)
                .await;
            record_steps(&mut rev.status, &steps);
            if steps.plugin().is_none() {
                self.trouble |= steps
                    .fetched
                    .as_ref()
                    .is_err_and(|r| r.reason == "RegistryError");
            }
            rev.steps = Some(steps);
        }
    }

    /// Step 4.
    /// Step 4. With `Manual`, the first revision still activates on its
    /// own: nothing else would serve, and no one has chosen yet.
    fn choose(&mut self) {
        use super::types::ActivationPolicy;
        let resolved = self.status.resolved_digest.clone();
        let chosen = self.desired().is_some();
        if (self.def.activation == ActivationPolicy::Automatic || !chosen)
            && let Some(newest) = self
                .revisions
                .iter()
                .position(|r| Some(&r.spec.digest) == resolved.as_ref())
            && self.revisions[newest].component().is_some()
            && !self.revisions[newest].ever_active()
        {
            self.make_desired(newest);
            return;
        }
        // Exactly one desired Active. When several are set so, someone
        // just asked for one that does not serve (a rollback by `kubectl
        // patch`): that one, the newest of such requests; else the newest.
        let asked = |r: &Rev<P>| r.spec.desired_state == DesiredState::Active;
        let requested = self
            .revisions
            .iter()
            .rposition(|r| asked(r) && !conditions::is_true(&r.status.conditions, kind::ACTIVE));
        let several = self.revisions.iter().filter(|r| asked(r)).count() > 1;
        let chosen = match requested {
            Some(at) if several => Some(at),
            _ => self.revisions.iter().rposition(asked),
        };
        if let Some(at) = chosen {
            self.make_desired(at);
        }
    }

    fn make_desired(&mut self, at: usize) {
        for (i, r) in self.revisions.iter_mut().enumerate() {
            r.set_desired(if i == at {
                DesiredState::Active
            } else {
                DesiredState::Inactive
            });
        }
    }

    fn desired(&self) -> Option<usize> {
        self.revisions
            .iter()
            .position(|r| r.spec.desired_state == DesiredState::Active)
    }

    /// Step 5.
    async fn follow(&mut self, ctx: &Context, probe: Option<Probe>) {
        let Some(at) = self.desired() else {
            return;
        };
        let Some(component) = self.revisions[at].component().map(str::to_string) else {
            return; // Not prepared: what runs keeps running.
        };
        if let Some(probe) = &probe {
            if probe.active.as_deref() == Some(component.as_str()) {
                return;
            }
            // A rollback not yet recorded in the objects; once recorded,
            // the revision desired Active again is someone's new request.
            let recorded = self.revisions[at]
                .status
                .conditions
                .iter()
                .any(|c| c.type_ == kind::ACTIVE && c.reason == "RolledBack");
            if let Some((_, why)) = probe.rolled_back.iter().find(|(d, _)| *d == component)
                && !recorded
            {
                self.rolled_back(ctx, at, probe, why.clone()).await;
                return;
            }
        }
        let plugin = self.revisions[at]
            .steps
            .as_ref()
            .and_then(Steps::plugin)
            .cloned();
        let Some(plugin) = plugin else { return };
        let spec = SlotSpec {
            config: self.def.config.clone(),
            tenant: self.def.namespace().map(str::to_string),
        };
        let number = u32::try_from(self.revisions[at].spec.revision).unwrap_or(u32::MAX);
        let rev = &mut self.revisions[at];
        match ctx.objects.offer(&self.def.key, plugin, number, spec).await {
            Ok(()) => {
                let note = format!("revision {number} ({}) is active", rev.spec.digest);
                conditions::set(
                    &mut rev.status.conditions,
                    kind::ACTIVE,
                    Some(true),
                    "Activated",
                    &note,
                );
                self.event(ctx, EventType::Normal, "RevisionActivated", note)
                    .await;
            }
            Err(why) => {
                let c = &mut rev.status.conditions;
                conditions::set(c, kind::ACTIVE, Some(false), "StartFailed", &why);
                self.trouble = true;
                self.event(ctx, EventType::Warning, "StartFailed", why)
                    .await;
            }
        }
    }

    /// The supervisor left the desired revision because it failed: the
    /// objects follow (it becomes Inactive with the reason; the one
    /// serving becomes the desired one).
    async fn rolled_back(&mut self, ctx: &Context, at: usize, probe: &Probe, why: String) {
        let rev = &mut self.revisions[at];
        conditions::set(
            &mut rev.status.conditions,
            kind::HEALTHY,
            Some(false),
            "RolledBack",
            &why,
        );
        conditions::set(
            &mut rev.status.conditions,
            kind::ACTIVE,
            Some(false),
            "RolledBack",
            &why,
        );
        let serving = self
            .revisions
            .iter()
            .position(|r| r.component().is_some() && r.component() == probe.active.as_deref());
        match serving {
            Some(i) => self.make_desired(i),
            None => self.revisions[at].set_desired(DesiredState::Inactive),
        }
        self.event(ctx, EventType::Warning, "RolledBack", why).await;
    }

    /// Step 6: conditions from what runs.
    fn report(&mut self, probe: Option<&Probe>) {
        let active = probe.and_then(|p| p.active.clone());
        let mut serving = None;
        for (i, rev) in self.revisions.iter_mut().enumerate() {
            let runs = active.is_some() && rev.component() == active.as_deref();
            if runs {
                serving = Some(i);
                let view = probe.and_then(|p| p.tracker.as_ref());
                if let Some(v) = view {
                    rev.status.reconciles = Some(v.reconciles);
                    rev.status.failures = Some(v.failures);
                    let (ok, reason, note) = match v.probation {
                        "judging" => (
                            None,
                            "Probation",
                            format!("{} reconciles so far", v.reconciles),
                        ),
                        _ => (
                            Some(true),
                            "Serving",
                            format!("{} reconciles, {} failed", v.reconciles, v.failures),
                        ),
                    };
                    self.judging |= ok.is_none();
                    conditions::set(&mut rev.status.conditions, kind::HEALTHY, ok, reason, note);
                }
                conditions::set(
                    &mut rev.status.conditions,
                    kind::ACTIVE,
                    Some(true),
                    "Serving",
                    "it serves",
                );
            } else if conditions::is_true(&rev.status.conditions, kind::ACTIVE) {
                conditions::set(
                    &mut rev.status.conditions,
                    kind::ACTIVE,
                    Some(false),
                    "Superseded",
                    "another revision serves",
                );
            }
        }
        let has_desired = self.desired().is_some();
        let c = &mut self.status.conditions;
        match serving.map(|i| &self.revisions[i]) {
            Some(rev) => {
                self.status.active_revision = Some(rev.spec.revision);
                self.status.active_digest = Some(rev.spec.digest.clone());
                conditions::set(
                    c,
                    kind::READY,
                    Some(true),
                    "Serving",
                    format!("revision {} serves", rev.spec.revision),
                );
                let healthy = rev
                    .status
                    .conditions
                    .iter()
                    .find(|x| x.type_ == kind::HEALTHY)
                    .cloned();
                if let Some(h) = healthy {
                    let ok = match h.status.as_str() {
                        "True" => Some(true),
                        "False" => Some(false),
                        _ => None,
                    };
                    conditions::set(c, kind::HEALTHY, ok, &h.reason, h.message);
                }
            }
            None => {
                let why = waiting_for(&self.revisions, has_desired);
                conditions::set(c, kind::READY, Some(false), "NoActiveRevision", why);
            }
        }
        self.status.observed_generation = self.def.generation;
    }

    /// Writes what changed: revision specs and statuses, the plugin's status.
    async fn write(&mut self, ctx: &Context) -> Result<(), PassError> {
        let api = P::revisions(ctx.client.clone(), self.def.namespace());
        for rev in &mut self.revisions {
            if rev.spec_changed {
                let patch = json!({"spec": {"desiredState": rev.spec.desired_state}});
                api.patch(&rev.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
                rev.spec_changed = false;
            }
            if Some(&rev.status) != P::revision_status(&rev.object) {
                let patch = json!({"status": rev.status});
                api.patch_status(&rev.name, &PatchParams::default(), &Patch::Merge(patch))
                    .await?;
            }
        }
        if Some(&self.status) != self.object.plugin_status() {
            let plugins = P::api(ctx.client.clone(), self.def.namespace());
            let patch = json!({"status": self.status});
            plugins
                .patch_status(
                    &self.def.name,
                    &PatchParams::default(),
                    &Patch::Merge(patch),
                )
                .await?;
        }
        Ok(())
    }

    /// Step 7: inactive revisions past the history limit, oldest first.
    async fn prune(&mut self, ctx: &Context) -> Result<(), PassError> {
        let api = P::revisions(ctx.client.clone(), self.def.namespace());
        let inactive: Vec<String> = self
            .revisions
            .iter()
            .rev()
            .filter(|r| r.spec.desired_state == DesiredState::Inactive)
            .filter(|r| !conditions::is_true(&r.status.conditions, kind::ACTIVE))
            .skip(self.def.history_limit as usize)
            .map(|r| r.name.clone())
            .collect();
        for name in inactive {
            match api.delete(&name, &Default::default()).await {
                Ok(_) | Err(kube::Error::Api(_)) => {}
                Err(e) => return Err(e.into()),
            }
            self.revisions.retain(|r| r.name != name);
        }
        Ok(())
    }

    /// Step 8.
    async fn shadow(&mut self, ctx: &Context) {
        let Some(source) = self.def.candidate.clone() else {
            ctx.objects.shadow(&self.def.key, None);
            return;
        };
        let candidate = match ctx.preparer.resolve(&self.def, &source).await {
            Ok((reference, digest)) => ctx.preparer.prepare(&self.def, &reference, &digest).await,
            Err(e) => {
                tracing::warn!(plugin = %self.def.key, reason = e.reason, "candidate: {}", e.message);
                return;
            }
        };
        ctx.objects
            .shadow(&self.def.key, candidate.plugin().cloned());
    }
}

/// The conditions of the steps a revision went through.
fn record_steps(status: &mut RevisionStatus, steps: &Steps) {
    let c = &mut status.conditions;
    match &steps.fetched {
        Ok(note) => conditions::set(c, kind::FETCHED, Some(true), "Fetched", note),
        Err(r) => conditions::set(c, kind::FETCHED, Some(false), r.reason, &r.message),
    }
    match &steps.verified {
        Some(Ok(note)) => conditions::set(c, kind::VERIFIED, Some(true), "Verified", note),
        Some(Err(r)) => conditions::set(c, kind::VERIFIED, Some(false), r.reason, &r.message),
        None => {}
    }
    match &steps.compiled {
        Some(Ok(p)) => {
            let info = p.info();
            let limits = p.limits();
            // The limits it runs with, so a tenant sees what its
            // namespace's policy clamped.
            let note = format!(
                "plugin {} {} ({}) compiled in {:.0} ms{}; limits: memory {} MiB, timeout {} ms, {} children",
                p.name(),
                p.registration().version,
                info.short_digest(),
                info.compile_time.as_secs_f64() * 1000.0,
                if info.from_cache {
                    ", from the cache"
                } else {
                    ""
                },
                limits.memory_bytes >> 20,
                limits.timeout.as_millis(),
                limits.max_children,
            );
            conditions::set(c, kind::COMPILED, Some(true), "Compiled", note);
        }
        Some(Err(r)) => conditions::set(c, kind::COMPILED, Some(false), r.reason, &r.message),
        None => {}
    }
}

/// Runs the package controller of one kind until `shutdown`: passes over
/// its objects (and their revisions' changes), and unloads the plugin of a
/// deleted object.
pub async fn run<P: PluginKind>(
    ctx: Arc<Context>,
    watching: Watching,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = watching.client_or(&ctx.client);
    let plugins = P::api(client.clone(), None);
    let revisions = P::revisions(client, None);
    let mut selected = watching.config();
    if let Some(selector) = &ctx.selector {
        selected = selected.labels(selector);
    }
    let deletions = tokio::spawn(unload_deleted::<P>(
        ctx.clone(),
        plugins.clone(),
        selected.clone(),
    ));
    Controller::new(plugins, selected)
        .owns(revisions, watching.config())
        .graceful_shutdown_on(shutdown)
        .run(reconcile::<P>, error_policy::<P>, ctx)
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "package controller");
            }
        })
        .await;
    deletions.abort();
}

fn error_policy<P: PluginKind>(object: Arc<P>, e: &PassError, _: Arc<Context>) -> Action {
    tracing::warn!(plugin = %object.name_any(), error = %e, "plugin object pass failed; retrying");
    Action::requeue(Duration::from_secs(5))
}

/// Unloads the plugin of each plugin object deleted.
async fn unload_deleted<P: PluginKind>(ctx: Arc<Context>, api: Api<P>, selected: watcher::Config) {
    let mut events = watcher(api, selected).boxed();
    while let Some(event) = events.next().await {
        if let Ok(watcher::Event::Delete(object)) = event {
            let def = object.def(ctx.host_namespace.as_deref(), &[]);
            tracing::info!(plugin = %def.key, "plugin object deleted");
            ctx.objects.withdraw(&def.key);
            ctx.preparer.forget(&def.key);
        }
    }
}
