//! The baseline is only a fair baseline if it is a working controller: on
//! the real control plane it must create the children, report Ready once
//! the pods run, follow a scale, put back a deleted child, and stop cleanly.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::events::v1::Event;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use operon_test_support::{TestEnv, wait_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(120);

/// The running baseline, killed if the test fails before stopping it.
struct Baseline {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Baseline {
    /// Starts the controller on the test's namespace and waits for its
    /// `synced` line.
    fn start(env: &TestEnv) -> Baseline {
        let mut child = Command::new(env!("CARGO_BIN_EXE_native-memcached"))
            .env("KUBECONFIG", &env.kubeconfig_path)
            .args(["--namespace", &env.namespace, "--backoff-base-ms", "100"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting native-memcached");
        let mut stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("reading stdout");
        assert_eq!(line.trim(), "synced", "first line on stdout");
        Baseline { child, stdout }
    }

    /// SIGTERM; returns the exit status and the final stats line.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("running kill");
        assert!(status.success());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut self.stdout, &mut rest).expect("reading stdout");
        (self.child.wait().expect("waiting for exit"), rest)
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn memcached_api(env: &TestEnv) -> Api<DynamicObject> {
    let ar = ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cache.operon.dev",
        "v1alpha1",
        "Memcached",
    ));
    Api::namespaced_with(env.client.clone(), &env.namespace, &ar)
}

async fn condition(env: &TestEnv, name: &str, ty: &str) -> Option<Value> {
    let obj = memcached_api(env).get_opt(name).await.ok()??;
    let value = serde_json::to_value(obj).ok()?;
    value
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == ty)
        .cloned()
}

async fn wait_ready(env: &TestEnv, name: &str, message: &str) -> Value {
    wait_until(&format!("{name} Ready: {message}"), WAIT, || async {
        Ok(condition(env, name, "Ready")
            .await
            .filter(|c| c["status"] == "True" && c["message"] == message))
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_native_baseline_converges_scales_and_repairs() {
    let env = TestEnv::new().await;
    let baseline = Baseline::start(&env);

    let parent: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "cache.operon.dev/v1alpha1", "kind": "Memcached",
        "metadata": {"name": "cache", "namespace": env.namespace},
        "spec": {"size": 1}
    }))
    .unwrap();
    let created = memcached_api(&env)
        .create(&PostParams::default(), &parent)
        .await
        .unwrap();
    wait_ready(&env, "cache", "1/1 replicas ready").await;

    // The children, as the host would have applied them.
    let deployments: Api<Deployment> = env.api();
    let d = deployments.get("cache").await.unwrap();
    let owner = &d.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(owner.uid, created.metadata.uid.clone().unwrap());
    assert_eq!(owner.controller, Some(true));
    let labels = d.metadata.labels.clone().unwrap();
    assert_eq!(labels["operon.dev/plugin"], "memcached");
    assert_eq!(labels["operon.dev/parent"], "cache");
    assert!(
        d.metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("operon/memcached")
                && m.operation.as_deref() == Some("Apply")),
        "server-side applied with the host's field manager"
    );
    let services: Api<Service> = env.api();
    assert_eq!(
        services
            .get("cache")
            .await
            .unwrap()
            .spec
            .unwrap()
            .ports
            .unwrap()[0]
            .port,
        11211
    );
    let synced = condition(&env, "cache", "Synced").await.unwrap();
    assert_eq!(synced["status"], "True");
    assert_eq!(synced["reason"], "ReconcileSucceeded");

    // Scaling: the Deployment follows, the status converges again, and the
    // reconciler's Scaled event is recorded.
    memcached_api(&env)
        .patch(
            "cache",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}})),
        )
        .await
        .unwrap();
    wait_ready(&env, "cache", "2/2 replicas ready").await;
    assert_eq!(
        deployments
            .get("cache")
            .await
            .unwrap()
            .spec
            .unwrap()
            .replicas,
        Some(2)
    );
    let events: Api<Event> = env.api();
    wait_until("a Scaled event", WAIT, || async {
        let list = events.list(&ListParams::default()).await?;
        Ok(list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("Scaled"))
            .map(|_| ()))
    })
    .await
    .unwrap();

    // A deleted child comes back: the owned watch triggers a reconcile.
    services
        .delete("cache", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("the Service to be re-created", WAIT, || async {
        Ok(services
            .get_opt("cache")
            .await?
            .filter(|s| s.metadata.deletion_timestamp.is_none())
            .map(|_| ()))
    })
    .await
    .unwrap();

    let (status, stats) = baseline.stop();
    assert!(status.success(), "exits cleanly on SIGTERM: {status}");
    let reconciles: u64 = stats
        .trim()
        .strip_prefix("reconciles=")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a stats line, got {stats:?}"));
    assert!(reconciles >= 3, "{stats}");
    env.cleanup().await.unwrap();
}
