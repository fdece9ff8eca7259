//! The `operon` binary as a user runs it: `reconcile` and `inspect` on the
//! memcached example, and every failure the CLI promises to explain with
//! one line on stderr and a distinct exit code.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn operon(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(args)
        .env_remove("OPERON_LOG")
        .output()
        .expect("running operon")
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn json_stdout(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "operon failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

/// Asserts a failure: the exit code, and one stderr line naming the cause.
fn assert_fails(out: &Output, code: i32, needles: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stderr, got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "stderr should mention {n:?}: {stderr}");
    }
    stderr
}

fn memcached_reconcile(extra: &[&str]) -> Output {
    let wasm = common::component("rust-memcached");
    let parent = common::memcached_fixture("parent.yaml");
    let observed = common::memcached_fixture("observed.yaml");
    let mut args = vec![
        "reconcile",
        path(&wasm),
        "--parent",
        path(&parent),
        "--observed",
        path(&observed),
    ];
    args.extend_from_slice(extra);
    operon(&args)
}

#[test]
fn reconcile_prints_the_deployment_service_and_status() {
    let out = json_stdout(&memcached_reconcile(&["-o", "json", "--no-cache"]));
    let parent = operon::cli::read_objects(&common::memcached_fixture("parent.yaml")).unwrap();
    let size = &parent[0]["spec"]["size"];
    let children = out["children"].as_array().unwrap();
    let deployment = children
        .iter()
        .find(|c| c["kind"] == "Deployment")
        .expect("a Deployment");
    assert_eq!(
        &deployment["spec"]["replicas"], size,
        "replicas follow spec.size"
    );
    assert_eq!(
        deployment["metadata"]["namespace"],
        parent[0]["metadata"]["namespace"]
    );
    assert!(children.iter().any(|c| c["kind"] == "Service"), "a Service");
    let status = &out["status"];
    assert_eq!(status["readyReplicas"], 2, "from the observed Deployment");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(ready["status"], "False", "2 of 3 ready is not Ready");
}

#[test]
fn reconcile_output_matches_the_golden_file() {
    let out = memcached_reconcile(&["--now", "2026-01-01T00:00:00Z"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let golden = common::memcached_fixture("expected.yaml");
    let actual = String::from_utf8(out.stdout).unwrap();
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected =
        std::fs::read_to_string(&golden).expect("golden file (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(actual, expected, "output differs from {}", golden.display());
}

#[test]
fn inspect_prints_the_registration_and_cache_state() {
    let cache = common::temp_dir("inspect-cache");
    let wasm = common::component("rust-memcached");
    let run = || {
        operon(&[
            "inspect",
            path(&wasm),
            "-o",
            "json",
            "--cache-dir",
            path(&cache),
        ])
    };
    let first = json_stdout(&run());
    let reg = &first["registration"];
    assert_eq!(reg["name"], "memcached");
    assert_eq!(reg["parent"]["kind"]["kind"], "Memcached");
    let owns: Vec<&str> = reg["owns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["kind"].as_str().unwrap())
        .collect();
    assert_eq!(owns, ["Deployment", "Service"]);
    assert_eq!(reg["crds"][0]["spec"]["names"]["kind"], "Memcached");
    let component = &first["component"];
    assert!(
        component["exports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "reconcile")
    );
    assert!(
        component["imports"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i.as_str().unwrap().starts_with("operon:reconciler/log"))
    );
    assert!(component["sizeBytes"].as_u64().unwrap() > 0);
    assert_eq!(component["fromCache"], false);
    let second = json_stdout(&run());
    assert_eq!(
        second["component"]["fromCache"], true,
        "the second load does not recompile"
    );
    std::fs::remove_dir_all(cache).unwrap();
}

#[test]
fn a_missing_file_is_named() {
    let out = operon(&["inspect", "/nonexistent/plugin.wasm"]);
    assert_fails(&out, 1, &["/nonexistent/plugin.wasm", "No such file"]);
    let wasm = common::component("rust-memcached");
    let out = operon(&[
        "reconcile",
        path(&wasm),
        "--parent",
        "/nonexistent/parent.yaml",
    ]);
    assert_fails(&out, 1, &["/nonexistent/parent.yaml"]);
}

#[test]
fn a_file_that_is_not_a_component_is_refused() {
    let dir = common::temp_dir("not-component");
    let text = dir.join("readme.wasm");
    std::fs::write(&text, "hello").unwrap();
    assert_fails(
        &operon(&["inspect", path(&text)]),
        1,
        &["not a WebAssembly component", "no \\0asm header"],
    );
    let module = dir.join("module.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    assert_fails(
        &operon(&["inspect", path(&module)]),
        1,
        &["core WebAssembly module", "wasm32-wasip2"],
    );
}

#[test]
fn a_component_of_another_world_names_the_missing_export() {
    let wasm = common::component("test-plugin-wrong-world");
    assert_fails(
        &operon(&["inspect", path(&wasm)]),
        1,
        &["operon:reconciler@0.1.0", "missing export `reconcile`"],
    );
}

fn fails_with(mode: &str, extra: &[&str]) -> Output {
    let wasm = common::component("test-plugin-fails");
    let parent = common::memcached_fixture("parent.yaml");
    let config = format!("mode={mode}");
    let mut args = vec![
        "reconcile",
        path(&wasm),
        "--parent",
        path(&parent),
        "--config",
        &config,
    ];
    args.extend_from_slice(extra);
    operon(&args)
}

#[test]
fn plugin_errors_are_printed_with_their_kind() {
    assert_fails(
        &fails_with("retryable", &[]),
        3,
        &["retryable error: database not reachable", "demo/example"],
    );
    assert_fails(
        &fails_with("permanent", &[]),
        3,
        &["permanent error: spec.version 99 is not supported"],
    );
}

#[test]
fn traps_name_the_plugin_and_the_reason() {
    let out = fails_with("panic", &[]);
    assert_fails(&out, 4, &["plugin fails", "unreachable", "boom"]);
    let parent = common::memcached_fixture("parent.yaml");
    let spin = common::component("test-plugin-spin");
    let out = operon(&[
        "reconcile",
        path(&spin),
        "--parent",
        path(&parent),
        "--timeout-ms",
        "300",
    ]);
    // The message says which limit to raise, and how.
    assert_fails(
        &out,
        4,
        &[
            "plugin spin",
            "time limit exceeded",
            "300ms limit",
            "limits.timeoutMs",
            "--timeout-ms",
        ],
    );
    let hog = common::component("test-plugin-hog");
    let out = operon(&[
        "reconcile",
        path(&hog),
        "--parent",
        path(&parent),
        "--memory-mib",
        "32",
    ]);
    assert_fails(
        &out,
        4,
        &[
            "plugin hog",
            "memory limit exceeded",
            "limits.memoryMib",
            "--memory-mib",
        ],
    );
}

#[test]
fn invalid_yaml_and_json_inputs_give_file_and_position() {
    let dir = common::temp_dir("bad-input");
    let wasm = common::component("rust-memcached");
    let yaml = dir.join("parent.yaml");
    std::fs::write(&yaml, "apiVersion: v1\nkind: [Memcached\nmetadata: {}\n").unwrap();
    let out = operon(&["reconcile", path(&wasm), "--parent", path(&yaml)]);
    let err = assert_fails(&out, 1, &["parent.yaml", "invalid YAML"]);
    assert!(err.contains("line"), "position given: {err}");
    let json = dir.join("observed.json");
    std::fs::write(&json, "{\"apiVersion\": \"v1\",\n \"kind\": }").unwrap();
    let parent = common::memcached_fixture("parent.yaml");
    let out = operon(&[
        "reconcile",
        path(&wasm),
        "--parent",
        path(&parent),
        "--observed",
        path(&json),
    ]);
    assert_fails(
        &out,
        1,
        &["observed.json", "invalid JSON at line 2, column"],
    );
}

#[test]
fn cluster_reads_are_served_from_related_objects_within_the_read_grant() {
    let dir = common::temp_dir("reads");
    let related = dir.join("related.yaml");
    std::fs::write(
        &related,
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: demo, labels: {app: demo}}\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: demo, labels: {app: web}}\n\
         ---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: elsewhere, namespace: prod, labels: {app: demo}}\n\
         ---\napiVersion: v1\nkind: Secret\nmetadata: {name: creds, namespace: demo}\n",
    )
    .unwrap();
    let wasm = common::component("test-plugin-reads");
    let parent = common::memcached_fixture("parent.yaml");
    let out = json_stdout(&operon(&[
        "reconcile",
        path(&wasm),
        "--parent",
        path(&parent),
        "--related",
        path(&related),
        "-o",
        "json",
    ]));
    let status = &out["status"];
    assert_eq!(
        status["configMaps"],
        serde_json::json!(["settings"]),
        "namespace and label selector applied"
    );
    assert_eq!(status["settingsFound"], true);
    let secret = status["secret"].as_str().unwrap();
    assert!(
        secret.contains("Secret") && secret.contains("not granted"),
        "Secrets need their own grant: {secret}"
    );
}

/// A Widget parent in namespace `demo`, written to a temporary file.
fn widget_parent(dir: &Path) -> std::path::PathBuf {
    let parent = dir.join("widget.yaml");
    std::fs::write(
        &parent,
        "apiVersion: test.operon.dev/v1\nkind: Widget\n\
         metadata: {name: w, namespace: demo, uid: 0b6f1c2e-1111-4222-8333-944455556666}\n\
         spec: {}\n",
    )
    .unwrap();
    parent
}

#[test]
fn reconcile_refuses_a_child_of_a_kind_not_owned_as_run_does() {
    let dir = common::temp_dir("cli-foreign-kind");
    let parent = widget_parent(&dir);
    let wasm = common::component("test-plugin-hostile");
    let out = operon(&[
        "reconcile",
        path(&wasm),
        "--parent",
        path(&parent),
        "--config",
        "mode=foreign-kind",
    ]);
    assert_fails(
        &out,
        5,
        &[
            "operon run would refuse",
            "child #0 (Ingress demo/w)",
            "kind networking.k8s.io/v1/Ingress is not owned by plugin hostile",
        ],
    );
}

#[test]
fn reconcile_applies_the_grants_limits_as_run_does() {
    let dir = common::temp_dir("cli-grant-limits");
    let refused = |limits: &str, needles: &[&str]| {
        let grants = dir.join("grants.yaml");
        std::fs::write(
            &grants,
            format!("plugins:\n  memcached:\n    limits: {limits}\n"),
        )
        .unwrap();
        let out = memcached_reconcile(&["--grants", path(&grants)]);
        assert_fails(&out, 5, needles);
    };
    // The memcached answer: a Deployment and a Service.
    refused(
        "{maxChildren: 1}",
        &["returned 2 children; at most 1", "limits.maxChildren"],
    );
    refused(
        "{childKib: 0}",
        &["child #0 (Deployment demo/example)", "limits.childKib"],
    );
    refused("{statusKib: 0}", &["the status", "limits.statusKib"]);
    refused("{responseKib: 1}", &["the answer", "limits.responseKib"]);
    // Within its limits the same answer passes.
    let grants = dir.join("grants.yaml");
    std::fs::write(
        &grants,
        "plugins:\n  memcached:\n    limits: {maxChildren: 2}\n",
    )
    .unwrap();
    json_stdout(&memcached_reconcile(&[
        "--grants",
        path(&grants),
        "-o",
        "json",
    ]));
}

#[test]
fn a_misspelt_spec_field_is_refused_as_kubectl_apply_would() {
    let dir = common::temp_dir("cli-schema");
    let fixture = std::fs::read_to_string(common::memcached_fixture("parent.yaml")).unwrap();
    let parent = dir.join("parent.yaml");
    std::fs::write(&parent, fixture.replace("  size: 3", "  sise: 3")).unwrap();
    let wasm = common::component("rust-memcached");
    let args = ["reconcile", path(&wasm), "--parent", path(&parent)];
    assert_fails(
        &operon(&args),
        1,
        &[
            "Memcached demo/example",
            "spec.sise: unknown field",
            "--skip-schema",
        ],
    );
    // Handed over anyway, the plugin's own parsing is what refuses it.
    let mut skipped = args.to_vec();
    skipped.push("--skip-schema");
    assert_fails(&operon(&skipped), 3, &["missing field `size`"]);
}

/// `operon diff` runs two builds on the same cases and names every field
/// the new one changes; like diff(1), a difference exits non-zero.
#[test]
fn operon_diff_names_each_changed_field() {
    let dir = common::temp_dir("cli-diff");
    let (old, new) = (dir.join("v1.wasm"), dir.join("wide2.wasm"));
    std::fs::write(&old, common::gadgets::build("v1")).unwrap();
    std::fs::write(&new, common::gadgets::build("wide2")).unwrap();
    let cases = dir.join("cases");
    for (name, value) in [("one", 1), ("two", 2)] {
        let case = cases.join(name);
        std::fs::create_dir_all(&case).unwrap();
        let parent = format!(
            "apiVersion: test.operon.dev/v1\nkind: Gadget\n\
             metadata: {{name: {name}, namespace: demo, uid: u-{name}}}\n\
             spec: {{value: {value}}}\n"
        );
        std::fs::write(case.join("parent.yaml"), parent).unwrap();
    }
    let out = operon(&["diff", path(&old), path(&new), path(&cases)]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(6), "{report}");
    for needle in [
        "changed one (3 fields)",
        "children[v1 ConfigMap demo/one].data.revision: old \"v1\", new \"wide2\"",
        "children[v1 ServiceAccount demo/one]: old nothing, new {",
        "status.revision: old \"v1\", new \"wide2\"",
        "changed two (3 fields)",
        "2 of 2 cases answered differently",
    ] {
        assert!(report.contains(needle), "{needle:?} in:\n{report}");
    }
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("on 2 of 2 cases"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A build compared with itself changes nothing.
    let out = operon(&["diff", path(&old), path(&old), path(&cases)]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("same    one") && report.contains("0 of 2 cases"),
        "{report}"
    );
}

/// A JavaScript plugin's `console.*` reaches the host's log (the SDK's
/// `routeConsole`), with the plugin and the parent it was reconciling.
#[test]
fn console_of_a_js_plugin_reaches_the_host_log() {
    let wasm = common::component("js-memcached");
    let parent = common::memcached_fixture("parent.yaml");
    let out = operon(&["-vv", "reconcile", path(&wasm), "--parent", path(&parent)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.contains("memcached example: 0/3 replicas ready"))
        .unwrap_or_else(|| panic!("no console line in:\n{stderr}"));
    assert!(
        line.contains("DEBUG") && line.contains("demo/example"),
        "{line}"
    );
}
