//! Faults, against the real control plane, with parents changing
//! throughout: the host's connection to the API server through Toxiproxy
//! (a black hole longer than every timeout, reset connections, latency with
//! jitter, a bandwidth squeeze), connections that die silently (the
//! tests' relay: Toxiproxy cannot leave a connection dead without telling
//! one side) and the host's own damaged compile cache.
//! For each: the host stays up, `/readyz` says when its caches are stale,
//! nothing hot-loops, and after the fault every parent converges with no
//! lost, duplicated or orphaned child. The time to converge after the
//! fault ends is printed (`FAULT <name> ...`) for `cargo xtask bench
//! --only faults`; it is not asserted.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use operon_test_support::toxiproxy::{self, Toxiproxy};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

use common::churn::{Churn, converged};
use common::host::{Host, WAIT, create_memcached, get, memcached_api, metric};
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
    stale: bool,
}

/// A host that reaches the API server only through `listen` (a proxy),
/// with short timeouts so that a test need not wait kube's five minutes.
async fn host_through(env: &TestEnv, listen: &str) -> Host {
    let dir = common::temp_dir(&format!("faults-{}", env.namespace));
    let kubeconfig = toxiproxy::kubeconfig_through(&env.kubeconfig_path, listen, &dir).unwrap();
    let timeouts = ["--request-timeout-s", "5", "--watch-timeout-s", "5"];
    let host = Host::start_with(env, &["rust-memcached"], &kubeconfig, &timeouts);
    host.ready().await;
    host
}

/// Four converged parents, then churn named `prefix` under way.
async fn parents_under_churn(env: &TestEnv, prefix: &str) -> Churn {
    let names: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
    for name in &names {
        create_memcached(env, name, 1).await;
    }
    converged(env, "before the fault").await;
    let churn = Churn::start(env, Arc::new(Mutex::new(names)), prefix);
    churn.rounds(5).await;
    churn
}

async fn readyz(host: &Host) -> (u16, String) {
    get(&host.health, "/readyz")
        .await
        .unwrap_or((0, String::new()))
}

async fn watch_errors(host: &Host) -> f64 {
    let (_, text) = get(&host.metrics, "/metrics").await.unwrap();
    metric(&text, "operon_watch_errors_total", &[])
}

/// Runs `fault` under churn and checks what the module docs promise.
async fn survives(fault: Fault) {
    let env = TestEnv::new().await;
    let proxy = Toxiproxy::start().unwrap();
    let upstream = toxiproxy::server_of(&env.kubeconfig_path).unwrap();
    let api = proxy.proxy("kube-apiserver", &upstream).unwrap();
    let mut host = host_through(&env, &api.listen).await;
    let churn = parents_under_churn(&env, fault.name).await;

    let errors_before = watch_errors(&host).await;
    for (i, (kind, upstream, attributes)) in fault.toxics.iter().enumerate() {
        proxy
            .add(&api, &format!("t{i}"), kind, *upstream, attributes)
            .unwrap();
    }
    let began = Instant::now();
    let mut said_stale = None;
    while began.elapsed() < fault.lasts {
        let (code, body) = readyz(&host).await;
        if code == 503 && body.contains("watches failing") && said_stale.is_none() {
            said_stale = Some(began.elapsed());
        }
        assert!(
            host.child.try_wait().unwrap().is_none(),
            "the host stays up"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for i in 0..fault.toxics.len() {
        proxy.remove(&api, &format!("t{i}")).unwrap();
    }
    let ended = Instant::now();
    churn.stop().await;
    converged(&env, &format!("after {}", fault.name)).await;
    let converge = ended.elapsed();
    wait_until("/readyz 200 again", WAIT, || async {
        Ok((readyz(&host).await.0 == 200).then_some(()))
    })
    .await
    .unwrap();
    let errors = watch_errors(&host).await - errors_before;
    // One line per fault, read by `cargo xtask bench --only faults`.
    let stale_after = said_stale.map_or("-".into(), |d| format!("{:.1}", d.as_secs_f64()));
    eprintln!(
        "FAULT {} lasted_s={} stale_after_s={stale_after} watch_errors={errors:.0} converged_s={:.1}",
        fault.name,
        fault.lasts.as_secs(),
        converge.as_secs_f64()
    );
    if fault.stale {
        assert!(
            said_stale.is_some(),
            "/readyz told that the caches were stale"
        );
    }
    // Retried with backoff: a handful per kind, not a loop.
    let kinds = 3.0;
    let bound = kinds * (fault.lasts.as_secs_f64() / 2.0 + 5.0);
    assert!(
        errors <= bound,
        "{errors} watch errors in {:?} (bound {bound})",
        fault.lasts
    );
    assert!(host.child.try_wait().unwrap().is_none());
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
        stale: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_reset_by_peer() {
    survives(Fault {
        name: "reset-peer",
        toxics: &[("reset_peer", false, r#"{"timeout": 0}"#)],
        lasts: Duration::from_secs(20),
        stale: true,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_of_half_a_second_with_jitter() {
    survives(Fault {
        name: "latency",
        toxics: &[("latency", false, r#"{"latency": 500, "jitter": 250}"#)],
        lasts: Duration::from_secs(20),
        stale: false,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bandwidth_squeeze() {
    survives(Fault {
        name: "bandwidth",
        toxics: &[("bandwidth", false, r#"{"rate": 16}"#)],
        lasts: Duration::from_secs(20),
        stale: false,
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
    let churn = parents_under_churn(&env, "silent").await;
    relay.freeze_open_connections();
    let frozen = Instant::now();
    churn.rounds(20).await;
    churn.stop().await;
    converged(&env, "after the connections died").await;
    eprintln!(
        "FAULT silent-death lasted_s=inf stale_after_s=- watch_errors={:.0} converged_s={:.1}",
        watch_errors(&host).await,
        frozen.elapsed().as_secs_f64()
    );
    assert!(
        host.child.try_wait().unwrap().is_none(),
        "the host stays up"
    );
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
    let services: Api<k8s_openapi::api::core::v1::Service> = env.api();
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
