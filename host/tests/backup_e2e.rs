//! The backup plugin (its two components, `operon-backup` for
//! PostgresBackup and `operon-backup-schedule` for BackupSchedule) beside
//! the postgres plugin under `operon run`, on the real control plane.
//! kwok runs the Pods and completes Job Pods; no PostgreSQL runs (the
//! scripts are tested against a real one in plugins/backup/tests).
//!
//! - (no cluster needed) every golden fixture through the real engine,
//!   `operon reconcile` on the built components, gives its expected.json;
//! - every child of the backup plugin's golden fixtures passes the API
//!   server's server-side dry-run;
//! - a schedule (`* * * * *`, keepLast 2) makes a backup in the next
//!   minute's slot and prunes the older ones by retention (three earlier
//!   backups of the schedule are made by the test, so the run takes one
//!   slot, not three);
//! - a backup whose Job cannot run (its claim does not exist) fails at its
//!   deadline and shows Failed with the Job's reason;
//! - a new cluster bootstrapped from a completed backup waits, gets the
//!   restore Job and only then its primary; one naming a backup that does
//!   not exist waits and says so;
//! - deleting a backup with `deletionPolicy: Delete` runs the cleanup Job,
//!   then the finalizer goes and the object with it;
//! - with all three plugins in one host, the schedule component is swapped
//!   for a new build while the others keep following changes.

mod common;

use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::cluster_scoped::ClusterScoped;
use common::host::Host;
use common::suite;

fn claims(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

const WAIT: Duration = Duration::from_secs(180);
const GROUP_VERSION: &str = "postgres.operon.dev/v1alpha1";

fn dynamic_api(env: &TestEnv, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

fn backups(env: &TestEnv) -> Api<DynamicObject> {
    dynamic_api(env, GROUP_VERSION, "PostgresBackup")
}

fn clusters(env: &TestEnv) -> Api<DynamicObject> {
    dynamic_api(env, GROUP_VERSION, "PostgresCluster")
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

async fn create(api: &Api<DynamicObject>, object: Value) {
    let object: DynamicObject = serde_json::from_value(object).unwrap();
    api.create(&PostParams::default(), &object).await.unwrap();
}

/// The host with the postgres and scaling plugins, then the backup
/// components added to its running plugin directory (hot add: the host
/// follows it).
async fn start(env: &TestEnv) -> Host {
    let grants = suite::grants(env);
    let host = Host::start_with(
        env,
        &["postgres", "operon-scaling"],
        &env.kubeconfig_path,
        &["--grants", grants.to_str().unwrap()],
    );
    host.ready().await;
    for p in ["operon-backup", "operon-backup-schedule"] {
        let src = common::component(p);
        std::fs::copy(&src, host.dir.join(src.file_name().unwrap())).unwrap();
    }
    wait_until("the backup plugins' kinds served", WAIT, || async {
        let ok = backups(env).list(&ListParams::default()).await.is_ok()
            && dynamic_api(env, GROUP_VERSION, "BackupSchedule")
                .list(&ListParams::default())
                .await
                .is_ok();
        Ok(ok.then_some(()))
    })
    .await
    .unwrap();
    host
}

async fn get(api: &Api<DynamicObject>, name: &str) -> anyhow::Result<Value> {
    Ok(serde_json::to_value(api.get(name).await?)?)
}

/// Waits until `name` reports `phase`; returns it.
async fn wait_phase(api: &Api<DynamicObject>, name: &str, phase: &str) -> Value {
    wait_until(&format!("{name} {phase}"), WAIT, || async {
        let obj = get(api, name).await?;
        Ok((obj["status"]["phase"] == phase).then_some(obj))
    })
    .await
    .unwrap()
}

async fn backup_claim(env: &TestEnv) {
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": {"name": "backups"},
        "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "",
                 "resources": {"requests": {"storage": "1Gi"}}},
    }))
    .unwrap();
    env.api()
        .create(&PostParams::default(), &pvc)
        .await
        .unwrap();
}

async fn ready_cluster(env: &TestEnv, name: &str, spec_extra: Value) -> Value {
    let mut spec = json!({"version": 16, "instances": 1, "storage": {"size": "1Gi"}});
    if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
        s.extend(extra.clone());
    }
    create(
        &clusters(env),
        json!({"apiVersion": GROUP_VERSION, "kind": "PostgresCluster",
               "metadata": {"name": name, "namespace": env.namespace}, "spec": spec}),
    )
    .await;
    wait_until(&format!("{name} Ready"), WAIT, || async {
        let obj = get(&clusters(env), name).await?;
        let ready = condition(&obj, "Ready").is_some_and(|c| c["status"] == "True");
        Ok(ready.then_some(obj))
    })
    .await
    .unwrap()
}

async fn event_messages(env: &TestEnv, object: &str, reason: &str) -> Vec<String> {
    let api: Api<Event> = env.api();
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some(reason)
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(object)
        })
        .filter_map(|e| e.note)
        .collect()
}

/// A fixture's moment: its `now.txt`, else the fixtures' common one.
/// The golden files are written natively (plugins/backup/tests/golden.rs);
/// the components must answer the same through the engine: `operon test`
/// on each fixture directory.
#[test]
fn every_fixture_through_the_engine_matches_its_golden_file() {
    let fixtures = common::root().join("plugins/backup/fixtures");
    for (kind, package, at_least) in [
        ("backup", "operon-backup", 20),
        ("schedule", "operon-backup-schedule", 15),
        // Named time zones across a DST change, each at its own moment.
        ("schedule-dst", "operon-backup-schedule", 3),
    ] {
        assert!(common::scenarios(&fixtures.join(kind)).len() >= at_least);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_operon"))
            .arg("test")
            .arg(common::component(package))
            .arg(fixtures.join(kind))
            .args(["--now", "2026-01-01T00:00:00Z"])
            .env_remove("OPERON_LOG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{kind}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn schedules_failures_restores_and_cleanup() {
    let env = TestEnv::new().await;
    let _volumes = ClusterScoped::volumes(
        &env,
        &claims(&["backups", "pg-0-data", "copy-0-data"]),
        None,
    )
    .await;
    let _host = start(&env).await;
    backup_claim(&env).await;

    // Every child of the golden fixtures is valid Kubernetes.
    let fixtures = common::root().join("plugins/backup/fixtures");
    let mut checked = 0;
    for kind in ["backup", "schedule", "schedule-dst"] {
        for entry in std::fs::read_dir(fixtures.join(kind)).unwrap() {
            let golden = entry.unwrap().path().join("expected.json");
            let out: Value =
                serde_json::from_str(&std::fs::read_to_string(&golden).unwrap()).unwrap();
            for child in out["children"].as_array().unwrap() {
                let mut child = child.clone();
                child["metadata"]["namespace"] = json!(env.namespace);
                let name = child["metadata"]["name"].as_str().unwrap().to_string();
                let api = dynamic_api(
                    &env,
                    child["apiVersion"].as_str().unwrap(),
                    child["kind"].as_str().unwrap(),
                );
                let params = PatchParams::apply("operon/backup").dry_run();
                if let Err(e) = api.patch(&name, &params, &Patch::Apply(&child)).await {
                    panic!("{}: {name} rejected: {e}", golden.display());
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 25, "{checked} children checked");

    ready_cluster(&env, "pg", json!({})).await;

    // A schedule every minute, keeping the last two. Three earlier
    // backups of it stand for the slots before (made by the test, owned
    // by the schedule like the ones it makes).
    let schedules = dynamic_api(&env, GROUP_VERSION, "BackupSchedule");
    create(
        &schedules,
        json!({"apiVersion": GROUP_VERSION, "kind": "BackupSchedule",
               "metadata": {"name": "nightly", "namespace": env.namespace},
               "spec": {"clusterRef": {"name": "pg"}, "schedule": "* * * * *",
                        "backupTemplate": {"method": "dump", "target": {"claimName": "backups"}},
                        "retention": {"keepLast": 2}}}),
    )
    .await;
    let schedule = get(&schedules, "nightly").await.unwrap();
    let uid = schedule["metadata"]["uid"].clone();
    for n in [
        "nightly-earlier-1",
        "nightly-earlier-2",
        "nightly-earlier-3",
    ] {
        create(
            &backups(&env),
            json!({"apiVersion": GROUP_VERSION, "kind": "PostgresBackup",
                   "metadata": {"name": n, "namespace": env.namespace,
                                "labels": {"postgres.operon.dev/schedule": "nightly"},
                                "ownerReferences": [{"apiVersion": GROUP_VERSION, "kind": "BackupSchedule",
                                    "name": "nightly", "uid": uid, "controller": true}]},
                   "spec": {"clusterRef": {"name": "pg"}, "target": {"claimName": "backups"}}}),
        )
        .await;
        wait_phase(&backups(&env), n, "Completed").await;
    }
    // The slot comes: a backup named by it, completed; two remain.
    let status = wait_until(
        "a scheduled backup completed and the rest pruned",
        WAIT,
        || async {
            let obj = get(&schedules, "nightly").await?;
            let list = backups(&env).list(&ListParams::default()).await?;
            let names: Vec<String> = list
                .items
                .iter()
                .filter_map(|b| b.metadata.name.clone())
                .collect();
            let done = obj["status"]["lastSuccessfulTime"].is_string()
                && obj["status"]["lastBackup"].as_str().is_some_and(|b| {
                    !b.starts_with("nightly-earlier") && names.contains(&b.to_string())
                })
                && list
                    .items
                    .iter()
                    .filter(|b| {
                        b.metadata.labels.as_ref().is_some_and(|l| {
                            l.get("postgres.operon.dev/schedule").map(String::as_str)
                                == Some("nightly")
                        })
                    })
                    .count()
                    == 2;
            Ok(done.then_some((obj, names)))
        },
    )
    .await
    .unwrap();
    let (obj, names) = status;
    let last = obj["status"]["lastBackup"].as_str().unwrap();
    let slot = obj["status"]["lastScheduleTime"].as_str().unwrap();
    // Named by its slot: 2026-01-01T00:05:00Z -> nightly-202601010005.
    let minute: String = slot[..16].chars().filter(char::is_ascii_digit).collect();
    assert_eq!(last, format!("nightly-{minute}"));
    assert_eq!(
        get(&backups(&env), last).await.unwrap()["status"]["phase"],
        "Completed"
    );
    assert!(
        !names.contains(&"nightly-earlier-1".to_string()),
        "pruned: {names:?}"
    );
    assert!(!event_messages(&env, "nightly", "Pruned").await.is_empty());

    // A backup whose Job cannot run fails at its deadline, with the reason.
    create(
        &backups(&env),
        json!({"apiVersion": GROUP_VERSION, "kind": "PostgresBackup",
               "metadata": {"name": "broken", "namespace": env.namespace},
               "spec": {"clusterRef": {"name": "pg"}, "target": {"claimName": "no-such-claim"},
                        "activeDeadlineSeconds": 3}}),
    )
    .await;
    let broken = wait_phase(&backups(&env), "broken", "Failed").await;
    let ready = condition(&broken, "Ready").unwrap();
    assert_eq!(ready["reason"], "JobFailed");
    let message = ready["message"].as_str().unwrap();
    assert!(
        message.starts_with("Job broken-backup failed: DeadlineExceeded"),
        "{message}"
    );

    // A base for a restore, removed with its files afterwards.
    create(
        &backups(&env),
        json!({"apiVersion": GROUP_VERSION, "kind": "PostgresBackup",
               "metadata": {"name": "base", "namespace": env.namespace},
               "spec": {"clusterRef": {"name": "pg"}, "method": "dumpall",
                        "target": {"claimName": "backups"}, "deletionPolicy": "Delete"}}),
    )
    .await;
    // A cluster naming it before it is complete may wait; one naming a
    // backup that does not exist waits and says so.
    create(
        &clusters(&env),
        json!({"apiVersion": GROUP_VERSION, "kind": "PostgresCluster",
               "metadata": {"name": "early", "namespace": env.namespace},
               "spec": {"version": 16, "storage": {"size": "1Gi"},
                        "bootstrap": {"fromBackup": {"backupName": "not-yet"}}}}),
    )
    .await;
    let early = wait_until("early waits for its backup", WAIT, || async {
        let obj = get(&clusters(&env), "early").await?;
        Ok(condition(&obj, "Ready")
            .filter(|c| c["reason"] == "WaitingForBackup")
            .cloned())
    })
    .await
    .unwrap();
    assert!(
        early["message"]
            .as_str()
            .unwrap()
            .contains("PostgresBackup not-yet")
    );
    wait_phase(&backups(&env), "base", "Completed").await;
    create(
        &clusters(&env),
        json!({"apiVersion": GROUP_VERSION, "kind": "PostgresCluster",
               "metadata": {"name": "copy", "namespace": env.namespace},
               "spec": {"version": 16, "storage": {"size": "1Gi"},
                        "bootstrap": {"fromBackup": {"backupName": "base"}}}}),
    )
    .await;
    let jobs: Api<Job> = env.api();
    let restore = wait_until("the restore Job", WAIT, || async {
        Ok(jobs.get_opt("copy-restore").await?)
    })
    .await
    .unwrap();
    let spec = serde_json::to_string(&restore.spec).unwrap();
    assert!(
        spec.contains("/backup/pgbackups/base") && spec.contains("restore.sh"),
        "{spec}"
    );
    let copy = wait_until("copy restored and Ready", WAIT, || async {
        let obj = get(&clusters(&env), "copy").await?;
        let ready = condition(&obj, "Ready").is_some_and(|c| c["status"] == "True");
        Ok(ready.then_some(obj))
    })
    .await
    .unwrap();
    assert_eq!(copy["status"]["restore"]["phase"], "Restored");
    assert_eq!(copy["status"]["restore"]["method"], "dumpall");
    assert_eq!(event_messages(&env, "copy", "Restored").await.len(), 1);

    // Deleting it runs the cleanup Job first, then it goes.
    backups(&env)
        .delete("base", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("base gone", WAIT, || async {
        Ok(backups(&env).get_opt("base").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    let notes = event_messages(&env, "base", "ArtifactDeleted").await;
    assert_eq!(notes, ["Job base-cleanup removed backups:pgbackups/base"]);

    // The rest go while the host runs, so their finalizers do not hold
    // the test's namespace: the schedule takes its backups with it.
    schedules
        .delete("nightly", &DeleteParams::default())
        .await
        .unwrap();
    backups(&env)
        .delete("broken", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("every backup gone", WAIT, || async {
        let left = backups(&env)
            .list(&ListParams::default())
            .await?
            .items
            .len();
        Ok((left == 0).then_some(()))
    })
    .await
    .unwrap();
}

/// The component with a custom section appended: a new build (a new
/// digest) that behaves the same, as a rebuild with a changed comment would.
fn rebuilt(package: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(common::component(package)).unwrap();
    let (name, payload) = (b"operon-test-rebuild", b"2");
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    bytes.extend([0, size as u8, name.len() as u8]);
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(payload);
    bytes
}

/// The sum of a metric's series whose labels contain `labels`.
async fn metric(host: &Host, name: &str, labels: &[&str]) -> f64 {
    let text = common::host::get(&host.metrics, "/metrics")
        .await
        .unwrap()
        .1;
    common::host::metric(&text, name, labels)
}

/// All three plugins (four components) in one host; the schedule component
/// is replaced by a new build while the cluster, its scaling policy and
/// the schedule itself keep changing. The others never stop: each follows
/// a change made during the swap, no plugin call fails, and the schedule
/// applies a new retention on its new revision.
#[tokio::test]
async fn one_plugin_is_swapped_while_the_other_two_keep_working() {
    let env = TestEnv::new().await;
    let _volumes = ClusterScoped::volumes(&env, &claims(&["backups", "pg-0-data"]), None).await;
    let grants = suite::grants(&env);
    // All at once: the host installs every CRD before any controller starts.
    let host = Host::start_with(
        &env,
        &suite::SUITE,
        &env.kubeconfig_path,
        &["--grants", grants.to_str().unwrap()],
    );
    host.ready().await;
    backup_claim(&env).await;
    ready_cluster(&env, "pg", json!({})).await;

    let policies = dynamic_api(&env, GROUP_VERSION, "PostgresScalingPolicy");
    create(
        &policies,
        json!({"apiVersion": GROUP_VERSION, "kind": "PostgresScalingPolicy",
               "metadata": {"name": "pg-auto", "namespace": env.namespace},
               "spec": {"targetRef": {"name": "pg"}, "mode": "Recommend", "syncPeriodSeconds": 2,
                        "replicas": {"min": 1, "max": 3, "metric": "connections", "target": 10}}}),
    )
    .await;
    let figures = |n: &'static str| {
        let pods: Api<k8s_openapi::api::core::v1::Pod> = env.api();
        async move {
            pods.patch(
                "pg-0-0",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {
                    "postgres.operon.dev/connections": n}}})),
            )
            .await
            .unwrap();
        }
    };
    let recommends = |want: i64| {
        let policies = policies.clone();
        async move {
            wait_until(&format!("a recommendation of {want}"), WAIT, || async {
                let p = get(&policies, "pg-auto").await?;
                Ok((p["status"]["recommendation"]["instances"] == want).then_some(()))
            })
            .await
            .unwrap();
        }
    };
    figures("5").await;
    recommends(1).await;

    // A schedule keeping its 2 newest of 3 finished backups.
    let schedules = dynamic_api(&env, GROUP_VERSION, "BackupSchedule");
    create(
        &schedules,
        json!({"apiVersion": GROUP_VERSION, "kind": "BackupSchedule",
               "metadata": {"name": "hourly", "namespace": env.namespace},
               // No slot falls in the test: the backups are the test's.
               "spec": {"clusterRef": {"name": "pg"}, "schedule": "0 0 1 1 *",
                        "backupTemplate": {"method": "dump", "target": {"claimName": "backups"}},
                        "retention": {"keepLast": 3}}}),
    )
    .await;
    let uid = get(&schedules, "hourly").await.unwrap()["metadata"]["uid"].clone();
    for n in ["hourly-a", "hourly-b", "hourly-c"] {
        create(
            &backups(&env),
            json!({"apiVersion": GROUP_VERSION, "kind": "PostgresBackup",
                   "metadata": {"name": n, "namespace": env.namespace,
                                "labels": {"postgres.operon.dev/schedule": "hourly"},
                                "ownerReferences": [{"apiVersion": GROUP_VERSION, "kind": "BackupSchedule",
                                    "name": "hourly", "uid": uid, "controller": true}]},
                   "spec": {"clusterRef": {"name": "pg"}, "target": {"claimName": "backups"}}}),
        )
        .await;
        wait_phase(&backups(&env), n, "Completed").await;
    }
    let failures_before = metric(
        &host,
        "operon_plugin_revision_reconciles_total",
        &["result=\"failure\""],
    )
    .await;

    // The swap, with changes to every plugin's objects in flight.
    let new = rebuilt("operon-backup-schedule");
    let tmp = host.dir.join(".operon_backup_schedule.wasm.tmp");
    std::fs::write(&tmp, &new).unwrap();
    std::fs::rename(&tmp, host.dir.join("operon_backup_schedule.wasm")).unwrap();
    figures("25").await;
    clusters(&env)
        .patch(
            "pg",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"failover": {"delaySeconds": 90}}})),
        )
        .await
        .unwrap();
    schedules
        .patch(
            "hourly",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"retention": {"keepLast": 1}}})),
        )
        .await
        .unwrap();

    wait_until("the schedule's new build active", WAIT, || async {
        let (code, body) = common::host::get(&host.admin, "/plugins/backup-schedule").await?;
        let v: Value = serde_json::from_str(&body).unwrap_or_default();
        let active = v["revisions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["state"] == "active");
        Ok((code == 200 && active.is_some_and(|r| r["number"] == 2)).then_some(()))
    })
    .await
    .unwrap();
    // Scaling followed the new figures; postgres the new spec.
    recommends(3).await;
    wait_until("the cluster's new generation reconciled", WAIT, || async {
        let c = get(&clusters(&env), "pg").await?;
        let done = c["status"]["observedGeneration"] == c["metadata"]["generation"]
            && condition(&c, "Synced").is_some_and(|s| s["status"] == "True");
        Ok(done.then_some(()))
    })
    .await
    .unwrap();
    // The schedule, on its new revision, keeps only the newest backup.
    let kept = wait_until("retention of 1 applied", WAIT, || async {
        let names: Vec<String> = backups(&env)
            .list(&ListParams::default().labels("postgres.operon.dev/schedule=hourly"))
            .await?
            .items
            .into_iter()
            .filter(|b| b.metadata.deletion_timestamp.is_none())
            .filter_map(|b| b.metadata.name)
            .collect();
        Ok((names.len() == 1).then_some(names))
    })
    .await
    .unwrap();
    assert_eq!(kept, ["hourly-c"]);

    for plugin in ["postgres", "backup", "scaling"] {
        let swaps = metric(
            &host,
            "operon_plugin_swaps_total",
            &[&format!("plugin=\"{plugin}\"")],
        )
        .await;
        assert_eq!(swaps, 0.0, "{plugin} was not swapped");
    }
    assert_eq!(
        metric(
            &host,
            "operon_plugin_swaps_total",
            &["plugin=\"backup-schedule\""]
        )
        .await,
        1.0
    );
    let failures_after = metric(
        &host,
        "operon_plugin_revision_reconciles_total",
        &["result=\"failure\""],
    )
    .await;
    assert_eq!(
        failures_after, failures_before,
        "no plugin call failed during the swap"
    );
    let on_new = metric(
        &host,
        "operon_plugin_revision_reconciles_total",
        &["plugin=\"backup-schedule\"", "result=\"success\""],
    )
    .await;
    assert!(
        on_new >= 2.0,
        "the schedule reconciled on both revisions: {on_new}"
    );
    // Clean up while the plugins run: the backups' finalizers need them.
    let _ = schedules.delete("hourly", &DeleteParams::default()).await;
    for b in ["hourly-a", "hourly-b", "hourly-c"] {
        let _ = backups(&env).delete(b, &DeleteParams::default()).await;
    }
    wait_until("the backups gone", WAIT, || async {
        let left = backups(&env)
            .list(&ListParams::default())
            .await?
            .items
            .len();
        Ok((left == 0).then_some(()))
    })
    .await
    .unwrap();
}
