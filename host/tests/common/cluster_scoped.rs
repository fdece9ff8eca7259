//! Cluster-scoped objects a test makes (PersistentVolumes, StorageClasses,
//! RBAC roles and bindings): they outlive the test's namespace, so a guard
//! deletes them on drop.

use std::path::PathBuf;

use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use operon_test_support::TestEnv;
use serde_json::{Value, json};

/// The cluster-scoped objects applied through it, deleted on drop.
pub struct ClusterScoped {
    kubeconfig: PathBuf,
    client: kube::Client,
    objects: Vec<(ApiResource, String)>,
}

impl ClusterScoped {
    pub fn new(env: &TestEnv) -> ClusterScoped {
        ClusterScoped {
            kubeconfig: env.kubeconfig_path.clone(),
            client: env.client.clone(),
            objects: Vec::new(),
        }
    }

    /// Server-side applies `obj` as a cluster admin would. Namespaced
    /// objects go with their namespace; cluster-scoped ones are deleted
    /// when the guard drops.
    pub async fn apply(&mut self, obj: &Value) {
        let kind = obj["kind"].as_str().unwrap();
        let api_version = obj["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
        let name = obj["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &ar),
            None => {
                self.objects.push((ar.clone(), name.to_string()));
                Api::all_with(self.client.clone(), &ar)
            }
        };
        api.patch(
            name,
            &PatchParams::apply("operon-test").force(),
            &Patch::Apply(obj),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {kind} {name}: {e}"));
    }

    /// Pre-bound PersistentVolumes, one per claim of the test's namespace
    /// (the test cluster has no storage provisioner, and the scheduler does
    /// not place a Pod whose claim is unbound), of `class` if given.
    pub async fn volumes(env: &TestEnv, claims: &[String], class: Option<&str>) -> ClusterScoped {
        let mut guard = ClusterScoped::new(env);
        guard.add_volumes(env, claims, class).await;
        guard
    }

    /// As [`ClusterScoped::volumes`], into this guard.
    pub async fn add_volumes(&mut self, env: &TestEnv, claims: &[String], class: Option<&str>) {
        for claim in claims {
            let name = format!("{}-{claim}", env.namespace);
            self.apply(&json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": name},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                    "persistentVolumeReclaimPolicy": "Retain",
                    "storageClassName": class.unwrap_or_default(),
                    "hostPath": {"path": format!("/tmp/{name}")},
                    "claimRef": {"namespace": env.namespace, "name": claim},
                }
            }))
            .await;
        }
    }
}

/// The data claims of a PostgresCluster's instances: `<cluster>-<i>-data`.
pub fn data_claims(cluster: &str, instances: u32) -> Vec<String> {
    (0..instances)
        .map(|i| format!("{cluster}-{i}-data"))
        .collect()
}

impl Drop for ClusterScoped {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let objects = std::mem::take(&mut self.objects);
        // Drop cannot await, and the test's client is tied to the test's
        // runtime (blocked here): a thread with its own runtime and client.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let Ok(client) = operon_test_support::client_for(&kubeconfig, None).await else {
                    return;
                };
                for (ar, name) in objects.into_iter().rev() {
                    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
                    let _ = api.delete(&name, &DeleteParams::default()).await;
                }
            });
        })
        .join();
    }
}
