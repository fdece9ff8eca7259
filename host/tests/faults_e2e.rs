//! Faults of the machine the host runs on, against the real control plane:
//! what a user sees when the host's own state is damaged, and that the
//! host keeps serving. (Faults of the cluster — a proxy between host and
//! API server, restarts, throttling — are issue 19's next step.)

mod common;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use operon_test_support::{TestEnv, wait_until};
use serde_json::json;

use common::host::{Host, WAIT, create_memcached, get, memcached_api, metric};

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
