//! `operon run` against the real control plane (tests/controlplane): the
//! memcached example reconciled end to end, each test in its own namespace.

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::host::{
    Host, WAIT, attempt_and_delay, condition, create_memcached, create_widget, event_notes,
    events_about, get, memcached_api, metric, synced, widget_api,
};

#[tokio::test]
async fn memcached_converges_follows_changes_and_recreates_children() {
    let env = TestEnv::new().await;
    let mut host = Host::start(&env, &["rust-memcached"]);
    host.ready().await;

    let parents = memcached_api(&env);
    let created = create_memcached(&env, "cache", 2).await;
    let uid = created.metadata.uid.clone().unwrap();

    let deployments: Api<Deployment> = env.api();
    let deployment = wait_until("the Deployment to be created", WAIT, || async {
        Ok(deployments.get_opt("cache").await?)
    })
    .await
    .unwrap();
    let owner = &deployment.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.uid.as_str(), owner.controller),
        (uid.as_str(), Some(true)),
        "controller ownerReference"
    );
    let labels = deployment.metadata.labels.as_ref().unwrap();
    assert_eq!(
        labels.get("operon.dev/plugin").map(String::as_str),
        Some("memcached")
    );
    assert_eq!(
        labels.get("operon.dev/parent").map(String::as_str),
        Some("cache")
    );
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
    let services: Api<Service> = env.api();
    wait_until("the Service to be created", WAIT, || async {
        Ok(services.get_opt("cache").await?)
    })
    .await
    .unwrap();

    // kwok makes the pods Ready; the status follows.
    let status = wait_until(
        "status readyReplicas 2, Ready=True, Synced=True",
        WAIT,
        || async {
            let v = serde_json::to_value(parents.get("cache").await?)?;
            let ok = v.pointer("/status/readyReplicas") == Some(&json!(2))
                && condition(&v, "Ready").is_some_and(|c| c["status"] == "True")
                && condition(&v, "Synced").is_some_and(|c| c["status"] == "True");
            Ok(ok.then_some(v))
        },
    )
    .await
    .unwrap();
    assert_eq!(
        status.pointer("/status/observedGeneration"),
        status.pointer("/metadata/generation")
    );

    // A change of spec.size is followed.
    parents
        .patch(
            "cache",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    wait_until("the Deployment to follow spec.size = 3", WAIT, || async {
        let d = deployments.get("cache").await?;
        Ok((d.spec.and_then(|s| s.replicas) == Some(3)).then_some(()))
    })
    .await
    .unwrap();

    // A child deleted by hand comes back.
    let old_uid = deployments
        .get("cache")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap();
    deployments
        .delete("cache", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the deleted Deployment to be recreated", WAIT, || async {
        let d = deployments.get_opt("cache").await?;
        Ok(d.filter(|d| {
            d.metadata.uid.as_deref() != Some(&old_uid) && d.metadata.deletion_timestamp.is_none()
        }))
    })
    .await
    .unwrap();

    // The counters moved.
    let (code, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        metric(
            &text,
            "controller_runtime_reconcile_total",
            &["controller=\"memcached\"", "result=\"success\""]
        ) >= 3.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "operon_watches", &["Memcached"]),
        1.0,
        "{text}"
    );

    // Deleting the parent garbage-collects its children (ownerReferences).
    parents
        .delete("cache", &DeleteParams::background())
        .await
        .unwrap();
    wait_until("the children to be garbage-collected", WAIT, || async {
        Ok((deployments.get_opt("cache").await?.is_none()
            && services.get_opt("cache").await?.is_none())
        .then_some(()))
    })
    .await
    .unwrap();

    // SIGTERM: drain and exit 0.
    let status = host.terminate();
    assert!(
        status.success(),
        "operon run exits 0 on SIGTERM, got {status}"
    );
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn failures_are_reported_retried_or_held_and_invalid_answers_apply_nothing() {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &["test-plugin-widgets"]);
    host.ready().await;

    create_widget(&env, "perm", json!({"mode": "permanent"})).await;
    create_widget(&env, "retry", json!({"mode": "retryable"})).await;
    create_widget(&env, "forbid", json!({"mode": "forbidden"})).await;
    create_widget(&env, "trap", json!({"mode": "panic"})).await;
    create_widget(&env, "elsewhere", json!({"mode": "elsewhere"})).await;

    let c = synced(&env, "retry", "False").await;
    assert_eq!(c["reason"], "ReconcileError");
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("database not reachable"),
        "{c}"
    );
    // Retried: every attempt records a Warning event saying which attempt
    // it was and the delay planned before the next. Wait for four.
    let notes = wait_until("4 attempts of the retryable widget", WAIT, || async {
        let notes = event_notes(&env, "retry", "ReconcileError").await;
        Ok((notes.len() >= 4).then_some(notes))
    })
    .await
    .unwrap();
    let mut attempts: Vec<(u32, u64)> = notes.iter().filter_map(|n| attempt_and_delay(n)).collect();
    attempts.sort();
    assert_eq!(
        attempts.len(),
        notes.len(),
        "every retry note names its attempt: {notes:?}"
    );
    for (i, pair) in attempts.windows(2).enumerate() {
        assert_eq!(
            pair[1].0,
            pair[0].0 + 1,
            "attempts follow one another: {attempts:?}"
        );
        assert!(
            pair[1].1 > pair[0].1,
            "delay {i} grows (exponential backoff): {attempts:?}"
        );
    }

    let c = synced(&env, "perm", "False").await;
    assert!(
        c["message"]
            .as_str()
            .unwrap()
            .contains("spec.mode permanent is not supported"),
        "{c}"
    );
    // Meanwhile the retryable one was tried again and again; the permanent
    // one was not retried at all.
    assert_eq!(
        events_about(&env, "perm", "ReconcileError").await,
        1,
        "a permanent error is not retried"
    );
    // Until the parent changes.
    widget_api(&env)
        .patch(
            "perm",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"mode": "ok"}})),
        )
        .await
        .unwrap();
    synced(&env, "perm", "True").await;

    let c = synced(&env, "forbid", "False").await;
    let message = c["message"].as_str().unwrap();
    assert!(
        message.contains("Secret") && message.contains("not owned"),
        "names the refused child: {message}"
    );
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = env.api();
    assert!(
        maps.get_opt("forbid").await.unwrap().is_none(),
        "nothing of a refused answer is applied"
    );
    assert!(maps.get_opt("perm").await.unwrap().is_some());

    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert!(
        metric(&text, "workqueue_retries_total", &["widgets"]) >= 2.0,
        "{text}"
    );
    drop(host);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn pruning_finalizers_and_one_shared_watch_per_kind() {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &["rust-memcached", "test-plugin-widgets"]);
    host.ready().await;
    // Both plugins own Deployments: one watch serves both.
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert_eq!(
        metric(&text, "operon_watches", &["kind=\"apps/v1/Deployment\""]),
        1.0,
        "{text}"
    );

    create_widget(&env, "w", json!({"extra": true})).await;
    let maps: Api<k8s_openapi::api::core::v1::ConfigMap> = env.api();
    wait_until("ConfigMaps w and w-extra", WAIT, || async {
        Ok(
            (maps.get_opt("w").await?.is_some() && maps.get_opt("w-extra").await?.is_some())
                .then_some(()),
        )
    })
    .await
    .unwrap();
    let widgets = widget_api(&env);
    let w = serde_json::to_value(widgets.get("w").await.unwrap()).unwrap();
    assert_eq!(
        w.pointer("/metadata/finalizers/0"),
        Some(&json!("operon.dev/widgets"))
    );

    widgets
        .patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"extra": false}})),
        )
        .await
        .unwrap();
    wait_until("w-extra to be pruned", WAIT, || async {
        Ok(maps.get_opt("w-extra").await?.is_none().then_some(()))
    })
    .await
    .unwrap();
    assert!(
        maps.get_opt("w").await.unwrap().is_some(),
        "a child still desired stays"
    );

    widgets.delete("w", &DeleteParams::default()).await.unwrap();
    wait_until(
        "the widget to be gone after its finalizing call",
        WAIT,
        || async { Ok(widgets.get_opt("w").await?.is_none().then_some(())) },
    )
    .await
    .unwrap();
    assert_eq!(
        events_about(&env, "w", "Finalized").await,
        1,
        "the finalizing call happened once"
    );
    drop(host);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn a_restarted_host_converges_without_duplicates_or_orphans() {
    let env = TestEnv::new().await;
    let parents = memcached_api(&env);
    let deployments: Api<Deployment> = env.api();
    {
        let host = Host::start(&env, &["rust-memcached"]);
        host.ready().await;
        for name in ["a", "b"] {
            create_memcached(&env, name, 1).await;
        }
        wait_until("both Deployments", WAIT, || async {
            Ok((deployments.list(&Default::default()).await?.items.len() == 2).then_some(()))
        })
        .await
        .unwrap();
        // Dropped: killed without a chance to drain, as a crash would.
    }
    // Changed while no host runs.
    parents
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    let host = Host::start(&env, &["rust-memcached"]);
    wait_until(
        "Deployment a to follow the change made while down",
        WAIT,
        || async {
            let d = deployments.get("a").await?;
            Ok((d.spec.and_then(|s| s.replicas) == Some(2)).then_some(()))
        },
    )
    .await
    .unwrap();
    let all = deployments.list(&Default::default()).await.unwrap().items;
    assert_eq!(all.len(), 2, "no duplicates");
    for d in &all {
        let owners = d.metadata.owner_references.as_ref().unwrap();
        assert_eq!(owners.len(), 1, "exactly one owner, no orphan");
        assert_eq!(Some(owners[0].name.as_str()), d.metadata.name.as_deref());
    }
    drop(host);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn not_ready_until_the_caches_have_synced() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let env = TestEnv::new().await;
    // An admin installs the CRD; the host runs as a user without any role,
    // so its watches cannot list and its caches cannot sync.
    let crd: Value = serde_json::from_str(
        &std::fs::read_to_string(common::root().join("examples/rust-memcached/crd.json")).unwrap(),
    )
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    crds.patch(
        "memcacheds.cache.operon.dev",
        &PatchParams::apply("test").force(),
        &Patch::Apply(&crd),
    )
    .await
    .unwrap();
    let user = format!("operon-{}", env.namespace);
    let admin = std::fs::read_to_string(&env.kubeconfig_path).unwrap();
    assert!(admin.contains("\n  user:\n"), "kubeconfig layout: {admin}");
    let restricted = admin.replace("\n  user:\n", &format!("\n  user:\n    as: {user}\n"));
    let kubeconfig =
        common::temp_dir(&format!("kubeconfig-{}", env.namespace)).join("restricted.kubeconfig");
    std::fs::write(&kubeconfig, restricted).unwrap();
    wait_until("the Memcached kind to be served", WAIT, || async {
        let established = crds
            .get("memcacheds.cache.operon.dev")
            .await?
            .status
            .and_then(|s| s.conditions)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        Ok(established.then_some(()))
    })
    .await
    .unwrap();

    let host = Host::start_with(&env, &["rust-memcached"], &kubeconfig, &["--skip-crds"]);
    wait_until("operon /healthz to answer 200", WAIT, || async {
        Ok(get(&host.health, "/healthz")
            .await
            .ok()
            .filter(|(c, _)| *c == 200))
    })
    .await
    .unwrap();
    let (code, body) = get(&host.health, "/readyz").await.unwrap();
    assert_eq!(code, 503, "not ready while the caches cannot sync: {body}");

    // Grant the reads: the watches recover and the host becomes ready.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "operon-reads"},
        "rules": [
            {"apiGroups": ["cache.operon.dev"], "resources": ["memcacheds"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["services"], "verbs": ["get", "list", "watch"]}
        ]
    }))
    .unwrap();
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "operon-reads"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "operon-reads"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .unwrap();
    env.api::<Role>()
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    env.api::<RoleBinding>()
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    host.ready().await;
    drop(host);
    env.cleanup().await.unwrap();
}

/// The memcached example of another language, driven by `operon run`
/// exactly as the Rust one: children, status, and a change followed.
async fn example_converges(package: &str) {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &[package]);
    host.ready().await;
    let parents = memcached_api(&env);
    create_memcached(&env, "cache", 2).await;
    let deployments: Api<Deployment> = env.api();
    let services: Api<Service> = env.api();
    wait_until(
        &format!("{package}: the Deployment and the Service"),
        WAIT,
        || async {
            let d = deployments.get_opt("cache").await?;
            let s = services.get_opt("cache").await?;
            Ok(
                (d.is_some_and(|d| d.spec.and_then(|s| s.replicas) == Some(2)) && s.is_some())
                    .then_some(()),
            )
        },
    )
    .await
    .unwrap();
    wait_until(
        &format!("{package}: readyReplicas 2, Ready=True, Synced=True"),
        WAIT,
        || async {
            let v = serde_json::to_value(parents.get("cache").await?)?;
            let ok = v.pointer("/status/readyReplicas") == Some(&json!(2))
                && condition(&v, "Ready").is_some_and(|c| c["status"] == "True")
                && condition(&v, "Synced").is_some_and(|c| c["status"] == "True");
            Ok(ok.then_some(()))
        },
    )
    .await
    .unwrap();
    parents
        .patch(
            "cache",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    wait_until(
        &format!("{package}: the Deployment to follow spec.size = 3"),
        WAIT,
        || async {
            let d = deployments.get("cache").await?;
            Ok((d.spec.and_then(|s| s.replicas) == Some(3)).then_some(()))
        },
    )
    .await
    .unwrap();
    drop(host);
    env.cleanup().await.unwrap();
}

#[tokio::test]
async fn the_javascript_example_converges_like_the_rust_one() {
    example_converges("js-memcached").await;
}

#[tokio::test]
async fn the_python_example_converges_like_the_rust_one() {
    example_converges("python-memcached").await;
}
