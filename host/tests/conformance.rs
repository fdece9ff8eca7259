//! The conformance suite: every memcached example, whatever its language,
//! run through the real engine on the same cases (tests/conformance), must
//! answer exactly what the case expects.
//!
//! Adding a language is adding its component to [`EXAMPLES`].

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use operon::cli::read_objects;
use operon::contract::{ObjectSet, PluginError, Request};
use operon::engine::{Engine, EngineConfig, Limits};
use operon::plugin::{CallContext, CallError, Plugin};
use serde_json::{Value, json};

/// The memcached examples, by component package name.
const EXAMPLES: &[&str] = &[
    "rust-memcached",
    "js-memcached",
    "python-memcached",
    "go-memcached",
    "c-memcached",
];

/// The plugin clock of every case, as in the expected files.
const NOW: &str = "2026-01-01T00:00:00Z";

fn cases() -> Vec<PathBuf> {
    let dir = common::root().join("tests/conformance/memcached");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.yaml").exists())
        .collect();
    cases.sort();
    assert!(cases.len() >= 5, "the cases are in {}", dir.display());
    cases
}

/// What a plugin answered, in the shape of `expected.yaml`.
fn answer(plugin: &Plugin, case: &Path) -> Value {
    let parent = read_objects(&case.join("parent.yaml")).unwrap().remove(0);
    let observed = match case.join("observed.yaml") {
        p if p.exists() => read_objects(&p).unwrap(),
        _ => Vec::new(),
    };
    let mut cluster = ObjectSet::new();
    for o in &observed {
        cluster.insert(o.clone()).unwrap();
    }
    let request = Request::new(
        parent.to_string(),
        observed.iter().map(Value::to_string).collect(),
        vec![],
    );
    let ctx = CallContext {
        cluster: Arc::new(cluster),
        namespace: None,
        subject: "conformance".into(),
        fixed_time: Some(NOW.parse::<k8s_openapi::jiff::Timestamp>().unwrap().into()),
    };
    match plugin.reconcile(&request, &ctx).0 {
        Ok(outcome) => serde_json::to_value(outcome).unwrap(),
        Err(CallError::Plugin(PluginError::Permanent(m))) => json!({"error": {"permanent": m}}),
        Err(CallError::Plugin(PluginError::Retryable(m))) => json!({"error": {"retryable": m}}),
        Err(other) => json!({"error": {"failed": other.to_string()}}),
    }
}

/// The first difference between two JSON values, as a path and both sides.
fn mismatch(path: &str, expected: &Value, actual: &Value) -> Option<String> {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for key in e.keys().chain(a.keys()) {
                let (ev, av) = (
                    e.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                );
                if let Some(m) = mismatch(&format!("{path}.{key}"), ev, av) {
                    return Some(m);
                }
            }
            None
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => e
            .iter()
            .zip(a)
            .enumerate()
            .find_map(|(i, (ev, av))| mismatch(&format!("{path}[{i}]"), ev, av)),
        _ if expected == actual => None,
        _ => Some(format!("{path}: expected {expected}, got {actual}")),
    }
}

#[test]
fn every_example_passes_every_case() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let mut failures = Vec::new();
    let mut runs = 0;
    for example in EXAMPLES {
        let plugin = Plugin::load_file(&engine, &common::component(example), Limits::default())
            .unwrap_or_else(|e| panic!("{example}: {e}"));
        assert_eq!(
            plugin.name(),
            "memcached",
            "{example} registers as memcached"
        );
        for case in cases() {
            let expected: Value = read_objects(&case.join("expected.yaml")).unwrap().remove(0);
            let actual = answer(&plugin, &case);
            runs += 1;
            if let Some(m) = mismatch("", &expected, &actual) {
                failures.push(format!(
                    "{example} / {}: {m}",
                    case.file_name().unwrap().to_string_lossy()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {runs} runs differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_example_registers_the_same_contract() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let reference =
        Plugin::load_file(&engine, &common::component(EXAMPLES[0]), Limits::default()).unwrap();
    for example in &EXAMPLES[1..] {
        let plugin =
            Plugin::load_file(&engine, &common::component(example), Limits::default()).unwrap();
        let (r, p) = (reference.registration(), plugin.registration());
        assert_eq!(
            (&p.name, &p.parent, &p.owns, p.finalizer),
            (&r.name, &r.parent, &r.owns, r.finalizer),
            "{example}"
        );
        let crd = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(
            p.crds.iter().map(|c| crd(c)).collect::<Vec<_>>(),
            r.crds.iter().map(|c| crd(c)).collect::<Vec<_>>(),
            "{example}: same CRD"
        );
    }
}

/// The test of the test: a changed answer is caught, with the place named.
#[test]
fn the_suite_catches_a_changed_answer() {
    let engine = Engine::new(EngineConfig::default()).unwrap();
    let plugin =
        Plugin::load_file(&engine, &common::component(EXAMPLES[0]), Limits::default()).unwrap();
    let case = common::root().join("tests/conformance/memcached/progressing");
    let expected: Value = read_objects(&case.join("expected.yaml")).unwrap().remove(0);
    let mut actual = answer(&plugin, &case);
    assert_eq!(mismatch("", &expected, &actual), None);
    actual["children"][0]["spec"]["replicas"] = json!(4);
    assert_eq!(
        mismatch("", &expected, &actual).as_deref(),
        Some(".children[0].spec.replicas: expected 3, got 4")
    );
    actual["children"].as_array_mut().unwrap().pop();
    assert!(
        mismatch("", &expected, &actual)
            .unwrap()
            .starts_with(".children: expected")
    );
    let mut actual = answer(&plugin, &case);
    actual["status"]["conditions"][0]["lastTransitionTime"] = json!(NOW);
    assert!(
        mismatch("", &expected, &actual)
            .unwrap()
            .contains("lastTransitionTime")
    );
}
