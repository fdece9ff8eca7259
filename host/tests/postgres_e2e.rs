//! The postgres plugin on the real control plane (kwok fake nodes run the
//! Pods and make them Ready; no PostgreSQL runs in them).
//!
//! - every child of every golden fixture passes the API server's
//!   server-side apply in dry-run, so the plugin's output is valid
//!   Kubernetes, not just valid YAML;
//! - `operon run` drives a PostgresCluster through its life: Ready with 3
//!   instances and a primary, its SQL Job and data load completed (kwok
//!   completes Job Pods); a minor image change rolled one instance at a
//!   time, primary last (from watched StatefulSet changes); the scale
//!   subresource to 5 and to 2; a new user's Secret and SQL Job; `paused`;
//!   and deletion removing everything the cluster owned;
//! - a primary that loses its Pod and volume fails over to the replica.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::cluster_scoped::{ClusterScoped, data_claims};
use common::host::Host;

const WAIT: Duration = Duration::from_secs(180);
const CLUSTER_LABEL: &str = "postgres.operon.dev/cluster";

fn fixtures() -> PathBuf {
    common::root().join("plugins/postgres/fixtures")
}

fn dynamic_api(env: &TestEnv, api_version: &str, kind: &str) -> Api<DynamicObject> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

#[tokio::test]
async fn every_fixture_child_passes_server_side_dry_run() {
    let env = TestEnv::new().await;
    let mut checked = 0;
    let mut scenarios: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.join("expected.yaml").exists())
        .collect();
    scenarios.sort();
    assert!(scenarios.len() >= 15);
    for scenario in scenarios {
        let out = &operon::cli::read_objects(&scenario.join("expected.yaml")).unwrap()[0];
        for child in out["children"].as_array().unwrap() {
            let mut child = child.clone();
            child["metadata"]["namespace"] = json!(env.namespace);
            let kind = child["kind"].as_str().unwrap().to_string();
            let name = child["metadata"]["name"].as_str().unwrap().to_string();
            let api = dynamic_api(&env, child["apiVersion"].as_str().unwrap(), &kind);
            let params = PatchParams::apply("operon/postgres").dry_run();
            if let Err(e) = api.patch(&name, &params, &Patch::Apply(&child)).await {
                panic!("{}: {kind} {name} rejected: {e}", scenario.display());
            }
            checked += 1;
        }
    }
    assert!(checked > 200, "{checked} children checked");
}

fn cluster_api(env: &TestEnv) -> Api<DynamicObject> {
    dynamic_api(env, "postgres.operon.dev/v1alpha1", "PostgresCluster")
}

fn condition<'a>(obj: &'a Value, ty: &str) -> Option<&'a Value> {
    obj.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
}

/// Waits until the cluster reports Ready with `n` ready instances for its
/// current generation; returns its JSON.
async fn wait_ready(env: &TestEnv, name: &str, n: i64) -> Value {
    let api = cluster_api(env);
    wait_until(
        &format!("{name} Ready with {n} instances"),
        WAIT,
        || async {
            let obj = serde_json::to_value(api.get(name).await?)?;
            let generation = &obj["metadata"]["generation"];
            let ready = condition(&obj, "Ready").is_some_and(|c| c["status"] == "True");
            let ok = ready
                && obj["status"]["readyInstances"] == n
                && obj["status"]["instances"] == n
                && &obj["status"]["observedGeneration"] == generation;
            Ok(ok.then_some(obj))
        },
    )
    .await
    .unwrap()
}

async fn statefulsets(env: &TestEnv, cluster: &str) -> Vec<String> {
    let api: Api<StatefulSet> = env.api();
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels(&format!("{CLUSTER_LABEL}={cluster}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|s| s.metadata.name)
        .collect();
    names.sort();
    names
}

fn image_of(sts: &StatefulSet) -> String {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap_or_default()
}

fn settled(sts: &StatefulSet) -> bool {
    let st = sts.status.clone().unwrap_or_default();
    st.ready_replicas.unwrap_or(0) == 1
        && st.observed_generation >= sts.metadata.generation
        && st.current_revision == st.update_revision
}

async fn scale(env: &TestEnv, name: &str, replicas: i64) {
    cluster_api(env)
        .patch_subresource(
            "scale",
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": replicas}})),
        )
        .await
        .unwrap();
}

async fn patch_spec(env: &TestEnv, name: &str, spec: Value) {
    cluster_api(env)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": spec})),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_cluster_lives_scales_rolls_pauses_and_goes() {
    let env = TestEnv::new().await;
    let _volumes = ClusterScoped::volumes(&env, &data_claims("pg", 5), None).await;
    let host = Host::start(&env, &["postgres"]);
    host.ready().await;
    let api = cluster_api(&env);

    // The CRD's schema refuses what it can (here: an unknown major).
    let bad: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
        "metadata": {"name": "bad", "namespace": env.namespace},
        "spec": {"version": 13, "storage": {"size": "1Gi"}}
    }))
    .unwrap();
    let err = api
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &bad,
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("spec.version"), "{err}");
    // The documented manifest is accepted.
    let mut manifest = operon::cli::read_objects(&fixtures().join("cluster.yaml"))
        .unwrap()
        .remove(0);
    manifest["metadata"]["namespace"] = json!(env.namespace);
    let manifest: DynamicObject = serde_json::from_value(manifest).unwrap();
    api.create(
        &PostParams {
            dry_run: true,
            ..Default::default()
        },
        &manifest,
    )
    .await
    .unwrap();

    // Three instances.
    let parent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
        "metadata": {"name": "pg", "namespace": env.namespace},
        "spec": {
            "version": 16,
            "image": "docker.io/library/postgres:16.4",
            "instances": 3,
            "storage": {"size": "1Gi", "retentionPolicy": "Retain"},
            "users": [{"name": "app", "databases": ["app"]}],
            "databases": [{"name": "app", "owner": "app"}],
            "dataLoads": [{"name": "seed", "database": "app", "table": "cities",
                           "tableDefinition": "id int, name text",
                           "source": {"configMap": "seed", "key": "cities.csv"}, "format": "csv"}],
            "metadata": {"labels": {"team": "e2e"}},
            // kwok restarts Pods in a moment; a long delay keeps a slow
            // machine from failing over during the rolling restart.
            "failover": {"delaySeconds": 600},
        }
    }))
    .unwrap();
    let seed: k8s_openapi::api::core::v1::ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "seed"}, "data": {"cities.csv": "id,name\n1,Lisbon\n"}
    }))
    .unwrap();
    env.api()
        .create(&PostParams::default(), &seed)
        .await
        .unwrap();
    api.create(&PostParams::default(), &parent).await.unwrap();
    let obj = wait_ready(&env, "pg", 3).await;
    let primary = obj["status"]["currentPrimary"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(primary, "pg-0");
    assert_eq!(obj["status"]["phase"], "Running");
    assert_eq!(obj["status"]["version"], 16);
    assert_eq!(statefulsets(&env, "pg").await, ["pg-0", "pg-1", "pg-2"]);
    // kwok completes Job Pods: the SQL Job, then the data load, succeed.
    wait_until("users reconciled and the data load done", WAIT, || async {
        let obj = serde_json::to_value(api.get("pg").await?)?;
        let users = condition(&obj, "UsersReconciled").is_some_and(|c| c["status"] == "True");
        let loads = obj["status"]["completedDataLoads"]
            .as_array()
            .map_or(0, Vec::len);
        Ok((users && loads == 1).then_some(()))
    })
    .await
    .unwrap();
    let services: Api<Service> = env.api();
    for s in ["pg-rw", "pg-ro", "pg-pods"] {
        let svc = services.get(s).await.unwrap();
        assert_eq!(svc.metadata.labels.as_ref().unwrap()["team"], "e2e", "{s}");
    }

    // A minor upgrade, watched: one instance at a time, primary last.
    let sts_api: Api<StatefulSet> = env.api();
    let lp = ListParams::default().labels(&format!("{CLUSTER_LABEL}=pg"));
    let list = sts_api.list(&lp).await.unwrap();
    let rv = list.metadata.resource_version.clone().unwrap();
    let mut last: BTreeMap<String, StatefulSet> = list
        .items
        .into_iter()
        .map(|s| (s.metadata.name.clone().unwrap(), s))
        .collect();
    let new_image = "docker.io/library/postgres:16.6";
    patch_spec(&env, "pg", json!({"image": new_image})).await;
    let mut order: Vec<String> = Vec::new();
    let mut stream = sts_api
        .watch(
            &WatchParams::default()
                .labels(&format!("{CLUSTER_LABEL}=pg"))
                .timeout(290),
            &rv,
        )
        .await
        .unwrap()
        .boxed();
    let watched = tokio::time::timeout(WAIT, async {
        while let Some(event) = stream.try_next().await.unwrap() {
            let sts = match event {
                WatchEvent::Added(s) | WatchEvent::Modified(s) => s,
                WatchEvent::Error(e) => panic!("watch error: {e:?}"),
                _ => continue,
            };
            let name = sts.metadata.name.clone().unwrap();
            if image_of(&sts) == new_image && !order.contains(&name) {
                for done in &order {
                    assert!(
                        settled(&last[done]),
                        "{name} restarted before {done} was ready again: {:?}",
                        last[done].status
                    );
                }
                order.push(name.clone());
            }
            last.insert(name, sts);
            if order.len() == 3 && last.values().all(settled) {
                return;
            }
        }
        panic!("the watch ended; order so far {order:?}");
    })
    .await;
    assert!(watched.is_ok(), "rolling update incomplete: {order:?}");
    assert_eq!(
        order,
        ["pg-1", "pg-2", "pg-0"],
        "replicas first, primary last"
    );
    let obj = wait_ready(&env, "pg", 3).await;
    assert_eq!(obj["status"]["image"], new_image);

    // Scale through the scale subresource.
    scale(&env, "pg", 5).await;
    wait_ready(&env, "pg", 5).await;
    assert_eq!(statefulsets(&env, "pg").await.len(), 5);
    scale(&env, "pg", 2).await;
    let obj = wait_ready(&env, "pg", 2).await;
    assert_eq!(
        obj["status"]["currentPrimary"],
        primary.as_str(),
        "the primary stays"
    );
    assert_eq!(statefulsets(&env, "pg").await, ["pg-0", "pg-1"]);
    let pvcs: Api<PersistentVolumeClaim> = env.api();
    assert!(
        pvcs.get_opt("pg-4-data").await.unwrap().is_some(),
        "Retain keeps the PVC"
    );

    // A new user: its Secret and a SQL Job that creates it.
    patch_spec(
        &env,
        "pg",
        json!({"users": [{"name": "app", "databases": ["app"]}, {"name": "audit", "databases": ["app"]}]}),
    )
    .await;
    let secrets: Api<Secret> = env.api();
    wait_until("Secret pg-pguser-audit", WAIT, || async {
        Ok(secrets.get_opt("pg-pguser-audit").await?)
    })
    .await
    .unwrap();
    let jobs: Api<Job> = env.api();
    let sql_job = wait_until("a SQL Job creating audit", WAIT, || async {
        let found = jobs.list(&lp).await?.items.into_iter().find(|j| {
            serde_json::to_string(&j.spec)
                .unwrap_or_default()
                .contains("CREATE ROLE \\\"audit\\\"")
        });
        Ok(found)
    })
    .await
    .unwrap();
    let hash = sql_job
        .metadata
        .name
        .unwrap()
        .trim_start_matches("pg-sql-")
        .to_string();
    wait_until("UsersReconciled for the new SQL", WAIT, || async {
        let obj = serde_json::to_value(api.get("pg").await?)?;
        let ok = obj["status"]["usersReconciledHash"] == hash.as_str()
            && condition(&obj, "UsersReconciled").is_some_and(|c| c["status"] == "True");
        Ok(ok.then_some(()))
    })
    .await
    .unwrap();

    // Paused: a change to instances is not applied.
    patch_spec(&env, "pg", json!({"paused": true, "instances": 4})).await;
    wait_until("phase Paused for the new generation", WAIT, || async {
        let obj = serde_json::to_value(api.get("pg").await?)?;
        Ok((obj["status"]["phase"] == "Paused"
            && obj["status"]["observedGeneration"] == obj["metadata"]["generation"])
            .then_some(()))
    })
    .await
    .unwrap();
    assert_eq!(
        statefulsets(&env, "pg").await,
        ["pg-0", "pg-1"],
        "paused: no new instances"
    );
    patch_spec(&env, "pg", json!({"paused": false})).await;
    wait_ready(&env, "pg", 4).await;

    // Deleting the cluster removes everything it owned.
    api.delete("pg", &DeleteParams::default()).await.unwrap();
    wait_until("every child of pg to be gone", WAIT, || async {
        let mut left = Vec::new();
        for (av, kind) in [
            ("apps/v1", "StatefulSet"),
            ("v1", "Service"),
            ("v1", "Secret"),
            ("v1", "ConfigMap"),
            ("v1", "PersistentVolumeClaim"),
            ("policy/v1", "PodDisruptionBudget"),
            ("batch/v1", "Job"),
        ] {
            for o in dynamic_api(&env, av, kind).list(&lp).await?.items {
                left.push(format!("{kind} {}", o.metadata.name.unwrap_or_default()));
            }
        }
        Ok(left.is_empty().then_some(()))
    })
    .await
    .unwrap();
    drop(host);
}

/// The primary loses its Pod and its volume (the Pod cannot be scheduled
/// again): after `failover.delaySeconds` the replica is promoted, its Pod
/// gets the label `-rw` selects, and the old primary's instance turns into
/// a replica (it stays down here, without a volume to bind).
#[tokio::test]
async fn a_lost_primary_fails_over_to_the_replica() {
    let env = TestEnv::new().await;
    let _volumes = ClusterScoped::volumes(&env, &data_claims("fo", 2), None).await;
    let host = Host::start(&env, &["postgres"]);
    host.ready().await;
    let api = cluster_api(&env);
    let parent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "postgres.operon.dev/v1alpha1", "kind": "PostgresCluster",
        "metadata": {"name": "fo", "namespace": env.namespace},
        "spec": {"version": 17, "instances": 2, "storage": {"size": "1Gi"},
                 "failover": {"delaySeconds": 2}}
    }))
    .unwrap();
    api.create(&PostParams::default(), &parent).await.unwrap();
    let obj = wait_ready(&env, "fo", 2).await;
    assert_eq!(obj["status"]["currentPrimary"], "fo-0");

    // The volume goes (its PV stays bound to the old claim), then the Pod.
    let pvcs: Api<PersistentVolumeClaim> = env.api();
    pvcs.delete("fo-0-data", &DeleteParams::default())
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = env.api();
    pods.delete("fo-0-0", &DeleteParams::default())
        .await
        .unwrap();

    let obj = wait_until("fo-1 promoted", WAIT, || async {
        let obj = serde_json::to_value(api.get("fo").await?)?;
        Ok((obj["status"]["currentPrimary"] == "fo-1").then_some(obj))
    })
    .await
    .unwrap();
    let degraded = condition(&obj, "Degraded").cloned().unwrap_or_default();
    let sts: Api<StatefulSet> = env.api();
    let role = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .unwrap()
            .template
            .metadata
            .as_ref()
            .unwrap()
            .labels
            .as_ref()
            .unwrap()["postgres.operon.dev/role"]
            .clone()
    };
    assert_eq!(
        role(&sts.get("fo-1").await.unwrap()),
        "primary",
        "{degraded}"
    );
    assert_eq!(role(&sts.get("fo-0").await.unwrap()), "replica");
    let events: Api<k8s_openapi::api::events::v1::Event> = env.api();
    let failed_over = wait_until("a FailedOver event", WAIT, || async {
        Ok(events
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("FailedOver")))
    })
    .await
    .unwrap();
    let note = failed_over.note.unwrap_or_default();
    assert!(note.contains("promoting fo-1"), "{note}");
    // The new primary's Pod carries the label -rw selects.
    wait_until("fo-1-0 labelled primary", WAIT, || async {
        let pod = pods.get_opt("fo-1-0").await?;
        Ok(pod
            .filter(|p| {
                p.metadata
                    .labels
                    .as_ref()
                    .and_then(|l| l.get("postgres.operon.dev/role"))
                    == Some(&"primary".to_string())
            })
            .map(|_| ()))
    })
    .await
    .unwrap();
    drop(host);
}
