//! The controller: kube-runtime's `Controller` over the Memcached parents,
//! triggered by its owned Deployments and Services, whose watches also fill
//! the stores the reconciler reads its observed children from.
//!
//! Each reconcile does what `operon run` does for one key, in the same order
//! (see `host/src/runtime/controller.rs` and `host/src/apply`): build the
//! request from the cached parent and its controlled children, call the
//! reconciler, server-side apply every desired child, prune what is no
//! longer desired, merge-patch the status when it changed, record events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
    Preconditions,
};
use kube::runtime::controller::{Action, Config, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};
use operon_sdk::testing::FakeCluster;
use operon_sdk::{Reconciler, Request, Response};
use rust_memcached::{GROUP, KIND, MemcachedReconciler, VERSION};
use serde_json::{Value, json};

use crate::status::{self, Synced};

/// The plugin name the host would give this reconciler: it names the
/// `operon.dev/plugin` label, so children look the same under both.
const PLUGIN: &str = "memcached";

/// Settings from the command line.
pub struct Options {
    pub namespace: Option<String>,
    pub workers: u16,
    pub field_manager: String,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
}

/// Totals printed on exit (the benchmark divides API requests by them).
pub struct Stats {
    pub reconciles: u64,
    pub errors: u64,
}

/// Why a reconcile failed; every variant is retried with per-key backoff
/// by [`error_policy`].
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error("{0}")]
    Retryable(String),
    #[error("{0:#}")]
    Api(#[from] anyhow::Error),
}

struct Ctx {
    client: Client,
    parent: ApiResource,
    deployments: Store<Deployment>,
    services: Store<Service>,
    field_manager: String,
    recorder: Recorder,
    backoff_base: Duration,
    backoff_max: Duration,
    /// Consecutive failures per key, reset on success.
    failures: Mutex<HashMap<String, u32>>,
    /// Keys that failed permanently, with the generation then: not tried
    /// again until the generation changes (the host's rule).
    permanent: Mutex<HashMap<String, Option<i64>>>,
    reconciles: AtomicU64,
    errors: AtomicU64,
}

/// Server-side applies the Memcached CRD (field manager `operon`, as the
/// host installs plugin CRDs) and waits until it is Established.
pub async fn install_crd(client: &Client) -> anyhow::Result<()> {
    let crd: Value = serde_json::from_str(rust_memcached::CRD).context("the Memcached CRD")?;
    let name = crd["metadata"]["name"]
        .as_str()
        .context("the Memcached CRD has no name")?
        .to_string();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    api.patch(
        &name,
        &PatchParams::apply("operon").force(),
        &Patch::Apply(&crd),
    )
    .await
    .with_context(|| format!("installing CRD {name}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let crd = api
            .get(&name)
            .await
            .with_context(|| format!("reading CRD {name}"))?;
        let established = crd.status.and_then(|s| s.conditions).is_some_and(|cs| {
            cs.iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if established {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("CRD {name} was not Established within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn api_for<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Runs until SIGTERM or SIGINT; in-flight reconciles finish first (a
/// second signal stops at once).
pub async fn run(client: Client, options: Options) -> anyhow::Result<Stats> {
    let parent = ApiResource::from_gvk(&GroupVersionKind::gvk(GROUP, VERSION, KIND));
    let ns = options.namespace.as_deref();
    let parents: Api<DynamicObject> = match ns {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &parent),
        None => Api::all_with(client.clone(), &parent),
    };
    let (deployments, deployments_writer) = reflector::store();
    let deployment_changes = watcher(
        api_for::<Deployment>(&client, ns),
        watcher::Config::default(),
    )
    .default_backoff()
    .reflect(deployments_writer)
    .touched_objects();
    let (services, services_writer) = reflector::store();
    let service_changes = watcher(api_for::<Service>(&client, ns), watcher::Config::default())
        .default_backoff()
        .reflect(services_writer)
        .touched_objects();

    let controller = Controller::new_with(parents, watcher::Config::default(), parent.clone())
        .owns_stream(deployment_changes)
        .owns_stream(service_changes)
        .with_config(Config::default().concurrency(options.workers))
        .shutdown_on_signal();
    let parent_store = controller.store();
    let ctx = Arc::new(Ctx {
        recorder: Recorder::new(
            client.clone(),
            Reporter {
                controller: format!("native/{PLUGIN}"),
                instance: None,
            },
        ),
        client,
        parent,
        deployments: deployments.clone(),
        services: services.clone(),
        field_manager: options.field_manager,
        backoff_base: options.backoff_base,
        backoff_max: options.backoff_max,
        failures: Mutex::default(),
        permanent: Mutex::default(),
        reconciles: AtomicU64::new(0),
        errors: AtomicU64::new(0),
    });
    let running = controller
        .run(reconcile, error_policy, ctx.clone())
        .for_each(|result| async move {
            if let Err(e) = result {
                tracing::debug!(error = %e, "controller");
            }
        });
    let announce = async {
        let ready = parent_store.wait_until_ready().await.is_ok()
            && deployments.wait_until_ready().await.is_ok()
            && services.wait_until_ready().await.is_ok();
        if ready {
            tracing::info!("caches synced; reconciling");
            println!("synced");
        }
    };
    tokio::join!(running, announce);
    Ok(Stats {
        reconciles: ctx.reconciles.load(Ordering::Relaxed),
        errors: ctx.errors.load(Ordering::Relaxed),
    })
}

fn key_of(parent: &DynamicObject) -> String {
    format!(
        "{}/{}",
        parent.metadata.namespace.as_deref().unwrap_or_default(),
        parent.metadata.name.as_deref().unwrap_or_default()
    )
}

async fn reconcile(parent: Arc<DynamicObject>, ctx: Arc<Ctx>) -> Result<Action, Error> {
    ctx.reconciles.fetch_add(1, Ordering::Relaxed);
    if parent.metadata.deletion_timestamp.is_some() {
        // No finalizer: the garbage collector removes the children.
        return Ok(Action::await_change());
    }
    let key = key_of(&parent);
    let generation = parent.metadata.generation;
    {
        let mut permanent = ctx.permanent.lock().unwrap_or_else(PoisonError::into_inner);
        match permanent.get(&key) {
            Some(g) if *g == generation => return Ok(Action::await_change()),
            Some(_) => {
                permanent.remove(&key);
            }
            None => {}
        }
    }
    let parent_json = ctx.parent_json(&parent);
    let observed = ctx.observed(&parent);
    let request = observed
        .iter()
        .cloned()
        .fold(Request::new(parent_json.clone()), Request::with_observed);
    // The memcached reconciler reads nothing through its context; an empty
    // in-memory cluster is what operon-sdk offers natively.
    let reads = operon_sdk::Context::fake(FakeCluster::new());
    let result = MemcachedReconciler::reconcile(&reads, request)
        .and_then(|response| response.validate().map(|()| response));
    let response = match result {
        Ok(response) => response,
        Err(e) => {
            let retry = e.is_retryable();
            ctx.fail(&parent_json, "ReconcileError", e.message()).await;
            if retry {
                return Err(Error::Retryable(e.message().to_string()));
            }
            ctx.permanent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(key, generation);
            return Ok(Action::await_change());
        }
    };
    if let Err(e) = ctx.apply(&parent_json, &observed, &response).await {
        ctx.fail(&parent_json, "ApplyFailed", &format!("{e:#}"))
            .await;
        return Err(Error::Api(e));
    }
    ctx.patch_status(&parent_json, response.status.as_ref(), Synced::OK)
        .await;
    for event in &response.events {
        ctx.record(&parent, event).await;
    }
    ctx.failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&key);
    Ok(match response.requeue_after {
        Some(after) => Action::requeue(after),
        None => Action::await_change(),
    })
}

/// Per-key exponential backoff with jitter, as the host's work queue:
/// `base * 2^(failures-1)`, capped, times a factor in [0.75, 1.25).
fn error_policy(parent: Arc<DynamicObject>, error: &Error, ctx: Arc<Ctx>) -> Action {
    ctx.errors.fetch_add(1, Ordering::Relaxed);
    let key = key_of(&parent);
    let failures = {
        let mut all = ctx.failures.lock().unwrap_or_else(PoisonError::into_inner);
        let n = all.entry(key.clone()).or_default();
        *n += 1;
        *n
    };
    let delay = ctx
        .backoff_base
        .saturating_mul(1 << failures.saturating_sub(1).min(30))
        .min(ctx.backoff_max);
    // Jitter without a random-number dependency: the clock's nanoseconds.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let delay = delay.mul_f64(0.75 + f64::from(nanos % 1000) / 2000.0);
    tracing::warn!(parent = key, attempt = failures, ?delay, error = %error, "reconcile failed");
    Action::requeue(delay)
}

impl Ctx {
    /// The parent as JSON with apiVersion and kind (list items lack them).
    fn parent_json(&self, parent: &DynamicObject) -> Value {
        let mut value = serde_json::to_value(parent).unwrap_or(Value::Null);
        if let Some(map) = value.as_object_mut() {
            map.insert("apiVersion".into(), json!(self.parent.api_version));
            map.insert("kind".into(), json!(self.parent.kind));
        }
        value
    }

    /// The parent's children in the stores: the Deployment and the Service
    /// named after it, when this parent is their controller. (Memcached's
    /// children always carry its name, so a lookup by name finds them, as
    /// a hand-written memcached operator would look them up.)
    fn observed(&self, parent: &DynamicObject) -> Vec<Value> {
        let name = parent.metadata.name.as_deref().unwrap_or_default();
        let ns = parent.metadata.namespace.as_deref().unwrap_or_default();
        let uid = parent.metadata.uid.as_deref();
        let controlled = |meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta| {
            meta.owner_references
                .iter()
                .flatten()
                .any(|r| r.controller == Some(true) && Some(r.uid.as_str()) == uid)
        };
        let mut observed = Vec::new();
        if let Some(d) = self
            .deployments
            .get(&ObjectRef::new(name).within(ns))
            .filter(|d| controlled(&d.metadata))
        {
            observed.push(typed_json(&*d));
        }
        if let Some(s) = self
            .services
            .get(&ObjectRef::new(name).within(ns))
            .filter(|s| controlled(&s.metadata))
        {
            observed.push(typed_json(&*s));
        }
        observed
    }

    /// Server-side applies every desired child, then prunes the observed
    /// ones no longer desired (only after every apply succeeded).
    async fn apply(
        &self,
        parent: &Value,
        observed: &[Value],
        response: &Response,
    ) -> anyhow::Result<()> {
        let params = PatchParams::apply(&self.field_manager).force();
        let mut desired = Vec::new();
        for child in &response.children {
            let child = prepare(child.clone(), parent)?;
            let name = child["metadata"]["name"].as_str().unwrap_or_default();
            let ns = child["metadata"]["namespace"].as_str();
            let what = format!("{} {}/{name}", child["kind"], ns.unwrap_or_default());
            match (child["apiVersion"].as_str(), child["kind"].as_str()) {
                (Some("apps/v1"), Some("Deployment")) => api_for::<Deployment>(&self.client, ns)
                    .patch(name, &params, &Patch::Apply(&child))
                    .await
                    .map(drop),
                (Some("v1"), Some("Service")) => api_for::<Service>(&self.client, ns)
                    .patch(name, &params, &Patch::Apply(&child))
                    .await
                    .map(drop),
                _ => bail!("{what} is not a kind this controller owns"),
            }
            .with_context(|| format!("server-side apply of {what} failed"))?;
            desired.push((child["kind"].clone(), child["metadata"]["name"].clone()));
        }
        for stale in observed
            .iter()
            .filter(|o| !desired.contains(&(o["kind"].clone(), o["metadata"]["name"].clone())))
        {
            let name = stale["metadata"]["name"].as_str().unwrap_or_default();
            let ns = stale["metadata"]["namespace"].as_str();
            let params = DeleteParams::background().preconditions(Preconditions {
                uid: stale["metadata"]["uid"].as_str().map(str::to_string),
                resource_version: None,
            });
            let deleted = match stale["kind"].as_str() {
                Some("Deployment") => api_for::<Deployment>(&self.client, ns)
                    .delete(name, &params)
                    .await
                    .map(drop),
                _ => api_for::<Service>(&self.client, ns)
                    .delete(name, &params)
                    .await
                    .map(drop),
            };
            match deleted {
                Ok(()) => tracing::info!(child = %stale["kind"], name, "pruned child"),
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("pruning {} {name}", stale["kind"]));
                }
            }
        }
        Ok(())
    }

    /// Merge-patches the status subresource when the new status differs.
    async fn patch_status(&self, parent: &Value, reconciled: Option<&Value>, synced: Synced<'_>) {
        let current = parent.get("status");
        let generation = parent["metadata"]["generation"].as_i64();
        let new = status::compute(reconciled, current, generation, synced, &now());
        let Some(diff) = status::merge_patch(current.unwrap_or(&json!({})), &new) else {
            return;
        };
        let name = parent["metadata"]["name"].as_str().unwrap_or_default();
        let api: Api<DynamicObject> = match parent["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &self.parent),
            None => Api::all_with(self.client.clone(), &self.parent),
        };
        if let Err(e) = api
            .patch_status(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({ "status": diff })),
            )
            .await
        {
            tracing::warn!(parent = name, error = %e, "status patch failed");
        }
    }

    /// A failed reconcile: `Synced=False` with the reason, and a Warning.
    async fn fail(&self, parent: &Value, reason: &str, message: &str) {
        let synced = Synced {
            ok: false,
            reason,
            message,
        };
        self.patch_status(parent, None, synced).await;
        if let Ok(parent) = serde_json::from_value::<DynamicObject>(parent.clone()) {
            let event = operon_sdk::Event::warning("ReconcileError", message);
            self.record(&parent, &event).await;
        }
    }

    /// Records an event about the parent (`events.k8s.io/v1`), best effort.
    async fn record(&self, parent: &DynamicObject, event: &operon_sdk::Event) {
        let event = Event {
            type_: match event.type_ {
                operon_sdk::EventType::Normal => EventType::Normal,
                operon_sdk::EventType::Warning => EventType::Warning,
            },
            reason: event.reason.clone(),
            note: Some(event.message.clone()),
            action: "Reconcile".into(),
            secondary: None,
        };
        let reference = parent.object_ref(&self.parent);
        if let Err(e) = self.recorder.publish(&event, &reference).await {
            tracing::warn!(error = %e, "recording an event failed");
        }
    }
}

/// A typed object as JSON with its apiVersion and kind.
fn typed_json<K: Resource<DynamicType = ()> + operon_sdk::serde::Serialize>(object: &K) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Some(map) = value.as_object_mut() {
        map.insert("apiVersion".into(), json!(K::api_version(&())));
        map.insert("kind".into(), json!(K::kind(&())));
    }
    value
}

/// Readies a child for server-side apply as the host does: the parent's
/// namespace, a controller ownerReference to the parent, the
/// `operon.dev/plugin` and `operon.dev/parent` labels, no server-set fields.
/// Children in another namespace or without a name are refused.
fn prepare(mut child: Value, parent: &Value) -> anyhow::Result<Value> {
    let meta = &parent["metadata"];
    let owner = json!({
        "apiVersion": parent["apiVersion"], "kind": parent["kind"],
        "name": meta["name"], "uid": meta["uid"],
        "controller": true, "blockOwnerDeletion": true,
    });
    let Some(obj) = child.as_object_mut() else {
        bail!("a child is not a JSON object");
    };
    obj.remove("status");
    let child_meta = obj
        .entry("metadata")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .context("a child's metadata is not an object")?;
    for field in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
    ] {
        child_meta.remove(field);
    }
    if !child_meta.get("name").is_some_and(Value::is_string) {
        bail!("a child has no metadata.name");
    }
    let ns = child_meta
        .entry("namespace")
        .or_insert_with(|| meta["namespace"].clone());
    if *ns != meta["namespace"] {
        bail!(
            "child {} is not in the parent's namespace",
            child_meta["name"]
        );
    }
    child_meta.insert("ownerReferences".into(), json!([owner]));
    let labels = child_meta.entry("labels").or_insert_with(|| json!({}));
    if let Some(labels) = labels.as_object_mut() {
        labels.insert("operon.dev/plugin".into(), json!(PLUGIN));
        labels.insert("operon.dev/parent".into(), meta["name"].clone());
    }
    Ok(child)
}

/// Now as RFC 3339 with second precision, as metav1.Time.
fn now() -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    k8s_openapi::jiff::Timestamp::from_second(now.as_second())
        .map_or_else(|_| now.to_string(), |t| t.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn children_get_the_owner_labels_and_namespace_the_host_gives_them() {
        let parent = json!({"apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
            "metadata": {"name": "m", "namespace": "demo", "uid": "u-1"}});
        let child = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "m", "labels": {"app": "m"}, "uid": "x", "resourceVersion": "3"},
            "status": {}});
        let out = prepare(child, &parent).unwrap();
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "Service", "metadata": {
                "name": "m", "namespace": "demo",
                "labels": {"app": "m", "operon.dev/plugin": "memcached", "operon.dev/parent": "m"},
                "ownerReferences": [{"apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
                    "name": "m", "uid": "u-1", "controller": true, "blockOwnerDeletion": true}]}})
        );
        let elsewhere = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "m", "namespace": "other"}});
        assert!(prepare(elsewhere, &parent).is_err());
        let nameless = json!({"apiVersion": "v1", "kind": "Service", "metadata": {}});
        assert!(prepare(nameless, &parent).is_err());
    }
}
