//! What the host writes when nothing changed, and what it puts back when
//! someone else changed a child: the API server's audit log is the witness
//! (tests/controlplane logs every write by a client other than the control
//! plane's own components), read for the test's namespace only.

mod common;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::host::{Host, WAIT, condition, create_memcached, get, memcached_api, metric};

const PARENTS: usize = 5;

/// Waits until every parent is Ready and Synced with its size of ready
/// replicas.
async fn converged(env: &TestEnv, names: &[String]) {
    let parents = memcached_api(env);
    for name in names {
        wait_until(&format!("{name} to converge"), WAIT, || async {
            let v = serde_json::to_value(parents.get(name).await?)?;
            let ok = v.pointer("/status/readyReplicas") == v.pointer("/spec/size")
                && condition(&v, "Ready").is_some_and(|c| c["status"] == "True")
                && condition(&v, "Synced").is_some_and(|c| c["status"] == "True");
            Ok(ok.then_some(()))
        })
        .await
        .unwrap();
    }
}

/// The writes in the test's namespace recorded after line `skip` of the
/// audit log: `verb resource/name`.
fn writes_since(env: &TestEnv, skip: usize) -> Vec<String> {
    common::audit_since(env, skip)
        .iter()
        .filter(|e| e.pointer("/objectRef/namespace") == Some(&json!(env.namespace)))
        .filter(|e| e["verb"] != "get" && e["verb"] != "list" && e["verb"] != "watch")
        .map(|e| {
            let at = |p: &str| {
                e.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            format!(
                "{} {}/{} {}",
                at("/verb"),
                at("/objectRef/resource"),
                at("/objectRef/name"),
                at("/objectRef/subresource")
            )
        })
        .collect()
}

/// A restarted host reconciles every parent again (its caches fill, every
/// parent is queued): with every child and status in place, none of those
/// reconciles writes anything — no apply, no status patch, no event.
#[tokio::test]
async fn a_resync_of_converged_parents_writes_nothing() {
    let env = TestEnv::new().await;
    let mut host = Host::start(&env, &["rust-memcached"]);
    host.ready().await;
    let names: Vec<String> = (0..PARENTS).map(|i| format!("quiet-{i}")).collect();
    for name in &names {
        create_memcached(&env, name, 2).await;
    }
    converged(&env, &names).await;
    host.terminate();

    let before = common::audit_lines(&env);
    let restarted = Host::start(&env, &["rust-memcached"]);
    restarted.ready().await;
    // Every parent was reconciled: each of its two children found
    // unchanged.
    let unchanged = wait_until("every child found unchanged", WAIT, || async {
        let (_, text) = get(&restarted.metrics, "/metrics").await?;
        let n = metric(
            &text,
            "operon_child_applies_total",
            &["result=\"unchanged\""],
        );
        Ok((n >= (2 * PARENTS) as f64).then_some(n))
    })
    .await
    .unwrap();
    // The reconciles are done (each parent's two children counted); let
    // anything they would still send reach the audit log.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, text) = get(&restarted.metrics, "/metrics").await.unwrap();
    let applied = metric(&text, "operon_child_applies_total", &[]) - unchanged;
    let writes = writes_since(&env, before);
    assert!(
        writes.is_empty(),
        "a resync of {PARENTS} converged parents wrote: {writes:#?}"
    );
    assert_eq!(applied, 0.0, "children applied on the resync:\n{text}");
}

/// A child changed by hand is put back on the next reconcile: `kubectl
/// scale` of the Deployment (the scale subresource), and an edit of the
/// Service's selector.
#[tokio::test]
async fn a_child_changed_by_hand_is_put_back() {
    let env = TestEnv::new().await;
    let host = Host::start(&env, &["rust-memcached"]);
    host.ready().await;
    let name = "drift".to_string();
    create_memcached(&env, &name, 2).await;
    converged(&env, std::slice::from_ref(&name)).await;

    let deployments: Api<Deployment> = env.api();
    let by_hand = PatchParams::apply("kubectl").force();
    deployments
        .patch_scale(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 5}})),
        )
        .await
        .unwrap();
    wait_until("the Deployment scaled back to 2", WAIT, || async {
        let d = deployments.get(&name).await?;
        let replicas = d.spec.and_then(|s| s.replicas);
        Ok((replicas == Some(2)).then_some(()))
    })
    .await
    .unwrap();

    // An edit of the Service's selector (a map: edited in place), as
    // `kubectl edit` would make it.
    let services: Api<Service> = env.api();
    let selector = |s: &Service| {
        let spec = s.spec.as_ref()?;
        spec.selector
            .as_ref()?
            .get("app.kubernetes.io/instance")
            .cloned()
    };
    let original = selector(&services.get(&name).await.unwrap()).unwrap();
    services
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"selector": {"app.kubernetes.io/instance": "elsewhere"}}}),
            ),
        )
        .await
        .unwrap();
    wait_until("the Service's selector put back", WAIT, || async {
        let s = services.get(&name).await?;
        Ok((selector(&s).as_deref() == Some(original.as_str())).then_some(()))
    })
    .await
    .unwrap();

    // Someone else's field the plugin never names is theirs to keep: no
    // apply takes it away, and none is sent for it.
    deployments
        .patch(
            &name,
            &by_hand,
            &Patch::Apply(json!({"apiVersion": "apps/v1", "kind": "Deployment",
                "metadata": {"name": name, "annotations": {"team.example/owner": "db"}}})),
        )
        .await
        .unwrap();
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    let drifted = metric(&text, "operon_child_applies_total", &["result=\"drifted\""]);
    assert!(
        drifted >= 2.0,
        "the two edits were applied as drift:\n{text}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let d = deployments.get(&name).await.unwrap();
    let annotations = d.metadata.annotations.unwrap_or_default();
    assert_eq!(
        annotations.get("team.example/owner").map(String::as_str),
        Some("db")
    );
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    assert_eq!(
        metric(&text, "operon_child_applies_total", &["result=\"drifted\""]),
        drifted,
        "another manager's annotation counted as drift:\n{text}"
    );
}
