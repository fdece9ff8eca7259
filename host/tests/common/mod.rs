//! Shared by the host's integration tests: where the built components are.

#![allow(dead_code)]

pub mod churn;
pub mod cluster_scoped;
pub mod faults;
pub mod gadgets;
pub mod host;
pub mod packages;
pub mod relay;
pub mod suite;

use std::path::PathBuf;

/// The workspace root.
pub fn root() -> PathBuf {
    operon_test_support::controlplane::repo_root()
}

/// A built component by package name. `cargo xtask test` builds them all
/// and sets `OPERON_PLUGIN_DIR`; a plain `cargo test` finds them in the
/// target directory after `cargo xtask build`.
pub fn component(package: &str) -> PathBuf {
    let dir = std::env::var_os("OPERON_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root().join("target"))
                .join("wasm32-wasip2/plugin")
        });
    let path = dir.join(format!("{}.wasm", package.replace('-', "_")));
    assert!(
        path.exists(),
        "component {} not found: build the components with `cargo xtask build` \
         (`cargo xtask test` does it for you)",
        path.display()
    );
    path
}

/// The API server's audit log of the cluster the test uses (every write by
/// a client other than the control plane's own components).
pub fn audit_log(env: &operon_test_support::TestEnv) -> PathBuf {
    env.kubeconfig_path.parent().unwrap().join("logs/audit.log")
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("operon-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn memcached_fixture(name: &str) -> PathBuf {
    root().join("examples/rust-memcached/fixtures").join(name)
}

/// Every scenario directory of a fixture directory (those with a
/// `parent.yaml`), sorted.
pub fn scenarios(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let e = e.ok()?;
            e.path()
                .join("parent.yaml")
                .exists()
                .then(|| e.file_name().to_string_lossy().to_string())
        })
        .collect();
    names.sort();
    names
}

/// How many lines the audit log has now (see [`audit_since`]).
pub fn audit_lines(env: &operon_test_support::TestEnv) -> usize {
    std::fs::read_to_string(audit_log(env)).map_or(0, |t| t.lines().count())
}

/// The audit events written after the first `skip` lines.
pub fn audit_since(env: &operon_test_support::TestEnv, skip: usize) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(audit_log(env)).unwrap_or_default();
    text.lines()
        .skip(skip)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}
