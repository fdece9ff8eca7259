//! The demo's registry mode (`cargo xtask demo --from-registry`): the
//! plugin is published with `operon push` and declared with a
//! `ClusterReconcilerPlugin`, as in a real cluster, instead of being a
//! file in the host's directory. The swap is a new build pushed and the
//! object's source changed; the revisions are objects the user can list.

use std::process::Command;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Value, json};

use super::{scale, step, watch_until};

/// Where the builds go and what pushes them.
pub struct FromRegistry {
    /// `host:port` of a registry the host reaches over plain HTTP.
    pub registry: String,
    /// The `operon` binary.
    pub operon: String,
    /// The first build (Rust) and the one swapped in (Python).
    pub first: String,
    pub second: String,
}

const PLUGIN: &str = "memcached";

fn api(client: &kube::Client, kind: &str) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("operon.dev", "v1alpha1", kind);
    Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk))
}

impl FromRegistry {
    fn reference(&self, tag: &str) -> String {
        format!("{}/demo/memcached:{tag}", self.registry)
    }

    /// `operon push <build> <reference>`, shown; the digest it prints.
    fn push(&self, build: &str, tag: &str) -> anyhow::Result<String> {
        let reference = self.reference(tag);
        step(&format!("operon push {build} {reference}"));
        let out = Command::new(&self.operon)
            .args(["push", "--plain-http", build, &reference])
            .output()?;
        anyhow::ensure!(
            out.status.success(),
            "operon push failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let digest = String::from_utf8(out.stdout)?.trim().to_string();
        println!("    pushed {reference} as {digest}");
        Ok(digest)
    }

    /// Pushes the first build and applies the ClusterReconcilerPlugin;
    /// returns once its first revision serves.
    pub async fn install(&self, client: &kube::Client) -> anyhow::Result<()> {
        self.push(&self.first, "rust")?;
        step(&format!(
            "kubectl apply a ClusterReconcilerPlugin {PLUGIN} (source {})",
            self.reference("rust")
        ));
        let plugin = json!({
            "apiVersion": "operon.dev/v1alpha1", "kind": "ClusterReconcilerPlugin",
            "metadata": {"name": PLUGIN},
            "spec": {"source": {"image": self.reference("rust")}, "revisionHistoryLimit": 3}
        });
        let plugins = api(client, "ClusterReconcilerPlugin");
        let ssa = PatchParams::apply("operon-demo").force();
        plugins.patch(PLUGIN, &ssa, &Patch::Apply(&plugin)).await?;
        self.wait_serving(client, 1).await
    }

    /// What `kubectl get crp` shows, until revision `number` is active and
    /// healthy.
    async fn wait_serving(&self, client: &kube::Client, number: i64) -> anyhow::Result<()> {
        let plugins = api(client, "ClusterReconcilerPlugin");
        watch_until(&format!("revision {number} active"), || async {
            let p = serde_json::to_value(plugins.get(PLUGIN).await?)?;
            let status = &p["status"];
            let seen = format!(
                "REVISION {}  DIGEST {}  HEALTHY {}  READY {}",
                status["activeRevision"],
                status["activeDigest"]
                    .as_str()
                    .map_or("-", |d| &d[..19.min(d.len())]),
                condition(&p, "Healthy"),
                condition(&p, "Ready"),
            );
            let done = status["activeRevision"] == number && condition(&p, "Ready") == "True";
            Ok((done, seen))
        })
        .await
    }

    /// Pushes the second build, points the plugin at it, and shows the new
    /// revision fetched, compiled and activated while the host runs.
    pub async fn swap(
        &self,
        client: &kube::Client,
        parents: &Api<DynamicObject>,
        name: &str,
    ) -> anyhow::Result<()> {
        self.push(&self.second, "python")?;
        step("hot swap: the plugin's source now names the Python build");
        let source = json!({"spec": {"source": {"image": self.reference("python")}}});
        api(client, "ClusterReconcilerPlugin")
            .patch(PLUGIN, &PatchParams::default(), &Patch::Merge(source))
            .await?;
        self.wait_serving(client, 2).await?;
        step("scale to 2: now the Python build reconciles");
        scale(parents, name, 2).await?;
        step("kubectl get clusterreconcilerpluginrevisions (rollback: set an older one Active)");
        let revisions = api(client, "ClusterReconcilerPluginRevision");
        let labels = format!("operon.dev/plugin-object={PLUGIN}");
        let mut listed: Vec<Value> = revisions
            .list(&kube::api::ListParams::default().labels(&labels))
            .await?
            .items
            .into_iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()?;
        listed.sort_by_key(|r| r["spec"]["revision"].as_i64());
        for r in &listed {
            println!(
                "    {:<40} revision {}  {:<8}  healthy {}",
                r["metadata"]["name"].as_str().unwrap_or(""),
                r["spec"]["revision"],
                r["spec"]["desiredState"].as_str().unwrap_or(""),
                condition(r, "Healthy"),
            );
        }
        Ok(())
    }

    /// Deletes the plugin object (its revisions go with it).
    pub async fn uninstall(&self, client: &kube::Client) -> anyhow::Result<()> {
        step(&format!("delete the ClusterReconcilerPlugin {PLUGIN}"));
        api(client, "ClusterReconcilerPlugin")
            .delete(PLUGIN, &Default::default())
            .await?;
        Ok(())
    }
}

/// A condition's status, `-` when absent.
fn condition(obj: &Value, ty: &str) -> String {
    obj.pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == ty))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("-")
        .to_string()
}
