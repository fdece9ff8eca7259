//! Installing the CRDs plugins ship, before their kinds are watched.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};

/// Server-side applies each CRD (field manager `operon`) and waits until
/// the API server reports it Established and discovery serves the kind.
pub async fn install(client: &kube::Client, plugin: &str, crds: &[String]) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for text in crds {
        let crd: serde_json::Value =
            serde_json::from_str(text).context("CRD JSON (validated at load)")?;
        let name = crd
            .pointer("/metadata/name")
            .and_then(|n| n.as_str())
            .with_context(|| format!("a CRD of plugin {plugin} has no metadata.name"))?
            .to_string();
        api.patch(
            &name,
            &PatchParams::apply("operon").force(),
            &Patch::Apply(&crd),
        )
        .await
        .with_context(|| format!("installing CRD {name} of plugin {plugin}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let current = api
                .get(&name)
                .await
                .with_context(|| format!("reading CRD {name}"))?;
            let established = current
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            // Established is not yet served: the API server's discovery
            // can lag behind it (seen with two hosts installing the same
            // CRD at once), and every later lookup goes through discovery.
            if established && served(client, &crd).await {
                tracing::info!(plugin, crd = %name, "CRD installed, established and served");
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {name} of plugin {plugin} was not Established and served within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}

/// Whether discovery serves every served version of the CRD's kind.
async fn served(client: &kube::Client, crd: &serde_json::Value) -> bool {
    let group = crd.pointer("/spec/group").and_then(|g| g.as_str());
    let kind = crd.pointer("/spec/names/kind").and_then(|k| k.as_str());
    let (Some(group), Some(kind)) = (group, kind) else {
        return true;
    };
    let versions = crd
        .pointer("/spec/versions")
        .and_then(|v| v.as_array())
        .cloned()
        .unwrap_or_default();
    for v in versions {
        if v.get("served").and_then(|s| s.as_bool()) == Some(false) {
            continue;
        }
        let Some(version) = v.get("name").and_then(|n| n.as_str()) else {
            continue;
        };
        let gvk = kube::api::GroupVersionKind::gvk(group, version, kind);
        if kube::discovery::pinned_kind(client, &gvk).await.is_err() {
            return false;
        }
    }
    true
}
