//! The postgres plugin through the real engine and CLI: `operon reconcile`
//! on every scenario of `plugins/postgres/fixtures`, compared with its
//! golden `expected.yaml` (`UPDATE_GOLDEN=1` rewrites them), and the
//! invalid specs' promise checked on the output itself: no children, a
//! `Ready=False` with reason and message.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

/// `operon <args>`, which must succeed; its stdout as JSON.
fn operon_json(args: &[&std::ffi::OsStr]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn fixtures() -> PathBuf {
    common::root().join("plugins/postgres/fixtures")
}

/// Whether a scenario's `case.yaml` hands its parent over past the CRD's
/// schema (the API server would never hand it over: it shows the plugin's
/// own check), as `operon test` reads it.
fn skips_schema(scenario: &str) -> bool {
    std::fs::read_to_string(fixtures().join(scenario).join("case.yaml"))
        .is_ok_and(|t| t.lines().any(|l| l.trim() == "skipSchema: true"))
}

fn reconcile(scenario: &str, extra: &[&str]) -> Output {
    let skip: &[&str] = if skips_schema(scenario) {
        &["--skip-schema"]
    } else {
        &[]
    };
    reconcile_checked(scenario, skip, extra)
}

fn reconcile_checked(scenario: &str, schema: &[&str], extra: &[&str]) -> Output {
    let wasm = common::component("postgres");
    let dir = fixtures().join(scenario);
    Command::new(env!("CARGO_BIN_EXE_operon"))
        .arg("reconcile")
        .args(schema)
        .arg(&wasm)
        .arg("--parent")
        .arg(dir.join("parent.yaml"))
        .arg("--observed")
        .arg(dir.join("observed.yaml"))
        .args(["--now", "2026-01-01T00:00:00Z"])
        .args(extra)
        .env_remove("OPERON_LOG")
        .output()
        .expect("running operon")
}

fn json_output(scenario: &str) -> Value {
    let out = reconcile(scenario, &["-o", "json"]);
    assert!(
        out.status.success(),
        "{scenario}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ready(out: &Value) -> &Value {
    out["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .expect("a Ready condition")
}

/// `operon test` on every scenario (`UPDATE_GOLDEN=1` passes `--update`).
#[test]
fn every_scenario_matches_its_golden_file() {
    assert!(common::scenarios(&fixtures()).len() >= 15);
    let wasm = common::component("postgres");
    let out = Command::new(env!("CARGO_BIN_EXE_operon"))
        .arg("test")
        .arg(&wasm)
        .arg(fixtures())
        .args(["--now", "2026-01-01T00:00:00Z"])
        .args(std::env::var_os("UPDATE_GOLDEN").map(|_| "--update"))
        .env_remove("OPERON_LOG")
        .output()
        .expect("running operon");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_parent_the_crd_refuses_is_refused_offline_with_its_field() {
    let scenario = "invalid-version";
    assert!(
        skips_schema(scenario),
        "{scenario}: case.yaml skips the schema"
    );
    let out = reconcile_checked(scenario, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{scenario}: {stderr}");
    assert!(out.stdout.is_empty(), "{scenario}: nothing reconciled");
    assert!(
        stderr.contains("PostgresCluster demo/hippo")
            && stderr.contains("spec.version: must be one of 15, 16, 17, 18"),
        "{scenario}: {stderr}"
    );
}

#[test]
fn invalid_specs_make_nothing_and_say_why() {
    for (scenario, reason, needle) in [
        (
            "invalid-version",
            "InvalidSpec",
            "spec.version 13 is not supported",
        ),
        (
            "invalid-zero-instances",
            "InvalidSpec",
            "spec.instances is 0",
        ),
        (
            "invalid-duplicate-users",
            "InvalidSpec",
            "duplicate names app",
        ),
        (
            "invalid-missing-database",
            "InvalidSpec",
            "spec.dataLoads[cities].database \"nope\" is not in spec.databases",
        ),
        ("from-backup", "BootstrapNotSupported", "not supported yet"),
    ] {
        let out = json_output(scenario);
        assert_eq!(
            out["children"],
            Value::Array(vec![]),
            "{scenario}: no children"
        );
        let ready = ready(&out);
        assert_eq!(ready["status"], "False", "{scenario}");
        assert_eq!(ready["reason"], reason, "{scenario}");
        let message = ready["message"].as_str().unwrap();
        assert!(message.contains(needle), "{scenario}: {message}");
        assert_eq!(out["status"]["phase"], "Invalid");
        assert_eq!(
            out["events"][0]["type"], "Warning",
            "{scenario}: {}",
            out["events"]
        );
    }
}

#[test]
fn an_invalid_edit_keeps_the_running_cluster() {
    let running = json_output("running");
    let invalid = json_output("invalid-running");
    assert_eq!(running["children"], invalid["children"]);
    let ready = ready(&invalid);
    assert_eq!(
        (&ready["status"], &ready["reason"]),
        (&"False".into(), &"InvalidSpec".into())
    );
}

#[test]
fn paused_renders_the_last_applied_spec() {
    let running = json_output("running");
    let paused = json_output("paused");
    assert_eq!(running["children"], paused["children"]);
    assert_eq!(paused["status"]["phase"], "Paused");
}

/// The component draws passwords from WASI random, which the sandbox
/// grants: two runs with no Secrets observed generate different ones.
#[test]
fn passwords_come_from_wasi_random_in_the_component() {
    let wasm = common::component("postgres");
    let parent = fixtures().join("bootstrap/parent.yaml");
    let run = || {
        let v = operon_json(&[
            "reconcile".as_ref(),
            wasm.as_os_str(),
            "--parent".as_ref(),
            parent.as_os_str(),
            "-o".as_ref(),
            "json".as_ref(),
        ]);
        let secret = v["children"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["kind"] == "Secret" && c["metadata"]["name"] == "hippo-superuser")
            .expect("the superuser Secret")
            .clone();
        secret["data"]["password"].as_str().unwrap().to_string()
    };
    let (a, b) = (run(), run());
    assert_ne!(a, b, "two fresh passwords");
    // 24 alphanumerics are 32 base64 characters without padding.
    assert_eq!(a.len(), 32, "{a}");
}

#[test]
fn inspect_shows_the_crd_and_owned_kinds() {
    let wasm = common::component("postgres");
    let v = operon_json(&[
        "inspect".as_ref(),
        wasm.as_os_str(),
        "-o".as_ref(),
        "json".as_ref(),
        "--no-cache".as_ref(),
    ]);
    let reg = &v["registration"];
    assert_eq!(reg["name"], "postgres");
    assert_eq!(reg["crds"][0]["spec"]["names"]["shortNames"][0], "pgc");
    let owns: Vec<&str> = reg["owns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    for kind in [
        "StatefulSet",
        "PersistentVolumeClaim",
        "Service",
        "Secret",
        "ConfigMap",
        "PodDisruptionBudget",
        "Job",
        "Deployment",
    ] {
        assert!(owns.contains(&kind), "owns {kind}: {owns:?}");
    }
}
