//! Faults, against the real control plane, with parents changing
//! throughout: the host's connection to the API server through Toxiproxy
//! (a black hole longer than every timeout, reset connections, latency with
//! jitter, a bandwidth squeeze), connections that die silently (the
//! tests' relay: Toxiproxy cannot leave a connection dead without telling
//! one side), an admission webhook for one child kind that fails closed,
//! and the host's own damaged compile cache. Faults of the control plane
//! itself (restarts, compaction, throttling) are in `cluster_faults_e2e`.
//! For each: the host stays up, `/readyz` says when its caches are stale,
//! nothing hot-loops, and after the fault every parent converges with no
//! lost, duplicated or orphaned child. The time to converge after the
//! fault ends is printed (`FAULT <name> ...`) for `cargo xtask bench
//! --only faults`; it is not asserted.

mod common;

use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams, PostParams};
use operon_test_support::toxiproxy::{self, Toxiproxy};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

use common::churn::converged;
use common::faults::{Readiness, Trial, host_through, host_with};
use common::host::{Host, WAIT, condition, create_memcached, get, memcached_api, metric};
use common::relay::Relay;

async fn replicas(env: &TestEnv, name: &str, want: i32) {
    let deployments: Api<Deployment> = env.api();
    wait_until(
        &format!("Deployment {name} with {want} replicas"),
        WAIT,
        || async {
            Ok(deployments
                .get_opt(name)
                .await?
                .filter(|d| d.spec.as_ref().and_then(|s| s.replicas) == Some(want)))
        },
    )
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_compile_cache_is_refused_at_restart_and_the_plugin_serves() {
    let env = TestEnv::new().await;
    let cache = common::temp_dir(&format!("faults-cache-{}", env.namespace));
    let args = ["--cache-dir", cache.to_str().unwrap()];
    let start = || Host::start_with(&env, &["rust-memcached"], &env.kubeconfig_path, &args);
    let mut host = start();
    host.ready().await;
    create_memcached(&env, "cache", 1).await;
    replicas(&env, "cache", 1).await;
    assert_eq!(host.terminate().code(), Some(0));

    // A flipped bit in the machine code of every cached artifact.
    let mut damaged = 0;
    for entry in std::fs::read_dir(&cache).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "cwasm") {
            let mut bytes = std::fs::read(&path).unwrap();
            let at = bytes.len() / 2;
            bytes[at] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1, "the memcached plugin's artifact");

    let host = start();
    host.ready().await;
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    let rejected = |reason: &str| {
        metric(
            &text,
            "operon_compile_cache_rejected_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert_eq!(rejected("integrity"), 1.0, "{text}");
    assert_eq!(rejected("incompatible"), 0.0, "wasmtime never saw it");
    assert_eq!(
        metric(
            &text,
            "operon_compile_cache_loads_total",
            &["result=\"compiled\""]
        ),
        1.0
    );
    // It serves: a change converges.
    memcached_api(&env)
        .patch(
            "cache",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 3}})),
        )
        .await
        .unwrap();
    replicas(&env, "cache", 3).await;
    drop(host);
    std::fs::remove_dir_all(cache).unwrap();
    env.cleanup().await.unwrap();
}

/// A fault of the connection between the host and the API server.
struct Fault {
    name: &'static str,
    /// Toxics: (kind, upstream, attributes).
    toxics: &'static [(&'static str, bool, &'static str)],
    /// How long it lasts while the churn goes on.
    lasts: Duration,
    /// Whether the host's watches fail (and `/readyz` must say so).
    readiness: Readiness,
}

/// Runs `fault` under churn and checks what the module docs promise.
async fn survives(fault: Fault) {
    let env = TestEnv::new().await;
    let proxy = Toxiproxy::start().unwrap();
    let upstream = toxiproxy::server_of(&env.kubeconfig_path).unwrap();
    let api = proxy.proxy("kube-apiserver", &upstream).unwrap();
    let mut host = host_through(&env, &api.listen).await;
    let mut trial = Trial::start(&env, &host, fault.name).await;
    trial
        .during(&mut host, async |_| {
            for (i, (kind, upstream, attributes)) in fault.toxics.iter().enumerate() {
                proxy
                    .add(&api, &format!("t{i}"), kind, *upstream, attributes)
                    .unwrap();
            }
            tokio::time::sleep(fault.lasts).await;
            for i in 0..fault.toxics.len() {
                proxy.remove(&api, &format!("t{i}")).unwrap();
            }
        })
        .await;
    trial.finish(&env, &mut host, fault.readiness).await;
    host.terminate();
    env.cleanup().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_black_hole_longer_than_every_timeout() {
    survives(Fault {
        name: "black-hole",
        // The API server's answers vanish; requests still arrive. When it
        // ends, a request whose answer was lost waits on an idle
        // connection that nothing will ever close: only a read timeout
        // frees it (kube sets none).
        toxics: &[("timeout", false, r#"{"timeout": 0}"#)],
        lasts: Duration::from_secs(30),
        readiness: Readiness::SaysStale,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_reset_by_peer() {
    survives(Fault {
        name: "reset-peer",
        toxics: &[("reset_peer", false, r#"{"timeout": 0}"#)],
        lasts: Duration::from_secs(20),
        readiness: Readiness::SaysStale,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_of_half_a_second_with_jitter() {
    survives(Fault {
        name: "latency",
        toxics: &[("latency", false, r#"{"latency": 500, "jitter": 250}"#)],
        lasts: Duration::from_secs(20),
        readiness: Readiness::Either,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bandwidth_squeeze() {
    survives(Fault {
        name: "bandwidth",
        toxics: &[("bandwidth", false, r#"{"rate": 16}"#)],
        lasts: Duration::from_secs(20),
        readiness: Readiness::Either,
    })
    .await;
}

/// Every open connection of the host goes silent for good (a NAT that
/// forgot them): no close, no reset, nothing. Only the host's own timeouts
/// can notice; new connections work, so it must converge on them.
#[tokio::test(flavor = "multi_thread")]
async fn connections_that_die_silently_are_given_up() {
    let env = TestEnv::new().await;
    let upstream = toxiproxy::server_of(&env.kubeconfig_path).unwrap();
    let relay = Relay::start(&upstream).await;
    let mut host = host_through(&env, &relay.listen).await;
    let mut trial = Trial::start(&env, &host, "silent-death").await.for_good();
    trial
        .during(&mut host, async |churn| {
            relay.freeze_open_connections();
            churn.rounds(20).await;
        })
        .await;
    trial.finish(&env, &mut host, Readiness::Either).await;
    host.terminate();
    env.cleanup().await.unwrap();
}

/// The host killed (SIGKILL) between the two applies of one reconcile: the
/// Deployment written, the Service not yet. API latency holds each answer
/// 400 ms, so the kill lands in that window. A new host finishes the job:
/// the one Deployment and one Service, no duplicate, no orphan.
#[tokio::test(flavor = "multi_thread")]
async fn the_host_killed_between_two_applies() {
    let env = TestEnv::new().await;
    let proxy = Toxiproxy::start().unwrap();
    let upstream = toxiproxy::server_of(&env.kubeconfig_path).unwrap();
    let api = proxy.proxy("kube-apiserver", &upstream).unwrap();
    let mut host = host_through(&env, &api.listen).await;
    proxy
        .add(&api, "slow", "latency", false, r#"{"latency": 400}"#)
        .unwrap();
    create_memcached(&env, "cut", 2).await;
    let deployments: Api<Deployment> = env.api();
    let services: Api<Service> = env.api();
    wait_until("the Deployment, the first apply", WAIT, || async {
        Ok(deployments.get_opt("cut").await?)
    })
    .await
    .unwrap();
    host.child.kill().unwrap();
    host.child.wait().unwrap();
    assert!(
        services.get_opt("cut").await.unwrap().is_none(),
        "killed between the applies: the Service was not written yet"
    );
    let again = Host::start(&env, &["rust-memcached"]);
    again.ready().await;
    converged(&env, "after the kill").await;
    drop(again);
    env.cleanup().await.unwrap();
}

/// An admission webhook for Services that fails closed (failurePolicy
/// Fail; nothing answers at its URL), in this test's namespace only. The
/// host's Service applies are refused for as long as it lasts: a parent
/// created meanwhile says so in its `Synced` condition (the webhook named),
/// its Deployment is there, and its refused applies are retried with
/// backoff, a handful as the API server's audit log counts them, not a
/// loop. Once the webhook is gone, everything converges.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_admission_webhook_for_one_child_kind() {
    let env = TestEnv::new().await;
    let mut host = host_with(&env, &env.kubeconfig_path).await;
    let mut trial = Trial::start(&env, &host, "webhook").await;
    let webhooks: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    let name = format!("deny-services-{}", env.namespace);
    let began = common::audit_lines(&env);
    trial
        .during(&mut host, async |_| {
            webhooks
                .create(
                    &PostParams::default(),
                    &deny_services(&name, &env.namespace),
                )
                .await
                .unwrap();
            webhook_in_force(&env).await;
            create_memcached(&env, "fenced", 1).await;
            let refused = wait_until("fenced to show the webhook's refusal", WAIT, || async {
                let parent = serde_json::to_value(memcached_api(&env).get("fenced").await?)?;
                Ok(condition(&parent, "Synced")
                    .filter(|c| c["reason"] == "ApplyFailed")
                    .and_then(|c| c["message"].as_str().map(str::to_string)))
            })
            .await
            .unwrap();
            assert!(refused.contains("deny.operon.dev"), "{refused}");
            let deployments: Api<Deployment> = env.api();
            assert!(deployments.get_opt("fenced").await.unwrap().is_some());
            tokio::time::sleep(Duration::from_secs(15)).await;
            webhooks.delete(&name, &Default::default()).await.unwrap();
        })
        .await;
    trial.finish(&env, &mut host, Readiness::Either).await;
    let attempts = common::audit_since(&env, began)
        .iter()
        .filter(|e| e.pointer("/objectRef/resource") == Some(&json!("services")))
        .filter(|e| e.pointer("/objectRef/name") == Some(&json!("fenced")))
        .filter(|e| e.pointer("/objectRef/namespace") == Some(&json!(env.namespace)))
        .filter(|e| e.pointer("/responseStatus/code") != Some(&json!(200)))
        .count();
    eprintln!("WEBHOOK refused applies of fenced's Service: {attempts}");
    assert!(attempts >= 1, "the refusals are in the audit log");
    assert!(
        attempts <= 30,
        "{attempts} refused applies in ~15 s: a loop"
    );
    host.terminate();
    env.cleanup().await.unwrap();
}

/// A validating webhook for Services in `namespace` that cannot be called.
fn deny_services(name: &str, namespace: &str) -> ValidatingWebhookConfiguration {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "webhooks": [{
            "name": "deny.operon.dev",
            "clientConfig": {"url": "https://127.0.0.1:1/deny"},
            "rules": [{"operations": ["CREATE", "UPDATE"], "apiGroups": [""],
                       "apiVersions": ["v1"], "resources": ["services"]}],
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 2,
            "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
        }]
    }))
    .unwrap()
}

/// Waits until the API server calls the new webhook (its configuration
/// reaches admission through an informer): a dry-run Service is refused.
async fn webhook_in_force(env: &TestEnv) {
    let services: Api<Service> = env.api();
    let probe: Service = serde_json::from_value(json!({
        "metadata": {"name": "probe"}, "spec": {"ports": [{"port": 80}]}
    }))
    .unwrap();
    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    wait_until("the webhook in force", WAIT, || async {
        Ok(match services.create(&dry, &probe).await {
            Err(kube::Error::Api(s)) if s.message.contains("deny.operon.dev") => Some(()),
            _ => None,
        })
    })
    .await
    .unwrap();
}
