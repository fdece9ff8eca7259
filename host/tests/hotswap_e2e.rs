//! Hot swap against the real control plane: a plugin replaced while the
//! host runs and parents keep changing, bad builds refused, a failing
//! revision rolled back on its own, a shadow candidate that only reports.
//!
//! The builds come from one test component (`tests/plugins/revisions`)
//! whose behaviour is a 12-byte label in its data segment: the tests
//! rewrite the label to make "new releases" without compiling anything.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, Patch, PatchParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::gadgets::{build, converged, create_gadget, gadgets, set_value};
use common::host::{Host, WAIT, event_notes, get, metric};

const FILE: &str = "test_plugin_revisions.wasm";

/// Publishes the safe way: write aside under a hidden name, then rename.
fn publish(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    format!("{:x}", sha2::Sha256::digest(bytes))
}

/// `operon plugins ... -o json` against the host; the parsed answer.
fn plugins_cli(host: &Host, args: &[&str]) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(["plugins", "--admin-addr", &host.admin, "-o", "json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "operon plugins {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn admin(host: &Host, path: &str) -> Value {
    let (code, body) = get(&host.admin, path).await.unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Waits until the plugin's active revision is the build with `digest`.
async fn active_is(host: &Host, digest: &str) -> Value {
    wait_until(
        &format!("revision {} active", &digest[..12]),
        WAIT,
        || async {
            let (code, body) = get(&host.admin, "/plugins/revisions").await?;
            if code != 200 {
                return Ok(None); // Not loaded yet.
            }
            let p: Value = serde_json::from_str(&body)?;
            let active = p["revisions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["state"] == "active")
                .cloned();
            Ok(active.filter(|r| r["digest"] == digest))
        },
    )
    .await
    .unwrap()
}

async fn metrics(host: &Host) -> String {
    get(&host.metrics, "/metrics").await.unwrap().1
}

/// Waits until a metric (summed over series with `labels`) reaches `at_least`.
async fn metric_reaches(host: &Host, name: &str, labels: &[&str], at_least: f64) -> f64 {
    wait_until(&format!("{name}{labels:?} >= {at_least}"), WAIT, || async {
        let v = metric(&metrics(host).await, name, labels);
        Ok((v >= at_least).then_some(v))
    })
    .await
    .unwrap()
}

fn start(env: &TestEnv, extra: &[&str], vars: &[(&str, &str)]) -> Host {
    let host = Host::start_env(env, &[], &env.kubeconfig_path, extra, vars);
    publish(&host.dir, FILE, &build("v1"));
    host
}

/// Starts a host with the v1 build; `names` gadgets converged on it.
async fn started(
    env: &TestEnv,
    count: usize,
    extra: &[&str],
    vars: &[(&str, &str)],
) -> (Host, Vec<String>) {
    let host = start(env, extra, vars);
    host.ready().await;
    // Loaded (and its CRD served) once the admin endpoint lists it.
    active_is(&host, &digest(&build("v1"))).await;
    let names: Vec<String> = (0..count).map(|i| format!("g{i}")).collect();
    for n in &names {
        create_gadget(env, n, 0).await;
    }
    converged(env, &names, "v1").await;
    (host, names)
}

#[tokio::test]
async fn swap_under_load_converges_every_parent_and_fails_no_reconcile() {
    let env = TestEnv::new().await;
    let (host, names) = started(&env, 50, &[], &[]).await;

    // Parents change continuously while the new build goes in.
    let stop = Arc::new(AtomicBool::new(false));
    let rounds = Arc::new(AtomicU64::new(0));
    let load = {
        let (stop, rounds, names) = (stop.clone(), rounds.clone(), names.clone());
        let api = gadgets(&env);
        tokio::spawn(async move {
            let mut round = 0;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                for n in &names {
                    api.patch(
                        n,
                        &PatchParams::default(),
                        &Patch::Merge(json!({"spec": {"value": round}})),
                    )
                    .await
                    .unwrap();
                }
                rounds.store(round, Ordering::SeqCst);
            }
        })
    };
    wait_until("two rounds of updates", WAIT, || async {
        Ok((rounds.load(Ordering::SeqCst) >= 2).then_some(()))
    })
    .await
    .unwrap();
    let v2 = build("v2");
    publish(&host.dir, FILE, &v2);
    active_is(&host, &digest(&v2)).await;
    let at_swap = rounds.load(Ordering::SeqCst);
    wait_until("two more rounds after the swap", WAIT, || async {
        Ok((rounds.load(Ordering::SeqCst) >= at_swap + 2).then_some(()))
    })
    .await
    .unwrap();
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();

    converged(&env, &names, "v2").await;
    let text = metrics(&host).await;
    let errors = metric(
        &text,
        "controller_runtime_reconcile_errors_total",
        &["controller=\"revisions\""],
    );
    assert_eq!(errors, 0.0, "no reconcile failed:\n{text}");
    assert_eq!(
        metric(
            &text,
            "controller_runtime_reconcile_total",
            &["controller=\"revisions\"", "result=\"error\""]
        ),
        0.0
    );
    let label = |d: &str| format!("revision=\"{}\"", &d[..12]);
    let new = metric(
        &text,
        "operon_plugin_revision_reconciles_total",
        &[&label(&digest(&v2)), "result=\"success\""],
    );
    assert!(
        new >= names.len() as f64,
        "every parent reconciled by the new revision: {new}"
    );
    assert_eq!(
        metric(
            &text,
            "operon_plugin_revision_reconciles_total",
            &["result=\"failure\""]
        ),
        0.0
    );
    assert_eq!(
        metric(
            &text,
            "operon_plugin_swaps_total",
            &["plugin=\"revisions\""]
        ),
        1.0
    );

    let history = plugins_cli(&host, &["history", "revisions"]);
    let states: Vec<(u64, &str)> = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["number"].as_u64().unwrap(), r["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [(1, "superseded"), (2, "active")]);
    let r2 = &history["revisions"][1];
    assert!(r2["tracker"]["reconciles"].as_u64().unwrap() >= names.len() as u64);
    assert_eq!(r2["tracker"]["failures"], 0);
    assert_eq!(r2["tracker"]["probation"], "passed");
}

#[tokio::test]
async fn bad_builds_are_rejected_while_the_running_revision_serves() {
    let env = TestEnv::new().await;
    let pod = common::host::host_pod(&env).await;
    let vars = pod.each_ref().map(|(k, v)| (*k, v.as_str()));
    let grants = common::host::grants_file(
        &env,
        "plugins:\n  revisions:\n    owns: [v1/ConfigMap, v1/ServiceAccount]\n",
    );
    let (host, names) = started(&env, 3, &["--grants", grants.to_str().unwrap()], &vars).await;
    let v1 = digest(&build("v1"));

    let mut wrong_world = std::fs::read(common::component("test-plugin-wrong-world")).unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "not-a-component",
            b"\0asm\x01\0\0\0 this is not a component".to_vec(),
        ),
        ("contract", std::mem::take(&mut wrong_world)),
        ("not-granted", build("greedy")),
        (
            "name-changed",
            std::fs::read(common::component("test-plugin-trivial")).unwrap(),
        ),
    ];
    for (i, (kind, bytes)) in cases.iter().enumerate() {
        publish(&host.dir, FILE, bytes);
        metric_reaches(
            &host,
            "operon_plugin_rejected_builds_total",
            &[&format!("reason=\"{kind}\"")],
            1.0,
        )
        .await;
        // Still served by v1: a change is reconciled.
        set_value(&env, &names[0], i as u64 + 1).await;
        converged(&env, &names, "v1").await;
    }
    active_is(&host, &v1).await;
    let listed = plugins_cli(&host, &["list"]);
    let rejected: Vec<&str> = listed["plugins"][0]["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        rejected,
        ["not-a-component", "contract", "not-granted", "name-changed"]
    );
    let greedy = &listed["plugins"][0]["rejected"][2]["reason"];
    assert!(greedy.as_str().unwrap().contains("v1/Secret"), "{greedy}");
    let notes = event_notes(&env, "operon-host", "PluginRejected").await;
    assert_eq!(notes.len(), 4, "{notes:?}");
    assert!(
        notes.iter().all(|n| n.contains("stays on revision 1")),
        "{notes:?}"
    );

    // The unsafe way: the file is written in place, in two halves. The
    // half-written file is not a valid component and is never rejected:
    // once complete, it loads.
    let v2 = build("v2");
    std::fs::write(host.dir.join(FILE), &v2[..v2.len() / 2]).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    std::fs::write(host.dir.join(FILE), &v2).unwrap();
    active_is(&host, &digest(&v2)).await;
    converged(&env, &names, "v2").await;
    assert_eq!(
        metric(
            &metrics(&host).await,
            "operon_plugin_rejected_builds_total",
            &[]
        ),
        4.0
    );

    // A registration change: the new build also owns ServiceAccounts, so
    // the host opens that watch; rolling back closes it again.
    let sa_watch = "kind=\"v1/ServiceAccount\"";
    assert_eq!(
        metric(&metrics(&host).await, "operon_watches", &[sa_watch]),
        0.0
    );
    let wide = build("wide");
    publish(&host.dir, FILE, &wide);
    active_is(&host, &digest(&wide)).await;
    converged(&env, &names, "wide").await;
    assert_eq!(
        metric(&metrics(&host).await, "operon_watches", &[sa_watch]),
        1.0
    );
    let rolled = plugins_cli(&host, &["rollback", "revisions"]);
    assert!(
        rolled["message"]
            .as_str()
            .unwrap()
            .contains("rolled back to revision 2"),
        "{rolled}"
    );
    active_is(&host, &digest(&v2)).await;
    converged(&env, &names, "v2").await;
    assert_eq!(
        metric(&metrics(&host).await, "operon_watches", &[sa_watch]),
        0.0
    );
    let text = metrics(&host).await;
    assert_eq!(
        metric(
            &text,
            "operon_plugin_rollbacks_total",
            &["trigger=\"manual\""]
        ),
        1.0
    );
    assert_eq!(
        metric(&text, "controller_runtime_reconcile_errors_total", &[]),
        0.0
    );
    // Back to revision 1 by number: it is kept, nothing is compiled.
    plugins_cli(&host, &["rollback", "revisions", "--to", "1"]);
    active_is(&host, &v1).await;
    converged(&env, &names, "v1").await;
}

#[tokio::test]
async fn a_failing_revision_is_rolled_back_on_its_own() {
    let env = TestEnv::new().await;
    let (host, names) = started(&env, 3, &[], &[]).await;
    let v1 = digest(&build("v1"));
    let broken = build("fail");
    publish(&host.dir, FILE, &broken);
    metric_reaches(
        &host,
        "operon_plugin_rollbacks_total",
        &["trigger=\"auto\""],
        1.0,
    )
    .await;
    active_is(&host, &v1).await;
    let history = admin(&host, "/plugins/revisions").await;
    let r2 = history["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["number"] == 2)
        .unwrap()
        .clone();
    assert_eq!(r2["state"], "rolledBack", "{r2}");
    let why = r2["reason"].as_str().unwrap();
    assert!(
        why.contains("reconciles failed") && why.contains("cannot reconcile gadget"),
        "{why}"
    );
    // v1 serves again, and the broken build stays out until the file changes.
    set_value(&env, &names[1], 7).await;
    converged(&env, &names, "v1").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    active_is(&host, &v1).await;
    assert_eq!(
        metric(&metrics(&host).await, "operon_plugin_swaps_total", &[]),
        2.0
    );

    // Removing the component unloads the plugin: its watches close, its
    // objects stay, changes are no longer reconciled. Putting it back
    // loads it again.
    let gadget_watch = "kind=\"test.operon.dev/v1/Gadget\"";
    std::fs::remove_file(host.dir.join(FILE)).unwrap();
    wait_until("the plugin to be unloaded", WAIT, || async {
        let (code, _) = get(&host.admin, "/plugins/revisions").await?;
        let watch = metric(&metrics(&host).await, "operon_watches", &[gadget_watch]);
        Ok((code == 404 && watch == 0.0).then_some(()))
    })
    .await
    .unwrap();
    set_value(&env, &names[2], 99).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let cms: Api<ConfigMap> = env.api();
    for n in &names {
        let cm = cms.get(n).await.unwrap();
        assert_eq!(
            cm.data.unwrap()["revision"],
            "v1",
            "children are left as they are"
        );
    }
    assert_ne!(
        cms.get(&names[2]).await.unwrap().data.unwrap()["value"],
        "99"
    );
    publish(&host.dir, FILE, &build("v1"));
    active_is(&host, &v1).await;
    converged(&env, &names, "v1").await;
}

#[tokio::test]
async fn a_shadow_candidate_reports_differences_and_changes_nothing() {
    let env = TestEnv::new().await;
    let (host, names) = started(&env, 3, &[], &[]).await;
    let candidate = build("v3");
    publish(
        &host.dir,
        "test_plugin_revisions.candidate.wasm",
        &candidate,
    );
    wait_until("the candidate to be placed", WAIT, || async {
        let p = admin(&host, "/plugins/revisions").await;
        Ok((p["candidate"]["digest"] == digest(&candidate)).then_some(()))
    })
    .await
    .unwrap();
    // Every change is answered by both; only the active answer is applied.
    for (i, n) in names.iter().enumerate() {
        set_value(&env, n, 10 + i as u64).await;
    }
    converged(&env, &names, "v1").await;
    metric_reaches(
        &host,
        "operon_plugin_shadow_diffs_total",
        &["plugin=\"revisions\""],
        names.len() as f64,
    )
    .await;
    let text = metrics(&host).await;
    assert_eq!(metric(&text, "operon_plugin_shadow_errors_total", &[]), 0.0);
    let listed = plugins_cli(&host, &["list"]);
    let c = &listed["plugins"][0]["candidate"];
    // Counted together under one lock: every dry run differed.
    assert_eq!(c["reconciles"], c["diffs"], "{c}");
    let sample = c["samples"][0].as_str().unwrap();
    assert!(
        sample.contains(".data.revision: active \"v1\", candidate \"v3\""),
        "{sample}"
    );
    let cms: Api<ConfigMap> = env.api();
    for cm in cms.list(&Default::default()).await.unwrap() {
        assert_ne!(
            cm.data
                .unwrap_or_default()
                .get("revision")
                .map(String::as_str),
            Some("v3"),
            "nothing of the candidate is applied"
        );
    }
    // Removing the candidate stops the dry runs; promoting it is replacing
    // the active file.
    std::fs::remove_file(host.dir.join("test_plugin_revisions.candidate.wasm")).unwrap();
    wait_until("the candidate to be gone", WAIT, || async {
        Ok(admin(&host, "/plugins/revisions").await["candidate"]
            .is_null()
            .then_some(()))
    })
    .await
    .unwrap();
    publish(&host.dir, FILE, &candidate);
    active_is(&host, &digest(&candidate)).await;
    converged(&env, &names, "v3").await;
}

/// Waits until every named gadget's ConfigMap carries `note` (the config
/// key the revisions plugin copies).
async fn notes_are(env: &TestEnv, names: &[String], note: &str) {
    let cms: Api<ConfigMap> = env.api();
    wait_until(&format!("ConfigMaps noting {note:?}"), WAIT, || async {
        for name in names {
            let data = cms.get(name).await?.data.unwrap_or_default();
            if data.get("note").map(String::as_str) != Some(note) {
                return Ok(None);
            }
        }
        Ok(Some(()))
    })
    .await
    .unwrap();
}

/// `operon run --config NAME:KEY=VALUE` reaches every reconcile of the
/// plugin of that name (not another's), and still does after a swap.
#[tokio::test]
async fn the_hosts_config_reaches_the_plugin_across_a_swap() {
    let env = TestEnv::new().await;
    let flags = [
        "--config",
        "revisions:note=from the host",
        "--config",
        "someone-else:note=not this",
    ];
    let (host, names) = started(&env, 2, &flags, &[]).await;
    notes_are(&env, &names, "from the host").await;
    publish(&host.dir, FILE, &build("v2"));
    converged(&env, &names, "v2").await;
    notes_are(&env, &names, "from the host").await;
}
