//! Faults of the control plane itself, each test on a private control
//! plane of its own (the shared cluster's other tests must not see its API
//! server restart): kube-apiserver restarted with SIGTERM and with
//! SIGKILL, etcd killed and restarted, etcd's history compacted while the
//! host is cut off (its watches resume with 410 Gone and list again), a
//! 410 on the very first watch, and API Priority and Fairness throttling
//! the host to one seat (429). Each under churn (see `common::faults`):
//! the host stays up, `/readyz` says when its caches are stale, nothing
//! hot-loops, and every parent converges with no lost, duplicated or
//! orphaned child. Timings are printed for `cargo xtask bench --only
//! faults`, not asserted.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::flowcontrol::v1::{FlowSchema, PriorityLevelConfiguration};
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, PostParams};
use operon_test_support::TestEnv;
use operon_test_support::controlplane::{self, ClusterGuard, Signal, UpOptions};
use operon_test_support::toxiproxy::{self, Toxiproxy};
use serde_json::json;

use common::churn::{Churn, converged};
use common::faults::{Readiness, Trial, assert_no_loop, host_through, host_with, watch_errors};
use common::host::{Host, create_memcached};

/// A private control plane and a namespace on it. The namespace is
/// dropped first (fields drop in order), then the cluster.
struct Private {
    env: TestEnv,
    cluster: ClusterGuard,
}

impl Private {
    async fn start(name: &str, apiserver_args: &[&str]) -> Private {
        let mut opts = UpOptions::new(common::temp_dir(&format!("cluster-{name}")));
        opts.nodes = 1;
        opts.owner_pid = Some(std::process::id());
        opts.apiserver_args = apiserver_args.iter().map(|a| a.to_string()).collect();
        let cluster = tokio::task::spawn_blocking(move || ClusterGuard::start(&opts))
            .await
            .unwrap()
            .unwrap();
        let env = TestEnv::on(cluster.kubeconfig().to_path_buf())
            .await
            .unwrap();
        Private { env, cluster }
    }

    fn state_dir(&self) -> PathBuf {
        self.cluster.state_dir().to_path_buf()
    }

    /// Compacts etcd every `every` for `lasting` (once when zero).
    async fn compact(&self, every: Duration, lasting: Duration) {
        let dir = self.state_dir();
        tokio::task::spawn_blocking(move || controlplane::compact(&dir, every, lasting))
            .await
            .unwrap()
            .unwrap();
    }
}

/// `component` stopped with `signal`, down for `down_for`, started again.
async fn restarted(name: &str, component: &str, signal: Signal, down_for: Duration) {
    let private = Private::start(name, &[]).await;
    let env = &private.env;
    let mut host = host_with(env, private.cluster.kubeconfig()).await;
    let mut trial = Trial::start(env, &host, name).await;
    // While the API server is down, every watch fails; while etcd is,
    // the API server may keep its watches open from its cache.
    let readiness = match component {
        "etcd" => Readiness::Either,
        _ => Readiness::SaysStale,
    };
    let (dir, component) = (private.state_dir(), component.to_string());
    trial
        .during(&mut host, async |_| {
            tokio::task::spawn_blocking(move || {
                controlplane::restart(&dir, &component, signal, down_for)
            })
            .await
            .unwrap()
            .unwrap();
        })
        .await;
    trial.finish(env, &mut host, readiness).await;
    host.terminate();
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_restarted_gracefully() {
    restarted(
        "apiserver-sigterm",
        "kube-apiserver",
        Signal::Term,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_apiserver_killed_and_restarted() {
    restarted(
        "apiserver-sigkill",
        "kube-apiserver",
        Signal::Kill,
        Duration::from_secs(5),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn etcd_killed_and_restarted() {
    restarted(
        "etcd-sigkill",
        "etcd",
        Signal::Kill,
        Duration::from_secs(10),
    )
    .await;
}

/// The host cut off (its proxy disabled: connections refused) while the
/// parents change and etcd compacts its history: each watch resumes from
/// a revision that is gone, is answered 410 Gone, and lists again. The API
/// server runs without its watch cache, so that watches are etcd's: with
/// the cache, its own window (not etcd's compaction) decides when a watch
/// expires.
#[tokio::test(flavor = "multi_thread")]
async fn etcd_compacted_while_the_host_is_cut_off() {
    let private = Private::start("compacted", &["--watch-cache=false"]).await;
    let env = &private.env;
    let proxy = Toxiproxy::start().unwrap();
    let upstream = toxiproxy::server_of(&env.kubeconfig_path).unwrap();
    let api = proxy.proxy("kube-apiserver", &upstream).unwrap();
    let mut host = host_through(env, &api.listen).await;
    let mut trial = Trial::start(env, &host, "compacted").await;
    trial
        .during(&mut host, async |churn| {
            proxy.enable(&api, false).unwrap();
            churn.rounds(30).await;
            private.compact(Duration::ZERO, Duration::ZERO).await;
            proxy.enable(&api, true).unwrap();
        })
        .await;
    trial.finish(env, &mut host, Readiness::SaysStale).await;
    let expired = watch_errors(&host, &["cause=\"expired\""]).await;
    assert!(
        expired >= 1.0,
        "the watches resumed from compacted revisions and were answered 410 Gone"
    );
    host.terminate();
}

/// A 410 on the very first watch (kube-rs#1042 looped on it for good):
/// the host starts while etcd's history is compacted every 100 ms and the
/// API server's answers reach it 300 ms late, so the revision of each
/// first list is gone by the time its watch starts (most of the time: a
/// list that happens to slip between two compactions starts its watch).
/// Each 410 is followed by a list after a backoff, not by a loop; once
/// the compaction stops the host syncs and converges.
/// (A first host, gone before the storm, installed the CRD.)
#[tokio::test(flavor = "multi_thread")]
async fn a_410_on_the_first_watch() {
    let private = Private::start("first-watch", &["--watch-cache=false"]).await;
    let env = &private.env;
    let proxy = Toxiproxy::start().unwrap();
    let upstream = toxiproxy::server_of(&env.kubeconfig_path).unwrap();
    let api = proxy.proxy("kube-apiserver", &upstream).unwrap();
    proxy
        .add(&api, "late", "latency", false, r#"{"latency": 300}"#)
        .unwrap();
    // A first host installs the CRD, and goes.
    drop(host_with(env, &env.kubeconfig_path).await);
    let names: Vec<String> = (0..4).map(|i| format!("m{i}")).collect();
    for name in &names {
        create_memcached(env, name, 1).await;
    }
    // Writes, so that every compaction has a newer revision to reach.
    let churn = Churn::start(env, Arc::new(Mutex::new(names)), "first-watch");
    let storm = Duration::from_secs(20);
    let began = Instant::now();
    let compaction = private.compact(Duration::from_millis(100), storm);
    let dir = common::temp_dir(&format!("faults-{}", env.namespace));
    let kubeconfig =
        toxiproxy::kubeconfig_through(&env.kubeconfig_path, &api.listen, &dir).unwrap();
    let host = Host::start_with(
        env,
        &["rust-memcached"],
        &kubeconfig,
        &common::faults::SHORT_TIMEOUTS,
    );
    compaction.await;
    let ended = Instant::now();
    proxy.remove(&api, "late").unwrap();
    churn.stop().await;
    host.ready().await;
    converged(env, "after the compaction storm").await;
    let expired = watch_errors(&host, &["cause=\"expired\""]).await;
    let errors = watch_errors(&host, &[]).await;
    eprintln!(
        "FAULT first-watch-410 lasted_s={:.0} stale_after_s=0.0 watch_errors={errors:.0} expired={expired:.0} converged_s={:.1}",
        (ended - began).as_secs_f64(),
        ended.elapsed().as_secs_f64()
    );
    assert!(expired >= 1.0, "first watches were answered 410 Gone");
    assert_no_loop(errors, storm);
}

/// API Priority and Fairness throttles the host to a trickle: a
/// FlowSchema sends its user's requests to a priority level of one seat
/// that rejects the rest (429 Too Many Requests, Retry-After). The API
/// server's own metrics show the rejections; the host keeps going at the
/// pace it is given, and converges.
#[tokio::test(flavor = "multi_thread")]
async fn throttled_by_priority_and_fairness() {
    // A small server-wide concurrency, so that one share is one seat.
    let flags = [
        "--max-requests-inflight=10",
        "--max-mutating-requests-inflight=5",
    ];
    let private = Private::start("apf", &flags).await;
    let env = &private.env;
    let user = "operon-throttled";
    let bindings: Api<ClusterRoleBinding> = Api::all(env.client.clone());
    let binding = json!({
        "metadata": {"name": user},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    });
    bindings
        .create(
            &PostParams::default(),
            &serde_json::from_value(binding).unwrap(),
        )
        .await
        .unwrap();
    let dir = common::temp_dir(&format!("apf-{}", env.namespace));
    let kubeconfig = common::faults::kubeconfig_as(&env.kubeconfig_path, user, &dir);
    let mut host = host_with(env, &kubeconfig).await;
    let mut trial = Trial::start(env, &host, "apf-429").await;
    let levels: Api<PriorityLevelConfiguration> = Api::all(env.client.clone());
    let schemas: Api<FlowSchema> = Api::all(env.client.clone());
    trial
        .during(&mut host, async |_| {
            let (level, schema) = trickle(user);
            levels.create(&PostParams::default(), &level).await.unwrap();
            schemas
                .create(&PostParams::default(), &schema)
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(20)).await;
            schemas.delete(user, &Default::default()).await.unwrap();
            levels.delete(user, &Default::default()).await.unwrap();
        })
        .await;
    trial.finish(env, &mut host, Readiness::Either).await;
    let text = env
        .client
        .request_text(
            hyper::http::Request::get("/metrics")
                .body(Vec::new())
                .unwrap(),
        )
        .await
        .unwrap();
    let rejected = common::host::metric(
        &text,
        "apiserver_flowcontrol_rejected_requests_total",
        &[&format!("flow_schema=\"{user}\"")],
    );
    eprintln!("APF rejected {rejected:.0} of the host's requests with 429");
    assert!(rejected >= 1.0, "the API server throttled the host");
    host.terminate();
}

/// A priority level of one seat that rejects what does not fit, and the
/// FlowSchema that sends every request of `user` there.
fn trickle(user: &str) -> (PriorityLevelConfiguration, FlowSchema) {
    let level = json!({
        "metadata": {"name": user},
        "spec": {"type": "Limited", "limited": {
            "nominalConcurrencyShares": 1, "lendablePercent": 0, "borrowingLimitPercent": 0,
            "limitResponse": {"type": "Reject"}
        }}
    });
    let schema = json!({
        "metadata": {"name": user},
        "spec": {
            "matchingPrecedence": 100,
            "priorityLevelConfiguration": {"name": user},
            "distinguisherMethod": {"type": "ByUser"},
            "rules": [{
                "subjects": [{"kind": "User", "user": {"name": user}}],
                "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"],
                                   "namespaces": ["*"], "clusterScope": true}],
                "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]
            }]
        }
    });
    (
        serde_json::from_value(level).unwrap(),
        serde_json::from_value(schema).unwrap(),
    )
}
