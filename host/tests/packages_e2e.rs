//! Plugins as packages, against the real control plane and the real OCI
//! registries it runs (distribution v3, one open, one behind basic auth):
//! `operon push`, ClusterReconcilerPlugin and ReconcilerPlugin objects,
//! revisions, bad artifacts, pull secrets and a registry that goes away.
//! Tenants' ReconcilerPlugins have their own file, tenants_e2e.
//!
//! Each test's host follows only the plugin objects labelled with its
//! namespace (`--plugin-selector`), so tests running side by side never
//! pick up each other's cluster-scoped objects.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use operon_test_support::{TestEnv, controlplane, wait_until};
use serde_json::{Value, json};

use common::cluster_scoped::ClusterScoped;
use common::gadgets::{build, converged, create_gadget, gadgets, set_value};
use common::host::{WAIT, create_memcached, free_port};
use common::packages::{
    LABEL, host, is, push, reason, registries, revision_in_until, revisions_in,
};

/// A build of the revisions component (see common/gadgets.rs), in a file.
fn revision_build(env: &TestEnv, label: &str) -> PathBuf {
    let path = common::temp_dir(&format!("builds-{}", env.namespace)).join(format!("{label}.wasm"));
    std::fs::write(&path, build(label)).unwrap();
    path
}

/// What a careless or hostile publisher could push: any bytes under any
/// config, without `operon push`'s checks.
async fn push_raw(reference: &str, bytes: &[u8], exports: Vec<String>) -> String {
    let registry = operon::oci::Registry::new(operon::oci::RegistryOptions {
        plain_http: vec![reference.split('/').next().unwrap().to_string()],
        ..Default::default()
    });
    let r = operon::oci::reference(reference).unwrap();
    let config = operon::oci::WasmConfig::for_component(
        &operon::oci::digest_of(bytes),
        vec!["wasi:cli/environment@0.2.0".into()],
        exports,
    );
    registry
        .push(
            &r,
            bytes,
            &config,
            &oci_client::secrets::RegistryAuth::Anonymous,
        )
        .await
        .unwrap()
}

fn plugin_api(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "operon.dev",
        "v1alpha1",
        "ClusterReconcilerPlugin",
    ));
    Api::all_with(env.client.clone(), &ar)
}

fn revision_api(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "operon.dev",
        "v1alpha1",
        "ClusterReconcilerPluginRevision",
    ));
    Api::all_with(env.client.clone(), &ar)
}

/// A ClusterReconcilerPlugin named after the test, labelled for its host.
fn cluster_plugin(env: &TestEnv, spec: Value) -> Value {
    json!({
        "apiVersion": "operon.dev/v1alpha1", "kind": "ClusterReconcilerPlugin",
        "metadata": {"name": env.namespace, "labels": {LABEL: env.namespace}},
        "spec": spec,
    })
}

async fn set_source(env: &TestEnv, image: &str) {
    plugin_api(env)
        .patch(
            &env.namespace,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"source": {"image": image}}})),
        )
        .await
        .unwrap();
}

/// Waits until the test's plugin object satisfies `ok`; returns it.
async fn plugin_until(env: &TestEnv, what: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let api = plugin_api(env);
    let found = wait_until(what, WAIT, || async {
        let v = serde_json::to_value(api.get(&env.namespace).await?)?;
        Ok(ok(&v).then_some(v))
    })
    .await;
    match found {
        Ok(v) => v,
        Err(e) => {
            let last = api.get(&env.namespace).await.ok();
            let revs = revisions(env).await;
            panic!(
                "{e}\nthe plugin: {}\nits revisions: {}",
                serde_json::to_string_pretty(&last).unwrap(),
                serde_json::to_string_pretty(&revs).unwrap()
            )
        }
    }
}

/// The plugin's revisions, by number.
async fn revisions(env: &TestEnv) -> Vec<Value> {
    let labels = format!("operon.dev/plugin-object={}", env.namespace);
    revisions_in(&revision_api(env), &labels).await
}

/// Waits until the revision for `digest` satisfies `ok`; returns it.
async fn revision_until(
    env: &TestEnv,
    digest: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let labels = format!("operon.dev/plugin-object={}", env.namespace);
    revision_in_until(&revision_api(env), &labels, digest, what, ok).await
}

/// Sets the revision named `name` `Active`, as `kubectl patch` would.
async fn make_active(env: &TestEnv, name: &str) {
    revision_api(env)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"desiredState": "Active"}})),
        )
        .await
        .unwrap();
}

/// Waits until the plugin's active revision is the build `digest`.
async fn serving(env: &TestEnv, what: &str, digest: &str) -> Value {
    plugin_until(env, what, |p| p["status"]["activeDigest"] == digest).await
}

/// Waits until every gadget's ConfigMap was made by `revision` from its
/// current value.
async fn served_by(env: &TestEnv, names: &[String], revision: &str) {
    converged(env, names, revision).await;
}

/// Changes one gadget and waits until `revision` served the change: the
/// active revision keeps serving.
async fn still_served_by(env: &TestEnv, names: &[String], revision: &str, value: u64) {
    set_value(env, &names[0], value).await;
    served_by(env, names, revision).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pushed_memcached_converges_from_its_plugin_object() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let reference = format!("{}/{}/memcached:v1", reg.open, env.namespace);
    let digest = push(&common::component("rust-memcached"), &reference, &[]);

    let inspect = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args(["inspect", "--plain-http", &format!("oci://{reference}")])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&inspect.stdout);
    assert!(
        inspect.status.success(),
        "{}",
        String::from_utf8_lossy(&inspect.stderr)
    );
    assert!(
        shown.contains("memcached") && shown.contains(&digest[..19]),
        "{shown}"
    );

    let host = host(&env, &reg.open, &[]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    admin
        .apply(&cluster_plugin(
            &env,
            json!({"source": {"image": reference, "digest": digest}}),
        ))
        .await;
    let plugin = plugin_until(&env, "the plugin Ready", |p| is(p, "Ready", "True")).await;
    assert_eq!(plugin["status"]["activeDigest"], digest.as_str());
    assert_eq!(plugin["status"]["activeRevision"], 1);
    let revision = revision_until(&env, &digest, "revision 1 active", |r| {
        is(r, "Active", "True")
    })
    .await;
    for ty in ["Fetched", "Verified", "Compiled"] {
        assert!(is(&revision, ty, "True"), "{ty}: {}", reason(&revision, ty));
    }
    assert_eq!(revision["spec"]["desiredState"], "Active");
    let owner = &revision["metadata"]["ownerReferences"][0];
    assert_eq!(
        owner["uid"], plugin["metadata"]["uid"],
        "owned by its plugin"
    );

    create_memcached(&env, "cache", 2).await;
    let deployments: Api<Deployment> = env.api();
    wait_until("the Deployment with 2 replicas", WAIT, || async {
        Ok(deployments
            .get_opt("cache")
            .await?
            .filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(2)))
    })
    .await
    .unwrap();

    // What `kubectl get clusterreconcilerplugins` shows.
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(env.client.clone());
    let crd = crds
        .get("clusterreconcilerplugins.operon.dev")
        .await
        .unwrap();
    let columns: Vec<String> = crd.spec.versions[0]
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.clone())
        .collect();
    assert_eq!(columns, ["Revision", "Digest", "Healthy", "Ready", "Age"]);
    drop(host);
}

/// Interop: a plugin published with the ORAS CLI (no operon involved), a
/// config written by hand in the Wasm OCI artifact layout, runs.
#[tokio::test(flavor = "multi_thread")]
async fn a_plugin_pushed_with_oras_runs() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let dir = common::temp_dir(&format!("oras-{}", env.namespace));
    let wasm = std::fs::read(revision_build(&env, "oras")).unwrap();
    std::fs::write(dir.join("plugin.wasm"), &wasm).unwrap();
    let config = json!({"architecture": "wasm", "os": "wasip2",
                        "layerDigests": [operon::oci::digest_of(&wasm)]});
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();
    let reference = format!("{}/{}/gadgets:oras", reg.open, env.namespace);
    let out = Command::new(controlplane::binary_path().unwrap())
        .args(["oras", "push", "--plain-http", &reference])
        .args([
            "--config",
            "config.json:application/vnd.wasm.config.v0+json",
        ])
        .arg("plugin.wasm:application/wasm")
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "oras push: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let host = host(&env, &reg.open, &[]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    admin
        .apply(&cluster_plugin(
            &env,
            json!({"source": {"image": reference}}),
        ))
        .await;
    plugin_until(&env, "the oras-pushed plugin Ready", |p| {
        is(p, "Ready", "True")
    })
    .await;
    let names = vec!["g".to_string()];
    create_gadget(&env, "g", 7).await;
    served_by(&env, &names, "oras").await;
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn new_builds_activate_while_parents_change_and_old_revisions_are_pruned() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let repo = format!("{}/{}/gadgets", reg.open, env.namespace);
    let one = push(&revision_build(&env, "one"), &format!("{repo}:one"), &[]);
    let two = push(&revision_build(&env, "two"), &format!("{repo}:two"), &[]);
    let three = push(
        &revision_build(&env, "three"),
        &format!("{repo}:three"),
        &[],
    );

    let host = host(&env, &reg.open, &[]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    admin
        .apply(&cluster_plugin(
            &env,
            json!({"source": {"image": format!("{repo}:one")}, "revisionHistoryLimit": 1}),
        ))
        .await;
    serving(&env, "revision one serving", &one).await;
    let names: Vec<String> = (0..6).map(|i| format!("g{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        create_gadget(&env, name, i as u64).await;
    }
    served_by(&env, &names, "one").await;

    // Parents keep changing through both updates.
    let stop = Arc::new(AtomicBool::new(false));
    let churn = {
        let (stop, api, names) = (stop.clone(), gadgets(&env), names.clone());
        tokio::spawn(async move {
            let mut n = 100u64;
            while !stop.load(Ordering::Relaxed) {
                let name = &names[(n as usize) % names.len()];
                let patch = Patch::Merge(json!({"spec": {"value": n}}));
                api.patch(name, &PatchParams::default(), &patch)
                    .await
                    .unwrap();
                n += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    set_source(&env, &format!("{repo}:two")).await;
    plugin_until(&env, "revision two serving", |p| {
        p["status"]["activeDigest"] == two.as_str() && p["status"]["activeRevision"] == 2
    })
    .await;
    set_source(&env, &format!("{repo}:three")).await;
    serving(&env, "revision three serving", &three).await;
    stop.store(true, Ordering::Relaxed);
    churn.await.unwrap();
    served_by(&env, &names, "three").await;

    let revs = revisions(&env).await;
    let summary: Vec<(i64, String, String)> = revs
        .iter()
        .map(|r| {
            (
                r["spec"]["revision"].as_i64().unwrap(),
                r["spec"]["digest"].as_str().unwrap().to_string(),
                r["spec"]["desiredState"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2, two.clone(), "Inactive".into()),
            (3, three.clone(), "Active".into())
        ],
        "revision 1 pruned past revisionHistoryLimit 1, 2 kept Inactive"
    );
    // Nothing failed on the way: every reconcile of the gadgets succeeded.
    let (_, text) = common::host::get(&host.metrics, "/metrics").await.unwrap();
    let failed = common::host::metric(
        &text,
        "operon_reconcile_total",
        &["controller=\"revisions\"", "result=\"error\""],
    );
    assert_eq!(failed, 0.0, "no reconcile failed during the updates");
}

#[tokio::test(flavor = "multi_thread")]
async fn manual_activation_waits_compiled_then_swaps_and_rolls_back() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let repo = format!("{}/{}/gadgets", reg.open, env.namespace);
    let one = push(&revision_build(&env, "one"), &format!("{repo}:one"), &[]);
    let two = push(&revision_build(&env, "two"), &format!("{repo}:two"), &[]);

    let host = host(&env, &reg.open, &[]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    admin
        .apply(&cluster_plugin(
            &env,
            json!({"source": {"image": format!("{repo}:one")},
                   "revisionActivationPolicy": "Manual"}),
        ))
        .await;
    // The first revision of a plugin activates: nothing else would serve.
    serving(&env, "revision one serving", &one).await;
    let names = vec!["g".to_string()];
    create_gadget(&env, "g", 1).await;
    served_by(&env, &names, "one").await;

    set_source(&env, &format!("{repo}:two")).await;
    let waiting = revision_until(&env, &two, "revision two compiled", |r| {
        is(r, "Compiled", "True")
    })
    .await;
    assert_eq!(
        waiting["spec"]["desiredState"], "Inactive",
        "Manual: it waits"
    );
    still_served_by(&env, &names, "one", 2).await;

    let name = waiting["metadata"]["name"].as_str().unwrap().to_string();
    make_active(&env, &name).await;
    serving(&env, "revision two serving", &two).await;
    still_served_by(&env, &names, "two", 3).await;
    let first = revision_until(&env, &one, "revision one inactive", |r| {
        r["spec"]["desiredState"] == "Inactive" && is(r, "Active", "False")
    })
    .await;

    // Rolling back: the older revision made Active again.
    make_active(&env, first["metadata"]["name"].as_str().unwrap()).await;
    serving(&env, "revision one serving again", &one).await;
    still_served_by(&env, &names, "one", 4).await;

    // `operon plugins rollback` on the object's slot: the objects follow.
    let slot = format!("crp/{}", env.namespace);
    let out = Command::new(env!("CARGO_BIN_EXE_operon"))
        .args([
            "plugins",
            "--admin-addr",
            &host.admin,
            "rollback",
            &slot,
            "--to",
            "2",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "operon plugins rollback: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serving(
        &env,
        "revision two serving after operon plugins rollback",
        &two,
    )
    .await;
    let left = revision_until(&env, &one, "revision one recorded as rolled back", |r| {
        r["spec"]["desiredState"] == "Inactive" && reason(r, "Active").starts_with("RolledBack")
    })
    .await;
    assert!(
        reason(&left, "Active").contains("by hand"),
        "{}",
        reason(&left, "Active")
    );
    still_served_by(&env, &names, "two", 5).await;
    // Asked for again, a rolled-back revision serves again.
    make_active(&env, left["metadata"]["name"].as_str().unwrap()).await;
    serving(&env, "revision one serving once more", &one).await;
    still_served_by(&env, &names, "one", 6).await;
    drop(host);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_artifacts_are_named_and_the_active_revision_keeps_serving() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let repo = format!("{}/{}/gadgets", reg.open, env.namespace);
    let good = push(&revision_build(&env, "good"), &format!("{repo}:good"), &[]);
    // What a config of operon's world lists (`operon push` writes it).
    let exports: Vec<String> = operon::contract::REQUIRED_EXPORTS
        .iter()
        .map(|e| e.to_string())
        .collect();

    let host = host(&env, &reg.open, &["--max-artifact-mib", "1"]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    admin
        .apply(&cluster_plugin(
            &env,
            json!({"source": {"image": format!("{repo}:good")}}),
        ))
        .await;
    serving(&env, "the good build serving", &good).await;
    let names = vec!["g".to_string()];
    create_gadget(&env, "g", 1).await;
    served_by(&env, &names, "good").await;

    // Each bad artifact: the condition that names the cause, where.
    let not_a_component = push_raw(
        &format!("{repo}:garbage"),
        b"not wasm at all",
        exports.clone(),
    )
    .await;
    // Another world, whose config claims operon's exports.
    let other_world = std::fs::read(common::component("test-plugin-wrong-world")).unwrap();
    let wrong_world = push_raw(&format!("{repo}:other"), &other_world, exports.clone()).await;
    // The same, with a config that says what it exports: refused unfetched.
    let honest_other = push_raw(
        &format!("{repo}:honest"),
        &other_world,
        vec!["describe".into()],
    )
    .await;
    let too_big = push_raw(&format!("{repo}:big"), &vec![0u8; 2 << 20], exports.clone()).await;
    let greedy = push(&revision_build(&env, "wide"), &format!("{repo}:wide"), &[]);
    let cases: Vec<(&str, Option<&str>, &str, &str)> = vec![
        (
            "garbage",
            Some(&not_a_component),
            "Compiled",
            "NotAComponent",
        ),
        ("other", Some(&wrong_world), "Compiled", "WrongWorld"),
        ("honest", Some(&honest_other), "Fetched", "NotAPlugin"),
        ("big", Some(&too_big), "Fetched", "TooLarge"),
        ("wide", Some(&greedy), "Compiled", "NotGranted"),
        ("missing", None, "Resolved", "NotFound"),
    ];
    let mut value = 10;
    for (tag, digest, ty, want) in cases {
        set_source(&env, &format!("{repo}:{tag}")).await;
        let shown = match digest {
            Some(d) => {
                let rev = revision_until(&env, d, &format!("{tag}: {ty}=False"), |r| {
                    is(r, ty, "False")
                })
                .await;
                assert_eq!(rev["spec"]["desiredState"], "Inactive", "{tag}");
                reason(&rev, ty)
            }
            None => {
                let p = plugin_until(&env, &format!("{tag}: Resolved=False"), |p| {
                    is(p, ty, "False")
                })
                .await;
                reason(&p, ty)
            }
        };
        assert!(
            shown.starts_with(want),
            "{tag}: {ty} says {shown:?}, want {want}"
        );
        let plugin = plugin_api(&env).get(&env.namespace).await.unwrap();
        assert_eq!(
            plugin.data["status"]["activeDigest"],
            good.as_str(),
            "{tag}"
        );
        value += 1;
        still_served_by(&env, &names, "good", value).await;
    }

    // A tag that resolves elsewhere than the digest the object pins.
    plugin_api(&env)
        .patch(
            &env.namespace,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"source": {"image": format!("{repo}:wide"), "digest": good}}}),
            ),
        )
        .await
        .unwrap();
    let p = plugin_until(&env, "Resolved=False DigestMismatch", |p| {
        is(p, "Resolved", "False") && reason(p, "Resolved").starts_with("DigestMismatch")
    })
    .await;
    assert_eq!(p["status"]["activeDigest"], good.as_str());
    value += 1;
    still_served_by(&env, &names, "good", value).await;

    // Verification asked, no signature: never Active.
    let (pkcs8, pem) = operon::oci::signature::generate_key();
    let signed = push(
        &revision_build(&env, "signed"),
        &format!("{repo}:signed"),
        &[],
    );
    let unsigned = push(
        &revision_build(&env, "unsigned"),
        &format!("{repo}:unsigned"),
        &[],
    );
    let registry = operon::oci::Registry::new(operon::oci::RegistryOptions {
        plain_http: vec![reg.open.clone()],
        ..Default::default()
    });
    let r = operon::oci::reference(&format!("{repo}:signed")).unwrap();
    let anonymous = oci_client::secrets::RegistryAuth::Anonymous;
    operon::oci::signature::sign(&registry, &r, &signed, &anonymous, &pkcs8)
        .await
        .unwrap();
    plugin_api(&env)
        .patch(
            &env.namespace,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"source": {"image": format!("{repo}:unsigned"), "digest": null},
                                          "verify": {"publicKey": pem}}}),
            ),
        )
        .await
        .unwrap();
    let rev = revision_until(&env, &unsigned, "unsigned: Verified=False", |r| {
        is(r, "Verified", "False")
    })
    .await;
    assert!(
        reason(&rev, "Verified").starts_with("NoSignature"),
        "{}",
        reason(&rev, "Verified")
    );
    value += 1;
    still_served_by(&env, &names, "good", value).await;
    set_source(&env, &format!("{repo}:signed")).await;
    serving(&env, "the signed build serving", &signed).await;
    still_served_by(&env, &names, "signed", value + 1).await;
    drop(host);
}

/// `cosign generate-key-pair` (no password) in `dir`; the public key's PEM.
fn cosign_key_pair(dir: &Path) -> String {
    cosign(dir, &["generate-key-pair"]);
    std::fs::read_to_string(dir.join("cosign.pub")).unwrap()
}

/// The real cosign CLI (built into the control plane binary), in `dir`.
fn cosign(dir: &Path, args: &[&str]) {
    let out = Command::new(controlplane::binary_path().unwrap())
        .arg("cosign")
        .args(args)
        .env("COSIGN_PASSWORD", "")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cosign {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `cosign sign --key` of `repo@digest` as a publisher would, with the key
/// in `dir` (no transparency log: the test has no Rekor).
fn cosign_sign(dir: &Path, repo: &str, digest: &str) {
    let reference = format!("{repo}@{digest}");
    cosign(
        dir,
        &[
            "sign",
            "--key",
            "cosign.key",
            "--tlog-upload=false",
            "--allow-insecure-registry",
            "--allow-http-registry",
            "--yes",
            &reference,
        ],
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_made_by_the_cosign_cli_verify() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let repo = format!("{}/{}/gadgets", reg.open, env.namespace);
    let (ours, theirs) = (
        common::temp_dir(&format!("cosign-ours-{}", env.namespace)),
        common::temp_dir(&format!("cosign-theirs-{}", env.namespace)),
    );
    let ours_pem = cosign_key_pair(&ours);
    cosign_key_pair(&theirs);
    let signed = push(
        &revision_build(&env, "signed"),
        &format!("{repo}:signed"),
        &[],
    );
    cosign_sign(&ours, &repo, &signed);
    let other_key = push(
        &revision_build(&env, "other"),
        &format!("{repo}:other"),
        &[],
    );
    cosign_sign(&theirs, &repo, &other_key);

    let host = host(&env, &reg.open, &[]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    admin
        .apply(&cluster_plugin(
            &env,
            json!({"source": {"image": format!("{repo}:signed")},
                   "verify": {"publicKey": ours_pem}}),
        ))
        .await;
    let rev = revision_until(&env, &signed, "Verified=True", |r| {
        is(r, "Verified", "True")
    })
    .await;
    assert!(is(&rev, "Verified", "True"), "{}", reason(&rev, "Verified"));
    serving(&env, "the cosign-signed build serving", &signed).await;
    let names = vec!["g".to_string()];
    create_gadget(&env, "g", 1).await;
    served_by(&env, &names, "signed").await;

    // Signed by cosign, but with another key: never Active.
    set_source(&env, &format!("{repo}:other")).await;
    let rev = revision_until(&env, &other_key, "another key: Verified=False", |r| {
        is(r, "Verified", "False")
    })
    .await;
    let why = reason(&rev, "Verified");
    assert!(why.starts_with("InvalidSignature"), "{why}");
    still_served_by(&env, &names, "signed", 2).await;
    drop(host);
    for dir in [ours, theirs] {
        std::fs::remove_dir_all(dir).unwrap();
    }
}

/// A registry of the test's own, to stop and start again.
struct OwnRegistry {
    addr: String,
    root: PathBuf,
    child: Option<Child>,
}

impl OwnRegistry {
    fn start(env: &TestEnv) -> OwnRegistry {
        let mut r = OwnRegistry {
            addr: format!("127.0.0.1:{}", free_port()),
            root: common::temp_dir(&format!("registry-{}", env.namespace)),
            child: None,
        };
        r.resume();
        r
    }

    fn resume(&mut self) {
        let bin = controlplane::binary_path().unwrap();
        let child = Command::new(bin)
            .args(["registry", "--addr", &self.addr, "--root"])
            .arg(&self.root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let addr = self.addr.clone();
        for _ in 0..200 {
            if std::net::TcpStream::connect(&addr).is_ok() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("the test registry on {addr} did not start");
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for OwnRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_secrets_and_a_registry_that_goes_away() {
    let env = TestEnv::new().await;
    let reg = registries(&env);
    let repo = format!("{}/{}/gadgets", reg.auth, env.namespace);
    let creds = ["--username", &reg.username, "--password", &reg.password];
    let one = push(&revision_build(&env, "one"), &format!("{repo}:one"), &creds);
    let secrets: Api<Secret> = env.api();
    for (name, password) in [
        ("good", reg.password.as_str()),
        ("wrong", "not-the-password"),
    ] {
        let config = operon::oci::auth::docker_config(&reg.auth, &reg.username, password);
        secrets
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({
                "metadata": {"name": name}, "type": "kubernetes.io/dockerconfigjson",
                "stringData": {".dockerconfigjson": config}}))
                .unwrap(),
            )
            .await
            .unwrap();
    }
    let mut own = OwnRegistry::start(&env);
    let own_repo = format!("{}/{}/gadgets", own.addr, env.namespace);
    let two = push(
        &revision_build(&env, "two"),
        &format!("{own_repo}:two"),
        &[],
    );

    let host = host(&env, &reg.auth, &["--insecure-registry", &own.addr]);
    host.ready().await;
    let mut admin = ClusterScoped::new(&env);
    let spec = |secret: &str| {
        json!({"source": {"image": format!("{repo}:one")},
               "pullSecrets": [{"name": secret, "namespace": env.namespace}]})
    };
    admin.apply(&cluster_plugin(&env, spec("wrong"))).await;
    let p = plugin_until(&env, "wrong credentials shown", |p| {
        is(p, "Resolved", "False")
    })
    .await;
    let why = reason(&p, "Resolved");
    assert!(
        why.to_lowercase().contains("unauthorized") || why.contains("401"),
        "the registry's answer: {why}"
    );

    admin.apply(&cluster_plugin(&env, spec("good"))).await;
    serving(&env, "revision one serving", &one).await;
    let names = vec!["g".to_string()];
    create_gadget(&env, "g", 1).await;
    served_by(&env, &names, "one").await;

    // The registry of the update goes away: what serves keeps serving, the
    // fetch is retried until it is back.
    own.stop();
    set_source(&env, &format!("{own_repo}:two")).await;
    plugin_until(&env, "the registry's absence shown", |p| {
        is(p, "Resolved", "False")
    })
    .await;
    still_served_by(&env, &names, "one", 2).await;
    own.resume();
    serving(&env, "revision two serving", &two).await;
    still_served_by(&env, &names, "two", 3).await;
    drop(host);
}
