//! The revisions test component (`tests/plugins/revisions`) and its
//! `Gadget` parents, shared by the hot swap and the package tests: its
//! behaviour is a 12-byte label in its data segment, rewritten to make
//! "new releases" without compiling anything; each Gadget gets a ConfigMap
//! saying which label served which value.

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

use super::host::WAIT;

const MARKER: &[u8] = b"operon-test-revision:";

/// The revisions component with its label set to `label`.
pub fn build(label: &str) -> Vec<u8> {
    assert!(label.len() <= 12);
    let mut bytes = std::fs::read(super::component("test-plugin-revisions")).unwrap();
    let at = bytes
        .windows(MARKER.len())
        .position(|w| w == MARKER)
        .expect("the revision marker is in the component")
        + MARKER.len();
    let padded = format!("{label:_<12}");
    bytes[at..at + 12].copy_from_slice(padded.as_bytes());
    bytes
}

pub fn gadgets(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk("test.operon.dev", "v1", "Gadget"));
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

pub async fn create_gadget(env: &TestEnv, name: &str, value: u64) {
    let g: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "test.operon.dev/v1", "kind": "Gadget",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": {"value": value}
    }))
    .unwrap();
    gadgets(env)
        .create(&PostParams::default(), &g)
        .await
        .unwrap();
}

pub async fn set_value(env: &TestEnv, name: &str, value: u64) {
    gadgets(env)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"value": value}})),
        )
        .await
        .unwrap();
}

/// Waits until every named gadget's ConfigMap was made by `revision` from
/// the gadget's current `spec.value`.
pub async fn converged(env: &TestEnv, names: &[String], revision: &str) {
    let cms: Api<ConfigMap> = env.api();
    let api = gadgets(env);
    wait_until(
        &format!(
            "{} ConfigMaps from revision {revision} and the latest values",
            names.len()
        ),
        WAIT,
        || async {
            for name in names {
                let want = api.get(name).await?.data["spec"]["value"].to_string();
                let Some(cm) = cms.get_opt(name).await? else {
                    return Ok(None);
                };
                let data = cm.data.unwrap_or_default();
                if data.get("revision").map(String::as_str) != Some(revision)
                    || data.get("value") != Some(&want)
                {
                    return Ok(None);
                }
            }
            Ok(Some(()))
        },
    )
    .await
    .unwrap();
}
