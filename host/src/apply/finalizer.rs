//! The finalizer `operon.dev/<plugin>` on parents of plugins that ask for
//! one. Changes are JSON patches guarded by a `test` op, so a concurrent
//! change to the finalizers makes them fail (the API server answers 422 or
//! 409; retry) instead of clobbering another controller's finalizer.

use anyhow::Context as _;
use kube::api::PatchParams;
use serde_json::{Value, json};

use super::validate::{describe, json_patch, str_at};
use crate::kinds::{Kinds, Resolved};

/// The finalizer of a plugin.
pub fn name(plugin: &str) -> String {
    format!("operon.dev/{plugin}")
}

fn finalizers(parent: &Value) -> &[Value] {
    parent
        .pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Whether the parent carries the finalizer.
pub fn has(parent: &Value, name: &str) -> bool {
    finalizers(parent).iter().any(|f| f == name)
}

/// Whether the parent is being deleted.
pub fn is_deleting(parent: &Value) -> bool {
    parent
        .pointer("/metadata/deletionTimestamp")
        .is_some_and(|t| !t.is_null())
}

/// The JSON patch adding the finalizer, or `None` when it is there.
pub fn add_ops(parent: &Value, name: &str) -> Option<Value> {
    if has(parent, name) {
        return None;
    }
    Some(match parent.pointer("/metadata/finalizers") {
        Some(current @ Value::Array(_)) => json!([
            {"op": "test", "path": "/metadata/finalizers", "value": current},
            {"op": "add", "path": "/metadata/finalizers/-", "value": name},
        ]),
        _ => json!([
            {"op": "test", "path": "/metadata/resourceVersion",
             "value": str_at(parent, "/metadata/resourceVersion").unwrap_or_default()},
            {"op": "add", "path": "/metadata/finalizers", "value": [name]},
        ]),
    })
}

/// The JSON patch removing the finalizer, or `None` when it is absent.
pub fn remove_ops(parent: &Value, name: &str) -> Option<Value> {
    let i = finalizers(parent).iter().position(|f| f == name)?;
    let path = format!("/metadata/finalizers/{i}");
    Some(json!([
        {"op": "test", "path": path, "value": name},
        {"op": "remove", "path": path},
    ]))
}

/// Adds the finalizer to the parent (no call when it is there).
pub async fn add(
    kinds: &Kinds,
    parent_kind: &Resolved,
    parent: &Value,
    name: &str,
) -> anyhow::Result<()> {
    send(
        kinds,
        parent_kind,
        parent,
        add_ops(parent, name),
        "adding",
        name,
    )
    .await
}

/// Removes the finalizer from the parent (no call when it is absent).
pub async fn remove(
    kinds: &Kinds,
    parent_kind: &Resolved,
    parent: &Value,
    name: &str,
) -> anyhow::Result<()> {
    send(
        kinds,
        parent_kind,
        parent,
        remove_ops(parent, name),
        "removing",
        name,
    )
    .await
}

async fn send(
    kinds: &Kinds,
    parent_kind: &Resolved,
    parent: &Value,
    ops: Option<Value>,
    doing: &str,
    finalizer: &str,
) -> anyhow::Result<()> {
    let Some(ops) = ops else { return Ok(()) };
    let name = str_at(parent, "/metadata/name").unwrap_or_default();
    let ns = str_at(parent, "/metadata/namespace");
    kinds
        .api(parent_kind, ns)
        .patch(name, &PatchParams::default(), &json_patch(&ops)?)
        .await
        .map_err(crate::api::concise)
        .with_context(|| {
            let what = describe(&parent_kind.gvk.kind, ns, name);
            format!("{doing} finalizer {finalizer} on {what} failed")
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_finalizers_and_deletion() {
        let p = json!({"metadata": {"name": "m", "resourceVersion": "9",
            "finalizers": ["other", "operon.dev/memcached"]}});
        assert_eq!(name("memcached"), "operon.dev/memcached");
        assert!(has(&p, "operon.dev/memcached"));
        assert!(!has(&p, "operon.dev/x"));
        assert!(!has(&json!({"metadata": {}}), "operon.dev/x"));
        assert!(!is_deleting(&p));
        assert!(is_deleting(
            &json!({"metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}})
        ));
        assert!(!is_deleting(
            &json!({"metadata": {"deletionTimestamp": null}})
        ));
    }

    #[test]
    fn patches_are_guarded() {
        let p =
            json!({"metadata": {"resourceVersion": "9", "finalizers": ["other", "operon.dev/m"]}});
        assert_eq!(add_ops(&p, "operon.dev/m"), None);
        assert_eq!(
            add_ops(&p, "operon.dev/n").unwrap()[0],
            json!({"op": "test", "path": "/metadata/finalizers", "value": ["other", "operon.dev/m"]})
        );
        assert_eq!(
            remove_ops(&p, "operon.dev/m").unwrap(),
            json!([{"op": "test", "path": "/metadata/finalizers/1", "value": "operon.dev/m"},
                   {"op": "remove", "path": "/metadata/finalizers/1"}])
        );
        assert_eq!(remove_ops(&p, "operon.dev/n"), None);
        let bare = json!({"metadata": {"resourceVersion": "9"}});
        assert_eq!(
            add_ops(&bare, "operon.dev/m").unwrap(),
            json!([{"op": "test", "path": "/metadata/resourceVersion", "value": "9"},
                   {"op": "add", "path": "/metadata/finalizers", "value": ["operon.dev/m"]}])
        );
        json_patch(&add_ops(&bare, "operon.dev/m").unwrap()).unwrap();
    }
}
