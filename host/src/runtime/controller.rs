//! One controller per plugin: routes changes of its kinds to parent keys,
//! and runs workers that reconcile a key in the plugin's sandbox and apply
//! the answer.
//!
//! Data flows one way: change → queue → reconcile (engine, on a blocking
//! thread: Wasm is CPU work) → apply. Failures set `Synced=False` with the
//! reason, record a Warning event, and either back off (retryable errors,
//! traps, API errors) or wait for the parent to change (permanent errors,
//! invalid output).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::api::DynamicObject;
use serde_json::Value;
use tokio::sync::{Semaphore, SemaphorePermit, broadcast};

use super::cache::{CacheReader, Caches, Change, KindWatch, OwnedCaches};
use super::queue::{Backoff, Priority, WorkQueue};
use crate::apply::status::{self, PatchFailed, Synced, reason};
use crate::apply::validate::SizeLimits;
use crate::apply::{self, ApplyError, events, finalizer};
use crate::bounded;
use crate::contract::{Gvk, PluginError, RelatedMapping, Request};
use crate::kinds::Kinds;
use crate::plugin::revisions::{RollbackPolicy, Tracker, Verdict};
use crate::plugin::shadow::{self, ShadowSlot};
use crate::plugin::{CallContext, CallError, LoadError, Missing, Plugin, privileged};
use crate::server::Metrics;

/// Settings of a controller.
#[derive(Debug, Clone)]
pub struct Options {
    /// Calls of this plugin at once (reconciles and `map-related`): its
    /// admission limit on the shared instance pool.
    pub workers: usize,
    pub backoff: Backoff,
    /// Check answers against the grant before applying (always, except
    /// under the `--unsafe-skip-grant-checks` test hook).
    pub enforce_grants: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 4,
            backoff: Backoff::default(),
            enforce_grants: true,
        }
    }
}

/// What every controller of a host shares.
#[derive(Clone)]
pub struct Shared {
    pub caches: Arc<Caches>,
    pub metrics: Arc<Metrics>,
    /// Reconciles at once across all plugins.
    pub global: Arc<Semaphore>,
}

/// What ties a controller to the plugin's revisions: a controller runs one
/// revision (a swap starts another controller); its tracker judges that
/// revision, and the shadow slot (shared by all of the plugin's
/// controllers) holds the candidate to dry-run beside it.
#[derive(Clone)]
pub struct RevisionHooks {
    pub tracker: Arc<Tracker>,
    pub shadow: Arc<ShadowSlot>,
    /// Called when the tracker says the revision must go (with why).
    pub on_failing: Arc<dyn Fn(String) + Send + Sync>,
}

impl RevisionHooks {
    /// No probation, no candidate: a controller outside hot swap.
    pub fn none() -> RevisionHooks {
        RevisionHooks {
            tracker: Arc::new(Tracker::new(RollbackPolicy::default(), None)),
            shadow: Arc::default(),
            on_failing: Arc::new(|_| {}),
        }
    }
}

/// The controller of one plugin.
pub struct Controller {
    plugin: Arc<Plugin>,
    hooks: RevisionHooks,
    parent: Arc<KindWatch>,
    owned: Vec<Arc<KindWatch>>,
    /// Every kind acquired (to release on stop).
    acquired: Vec<Gvk>,
    caches: Arc<Caches>,
    /// Where this plugin's writes go: the host's client, or one acting as
    /// the plugin's ServiceAccount (`--impersonate`).
    writer: Arc<Kinds>,
    queue: WorkQueue,
    metrics: Arc<Metrics>,
    global: Arc<Semaphore>,
    /// The plugin's admission limit: `options.workers` calls at once.
    admission: Semaphore,
    options: Options,
    config: Vec<(String, String)>,
    /// Keys that failed permanently, with the parent generation then: not
    /// retried until the generation changes.
    permanent: Mutex<HashMap<String, Option<i64>>>,
    /// Parents (key → uid) whose finalizer this host removed. Until the
    /// watch delivers their deletion, the cache may still show them with
    /// the finalizer; remembering them keeps the finalizing call to once.
    finalized: Mutex<HashMap<String, String>>,
    /// Tasks routing watch changes to the queue (aborted on stop).
    routes: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Worker tasks (they end on their own once the queue shuts down and
    /// the reconcile in hand is done).
    workers: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// Owning a cluster-scoped kind needs the kind named in the grant (see
/// [`privileged`]); discovery has told the scope by now.
fn cluster_scoped_granted(plugin: &Plugin, owned: &[Arc<KindWatch>]) -> anyhow::Result<()> {
    let missing: Vec<Missing> = owned
        .iter()
        .filter(|w| !w.kind.namespaced && !plugin.grant().explicitly_owns(&w.kind.gvk))
        .filter(|w| privileged::why(&w.kind.gvk).is_none()) // refused at load already
        .map(|w| Missing::OwnsPrivileged {
            kind: w.kind.gvk.clone(),
            why: privileged::CLUSTER_SCOPED,
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(LoadError::NotGranted {
        plugin: plugin.name().to_string(),
        missing,
    }
    .into())
}

/// `namespace/name` (empty namespace for cluster-scoped parents).
fn key(namespace: Option<&str>, name: &str) -> String {
    format!("{}/{name}", namespace.unwrap_or_default())
}

fn split(key: &str) -> (Option<&str>, &str) {
    match key.split_once('/') {
        Some(("", name)) => (None, name),
        Some((ns, name)) => (Some(ns), name),
        None => (None, key),
    }
}

fn group_of(api_version: &str) -> &str {
    api_version.split_once('/').map_or("", |(g, _)| g)
}

impl Controller {
    /// Opens (or shares) the watches the plugin needs and starts routing
    /// their changes; workers start with [`Controller::run`].
    pub async fn start(
        plugin: Arc<Plugin>,
        shared: &Shared,
        writer: Arc<Kinds>,
        options: Options,
        config: Vec<(String, String)>,
        hooks: RevisionHooks,
    ) -> anyhow::Result<Arc<Controller>> {
        let Shared {
            caches,
            metrics,
            global,
        } = shared.clone();
        let reg = plugin.registration().clone();
        let mut acquired = Vec::new();
        let watches = async {
            let parent = caches.acquire(&reg.parent.kind).await?;
            acquired.push(reg.parent.kind.clone());
            let mut owned = Vec::new();
            for gvk in &reg.owns {
                owned.push(caches.acquire(gvk).await?);
                acquired.push(gvk.clone());
            }
            let mut related = Vec::new();
            for r in &reg.related {
                related.push((caches.acquire(&r.kind).await?, r.mapping.clone()));
                acquired.push(r.kind.clone());
            }
            for gvk in &reg.capabilities.reads {
                if !acquired.iter().any(|a| a.same_kind(gvk)) {
                    caches.acquire(gvk).await?;
                    acquired.push(gvk.clone());
                }
            }
            anyhow::Ok((parent, owned, related))
        };
        let watched = match watches.await {
            Ok((parent, owned, related)) => {
                cluster_scoped_granted(&plugin, &owned).map(|()| (parent, owned, related))
            }
            Err(e) => Err(e),
        };
        let (parent, owned, related) = match watched {
            Ok(w) => w,
            Err(e) => {
                // A failed start (say, a kind the cluster does not serve)
                // must not leave watches open behind it.
                for gvk in &acquired {
                    caches.release(gvk);
                }
                return Err(e);
            }
        };
        let controller = Arc::new(Controller {
            plugin,
            hooks,
            parent,
            owned,
            acquired,
            caches,
            writer,
            queue: WorkQueue::new(options.backoff),
            metrics,
            global,
            admission: Semaphore::new(options.workers.max(1)),
            options,
            config,
            permanent: Mutex::default(),
            finalized: Mutex::default(),
            routes: Mutex::default(),
            workers: Mutex::default(),
        });
        // Subscribe before listing the store, so no change falls between.
        let mut tasks = Vec::new();
        let rx = controller.parent.subscribe();
        tasks.push(tokio::spawn(controller.clone().route(rx, Route::Parent)));
        for w in &controller.owned {
            tasks.push(tokio::spawn(
                controller.clone().route(w.subscribe(), Route::Owned),
            ));
        }
        for (w, mapping) in related {
            tasks.push(tokio::spawn(
                controller
                    .clone()
                    .route(w.subscribe(), Route::Related(mapping)),
            ));
        }
        controller
            .routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(tasks);
        controller.resync(Priority::Low);
        Ok(controller)
    }

    pub fn name(&self) -> &str {
        self.plugin.name()
    }

    pub fn plugin(&self) -> &Arc<Plugin> {
        &self.plugin
    }

    /// Parents in the cache now.
    pub fn parent_count(&self) -> usize {
        self.parent.all().len()
    }

    /// Takes over what the controller of the previous revision knew that
    /// the caches do not: which parents it finalized (so a deletion still
    /// in flight is not finalized twice).
    pub fn inherit(&self, previous: &Controller) {
        let done = previous
            .finalized
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        self.finalized
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(done);
    }

    /// Waits until every watch of this controller has its initial list.
    pub async fn wait_synced(&self) {
        self.parent.wait_synced().await;
        for w in &self.owned {
            w.wait_synced().await;
        }
        // The parents listed before the subscription may have been missed.
        self.resync(Priority::Low);
    }

    /// Queues every cached parent.
    fn resync(&self, priority: Priority) {
        for p in self.parent.all() {
            self.queue.add(
                &key(
                    p.metadata.namespace.as_deref(),
                    p.metadata.name.as_deref().unwrap_or_default(),
                ),
                priority,
            );
        }
    }

    /// Starts the workers.
    pub fn run(self: &Arc<Self>) {
        let mut workers = self.workers.lock().unwrap_or_else(PoisonError::into_inner);
        for _ in 0..self.options.workers.max(1) {
            workers.push(tokio::spawn(self.clone().work()));
        }
    }

    /// Stops taking work; returns when in-flight reconciles are done
    /// (applied, status written) or `grace` has passed. Watches are
    /// released (closed if no other controller uses them).
    pub async fn stop(&self, grace: Duration) {
        self.queue.shutdown();
        for t in std::mem::take(&mut *self.routes.lock().unwrap_or_else(PoisonError::into_inner)) {
            // Routing tasks never end on their own.
            t.abort();
        }
        let workers: Vec<_> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(PoisonError::into_inner));
        let deadline = Instant::now() + grace;
        for mut t in workers {
            let left = deadline.saturating_duration_since(Instant::now());
            if tokio::time::timeout(left, &mut t).await.is_err() {
                tracing::warn!(
                    plugin = self.name(),
                    "a reconcile did not finish within the grace period"
                );
                t.abort();
            }
        }
        for gvk in &self.acquired {
            self.caches.release(gvk);
        }
    }

    /// Counts one reconcile for the revision and acts on the verdict.
    fn judge(&self, failure: Option<&str>) {
        self.metrics.revision_reconcile(
            self.name(),
            &self.plugin.info().digest[..12],
            failure.is_none(),
        );
        match self.hooks.tracker.record(failure) {
            Verdict::Pending => {}
            Verdict::Healthy => tracing::info!(
                plugin = self.name(),
                revision = &self.plugin.info().digest[..12],
                "the new revision passed its probation"
            ),
            Verdict::RollBack(why) => (self.hooks.on_failing)(why),
        }
    }

    /// Compares the candidate's dry run with the active answer; nothing of
    /// the candidate is applied.
    fn compare_shadow(
        &self,
        key: &str,
        candidate: &shadow::Candidate,
        active: &Result<crate::contract::Outcome, CallError>,
        dry: &Result<crate::contract::Outcome, CallError>,
    ) {
        let (difference, failed) = match (active, dry) {
            (Ok(a), Ok(c)) => (shadow::diff(a, c), false),
            (Ok(_), Err(e)) => (Some(format!("the candidate failed: {e}")), true),
            (Err(e), Ok(_)) => (
                Some(format!(
                    "the active revision failed ({e}); the candidate answered"
                )),
                false,
            ),
            (Err(_), Err(_)) => (None, false),
        };
        self.metrics
            .shadow_reconcile(self.name(), candidate.label(), difference.is_some(), failed);
        candidate.record(key, difference, failed);
    }

    async fn route(self: Arc<Self>, mut rx: broadcast::Receiver<Change>, route: Route) {
        loop {
            match rx.recv().await {
                Ok(change) => {
                    let (obj, prio) = match &change {
                        Change::Applied(o, p) => (o, *p),
                        Change::Deleted(o) => (o, Priority::High),
                    };
                    for k in self.keys_for(obj, &route).await {
                        self.queue.add(&k, prio);
                        self.metrics.workqueue_adds_total(self.name());
                    }
                    self.metrics
                        .workqueue_depth(self.name(), self.queue.depth() as i64);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(
                        plugin = self.name(),
                        missed = n,
                        "fell behind the watch; resyncing"
                    );
                    self.resync(Priority::Low);
                }
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }

    /// Which parents a change concerns.
    async fn keys_for(&self, obj: &DynamicObject, route: &Route) -> Vec<String> {
        let ns = obj.metadata.namespace.as_deref();
        match route {
            Route::Parent => vec![key(ns, obj.metadata.name.as_deref().unwrap_or_default())],
            Route::Owned => {
                let parent = &self.plugin.registration().parent.kind;
                obj.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .filter(|o| {
                        o.controller == Some(true)
                            && o.kind == parent.kind
                            && group_of(&o.api_version) == parent.group
                    })
                    .map(|o| {
                        key(
                            if self.parent.kind.namespaced {
                                ns
                            } else {
                                None
                            },
                            &o.name,
                        )
                    })
                    .collect()
            }
            Route::Related(mapping) => self.map_related(obj, mapping).await,
        }
    }

    async fn map_related(&self, obj: &DynamicObject, mapping: &RelatedMapping) -> Vec<String> {
        let ns = obj.metadata.namespace.as_deref();
        let value = serde_json::to_value(obj).unwrap_or(Value::Null);
        match mapping {
            RelatedMapping::Label(label) => obj
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(label))
                .map(|name| vec![key(ns, name)])
                .unwrap_or_default(),
            RelatedMapping::Field(path) => {
                let pointer = format!("/{}", path.replace('.', "/"));
                value
                    .pointer(&pointer)
                    .and_then(Value::as_str)
                    .map(|name| vec![key(ns, name)])
                    .unwrap_or_default()
            }
            RelatedMapping::Namespace => self
                .parent
                .all()
                .iter()
                .filter(|p| p.metadata.namespace.as_deref() == ns)
                .map(|p| key(ns, p.metadata.name.as_deref().unwrap_or_default()))
                .collect(),
            RelatedMapping::Custom => {
                // Reads are confined as for a parent in the related
                // object's namespace (the grant decides how far from it).
                let mut ctx =
                    self.call_context(&key(ns, obj.metadata.name.as_deref().unwrap_or_default()));
                ctx.namespace = ns.map(str::to_string);
                let _admitted = self.admit().await;
                match self.plugin.map(&value.to_string(), &ctx) {
                    Ok(refs) => refs
                        .iter()
                        .map(|r| key(r.namespace.as_deref(), &r.name))
                        .collect(),
                    Err(e) => {
                        tracing::warn!(plugin = self.name(), error = %bounded::message(&e.to_string()), "map-related failed");
                        Vec::new()
                    }
                }
            }
        }
    }

    /// Waits for one of the plugin's admission slots; the slot is held (and
    /// counted in flight) until the returned guard drops.
    async fn admit(&self) -> Option<Admitted<'_>> {
        let permit = match self.admission.try_acquire() {
            Ok(p) => p,
            Err(_) => {
                self.metrics.plugin_admission_wait(self.name());
                self.admission.acquire().await.ok()?
            }
        };
        self.metrics.plugin_inflight(self.name(), 1);
        Some(Admitted {
            _permit: permit,
            metrics: &self.metrics,
            plugin: self.name(),
        })
    }

    fn call_context(&self, subject: &str) -> CallContext {
        let namespace = match split(subject) {
            (Some(ns), _) if self.parent.kind.namespaced => Some(ns.to_string()),
            _ => None,
        };
        CallContext {
            namespace,
            cluster: Arc::new(CacheReader {
                caches: self.caches.clone(),
            }),
            subject: subject.to_string(),
            fixed_time: None,
        }
    }

    async fn work(self: Arc<Self>) {
        while let Some(item) = self.queue.next().await {
            let Ok(_permit) = self.global.acquire().await else {
                return;
            };
            self.metrics
                .workqueue_queue_duration(self.name(), item.waited.as_secs_f64());
            self.metrics
                .workqueue_depth(self.name(), self.queue.depth() as i64);
            let start = Instant::now();
            let result = self.reconcile(&item.key).await;
            self.metrics
                .reconcile_time(self.name(), start.elapsed().as_secs_f64());
            self.metrics.reconcile_total(self.name(), result);
            self.queue.done(&item.key);
        }
    }

    /// Reconciles one key; returns the result label for metrics.
    async fn reconcile(&self, key: &str) -> &'static str {
        let (ns, name) = split(key);
        let Some(parent_obj) = self.parent.get(ns, name) else {
            // Deleted: its children go with it (ownerReferences).
            self.finalized
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(key);
            return "success";
        };
        let parent = self.parent.to_json(&parent_obj);
        let reg = self.plugin.registration();
        let fin = finalizer::name(self.name());
        let deleting = finalizer::is_deleting(&parent);
        if deleting && !(reg.finalizer && finalizer::has(&parent, &fin)) {
            return "success";
        }
        let uid = parent_obj.metadata.uid.clone().unwrap_or_default();
        if deleting
            && self
                .finalized
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get(key)
                == Some(&uid)
        {
            // Finalized already; the cache has not caught up yet.
            return "success";
        }
        if !deleting
            && reg.finalizer
            && !finalizer::has(&parent, &fin)
            && let Err(e) = finalizer::add(&self.writer, &self.parent.kind, &parent, &fin).await
        {
            tracing::warn!(plugin = self.name(), parent = key, error = %format!("{e:#}"), "adding the finalizer failed");
            self.queue.retry(key);
            return "error";
        }
        let generation = parent_obj.metadata.generation;
        {
            let mut permanent = self
                .permanent
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match permanent.get(key) {
                Some(g) if *g == generation && !deleting => return "success",
                Some(_) => {
                    permanent.remove(key);
                }
                None => {}
            }
        }
        let observed: Vec<Value> = self
            .owned
            .iter()
            .flat_map(|w| {
                w.all()
                    .into_iter()
                    .filter(|o| {
                        o.metadata
                            .owner_references
                            .iter()
                            .flatten()
                            .any(|r| r.uid == uid && r.controller == Some(true))
                    })
                    .map(|o| w.to_json(&o))
                    .collect::<Vec<_>>()
            })
            .collect();
        let mut request = Request::new(
            parent.to_string(),
            observed.iter().map(Value::to_string).collect(),
            self.config.clone(),
        );
        request.finalizing = deleting;
        let plugin = self.plugin.clone();
        let ctx = self.call_context(key);
        let candidate = self.hooks.shadow.get();
        let admitted = self.admit().await;
        let called = tokio::task::spawn_blocking(move || {
            let (result, stats) = plugin.reconcile(&request, &ctx);
            // The shadow candidate answers the same request, in dry run.
            let dry = candidate.map(|c| {
                let answer = c.plugin.reconcile(&request, &ctx).0;
                (c, answer)
            });
            (result, stats, dry)
        })
        .await;
        drop(admitted);
        let (result, stats) = match called {
            Ok((result, stats, dry)) => {
                if let Some((candidate, answer)) = dry {
                    self.compare_shadow(key, &candidate, &result, &answer);
                }
                (result, stats)
            }
            Err(e) => {
                tracing::error!(plugin = self.name(), parent = key, error = %e, "reconcile task failed");
                self.queue.retry(key);
                return "error";
            }
        };
        self.metrics
            .plugin_reconcile_duration(self.name(), stats.duration.as_secs_f64());
        self.metrics
            .plugin_memory_peak(self.name(), stats.memory_peak as u64);
        let outcome = match result {
            Ok(outcome) => outcome,
            Err(e) => {
                let (reason, retry) = match &e {
                    CallError::Plugin(PluginError::Permanent(_)) => ("ReconcileError", false),
                    CallError::Plugin(PluginError::Retryable(_)) => ("ReconcileError", true),
                    CallError::Trap { reason, .. } => {
                        self.metrics.plugin_trap(self.name(), reason.as_str());
                        ("PluginTrap", true)
                    }
                    CallError::InvalidOutput(_) => ("InvalidOutput", false),
                };
                self.judge(Some(&format!(
                    "{reason}: {}",
                    bounded::message(&e.to_string())
                )));
                return self
                    .fail(key, &parent, generation, reason, &e.to_string(), retry)
                    .await;
            }
        };
        let applied = apply::apply_outcome(
            &self.writer,
            self.name(),
            reg,
            &parent,
            &observed,
            &outcome,
            self.checks(),
            &OwnedCaches(&self.owned),
        )
        .await;
        if let Err(e) = applied {
            let (why, retry, plugins_fault) = match &e {
                ApplyError::Invalid(_) => (reason::INVALID, false, true),
                ApplyError::TooLarge(_) => (reason::TOO_LARGE, false, true),
                ApplyError::NotOurs(_) => (reason::ADOPTION_REFUSED, true, true),
                ApplyError::Api(_) => (reason::APPLY_FAILED, true, false),
            };
            let message = e.to_string();
            if plugins_fault {
                self.judge(Some(&format!("{why}: {}", bounded::message(&message))));
            }
            return self
                .fail(key, &parent, generation, why, &message, retry)
                .await;
        }
        self.judge(None);
        let status = self
            .patch_status(&parent, outcome.status.as_ref(), Synced::ok())
            .await;
        for event in &outcome.events {
            events::record(self.writer.client(), &parent, self.name(), event).await;
        }
        if let Err(e) = status {
            if !(deleting && outcome.finalized) {
                return self.status_failed(key, &parent, generation, &e).await;
            }
            // A parent on its way out: its status matters less than
            // letting it go.
            self.metrics
                .status_write_failure(self.name(), &e.code_label());
            tracing::warn!(plugin = self.name(), parent = key, "{e}");
        }
        if deleting
            && outcome.finalized
            && let Err(e) = finalizer::remove(&self.writer, &self.parent.kind, &parent, &fin).await
        {
            tracing::warn!(plugin = self.name(), parent = key, error = %format!("{e:#}"), "removing the finalizer failed");
            self.queue.retry(key);
            return "error";
        }
        if deleting && outcome.finalized {
            self.finalized
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.to_string(), uid);
        }
        self.queue.forget(key);
        match outcome.requeue_after_ms {
            Some(ms) => {
                self.queue.add_after(key, Duration::from_millis(ms));
                "requeue_after"
            }
            None => "success",
        }
    }

    /// Reports a failed reconcile on the parent and schedules what follows.
    /// The Warning event says which attempt this was and when the next one
    /// comes, so the backoff is visible to users (and to tests) without
    /// reading host logs.
    async fn fail(
        &self,
        key: &str,
        parent: &Value,
        generation: Option<i64>,
        reason: &str,
        message: &str,
        retry: bool,
    ) -> &'static str {
        self.metrics.reconcile_errors_total(self.name());
        // Room for the attempt note after the message, within the bound.
        let message = bounded::cut(message, bounded::MESSAGE_BYTES - 64);
        let note = if retry {
            self.metrics.workqueue_retries_total(self.name());
            let delay = self.queue.retry(key);
            let attempt = self.queue.failures(key);
            format!(
                "{message} (attempt {attempt}; next try in {}ms)",
                delay.as_millis()
            )
        } else {
            self.permanent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key.to_string(), generation);
            format!("{message} (not retried until the parent changes)")
        };
        tracing::warn!(plugin = self.name(), parent = key, reason, "{note}");
        if let Err(e) = self
            .patch_status(parent, None, Synced::failed(reason, message.as_ref()))
            .await
        {
            self.metrics
                .status_write_failure(self.name(), &e.code_label());
            tracing::warn!(plugin = self.name(), parent = key, "{e}");
        }
        let event = events::host_event(crate::contract::EventType::Warning, "ReconcileError", note);
        events::record(self.writer.client(), parent, self.name(), &event).await;
        "error"
    }

    /// The API server refused the parent's new status: records that on the
    /// parent as far as it can (a minimal status with only `Synced=False`,
    /// a Warning event, the metric, a log line) and retries with backoff
    /// when the same patch may pass later; a status too large or invalid
    /// waits for the parent to change.
    async fn status_failed(
        &self,
        key: &str,
        parent: &Value,
        generation: Option<i64>,
        e: &PatchFailed,
    ) -> &'static str {
        self.metrics
            .status_write_failure(self.name(), &e.code_label());
        self.fail(
            key,
            parent,
            generation,
            reason::STATUS_WRITE_FAILED,
            &e.to_string(),
            e.retryable(),
        )
        .await
    }

    /// The limits and consents [`apply::apply_outcome`] checks an answer
    /// against.
    fn checks(&self) -> apply::Checks {
        let limits = self.plugin.limits();
        let grant = self.plugin.grant();
        apply::Checks {
            max_children: limits.max_children,
            sizes: SizeLimits {
                child: limits.child_bytes,
                status: limits.status_bytes,
                response: limits.response_bytes,
            },
            enforce_grants: self.options.enforce_grants,
            adopt: grant.adopt,
            service_account_tokens: grant.service_account_tokens,
        }
    }

    async fn patch_status(
        &self,
        parent: &Value,
        plugin_status: Option<&Value>,
        synced: Synced,
    ) -> Result<(), PatchFailed> {
        let current = parent.get("status");
        let generation = parent
            .pointer("/metadata/generation")
            .and_then(Value::as_i64);
        let new = status::compute(
            plugin_status,
            current,
            generation,
            synced,
            &crate::time::now_utc(),
        );
        if !status::changed(&new, current) {
            return Ok(());
        }
        status::patch(&self.writer, &self.parent.kind, parent, &new)
            .await
            .map(|_| ())
    }

    /// Failures recorded for a key (tests and debugging).
    pub fn failures(&self, key: &str) -> u32 {
        self.queue.failures(key)
    }
}

/// A held admission slot: counted in flight until dropped.
struct Admitted<'a> {
    _permit: SemaphorePermit<'a>,
    metrics: &'a Metrics,
    plugin: &'a str,
}

impl Drop for Admitted<'_> {
    fn drop(&mut self) {
        self.metrics.plugin_inflight(self.plugin, -1);
    }
}

enum Route {
    Parent,
    Owned,
    Related(RelatedMapping),
}
