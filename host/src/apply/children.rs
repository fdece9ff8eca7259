//! Owned children: preparing, server-side applying and pruning them.

use std::collections::{HashMap, HashSet};

use anyhow::Context as _;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};

use super::field_manager;
use super::validate::{describe, group_kind_of, str_at};
use crate::contract::GroupKind;
use crate::kinds::{Kinds, Resolved};

/// Label naming the plugin that manages a child.
pub const PLUGIN_LABEL: &str = "operon.dev/plugin";
/// Label naming a child's parent (its name, shortened with a hash past 63
/// characters, the limit of a label value).
pub const PARENT_LABEL: &str = "operon.dev/parent";

/// Readies a (validated) child for server-side apply: the parent's
/// namespace when the child has none and the parent is namespaced, a
/// controller ownerReference to the parent (replacing any other controller
/// reference), the `operon.dev/plugin` and `operon.dev/parent` labels beside
/// the plugin's own, and none of the fields an apply must not carry
/// (`resourceVersion`, `uid`, `creationTimestamp`, `managedFields`,
/// `status`).
pub fn prepare(mut child: Value, parent: &Value, plugin: &str) -> Value {
    let parent_name = str_at(parent, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    let parent_ns = str_at(parent, "/metadata/namespace").map(str::to_string);
    let parent_uid = str_at(parent, "/metadata/uid")
        .unwrap_or_default()
        .to_string();
    let owner = json!({
        "apiVersion": str_at(parent, "/apiVersion").unwrap_or_default(),
        "kind": str_at(parent, "/kind").unwrap_or_default(),
        "name": parent_name,
        "uid": parent_uid,
        "controller": true,
        "blockOwnerDeletion": true,
    });
    let Some(obj) = child.as_object_mut() else {
        return child;
    };
    obj.remove("status");
    let meta = obj.entry("metadata").or_insert_with(|| json!({}));
    if !meta.is_object() {
        *meta = json!({});
    }
    let meta = meta.as_object_mut().expect("an object");
    for field in [
        "resourceVersion",
        "uid",
        "creationTimestamp",
        "managedFields",
    ] {
        meta.remove(field);
    }
    if let Some(ns) = parent_ns {
        meta.entry("namespace").or_insert(json!(ns));
    }
    let mut refs: Vec<Value> = match meta.remove("ownerReferences") {
        Some(Value::Array(refs)) => refs
            .into_iter()
            .filter(|r| r["controller"] != json!(true) && r["uid"] != json!(parent_uid))
            .collect(),
        _ => vec![],
    };
    refs.push(owner);
    meta.insert("ownerReferences".into(), Value::Array(refs));
    let labels = meta.entry("labels").or_insert_with(|| json!({}));
    if !labels.is_object() {
        *labels = json!({});
    }
    let labels: &mut Map<String, Value> = labels.as_object_mut().expect("an object");
    labels.insert(PLUGIN_LABEL.into(), json!(plugin));
    labels.insert(PARENT_LABEL.into(), json!(label_value(&parent_name)));
    child
}

/// A name as a label value: itself up to 63 characters, else a prefix and
/// a hash of the whole.
pub fn label_value(name: &str) -> String {
    if name.len() <= 63 {
        return name.to_string();
    }
    let hash = Sha256::digest(name.as_bytes());
    let hex: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", name.get(..54).unwrap_or(name))
}

/// `Kind namespace/name` of an object.
pub fn describe_obj(obj: &Value) -> String {
    describe(
        str_at(obj, "/kind").unwrap_or("?"),
        str_at(obj, "/metadata/namespace"),
        str_at(obj, "/metadata/name").unwrap_or("?"),
    )
}

/// Server-side applies a prepared child (forced, field manager
/// `operon/<plugin>`) of the resolved `kind`. Errors name the child.
pub async fn apply(
    kinds: &Kinds,
    kind: &Resolved,
    plugin: &str,
    child: &Value,
) -> anyhow::Result<DynamicObject> {
    let api = kinds.api(kind, str_at(child, "/metadata/namespace"));
    let name = str_at(child, "/metadata/name").unwrap_or_default();
    let params = PatchParams::apply(&field_manager(plugin)).force();
    api.patch(name, &params, &Patch::Apply(child))
        .await
        .map_err(crate::api::concise)
        .with_context(|| format!("server-side apply of {} failed", describe_obj(child)))
}

/// Identity of a child for pruning: kind without version, namespace, name.
fn key(obj: &Value) -> (GroupKind, Option<String>, String) {
    let ns = str_at(obj, "/metadata/namespace").map(str::to_string);
    let name = str_at(obj, "/metadata/name")
        .unwrap_or_default()
        .to_string();
    (group_kind_of(obj), ns, name)
}

/// The observed children by identity: where a desired child finds its
/// live self.
pub struct Observed<'a>(HashMap<(GroupKind, Option<String>, String), &'a Value>);

impl<'a> Observed<'a> {
    pub fn new(observed: &'a [Value]) -> Observed<'a> {
        Observed(observed.iter().map(|o| (key(o), o)).collect())
    }

    /// The observed object with the identity of `child`.
    pub fn get(&self, child: &Value) -> Option<&'a Value> {
        self.0.get(&key(child)).copied()
    }
}

/// The observed children that are not desired (and not already being
/// deleted): what [`prune`] deletes.
pub fn stale<'a>(desired: &[Value], observed: &'a [Value]) -> Vec<&'a Value> {
    let wanted: HashSet<_> = desired.iter().map(key).collect();
    observed
        .iter()
        .filter(|o| o.pointer("/metadata/deletionTimestamp").is_none())
        .filter(|o| !wanted.contains(&key(o)))
        .collect()
}

/// Deletes one stale child (the caller's: controlled by this parent, of an
/// owned kind, no longer desired) with background propagation and a
/// precondition on the observed uid, so that a newer object of the same
/// name is never deleted. Returns it as `Kind namespace/name` when it was
/// deleted, `None` when it was already gone or replaced.
pub async fn prune(
    kinds: &Kinds,
    kind: &Resolved,
    plugin: &str,
    obj: &Value,
) -> anyhow::Result<Option<String>> {
    let what = describe_obj(obj);
    let api = kinds.api(kind, str_at(obj, "/metadata/namespace"));
    let params = DeleteParams::background().preconditions(Preconditions {
        uid: str_at(obj, "/metadata/uid").map(str::to_string),
        resource_version: None,
    });
    match api
        .delete(str_at(obj, "/metadata/name").unwrap_or_default(), &params)
        .await
    {
        Ok(_) => {
            tracing::info!(plugin, child = %what, "pruned child");
            Ok(Some(what))
        }
        Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {
            tracing::debug!(plugin, child = %what, "child already gone or replaced");
            Ok(None)
        }
        Err(e) => Err(crate::api::concise(e)).with_context(|| format!("pruning {what} failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parent() -> Value {
        json!({"apiVersion": "cache.operon.dev/v1", "kind": "Memcached",
               "metadata": {"name": "m", "namespace": "demo", "uid": "u-1"}})
    }

    #[test]
    fn prepare_sets_namespace_owner_and_labels() {
        let child = json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "s", "labels": {"app": "m"}, "resourceVersion": "7", "uid": "x",
                         "creationTimestamp": "2024-01-01T00:00:00Z", "managedFields": [],
                         "ownerReferences": [{"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "o-1"},
                                             {"apiVersion": "v1", "kind": "Other", "name": "c", "uid": "c-1", "controller": true}]},
            "spec": {"ports": []}, "status": {"x": 1}});
        let out = prepare(child, &parent(), "memcached");
        assert_eq!(
            out,
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": "s", "namespace": "demo",
                    "labels": {"app": "m", "operon.dev/plugin": "memcached", "operon.dev/parent": "m"},
                    "ownerReferences": [
                        {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": "o-1"},
                        {"apiVersion": "cache.operon.dev/v1", "kind": "Memcached", "name": "m", "uid": "u-1",
                         "controller": true, "blockOwnerDeletion": true}]},
                "spec": {"ports": []}})
        );
    }

    #[test]
    fn prepare_keeps_an_explicit_namespace_and_cluster_scope() {
        let child = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s", "namespace": "demo"}});
        assert_eq!(
            prepare(child, &parent(), "p")["metadata"]["namespace"],
            "demo"
        );
        let cluster_parent =
            json!({"apiVersion": "x/v1", "kind": "Tenant", "metadata": {"name": "t", "uid": "u"}});
        let child = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}});
        let out = prepare(child, &cluster_parent, "p");
        assert!(out["metadata"].get("namespace").is_none());
        assert_eq!(out["metadata"]["ownerReferences"][0]["kind"], "Tenant");
    }

    #[test]
    fn long_parent_names_fit_a_label() {
        let long = "a".repeat(100);
        let v = label_value(&long);
        assert_eq!(v.len(), 63);
        assert_ne!(v, label_value(&"a".repeat(101)));
        assert_eq!(label_value("short"), "short");
    }

    #[test]
    fn stale_children_are_matched_by_group_kind_namespace_name() {
        let obj = |api: &str, kind: &str, name: &str| json!({"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": "demo"}});
        let desired = vec![obj("apps/v1", "Deployment", "a"), obj("v1", "Service", "a")];
        let mut gone = obj("v1", "Service", "c");
        gone["metadata"]["deletionTimestamp"] = json!("2024-01-01T00:00:00Z");
        let observed = vec![
            obj("apps/v1beta1", "Deployment", "a"),
            obj("v1", "Service", "b"),
            obj("v1", "ConfigMap", "a"),
            gone,
        ];
        let names: Vec<_> = stale(&desired, &observed)
            .into_iter()
            .map(describe_obj)
            .collect();
        assert_eq!(names, ["Service demo/b", "ConfigMap demo/a"]);
    }
}
