//! One controller per plugin: routes changes of its kinds to parent keys,
//! and runs workers that reconcile a key in the plugin's sandbox and apply
//! the answer.
//!
//! Data flows one way: change ([`route`]) → queue → reconcile (stages in
//! [`reconcile`]: load the parent, finalizer, request, call the plugin on a
//! blocking thread — Wasm is CPU work —, apply, report) → one [`next::Next`],
//! which [`next`] alone turns into queue operations, metric labels and, for
//! failures, the `Synced=False` condition and Warning event on the parent.
//! The finalizer's flow is one function, documented step by step, in
//! [`finalize`].
//!
//! A worker's loop is [`Controller::work`]: take a key, reconcile it,
//! settle its [`next::Next`], mark it done.

mod finalize;
mod next;
mod reconcile;
mod record;
mod route;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, SemaphorePermit};

use super::cache::{CacheReader, Caches, KindWatch};
use super::leader::Gate;
use super::queue::{Backoff, Priority, WorkQueue};
use crate::contract::Gvk;
use crate::kinds::{Kinds, Resolved};
use crate::plugin::recorder::Recorder;
use crate::plugin::revisions::Tracker;
use crate::plugin::shadow::ShadowSlot;
use crate::plugin::{CallContext, LoadError, Missing, Plugin, privileged};
use crate::server::Metrics;
use route::Route;

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
    /// Only parents in this namespace (a tenant's plugin); the watches stay
    /// shared and cluster-wide.
    pub namespace: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            workers: 4,
            backoff: Backoff::default(),
            enforce_grants: true,
            namespace: None,
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
    /// Leader election: open while this replica may write. A standby's
    /// workers wait on it before taking an item (its queue fills
    /// meanwhile, so the first reconciles after election need no relist);
    /// closed for good, they return.
    pub may_write: Gate,
}

/// What ties a controller to the plugin's revisions: a controller runs one
/// revision (a swap starts another controller); its tracker judges that
/// revision, and the shadow slot (shared by all of the plugin's
/// controllers) holds the candidate to dry-run beside it.
#[derive(Clone)]
pub struct RevisionHooks {
    pub tracker: Arc<Tracker>,
    pub shadow: Arc<ShadowSlot>,
    /// The plugin's recorder (`operon plugins record`), shared like the
    /// shadow slot.
    pub recorder: Arc<Recorder>,
    /// Called when the tracker says the revision must go (with why).
    pub on_failing: Arc<dyn Fn(String) + Send + Sync>,
}

/// The controller of one plugin.
pub struct Controller {
    plugin: Arc<Plugin>,
    hooks: RevisionHooks,
    parent: Arc<KindWatch>,
    owned: Vec<Arc<KindWatch>>,
    /// The owned kinds as resolved when the controller started, handed to
    /// apply (no discovery lookups per reconcile).
    owned_kinds: Vec<Resolved>,
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
    may_write: Gate,
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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The watches a controller holds.
struct Watches {
    parent: Arc<KindWatch>,
    owned: Vec<Arc<KindWatch>>,
    related: Vec<(Arc<KindWatch>, crate::contract::RelatedMapping)>,
    acquired: Vec<Gvk>,
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
            may_write,
        } = shared.clone();
        let Watches {
            parent,
            owned,
            related,
            acquired,
        } = acquire(&plugin, &caches).await?;
        let controller = Arc::new(Controller {
            plugin,
            hooks,
            parent,
            owned_kinds: owned.iter().map(|w| w.kind.clone()).collect(),
            owned,
            acquired,
            caches,
            writer,
            queue: WorkQueue::new(options.backoff),
            metrics,
            global,
            admission: Semaphore::new(options.workers.max(1)),
            may_write,
            options,
            config,
            permanent: Mutex::default(),
            finalized: Mutex::default(),
            routes: Mutex::default(),
            workers: Mutex::default(),
        });
        // Subscribe before listing the store, so no change falls between.
        let mut tasks = vec![tokio::spawn(
            controller
                .clone()
                .route(controller.parent.subscribe(), Route::Parent),
        )];
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
        lock(&controller.routes).extend(tasks);
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
        let done = lock(&previous.finalized).clone();
        lock(&self.finalized).extend(done);
    }

    /// Waits until every watch of this controller has its initial list.
    pub async fn wait_synced(&self) {
        self.caches_synced().await;
        // The parents listed before the subscription may have been missed.
        self.resync(Priority::Low);
    }

    /// Waits until the parent's and the owned kinds' caches hold their
    /// initial lists (what a reconcile reads).
    async fn caches_synced(&self) {
        self.parent.wait_synced().await;
        for w in &self.owned {
            if !w.is_synced() {
                tracing::debug!(plugin = self.name(), kind = %w.kind.gvk, "waiting for the cache of an owned kind to sync before reconciling");
                w.wait_synced().await;
            }
        }
    }

    /// Queues every cached parent.
    fn resync(&self, priority: Priority) {
        for p in self.parent.all() {
            self.enqueue(
                &key(
                    p.metadata.namespace.as_deref(),
                    p.metadata.name.as_deref().unwrap_or_default(),
                ),
                priority,
            );
        }
    }

    /// Queues a parent key, unless it is outside the namespace a tenant's
    /// plugin is confined to.
    fn enqueue(&self, key: &str, priority: Priority) -> bool {
        if let Some(ns) = &self.options.namespace
            && split(key).0 != Some(ns.as_str())
        {
            return false;
        }
        self.queue.add(key, priority);
        true
    }

    /// Starts the workers.
    pub fn run(self: &Arc<Self>) {
        let mut workers = lock(&self.workers);
        for _ in 0..self.options.workers.max(1) {
            workers.push(tokio::spawn(self.clone().work()));
        }
    }

    /// Stops taking work; returns when in-flight reconciles are done
    /// (applied, status written) or `grace` has passed. Watches are
    /// released (closed if no other controller uses them).
    pub async fn stop(&self, grace: Duration) {
        self.queue.shutdown();
        for t in std::mem::take(&mut *lock(&self.routes)) {
            // Routing tasks never end on their own.
            t.abort();
        }
        let workers: Vec<_> = std::mem::take(&mut *lock(&self.workers));
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

    /// A worker: take a key, reconcile it, settle what it decided.
    async fn work(self: Arc<Self>) {
        // A reconcile before the owned caches hold their initial lists
        // would hand the plugin no children (as if none existed) and
        // compare its answer with nothing.
        self.caches_synced().await;
        let mut may_write = self.may_write.clone();
        // Leader election: a standby's workers wait here, the queue filling.
        while may_write.wait_open().await
            && let Some(item) = self.queue.next().await
        {
            let Ok(_permit) = self.global.acquire().await else {
                return;
            };
            self.metrics
                .workqueue_queue_duration(self.name(), item.waited.as_secs_f64());
            self.metrics
                .workqueue_depth(self.name(), self.queue.depth() as i64);
            let start = Instant::now();
            let next = self.reconcile(&item.key).await;
            let result = self.settle(&item.key, next).await;
            self.metrics
                .reconcile_time(self.name(), start.elapsed().as_secs_f64());
            self.metrics.reconcile_total(self.name(), result);
            self.queue.done(&item.key);
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
}

/// Acquires every watch a plugin needs: its parent, owned, related and
/// read kinds. A failure (a kind the cluster does not serve, an owned
/// cluster-scoped kind not granted) releases what was acquired.
async fn acquire(plugin: &Plugin, caches: &Caches) -> anyhow::Result<Watches> {
    let reg = plugin.registration();
    let mut acquired = Vec::new();
    let watches = async {
        let parent = caches.acquire(&reg.parent.kind).await?;
        acquired.push(reg.parent.kind.clone());
        let mut owned = Vec::new();
        for gvk in &reg.owns {
            owned.push(caches.acquire(gvk).await?);
            acquired.push(gvk.clone());
        }
        cluster_scoped_granted(plugin, &owned)?;
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
    match watches.await {
        Ok((parent, owned, related)) => Ok(Watches {
            parent,
            owned,
            related,
            acquired,
        }),
        Err(e) => {
            // A failed start must not leave watches open behind it.
            for gvk in &acquired {
                caches.release(gvk);
            }
            Err(e)
        }
    }
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
        place: crate::plugin::GrantPlace::File,
    }
    .into())
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
