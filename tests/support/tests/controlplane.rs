//! Acceptance tests of the real control plane (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, kwok). They start a private
//! cluster for this test binary unless `OPERON_TEST_KUBECONFIG` points at one.
//!
//! No timing assertions: every wait polls with a generous deadline and says
//! what it was waiting for when it gives up.

use std::time::Duration;

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, ObjectMeta, Patch,
    PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Resource, ResourceExt};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

const CONVERGE: Duration = Duration::from_secs(180);

fn from_json<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).expect("test object literal")
}

fn pod_template(app: &str, restart_policy: &str) -> serde_json::Value {
    json!({
        "metadata": { "labels": { "app": app } },
        "spec": {
            "restartPolicy": restart_policy,
            "containers": [{ "name": "main", "image": "registry.invalid/operon/test:1" }]
        }
    })
}

#[tokio::test]
async fn crd_established_apply_watch_and_status() -> Result<()> {
    let env = TestEnv::new().await;
    let group = "test.operon.dev";
    let crd_name = format!("widgets.{group}");
    let crd: CustomResourceDefinition = from_json(json!({
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList" },
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": { "type": "object", "properties": {
                            "size": { "type": "integer" }, "color": { "type": "string" } } },
                        "status": { "type": "object", "properties": {
                            "ready": { "type": "boolean" }, "observedSize": { "type": "integer" } } }
                    }
                }}
            }]
        }
    }));
    // Cluster-scoped and shared by reruns against the same cluster: apply is idempotent.
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    crds.patch(
        &crd_name,
        &PatchParams::apply("operon-test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .context("apply CRD")?;
    wait_until(
        &format!("CRD {crd_name} condition Established=True"),
        CONVERGE,
        || async {
            let crd = crds.get(&crd_name).await?;
            let established = crd
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            Ok(established.then_some(()))
        },
    )
    .await?;

    let ar =
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1", "Widget"), "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), &env.namespace, &ar);
    let mut w = DynamicObject::new("w1", &ar);
    w.data = json!({ "spec": { "size": 1, "color": "red" } });
    // Right after Established the new resource can take a moment to be served.
    let created = wait_until(
        "create Widget w1 (custom resource served)",
        CONVERGE,
        || async { Ok(Some(widgets.create(&PostParams::default(), &w).await?)) },
    )
    .await?;
    let rv = created.resource_version().context("resourceVersion")?;

    // Watch from the created version, then change the object with server-side apply.
    let params = WatchParams::default()
        .fields("metadata.name=w1")
        .timeout(290);
    let mut stream = widgets.watch(&params, &rv).await?.boxed();
    let desired = json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": { "name": "w1" },
        "spec": { "size": 3 }
    });
    // Real server-side apply: spec.size belongs to the creator, so a
    // non-forced apply by another manager conflicts ...
    match widgets
        .patch(
            "w1",
            &PatchParams::apply("operon-test"),
            &Patch::Apply(&desired),
        )
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 409, "expected a field conflict: {status:?}")
        }
        other => panic!("expected 409 Conflict from a non-forced apply, got {other:?}"),
    }
    // ... and a forced one takes the field over.
    let applied = widgets
        .patch(
            "w1",
            &PatchParams::apply("operon-test").force(),
            &Patch::Apply(&desired),
        )
        .await
        .context("server-side apply (force) Widget w1")?;
    assert_eq!(
        applied.data["spec"]["size"], 3,
        "apply set spec.size: {applied:?}"
    );
    assert!(
        applied
            .managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some("operon-test")
                && m.operation.as_deref() == Some("Apply")),
        "apply recorded field manager operon-test: {:?}",
        applied.managed_fields()
    );

    // The API server may close a watch at any time (it does right after a
    // new CRD's storage starts); a client watches again from the last
    // version it saw, as reflectors do, and must still get the change.
    // A watch that expired (410) is resumed as reflectors resume it: read
    // the object again, and watch from its version.
    let seen = tokio::time::timeout(CONVERGE, async {
        let mut last = rv.clone();
        loop {
            while let Some(ev) = stream.try_next().await? {
                match &ev {
                    WatchEvent::Modified(obj) | WatchEvent::Added(obj) => {
                        if obj.data["spec"]["size"] == 3 {
                            return Ok::<_, anyhow::Error>(obj.clone());
                        }
                        if let Some(v) = obj.resource_version() {
                            last = v;
                        }
                    }
                    WatchEvent::Error(e) if e.code == 410 => {
                        let now = widgets.get("w1").await?;
                        if now.data["spec"]["size"] == 3 {
                            return Ok(now);
                        }
                        last = now.resource_version().unwrap_or_default();
                        break;
                    }
                    _ => {}
                }
            }
            stream = widgets.watch(&params, &last).await?.boxed();
        }
    })
    .await
    .context("waiting for the watch to deliver the applied change (spec.size=3)")??;
    assert_eq!(seen.name_any(), "w1");

    // Status subresource: a status patch changes status only.
    let patched = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(
                json!({ "status": { "ready": true, "observedSize": 3 }, "spec": { "size": 99 } }),
            ),
        )
        .await
        .context("patch Widget w1 /status")?;
    assert_eq!(
        patched.data["status"]["ready"], true,
        "status patched: {patched:?}"
    );
    assert_eq!(
        patched.data["spec"]["size"], 3,
        "status subresource ignores spec: {patched:?}"
    );
    let got = widgets.get("w1").await?;
    assert_eq!(got.data["status"]["observedSize"], 3);
    env.cleanup().await
}

#[tokio::test]
async fn statefulset_reaches_three_ready_replicas() -> Result<()> {
    let env = TestEnv::new().await;
    let sts: StatefulSet = from_json(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "serviceName": "web",
            "selector": { "matchLabels": { "app": "web" } },
            "template": pod_template("web", "Always")
        }
    }));
    let api: Api<StatefulSet> = env.api();
    api.create(&PostParams::default(), &sts).await?;
    wait_until(
        "StatefulSet web status.readyReplicas == 3",
        CONVERGE,
        || async {
            let s = api.get("web").await?.status.unwrap_or_default();
            Ok((s.ready_replicas == Some(3)).then_some(()))
        },
    )
    .await?;
    // Pods really went through the scheduler (nodeName) and kwok (Running).
    let pods: Api<Pod> = env.api();
    for pod in pods.list(&ListParams::default().labels("app=web")).await? {
        let spec = pod.spec.clone().unwrap_or_default();
        let node = spec.node_name.unwrap_or_default();
        assert!(
            node.starts_with("kwok-node-"),
            "pod {} scheduled onto a kwok node, got {node:?}",
            pod.name_any()
        );
        assert_eq!(pod.status.and_then(|s| s.phase).as_deref(), Some("Running"));
    }
    env.cleanup().await
}

#[tokio::test]
async fn job_completes() -> Result<()> {
    let env = TestEnv::new().await;
    let job: Job = from_json(json!({
        "metadata": { "name": "once" },
        "spec": { "completions": 2, "parallelism": 2, "backoffLimit": 0, "template": pod_template("once", "Never") }
    }));
    let api: Api<Job> = env.api();
    api.create(&PostParams::default(), &job).await?;
    wait_until(
        "Job once condition Complete=True with 2 succeeded pods",
        CONVERGE,
        || async {
            let s = api.get("once").await?.status.unwrap_or_default();
            let complete = s
                .conditions
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Complete" && c.status == "True");
            Ok((complete && s.succeeded == Some(2)).then_some(()))
        },
    )
    .await?;
    let pods: Api<Pod> = env.api();
    let phases: Vec<_> = pods
        .list(&ListParams::default().labels("job-name=once"))
        .await?
        .into_iter()
        .map(|p| p.status.and_then(|s| s.phase).unwrap_or_default())
        .collect();
    assert!(
        phases.iter().filter(|p| *p == "Succeeded").count() >= 2,
        "job pods succeeded: {phases:?}"
    );
    env.cleanup().await
}

#[tokio::test]
async fn deleting_owner_garbage_collects_children() -> Result<()> {
    let env = TestEnv::new().await;
    // 1. Plain ownerReferences on objects no controller manages.
    let cms: Api<ConfigMap> = env.api();
    let owner = cms
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("owner".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await?;
    let owner_ref: OwnerReference = owner.controller_owner_ref(&()).context("owner reference")?;
    for name in ["child-a", "child-b"] {
        let child = ConfigMap {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some([("operon.dev/gc".to_string(), "child".to_string())].into()),
                owner_references: Some(vec![owner_ref.clone()]),
                ..Default::default()
            },
            ..Default::default()
        };
        cms.create(&PostParams::default(), &child).await?;
    }
    cms.delete("owner", &DeleteParams::background()).await?;
    wait_until(
        "garbage collector to delete ConfigMaps child-a and child-b",
        CONVERGE,
        || async {
            let left = cms
                .list(&ListParams::default().labels("operon.dev/gc=child"))
                .await?;
            Ok(left.items.is_empty().then_some(()))
        },
    )
    .await?;

    // 2. A Deployment: its ReplicaSet and (kwok-run) Pods go with it.
    let deploy: Deployment = from_json(json!({
        "metadata": { "name": "app" },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "gc" } }, "template": pod_template("gc", "Always") }
    }));
    let deployments: Api<Deployment> = env.api();
    deployments.create(&PostParams::default(), &deploy).await?;
    wait_until(
        "Deployment app status.availableReplicas == 2",
        CONVERGE,
        || async {
            let s = deployments.get("app").await?.status.unwrap_or_default();
            Ok((s.available_replicas == Some(2)).then_some(()))
        },
    )
    .await?;
    deployments
        .delete("app", &DeleteParams::background())
        .await?;
    let rs: Api<ReplicaSet> = env.api();
    let pods: Api<Pod> = env.api();
    wait_until(
        "ReplicaSets and Pods of Deployment app to be garbage-collected",
        CONVERGE,
        || async {
            let rs_left = rs
                .list(&ListParams::default().labels("app=gc"))
                .await?
                .items
                .len();
            let pods_left = pods
                .list(&ListParams::default().labels("app=gc"))
                .await?
                .items
                .len();
            Ok((rs_left == 0 && pods_left == 0).then_some(()))
        },
    )
    .await?;
    env.cleanup().await
}

#[tokio::test]
async fn rbac_denies_service_account_without_role() -> Result<()> {
    let env = TestEnv::new().await;
    let sas: Api<ServiceAccount> = env.api();
    sas.create(
        &PostParams::default(),
        &ServiceAccount {
            metadata: ObjectMeta {
                name: Some("nobody".into()),
                ..Default::default()
            },
            ..Default::default()
        },
    )
    .await?;
    let user = format!("system:serviceaccount:{}:nobody", env.namespace);
    let groups = [
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{}", env.namespace),
    ];
    let as_sa = env.client_as(&user, &groups).await?;
    let cms: Api<ConfigMap> = Api::namespaced(as_sa.clone(), &env.namespace);
    match cms.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "expected Forbidden, got {status:?}")
        }
        other => panic!("expected 403 Forbidden for {user} listing configmaps, got {other:?}"),
    }

    // The same identity is allowed once a Role grants it: the 403 came from RBAC.
    let role: Role = from_json(json!({
        "metadata": { "name": "read-configmaps" },
        "rules": [{ "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"] }]
    }));
    let binding: RoleBinding = from_json(json!({
        "metadata": { "name": "nobody-reads-configmaps" },
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps" },
        "subjects": [{ "kind": "ServiceAccount", "name": "nobody", "namespace": env.namespace }]
    }));
    env.api::<Role>()
        .create(&PostParams::default(), &role)
        .await?;
    env.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await?;
    wait_until(
        &format!("{user} to be allowed to list configmaps after the RoleBinding"),
        CONVERGE,
        || async { Ok(cms.list(&ListParams::default()).await.ok().map(|_| ())) },
    )
    .await?;
    // Still nothing beyond the role.
    let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(as_sa, &env.namespace);
    match secrets.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 403, "expected Forbidden, got {status:?}")
        }
        other => panic!("expected 403 Forbidden for {user} listing secrets, got {other:?}"),
    }
    env.cleanup().await
}
