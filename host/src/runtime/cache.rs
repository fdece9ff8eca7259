//! Shared watch caches: one watch and one in-memory store per kind, however
//! many plugins use it, opened and closed as plugins come and go.
//!
//! Plugins' `cluster.get/list` are served from these stores (never a live
//! request per call), and every change is broadcast to the controllers
//! subscribed to the kind, which map it to the parents it concerns.
//!
//! The stores are lean: [`lean`] drops each object's `managedFields` and
//! the `kubectl.kubernetes.io/last-applied-configuration` annotation as
//! it arrives (often half of an object's bytes, and kept for every object
//! of every watched kind). Plugins see everything else: metadata, spec,
//! status, data. Beside each store, an [`OwnerIndex`] finds a parent's
//! children without a scan. [`Relay`] writes both and announces each
//! change once the store holds it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures::StreamExt;
use kube::api::DynamicObject;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::Value;
use tokio::sync::{broadcast, watch};

use super::owners::{self, OwnerIndex};
pub use super::relay::Change;
use super::relay::Relay;
use crate::apply::claim::{Existing, Known};
use crate::contract::cluster::{ClusterReader, ReadError};
use crate::contract::selector::Selector;
use crate::contract::{GroupKind, Gvk, group_of};
use crate::kinds::{Kinds, Resolved};
use crate::server::Metrics;

/// One kind's watch and store.
pub struct KindWatch {
    pub kind: Resolved,
    /// The one namespace watched, when the host is limited to one.
    namespace: Option<String>,
    store: Store<DynamicObject>,
    owners: Arc<OwnerIndex>,
    changes: broadcast::Sender<Change>,
    synced: watch::Receiver<bool>,
    /// Whether the last list or watch request failed (and no event came
    /// since): the store is stale.
    failing: Arc<AtomicBool>,
    users: AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

impl KindWatch {
    /// Subscribes to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    /// Waits until the initial list has been stored.
    pub async fn wait_synced(&self) {
        let mut synced = self.synced.clone();
        let _ = synced.wait_for(|s| *s).await;
    }

    /// The store may be stale: its last list or watch request failed.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    pub fn is_synced(&self) -> bool {
        *self.synced.borrow()
    }

    /// Every cached object.
    pub fn all(&self) -> Vec<Arc<DynamicObject>> {
        self.store.state()
    }

    /// One cached object.
    pub fn get(&self, namespace: Option<&str>, name: &str) -> Option<Arc<DynamicObject>> {
        let mut r = ObjectRef::<DynamicObject>::new_with(name, self.kind.resource.clone());
        if self.kind.namespaced {
            r = r.within(namespace.unwrap_or_default());
        }
        self.store.get(&r)
    }

    /// The cached objects whose controller ownerReference is `uid`.
    pub fn controlled_by(&self, uid: &str) -> Vec<Arc<DynamicObject>> {
        self.owners
            .children(uid)
            .into_iter()
            .filter_map(|(ns, name)| self.get(ns.as_deref(), &name))
            // The store may be a step ahead of the index: trust the object.
            .filter(|o| owners::controller_uid(o) == Some(uid))
            .collect()
    }

    /// What this cache knows of an object: nothing before its initial
    /// list, nor outside the namespace it watches.
    pub fn known(&self, namespace: Option<&str>, name: &str) -> Known {
        let outside = self.kind.namespaced
            && self.namespace.is_some()
            && namespace != self.namespace.as_deref();
        if outside || !self.is_synced() {
            return Known::Unknown;
        }
        Known::Cached(self.get(namespace, name))
    }

    /// The object as JSON text with apiVersion and kind filled in (list
    /// responses leave them out of items).
    pub fn to_json(&self, object: &DynamicObject) -> Value {
        let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.entry("apiVersion")
                .or_insert_with(|| Value::String(self.kind.resource.api_version.clone()));
            map.entry("kind")
                .or_insert_with(|| Value::String(self.kind.resource.kind.clone()));
        }
        value
    }
}

/// How the caches watch: the client (no request timeout: a watch is a
/// long request) and the server-side timeout of each watch request, which
/// also bounds how long a silent connection is trusted (kube's watcher
/// reconnects after that plus a margin).
#[derive(Clone)]
pub struct Watching {
    pub client: Option<kube::Client>,
    pub timeout_s: u32,
}

impl Watching {
    /// The client to watch with: this one, else `requests`.
    pub fn client_or(&self, requests: &kube::Client) -> kube::Client {
        self.client.clone().unwrap_or_else(|| requests.clone())
    }

    /// A watcher configuration with this timeout.
    pub fn config(&self) -> watcher::Config {
        watcher::Config::default().timeout(self.timeout_s)
    }
}

impl Default for Watching {
    fn default() -> Self {
        Watching {
            client: None,
            timeout_s: DEFAULT_WATCH_TIMEOUT_S,
        }
    }
}

/// Why a list or watch failed, as the metrics and the log name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WatchFailure {
    /// 410 Gone: the API server no longer has the history the watch
    /// resumes from (etcd compacted it, or its watch cache moved on).
    Expired,
    /// 429 Too Many Requests: API Priority and Fairness is shedding load.
    Throttled,
    /// Another answer from the API server (a 5xx while etcd is away, a
    /// 403 after an RBAC change).
    Refused,
    /// No answer: refused or reset connections, timeouts, TLS.
    Connection,
}

impl WatchFailure {
    pub fn of(error: &watcher::Error) -> WatchFailure {
        let code = match error {
            watcher::Error::WatchError(status) => Some(status.code),
            watcher::Error::InitialListFailed(e)
            | watcher::Error::WatchStartFailed(e)
            | watcher::Error::WatchFailed(e) => match e {
                kube::Error::Api(status) => Some(status.code),
                _ => None,
            },
            // An answer without what a watch needs: not a transport fault.
            watcher::Error::NoResourceVersion => return WatchFailure::Refused,
        };
        match code {
            Some(410) => WatchFailure::Expired,
            Some(429) => WatchFailure::Throttled,
            Some(_) => WatchFailure::Refused,
            None => WatchFailure::Connection,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            WatchFailure::Expired => "expired",
            WatchFailure::Throttled => "throttled",
            WatchFailure::Refused => "refused",
            WatchFailure::Connection => "connection",
        }
    }

    /// What the watcher does about it.
    fn consequence(self) -> &'static str {
        match self {
            WatchFailure::Expired => {
                "watch expired (410): listing again; the cache keeps serving what it had"
            }
            _ => "watch failed; retrying with backoff",
        }
    }
}

/// kube's (and client-go's) default server-side watch timeout.
pub const DEFAULT_WATCH_TIMEOUT_S: u32 = 290;

/// All watches of the host.
pub struct Caches {
    kinds: Arc<Kinds>,
    namespace: Option<String>,
    watches: Mutex<HashMap<GroupKind, Arc<KindWatch>>>,
    metrics: Arc<Metrics>,
    watching: Watching,
}

impl Caches {
    /// Watches are limited to `namespace` when given (namespaced kinds).
    pub fn new(kinds: Arc<Kinds>, namespace: Option<String>, metrics: Arc<Metrics>) -> Caches {
        Caches {
            kinds,
            namespace,
            watches: Mutex::default(),
            metrics,
            watching: Watching::default(),
        }
    }

    /// Watches through `watching.client` (else the kinds' client) with its
    /// timeout.
    pub fn watching(mut self, watching: Watching) -> Caches {
        self.watching = watching;
        self
    }

    /// The kinds whose watch is failing (their stores may be stale).
    pub fn failing(&self) -> Vec<String> {
        let mut kinds: Vec<String> = self
            .lock()
            .values()
            .filter(|w| w.is_failing())
            .map(|w| w.kind.gvk.to_string())
            .collect();
        kinds.sort();
        kinds
    }

    pub fn kinds(&self) -> &Arc<Kinds> {
        &self.kinds
    }

    /// The watch of a kind, opened on first use and shared after.
    pub async fn acquire(&self, gvk: &Gvk) -> anyhow::Result<Arc<KindWatch>> {
        let key = gvk.group_kind();
        if let Some(w) = self.lock().get(&key) {
            w.users.fetch_add(1, Ordering::SeqCst);
            return Ok(w.clone());
        }
        let kind = self.kinds.resolve(gvk).await?;
        let mut watches = self.lock();
        // Another acquire may have opened it while we resolved.
        if let Some(w) = watches.get(&key) {
            w.users.fetch_add(1, Ordering::SeqCst);
            return Ok(w.clone());
        }
        let w = Arc::new(self.open(kind));
        watches.insert(key, w.clone());
        self.metrics.watches(&gvk.to_string(), 1);
        Ok(w)
    }

    /// Gives up one use of a kind's watch; the last user closes it.
    pub fn release(&self, gvk: &Gvk) {
        let mut watches = self.lock();
        let key = gvk.group_kind();
        let last = watches
            .get(&key)
            .is_some_and(|w| w.users.fetch_sub(1, Ordering::SeqCst) == 1);
        if last && let Some(w) = watches.remove(&key) {
            w.task.abort();
            self.metrics.watches(&gvk.to_string(), 0);
        }
    }

    /// A watch already open, for reads.
    pub fn get(&self, group: &str, kind: &str) -> Option<Arc<KindWatch>> {
        self.lock()
            .get(&GroupKind {
                group: group.to_string(),
                kind: kind.to_string(),
            })
            .cloned()
    }

    /// How many watches are open (shared ones count once).
    pub fn open_watches(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<GroupKind, Arc<KindWatch>>> {
        self.watches.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn open(&self, kind: Resolved) -> KindWatch {
        let client = self.watching.client_or(self.kinds.client());
        let api = self
            .kinds
            .with_client(client)
            .api(&kind, self.namespace.as_deref());
        let config = self.watching.config();
        let failing = Arc::new(AtomicBool::new(false));
        let failed = failing.clone();
        let writer = reflector::store::Writer::<DynamicObject>::new(kind.resource.clone());
        let store = writer.as_reader();
        let owners = Arc::new(OwnerIndex::default());
        let (changes, _) = broadcast::channel(4096);
        let (synced_tx, synced) = watch::channel(false);
        let mut relay = Relay {
            writer,
            index: owners.clone(),
            changes: changes.clone(),
            synced: synced_tx,
        };
        let metrics = self.metrics.clone();
        let label = kind.gvk.to_string();
        let task = tokio::spawn(async move {
            let mut stream = watcher(api, config).default_backoff().modify(lean).boxed();
            while let Some(event) = stream.next().await {
                let event = match event {
                    Ok(e) => e,
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        let cause = WatchFailure::of(&e);
                        metrics.watch_errors_total(&label, cause.label());
                        tracing::warn!(kind = %label, error = %e, cause = cause.label(), "{}", cause.consequence());
                        continue;
                    }
                };
                if failed.swap(false, Ordering::Relaxed) {
                    tracing::info!(kind = %label, "watch recovered");
                }
                metrics.watch_events_total(&label);
                relay.follow(event);
            }
        });
        KindWatch {
            kind,
            namespace: self.namespace.clone(),
            store,
            owners,
            changes,
            synced,
            failing,
            users: AtomicUsize::new(1),
            task,
        }
    }
}

/// The annotation `kubectl apply` (client-side) keeps a whole copy of the
/// object in.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// Drops what no plugin reads and the host never needs from a cached
/// object: its field managers and kubectl's last-applied copy.
pub fn lean(object: &mut DynamicObject) {
    object.metadata.managed_fields = None;
    if let Some(annotations) = object.metadata.annotations.as_mut() {
        annotations.remove(LAST_APPLIED);
        if annotations.is_empty() {
            object.metadata.annotations = None;
        }
    }
}

/// The caches of a controller's owned kinds, where the host looks up a
/// child before applying it.
pub struct OwnedCaches<'a>(pub &'a [Arc<KindWatch>]);

impl Existing for OwnedCaches<'_> {
    fn known(&self, gvk: &Gvk, namespace: Option<&str>, name: &str) -> Known {
        match self.0.iter().find(|w| w.kind.gvk.same_kind(gvk)) {
            Some(w) => w.known(namespace, name),
            None => Known::Unknown,
        }
    }
}

/// `cluster.get/list` for plugins, from the shared caches.
pub struct CacheReader {
    pub caches: Arc<Caches>,
}

impl CacheReader {
    fn watch_of(&self, api_version: &str, kind: &str) -> Result<Arc<KindWatch>, ReadError> {
        self.caches
            .get(group_of(api_version), kind)
            .ok_or_else(|| ReadError::UnknownKind(format!("{api_version}/{kind} is not watched")))
    }
}

impl ClusterReader for CacheReader {
    fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ReadError> {
        let w = self.watch_of(api_version, kind)?;
        Ok(w.get(namespace, name).map(|o| w.to_json(&o)))
    }

    fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Result<Vec<Value>, ReadError> {
        let w = self.watch_of(api_version, kind)?;
        Ok(w.all()
            .iter()
            .filter(|o| namespace.is_none_or(|ns| o.metadata.namespace.as_deref() == Some(ns)))
            .filter(|o| selector.matches_labels(o.metadata.labels.as_ref()))
            .map(|o| w.to_json(o))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16) -> Box<kube::core::Status> {
        Box::new(serde_json::from_value(serde_json::json!({"code": code, "message": "m"})).unwrap())
    }

    #[test]
    fn names_why_a_watch_failed() {
        let cases = [
            (
                watcher::Error::WatchError(status(410)),
                WatchFailure::Expired,
            ),
            (
                watcher::Error::WatchStartFailed(kube::Error::Api(status(410))),
                WatchFailure::Expired,
            ),
            (
                watcher::Error::InitialListFailed(kube::Error::Api(status(429))),
                WatchFailure::Throttled,
            ),
            (
                watcher::Error::WatchFailed(kube::Error::Api(status(503))),
                WatchFailure::Refused,
            ),
            (
                watcher::Error::InitialListFailed(kube::Error::Service(
                    "connection refused".into(),
                )),
                WatchFailure::Connection,
            ),
        ];
        for (error, want) in cases {
            assert_eq!(WatchFailure::of(&error), want, "{error}");
        }
    }
}
