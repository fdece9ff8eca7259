//! Patches to objects a plugin does not own (only with a `patches` grant
//! on the kind; the scaling plugin changes a PostgresCluster's instances
//! this way).

use anyhow::Context as _;
use kube::api::{Patch, PatchParams};
use serde_json::{Value, json};

use super::{field_manager, validate};
use crate::api::concise;
use crate::contract::outcome::DecodedPatch;
use crate::contract::{Gvk, PatchType};
use crate::kinds::Kinds;

/// Applies one patch to a non-owned object (already validated against the
/// plugin's grants). Merge and JSON patches go as they are; `apply` is a
/// forced server-side apply with field manager `operon/<plugin>` (the grant
/// is the operator's consent to take the fields over), with apiVersion,
/// kind and name filled in from the target when the body lacks them.
pub async fn send(kinds: &Kinds, plugin: &str, p: &DecodedPatch) -> anyhow::Result<()> {
    let t = &p.target;
    let what = match &t.namespace {
        Some(ns) => format!("{} {ns}/{}", t.kind, t.name),
        None => format!("{} {}", t.kind, t.name),
    };
    let kind = kinds
        .resolve(&Gvk::from_api_version(&t.api_version, &t.kind))
        .await?;
    let api = kinds.api(&kind, t.namespace.as_deref());
    let manager = field_manager(plugin);
    let (params, body) = match p.patch_type {
        PatchType::Merge => (params_for(&manager), Patch::Merge(p.body.clone())),
        PatchType::Json => (params_for(&manager), validate::json_patch(&p.body)?),
        PatchType::Apply => {
            let mut body = p.body.clone();
            if p.subresource.is_none() {
                fill_identity(
                    &mut body,
                    t.api_version.as_str(),
                    &t.kind,
                    &t.name,
                    t.namespace.as_deref(),
                );
            }
            (PatchParams::apply(&manager).force(), Patch::Apply(body))
        }
    };
    let result = match &p.subresource {
        Some(sub) => api.patch_subresource(sub, &t.name, &params, &body).await,
        None => api.patch(&t.name, &params, &body).await,
    };
    let sub = p
        .subresource
        .as_ref()
        .map(|s| format!(" ({s})"))
        .unwrap_or_default();
    result
        .map_err(concise)
        .with_context(|| format!("patching {what}{sub} failed"))?;
    Ok(())
}

fn params_for(manager: &str) -> PatchParams {
    PatchParams {
        field_manager: Some(manager.to_string()),
        ..PatchParams::default()
    }
}

fn fill_identity(body: &mut Value, api_version: &str, kind: &str, name: &str, ns: Option<&str>) {
    let Some(obj) = body.as_object_mut() else {
        return;
    };
    obj.entry("apiVersion")
        .or_insert_with(|| json!(api_version));
    obj.entry("kind").or_insert_with(|| json!(kind));
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if let Some(meta) = meta.as_object_mut() {
        meta.entry("name").or_insert_with(|| json!(name));
        if let Some(ns) = ns {
            meta.entry("namespace").or_insert_with(|| json!(ns));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apply_patches_get_their_identity_from_the_target() {
        let mut body = json!({"spec": {"instances": 3}});
        fill_identity(
            &mut body,
            "db.operon.dev/v1",
            "PostgresCluster",
            "pg",
            Some("demo"),
        );
        assert_eq!(body["apiVersion"], "db.operon.dev/v1");
        assert_eq!(body["kind"], "PostgresCluster");
        assert_eq!(body["metadata"], json!({"name": "pg", "namespace": "demo"}));
        assert_eq!(body["spec"]["instances"], 3);
    }
}
