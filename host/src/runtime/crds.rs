//! Installing the CRDs plugins ship, before their kinds are watched.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::Api;
use kube::api::{Patch, PatchParams};

/// Server-side applies each CRD (field manager `operon`) and waits until
/// the API server reports it Established, so discovery finds the kind.
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
            if established {
                tracing::info!(plugin, crd = %name, "CRD installed and established");
                break;
            }
            if Instant::now() > deadline {
                bail!("CRD {name} of plugin {plugin} was not Established within 60 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(())
}
