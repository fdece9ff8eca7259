//! Shared by the tests of plugins as packages (packages_e2e, tenants_e2e):
//! the control plane's registries, `operon push`, a host following plugin
//! objects, and reading revisions and their conditions.

use std::path::Path;
use std::process::Command;

use kube::api::{Api, DynamicObject, ListParams};
use operon_test_support::{TestEnv, controlplane, wait_until};
use serde_json::Value;

use super::host::{Host, WAIT, condition};

/// The label each test's plugin objects carry, its namespace as value; a
/// test's host follows only those (`--plugin-selector`).
pub const LABEL: &str = "operon.dev/test";

/// The control plane's registries: one open, one behind basic auth.
pub fn registries(env: &TestEnv) -> controlplane::Registries {
    let state = env.kubeconfig_path.parent().unwrap();
    controlplane::registries(state).expect("the test registries (operon-controlplane up)")
}

/// `operon push` over plain HTTP; the digest it prints.
pub fn push(component: &Path, reference: &str, extra: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(["push", "--plain-http"])
        .arg(component)
        .arg(reference)
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "operon push {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let digest = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(digest.starts_with("sha256:"), "a digest: {digest}");
    digest
}

/// A host following this test's plugin objects (and no directory's).
pub fn host(env: &TestEnv, registry: &str, extra: &[&str]) -> Host {
    let selector = format!("{LABEL}={}", env.namespace);
    let mut args = vec![
        "--plugin-objects",
        "--plugin-selector",
        &selector,
        "--insecure-registry",
        registry,
        "--source-poll-s",
        "1",
        "--settle-ms",
        "0",
    ];
    args.extend_from_slice(extra);
    Host::start_with(env, &[], &env.kubeconfig_path, &args)
}

pub async fn revisions_in(api: &Api<DynamicObject>, labels: &str) -> Vec<Value> {
    let mut items: Vec<Value> = api
        .list(&ListParams::default().labels(labels))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|r| serde_json::to_value(r).unwrap())
        .collect();
    items.sort_by_key(|r| r["spec"]["revision"].as_i64());
    items
}

/// As [`revision_until`] among `api`'s revisions labelled `labels`; on a
/// timeout the revisions are shown.
pub async fn revision_in_until(
    api: &Api<DynamicObject>,
    labels: &str,
    digest: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let found = wait_until(what, WAIT, || async {
        Ok(revisions_in(api, labels)
            .await
            .into_iter()
            .find(|r| r["spec"]["digest"] == digest && ok(r)))
    })
    .await;
    match found {
        Ok(v) => v,
        Err(e) => {
            let revs = revisions_in(api, labels).await;
            let shown: Vec<&Value> = revs.iter().map(|r| &r["status"]).collect();
            panic!(
                "{e}\nrevisions' status: {}",
                serde_json::to_string_pretty(&shown).unwrap()
            )
        }
    }
}

pub fn is(obj: &Value, ty: &str, status: &str) -> bool {
    condition(obj, ty).is_some_and(|c| c["status"] == status)
}

pub fn reason(obj: &Value, ty: &str) -> String {
    condition(obj, ty).map_or(String::new(), |c| {
        format!(
            "{}: {}",
            c["reason"].as_str().unwrap_or(""),
            c["message"].as_str().unwrap_or("")
        )
    })
}
