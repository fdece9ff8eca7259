//! Every shipped CRD documents itself: each field of each version's schema
//! carries a description, so `kubectl explain` says what it is for. The
//! CRDs are read from the built components' registrations (what
//! `operon run` installs), not from the files they were made from.

mod common;

use operon::engine::{Engine, EngineConfig, Limits};
use operon::plugin::Plugin;
use serde_json::Value;

/// Every component the project ships, by package name.
const SHIPPED: &[&str] = &[
    "rust-memcached",
    "js-memcached",
    "python-memcached",
    "go-memcached",
    "c-memcached",
    "postgres",
    "operon-backup",
    "operon-backup-schedule",
    "operon-scaling",
];

/// The paths of the properties under `schema` that have no description.
fn undocumented(schema: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = schema.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let here = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            // The object's metadata is the API server's ObjectMeta.
            if here == "metadata" {
                continue;
            }
            let described = prop
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|d| !d.trim().is_empty());
            if !described {
                out.push(here.clone());
            }
            undocumented(prop, &here, out);
        }
    }
    if let Some(items) = schema.get("items") {
        undocumented(items, &format!("{path}[]"), out);
    }
    if let Some(values) = schema.get("additionalProperties").filter(|v| v.is_object()) {
        undocumented(values, &format!("{path}{{}}"), out);
    }
}

fn missing(crd: &Value) -> Vec<String> {
    let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or("?");
    let mut out = Vec::new();
    for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
        let mut fields = Vec::new();
        undocumented(&version["schema"]["openAPIV3Schema"], "", &mut fields);
        let v = version["name"].as_str().unwrap_or("?");
        out.extend(fields.into_iter().map(|f| format!("{kind} {v} {f}")));
    }
    out
}

#[test]
fn every_field_of_every_shipped_crd_has_a_description() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let mut gaps = Vec::new();
    let mut crds = 0;
    for package in SHIPPED {
        let plugin = Plugin::load_file(&engine, &common::component(package), Limits::default())
            .unwrap_or_else(|e| panic!("{package}: {e}"));
        for text in &plugin.registration().crds {
            let crd: Value = serde_json::from_str(text).unwrap();
            crds += 1;
            gaps.extend(missing(&crd).into_iter().map(|g| format!("{package}: {g}")));
        }
    }
    assert!(crds >= 9, "{crds} CRDs read");
    assert!(
        gaps.is_empty(),
        "{} fields without a description:\n{}",
        gaps.len(),
        gaps.join("\n")
    );
}

/// The test of the test: a field without a description is found, at any
/// depth, and the object's own metadata is not asked for one.
#[test]
fn a_field_without_a_description_is_named() {
    let crd = serde_json::json!({"spec": {"names": {"kind": "K"}, "versions": [{"name": "v1",
        "schema": {"openAPIV3Schema": {"type": "object", "properties": {
            "metadata": {"type": "object"},
            "spec": {"description": "s", "type": "object", "properties": {
                "list": {"description": "l", "type": "array", "items": {"type": "object",
                    "properties": {"name": {"type": "string"}}}},
                "labels": {"description": " ", "type": "object",
                    "additionalProperties": {"type": "object",
                        "properties": {"x": {"type": "string"}}}}}}}}}}]}});
    assert_eq!(
        missing(&crd),
        [
            "K v1 spec.labels",
            "K v1 spec.labels{}.x",
            "K v1 spec.list[].name"
        ]
    );
}
