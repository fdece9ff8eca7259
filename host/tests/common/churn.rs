//! Load for the tests that break things while parents change: a churn of
//! Memcacheds (sizes changed, parents created and deleted) and the check
//! that, afterwards, every parent converged with exactly its children —
//! nothing lost, duplicated or orphaned.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use super::host::{WAIT, memcached_api};

/// Changes under way, until [`Churn::stop`].
pub struct Churn {
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Churn {
    /// Every 100 ms: changes the size of each parent in `names`; every 5th
    /// round adds `<prefix>-<round>`, every 10th deletes the oldest parent
    /// it added. Requests go straight to the API server (not through any
    /// fault the test puts before the host).
    pub fn start(env: &TestEnv, names: Arc<Mutex<Vec<String>>>, prefix: &str) -> Churn {
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let (api, flag, count, ns, prefix) = (
            memcached_api(env),
            stop.clone(),
            rounds.clone(),
            env.namespace.clone(),
            prefix.to_string(),
        );
        let task = tokio::spawn(async move {
            let mut added: Vec<String> = Vec::new();
            let mut round = 0u64;
            let (patched, created) = (PatchParams::default(), PostParams::default());
            let deleted = DeleteParams::background();
            while !flag.load(Ordering::SeqCst) {
                round += 1;
                let current: Vec<String> = names.lock().unwrap().clone();
                for (i, name) in current.iter().enumerate() {
                    let size = (round + i as u64) % 3 + 1;
                    let patch = Patch::Merge(json!({"spec": {"size": size}}));
                    persist(|| api.patch(name, &patched, &patch)).await;
                }
                if round.is_multiple_of(5) {
                    let name = format!("{prefix}-{round}");
                    let parent: kube::api::DynamicObject = serde_json::from_value(json!({
                        "apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
                        "metadata": {"name": name, "namespace": ns}, "spec": {"size": 1}
                    }))
                    .unwrap();
                    persist(|| api.create(&created, &parent)).await;
                    names.lock().unwrap().push(name.clone());
                    added.push(name);
                }
                if round.is_multiple_of(10) && added.len() > 1 {
                    let gone = added.remove(0);
                    names.lock().unwrap().retain(|n| *n != gone);
                    persist(|| api.delete(&gone, &deleted)).await;
                }
                count.store(round, Ordering::SeqCst);
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        Churn { stop, rounds, task }
    }

    /// Waits until `n` more rounds of changes were made.
    pub async fn rounds(&self, n: u64) {
        let from = self.rounds.load(Ordering::SeqCst);
        wait_until("the churn to go on", WAIT, || async {
            Ok((self.rounds.load(Ordering::SeqCst) >= from + n).then_some(()))
        })
        .await
        .unwrap();
    }

    pub async fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.task.await.unwrap();
    }
}

/// Makes one change of the churn, retrying while the API server is away
/// (a test may restart it). A create answered "already exists" or a delete
/// answered "not found" was done by an earlier try whose answer was lost.
async fn persist<T, F, Fut>(mut change: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = kube::Result<T>>,
{
    loop {
        match change().await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => return,
            Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// Waits until every parent is reconciled at its generation with its
/// Deployment at its size, and there is exactly one Deployment and one
/// Service per parent, each owned by that parent (same uid): nothing lost,
/// duplicated, or orphaned (the children of deleted parents are gone).
pub async fn converged(env: &TestEnv, what: &str) {
    let found = wait_until(
        &format!("every parent converged ({what})"),
        WAIT,
        || async { Ok(check(env).await?.err().is_none().then_some(())) },
    )
    .await;
    if found.is_err() {
        let why = check(env).await.unwrap().unwrap_err();
        panic!("not converged ({what}): {why}");
    }
}

/// What is not converged yet, if anything.
async fn check(env: &TestEnv) -> anyhow::Result<Result<(), String>> {
    let parents = memcached_api(env);
    let deployments: Api<Deployment> = env.api();
    let services: Api<Service> = env.api();
    let mut uids = BTreeMap::new();
    for p in parents.list(&Default::default()).await?.items {
        let v = serde_json::to_value(&p)?;
        let name = p.metadata.name.clone().unwrap_or_default();
        if p.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let Some(d) = deployments.get_opt(&name).await? else {
            return Ok(Err(format!("{name}: no Deployment (lost)")));
        };
        let size = v.pointer("/spec/size").and_then(Value::as_i64);
        let at_generation =
            v.pointer("/status/observedGeneration") == v.pointer("/metadata/generation");
        let replicas = d.spec.and_then(|s| s.replicas).map(i64::from);
        if !at_generation || replicas != size {
            return Ok(Err(format!(
                "{name}: size {size:?}, Deployment replicas {replicas:?}, at its generation: {at_generation}"
            )));
        }
        uids.insert(name, p.metadata.uid.unwrap_or_default());
    }
    let labelled = kube::api::ListParams::default().labels("operon.dev/plugin=memcached");
    let children: Vec<ObjectMeta> = deployments
        .list(&labelled)
        .await?
        .items
        .into_iter()
        .map(|d| d.metadata)
        .chain(
            services
                .list(&labelled)
                .await?
                .items
                .into_iter()
                .map(|s| s.metadata),
        )
        .filter(|m| m.deletion_timestamp.is_none())
        .collect();
    if children.len() != 2 * uids.len() {
        return Ok(Err(format!(
            "{} children for {} parents (one Deployment and one Service each)",
            children.len(),
            uids.len()
        )));
    }
    for child in &children {
        let owners = child.owner_references.as_deref().unwrap_or_default();
        let name = child.name.as_deref().unwrap_or_default();
        if owners.len() != 1 || uids.get(&owners[0].name) != Some(&owners[0].uid) {
            return Ok(Err(format!(
                "{name}: not owned by one parent that exists (orphan)"
            )));
        }
    }
    Ok(Ok(()))
}
