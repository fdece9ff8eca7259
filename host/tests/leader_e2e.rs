//! Leader election against the real control plane: replicas of one host
//! (`operon run --leader-elect`) over one Lease, the memcached example as
//! the workload, parents changing all along.
//!
//! What is asserted comes from the cluster and the replicas' metrics,
//! never from timings: which replica reconciled (its
//! `controller_runtime_reconcile_total`), that every parent converged with
//! exactly its children, and — from the API server's audit log, which
//! records every write with the client's User-Agent (`operon/<v>
//! (<identity>)`) — that the replicas' writes never interleaved.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::Api;
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

use common::churn::{Churn, converged};
use common::host::{Host, WAIT, create_memcached, get, metric};

const LEASE: &str = "operon";

/// A replica named `identity`, logging to a file beside its plugins.
fn replica(env: &TestEnv, identity: &str) -> Host {
    let log = common::temp_dir(&format!("log-{}-{identity}", env.namespace)).join("host.log");
    Host::start_logged(
        env,
        &["rust-memcached"],
        &[
            "--leader-elect",
            "--leader-elect-namespace",
            &env.namespace,
            "--leader-elect-lease",
            LEASE,
            "--identity",
            identity,
            // Short, so that the test does not wait 15 s for a failover;
            // the margin (lease − renew deadline) stays a full second.
            "--leader-elect-lease-duration-s",
            "4",
            "--leader-elect-renew-deadline-s",
            "3",
            "--leader-elect-retry-period-s",
            "0.5",
        ],
        &[],
        &log,
    )
}

async fn metrics(host: &Host) -> String {
    get(&host.metrics, "/metrics").await.unwrap().1
}

async fn reconciles(host: &Host) -> f64 {
    metric(
        &metrics(host).await,
        "controller_runtime_reconcile_total",
        &[],
    )
}

/// Waits until `host` says it holds the Lease.
async fn leads(host: &Host, who: &str) {
    let series = format!("name=\"{LEASE}\"");
    wait_until(&format!("{who} to lead"), WAIT, || async {
        let text = get(&host.metrics, "/metrics").await?.1;
        Ok((metric(&text, "leader_election_master_status", &[&series]) == 1.0).then_some(()))
    })
    .await
    .unwrap();
}

async fn holder(env: &TestEnv) -> Option<String> {
    let leases: Api<Lease> = env.api();
    leases.get(LEASE).await.unwrap().spec?.holder_identity
}

/// One write the API server audited: who (the replica's identity), what,
/// and when it was received and answered.
struct Write {
    identity: String,
    what: String,
    received: Timestamp,
    answered: Timestamp,
}

/// Every write by an operon replica in the test's namespace, except to
/// the Lease (which candidates write by design), in the order answered.
fn operon_writes(log: &Path, namespace: &str) -> Vec<Write> {
    let text = std::fs::read_to_string(log).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (the control plane writes its audit log there)",
            log.display()
        )
    });
    let mut writes: Vec<Write> = text
        .lines()
        .filter(|l| l.contains(namespace))
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e.pointer("/objectRef/namespace") == Some(&json!(namespace)))
        .filter(|e| e.pointer("/objectRef/resource") != Some(&json!("leases")))
        .filter_map(|e| {
            let agent = e["userAgent"].as_str()?;
            let identity = agent.strip_prefix("operon/")?.split_once(" (")?.1;
            let time = |f: &str| e[f].as_str()?.parse::<Timestamp>().ok();
            Some(Write {
                identity: identity.trim_end_matches(')').to_string(),
                what: format!(
                    "{} {} {}",
                    e["verb"].as_str()?,
                    e.pointer("/objectRef/resource")?.as_str()?,
                    e.pointer("/objectRef/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                ),
                received: time("requestReceivedTimestamp")?,
                answered: time("stageTimestamp")?,
            })
        })
        .collect();
    writes.sort_by_key(|w| w.answered);
    writes
}

/// The identities in the order they wrote, runs collapsed: `[a, b, c]`
/// means a wrote, then only b, then only c.
fn writers_in_turn(writes: &[Write]) -> Vec<&str> {
    let mut turns: Vec<&str> = Vec::new();
    for w in writes {
        if turns.last() != Some(&w.identity.as_str()) {
            turns.push(&w.identity);
        }
    }
    turns
}

/// The API server's own record: each replica's writes form one block, in
/// election order (`leaders`), and none began before the previous
/// writer's last one was answered.
fn assert_one_writer_at_a_time(env: &TestEnv, leaders: &[&str]) {
    let writes = operon_writes(&common::audit_log(env), &env.namespace);
    assert_eq!(
        writers_in_turn(&writes),
        leaders,
        "writers in turn, never interleaved"
    );
    for pair in writes.windows(2) {
        if pair[0].identity != pair[1].identity {
            let (w0, w1) = (&pair[0], &pair[1]);
            assert!(
                w0.answered <= w1.received,
                "two writers at once: {} {} answered at {}, after {} {} was received at {}",
                w0.identity,
                w0.what,
                w0.answered,
                w1.identity,
                w1.what,
                w1.received
            );
        }
    }
    let by: BTreeSet<&str> = writes.iter().map(|w| w.identity.as_str()).collect();
    assert_eq!(by.len(), leaders.len(), "every leader wrote");
}

#[tokio::test]
async fn one_writer_at_a_time_through_a_failover_and_a_handover() {
    let env = TestEnv::new().await;
    let mut a = replica(&env, "a");
    a.ready().await;
    leads(&a, "a").await;
    let mut b = replica(&env, "b");
    b.ready().await;

    let names: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    for name in &names {
        create_memcached(&env, name, 1).await;
    }
    converged(&env, "a leading").await;
    assert!(reconciles(&a).await > 0.0, "the leader reconciles");
    assert_eq!(
        reconciles(&b).await,
        0.0,
        "the standby, warm (ready, same plugins, caches synced), reconciles nothing"
    );
    assert_eq!(holder(&env).await.as_deref(), Some("a"));

    // Failover: the leader dies mid-churn, without a chance to release.
    let names = Arc::new(std::sync::Mutex::new(names));
    let load = Churn::start(&env, names.clone(), "failover");
    load.rounds(3).await;
    a.child.kill().unwrap(); // SIGKILL
    a.child.wait().unwrap();
    leads(&b, "b").await;
    load.rounds(3).await;
    load.stop().await;
    converged(&env, "after the failover to b").await;
    assert_eq!(holder(&env).await.as_deref(), Some("b"));

    // Handover: a new standby, then SIGTERM on the leader.
    let mut c = replica(&env, "c");
    c.ready().await;
    assert_eq!(
        reconciles(&c).await,
        0.0,
        "the new standby reconciles nothing"
    );
    let load = Churn::start(&env, names.clone(), "handover");
    load.rounds(2).await;
    let status = b.terminate();
    assert!(status.success(), "b drains and exits cleanly: {status}");
    leads(&c, "c").await;
    load.rounds(3).await;
    load.stop().await;
    converged(&env, "after the handover to c").await;
    assert!(reconciles(&c).await > 0.0, "c reconciles once it leads");
    let leases: Api<Lease> = env.api();
    let spec = leases.get(LEASE).await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("c"));
    assert_eq!(spec.lease_transitions, Some(2), "a → b → c");

    assert_one_writer_at_a_time(&env, &["a", "b", "c"]);
    let _ = c.terminate();
    drop(a);
    env.cleanup().await.unwrap();
}
