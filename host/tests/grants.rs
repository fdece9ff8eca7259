//! The host operator's grants: a plugin asking for more does not load, and
//! reads are confined to the granted kinds and namespaces.

mod common;

use std::sync::Arc;

use operon::contract::{ObjectSet, Request};
use operon::engine::{Engine, EngineConfig, Limits};
use operon::plugin::{CallContext, GrantsFile, LoadError, Plugin};
use serde_json::json;

fn engine() -> Engine {
    Engine::new(EngineConfig {
        cache_dir: None,
        ..EngineConfig::default()
    })
    .unwrap()
}

fn grants(yaml: &str) -> GrantsFile {
    let dir = common::temp_dir(&format!("grants-{}", yaml.len()));
    let path = dir.join("grants.yaml");
    std::fs::write(&path, yaml).unwrap();
    GrantsFile::read(&path).unwrap()
}

#[test]
fn a_plugin_asking_for_more_than_it_is_granted_does_not_load() {
    let wasm = common::component("test-plugin-reads");
    // No entry: the default grant, which does not include extra reads.
    let err = Plugin::load_granted(&engine(), &wasm, Limits::default(), &GrantsFile::default())
        .err()
        .expect("refused");
    match &err {
        LoadError::NotGranted {
            plugin, missing, ..
        } => {
            assert_eq!(plugin, "reads");
            let missing: Vec<String> = missing.iter().map(|m| m.to_string()).collect();
            assert_eq!(missing, ["reads v1/ConfigMap"]);
        }
        other => panic!("expected NotGranted, got {other}"),
    }
    assert!(
        err.to_string().contains("plugins.reads"),
        "says where to grant it: {err}"
    );
}

#[test]
fn reads_are_confined_to_granted_kinds_and_namespaces() {
    let file = grants(
        "plugins:\n  reads:\n    reads: [v1/ConfigMap]\n    namespaces: parent\n    limits: {memoryMib: 64}\n",
    );
    let plugin = Plugin::load_granted(
        &engine(),
        &common::component("test-plugin-reads"),
        Limits::default(),
        &file,
    )
    .unwrap();
    assert_eq!(
        plugin.limits().memory_bytes,
        64 << 20,
        "the grant's limits apply"
    );
    let mut cluster = ObjectSet::new();
    for (ns, name, app) in [
        ("demo", "settings", "demo"),
        ("demo", "other", "web"),
        ("prod", "elsewhere", "demo"),
    ] {
        cluster
            .insert(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns, "labels": {"app": app}}}))
            .unwrap();
    }
    cluster.insert(json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "demo"}})).unwrap();
    let parent = json!({"apiVersion": "test.operon.dev/v1", "kind": "Widget", "metadata": {"name": "w", "namespace": "demo"}});
    let ctx = CallContext {
        cluster: Arc::new(cluster),
        subject: "demo/w".into(),
        namespace: Some("demo".into()),
        fixed_time: None,
    };
    let out = plugin
        .reconcile(&Request::new(parent.to_string(), vec![], vec![]), &ctx)
        .0
        .unwrap();
    let status = out.status.unwrap();
    assert_eq!(status["configMaps"], json!(["settings"]));
    let secret = status["secret"].as_str().unwrap();
    assert!(
        secret.contains("Secret") && secret.contains("not granted"),
        "{secret}"
    );
    let other = status["otherNamespace"].as_str().unwrap();
    assert!(
        other.contains("namespace prod") && other.contains("not granted"),
        "the tenant reads only its own namespace: {other}"
    );
}
