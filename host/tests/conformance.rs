//! The conformance suite: every memcached example, whatever its language,
//! run through the real engine on the same golden cases
//! (tests/conformance/memcached) by `operon test`, must answer exactly
//! what each case expects.
//!
//! Adding a language is adding its component to [`EXAMPLES`].

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use operon::engine::{Engine, EngineConfig, Limits};
use operon::plugin::Plugin;
use serde_json::Value;

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

fn cases() -> PathBuf {
    common::root().join("tests/conformance/memcached")
}

/// `operon <args> --now NOW`.
fn operon(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(args)
        .args(["--now", NOW])
        .env_remove("OPERON_LOG")
        .output()
        .expect("running operon")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn every_example_passes_every_case() {
    let mut failures = Vec::new();
    for example in EXAMPLES {
        let wasm = common::component(example);
        let out = operon(&["test".as_ref(), wasm.as_os_str(), cases().as_os_str()]);
        let report = text(&out);
        assert!(
            report.contains("5 passed") || !out.status.success(),
            "{example}: {report}"
        );
        if !out.status.success() {
            failures.push(format!("{example}:\n{report}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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

/// Copies a case directory.
fn copy_case(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

/// The test of the test: a changed answer fails the case, every changed
/// field is named with both values, and `--update` writes what the plugin
/// answers, after which the case passes.
#[test]
fn operon_test_catches_a_changed_answer_and_updates_it() {
    let dir = common::temp_dir("conformance-changed");
    let case = dir.join("progressing");
    copy_case(&cases().join("progressing"), &case);
    let expected_path = case.join("expected.yaml");
    let original = std::fs::read_to_string(&expected_path).unwrap();
    let mut expected: Value = serde_saphyr::from_str(&original).unwrap();
    expected["children"][0]["spec"]["replicas"] = 4.into();
    expected["status"]["conditions"][0]["reason"] = "Elsewhere".into();
    expected["children"].as_array_mut().unwrap().pop();
    std::fs::write(&expected_path, serde_json::to_string(&expected).unwrap()).unwrap();

    let wasm = common::component(EXAMPLES[0]);
    let out = operon(&["test".as_ref(), wasm.as_os_str(), dir.as_os_str()]);
    let report = text(&out);
    assert_eq!(out.status.code(), Some(6), "{report}");
    assert!(report.contains("FAIL    progressing"), "{report}");
    assert!(
        report
            .contains("children[apps/v1 Deployment demo/example].spec.replicas: expected 4, got 3"),
        "{report}"
    );
    assert!(
        report.contains("status.conditions[0].reason: expected \"Elsewhere\", got"),
        "{report}"
    );
    assert!(
        report.contains("children[v1 Service demo/example]: expected nothing, got {"),
        "{report}"
    );
    assert!(report.contains("0 passed, 1 failed"), "{report}");

    let out = operon(&[
        "test".as_ref(),
        wasm.as_os_str(),
        dir.as_os_str(),
        "--update".as_ref(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("updated progressing"), "{}", text(&out));
    assert_eq!(
        std::fs::read_to_string(&expected_path).unwrap(),
        original,
        "--update writes what operon reconcile prints"
    );
    let out = operon(&["test".as_ref(), wasm.as_os_str(), dir.as_os_str()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("ok      progressing"), "{}", text(&out));
}
